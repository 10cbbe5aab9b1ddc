r"""Learned precision: precision inferred on a slow time scale by descending F.

With F_l = 1/2 Pi e^2 - 1/2 ln Pi per unit (``sim.families.hierarchical.free_energy``),
dF/dPi = (e^2 - 1/Pi) / 2, so

.. math::

    \tau_\Pi \frac{d\Pi}{dt} = \tfrac12 \left(\Pi^{-1} - e^2\right)

whose fixed point Pi = 1 / <e^2> is the inverse of the error variance. It integrates the error
population's ``precision`` (the configured part, ``circuits.precision``), so what it learns
carries over from trial to trial; a trial that overrides a level's precision sets it anew.
Use it to learn how reliable a channel is over many trials; precision that must follow the
noise within one trial is a fast state, not this parameter.

Scenario field: ``[model.learning] tau_precision_ms`` (off when absent).

Step bound: linearised at Pi, d(dPi)/dt = -dPi / (2 Pi^2 tau): rate 1/(2 Pi^2) per tau,
largest for the smallest Pi (units with Pi = 0, a flat prior, are left to the runtime guard).
"""

from __future__ import annotations

import math

import numpy as np
from brian2 import ms

from circuits.mechanism import BuildContext, FlowBound, Mechanism, Piece, Population, StartState

LEARNED_PRECISION = (
    "dprecision/dt = (1 / precision - (signal - prediction)**2) / (2 * tau_precision) : 1"
)


class LearnedPrecision(Mechanism):
    name = "learned_precision"
    family = "hierarchical"
    section = "learning"
    changes = ("precision",)

    def parse(self, fields) -> float | None:
        return fields.number("tau_precision_ms", default=None, positive=True)

    def describe(self, tau_ms: float | None) -> dict:
        return {"tau_precision_ms": tau_ms}

    def pieces(self, tau_ms: float, population: Population) -> Piece | None:
        if population.role != "error":
            return None
        return Piece(equations="tau_precision : second (shared, constant)",
                     integrates={"precision": LEARNED_PRECISION})

    def build(self, tau_ms: float, context: BuildContext) -> list:
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


MECHANISM = LearnedPrecision()
