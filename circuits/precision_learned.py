r"""Learned precision: precision inferred on a slow time scale by descending F.

With F_l = 1/2 Pi e^2 - 1/2 ln Pi per unit (``sim.families.hierarchical.free_energy``),
dF/dPi = (e^2 - 1/Pi) / 2, so

.. math::

    \tau_\Pi \frac{d\Pi}{dt} = \tfrac12 \left(\Pi^{-1} - e^2\right)

whose fixed point Pi = 1 / <e^2> is the inverse of the error variance. It integrates the
configured part of the precision (``circuits.precision``), so what it learns carries over from
trial to trial; a trial that overrides a level's precision sets it anew. Where fast log
contributions also act (Pi = Pi_c g, g = exp(sum lambda_k)), dF/dPi_c = (g e^2 - 1/Pi_c)/2, so

.. math::

    \tau_\Pi \frac{d\Pi_c}{dt} = \frac{1 - \Pi e^2}{2 \Pi_c}

the same flow when g = 1. With inferred precision on the same units, at the joint fixed point
Pi <e^2> = 1 and the inferred lambda returns to its prior mean: the slow configured part ends
up holding the channel's reliability, the fast part only its departures within a trial.
Use it to learn how reliable a channel is over many trials; precision that must follow the
noise within one trial is a fast state, not this parameter.

Scenario field: ``[model.learning] tau_precision_ms`` (off when absent). It ``learns`` the
``precision`` (a trial's ``learn`` switches it); snapshots: ``snapshots/levels/<name>/precision``,
the learned part (Pi, or Pi_c where log contributions also act).

Step bound: linearised at Pi, d(dPi)/dt = -dPi / (2 Pi^2 tau): rate 1/(2 Pi^2) per tau,
largest for the smallest Pi (units with Pi = 0, a flat prior, are left to the runtime guard).
"""

from __future__ import annotations

import math

import numpy as np

from circuits.claims import Claim, claims_on
from circuits.mechanism import BuildContext, FlowBound, Mechanism, Piece, Population, StartState
from circuits.precision import configured_variable

LEARNED_PRECISION = (
    "dprecision/dt = (1 / precision - (signal - prediction)**2) / (2 * tau_precision) : 1"
)
# with log contributions, Pi = Pi_c g: dF/dPi_c = (g e^2 - 1/Pi_c)/2 and g = Pi / Pi_c
LEARNED_CONFIGURED_PRECISION = (
    "d{configured}/dt = (1 - precision * (signal - prediction)**2) / (2 * {configured} "
    "* tau_precision) : 1"
)


class LearnedPrecision(Mechanism):
    name = "learned_precision"
    family = "hierarchical"
    section = "learning"
    changes = ("precision",)
    learns = "precision"
    switched_on_by = "tau_precision_ms"

    def parse(self, fields) -> float | None:
        return fields.number("tau_precision_ms", default=None, positive=True)

    def describe(self, tau_ms: float | None) -> dict:
        return {"tau_precision_ms": tau_ms}

    def claims(self, tau_ms: float, model) -> list[Claim]:
        """It learns the precision of every level (the top's: the prior precision)."""
        return claims_on([level.name for level in model.levels], "learns", "precision",
                         "tau_precision_ms")

    def pieces(self, tau_ms: float, population: Population) -> Piece | None:
        if population.role != "error":
            return None
        configured = population.configured_precision
        flow = (LEARNED_PRECISION if configured == "precision"
                else LEARNED_CONFIGURED_PRECISION.format(configured=configured))
        return Piece(equations="tau_precision : second (shared, constant)",
                     integrates={configured: flow})

    def build(self, tau_ms: float, context: BuildContext) -> list:
        from brian2 import ms

        for group in context.errors:
            group.tau_precision = tau_ms * ms
        return []

    def bounds(self, tau_ms: float, state: StartState) -> list[FlowBound]:
        smallest = min((float(p[p > 0].min()) for p in map(np.asarray, state.precisions)
                        if np.any(p > 0)), default=math.inf)
        return [FlowBound(1 / (2 * smallest**2), tau_ms, state.method,
                          "dt/tau_precision / (2 Pi_min^2) < 2 (for method R(-h) > -1)",
                          f"Pi_min = {smallest:.4g}, the smallest precision, learned by "
                          "tau dPi/dt = (1/Pi - e^2)/2")]

    def snapshot_shapes(self, tau_ms: float, model) -> dict[str, tuple[int, ...]]:
        return {f"levels/{level.name}/precision": (level.size,) for level in model.levels}

    def snapshot(self, tau_ms: float, context: BuildContext) -> dict:
        """The part of Pi it learns: Pi itself, or Pi_c where log contributions also act."""
        return {f"levels/{level.name}/precision":
                group.variables[configured_variable(group)].get_value()
                for level, group in zip(context.model.levels, context.errors, strict=True)}


MECHANISM = LearnedPrecision()
