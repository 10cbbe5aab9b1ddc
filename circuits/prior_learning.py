r"""Prior learning: the top level's prior mean learns from its own prediction error.

The top level's error is e_L = mu_L - m, weighted eps_L = Pi_L e_L; F holds 1/2 Pi_L e_L^2,
so descending F with respect to the prior mean m,

.. math::

    \tau_m \frac{dm}{dt} = -\frac{\partial F}{\partial m} = \Pi_L (\mu_L - m) = \varepsilon_L

the prior units integrate the top error units' rate (for relaxing errors, eps_L relaxes to
Pi_L e_L). Its fixed point over a stream of trials is <mu_L> = m: the prior comes to expect
what the beliefs find. It integrates the top error population's ``prediction`` (which is m),
so what it learns carries over from trial to trial; a trial that sets ``prior_mean`` sets it
anew.

Scenario field: ``[model.learning] tau_prior_ms`` (off when absent). Recorded:
``levels/<top>/prior_mean`` (``[record] variables`` name ``prior_mean``) and
``levels/<top>/prior_mean_final``. It ``learns`` the ``prior`` (a trial's ``learn`` switches
it); snapshots: ``snapshots/levels/<top>/prior_mean``.

Step bound: m relaxes at rate Pi_L per tau (instantaneous errors), updated by the top error
population's method.
"""

from __future__ import annotations

import numpy as np

from circuits.claims import Claim
from circuits.mechanism import (
    BuildContext,
    FlowBound,
    Mechanism,
    Piece,
    Population,
    StartState,
    Stream,
)
from circuits.variables import Variable

FLOW = "dprediction/dt = error / tau_prior : 1"
PRIOR_MEAN = Variable("prior_mean", "m", "learned prior mean", "parameter")  # recorded


class PriorLearning(Mechanism):
    name = "prior_learning"
    family = "hierarchical"
    section = "learning"
    changes = ("prior",)
    learns = "prior"
    switched_on_by = "tau_prior_ms"
    record_variables = ("prior_mean",)

    def parse(self, fields) -> float | None:
        return fields.number("tau_prior_ms", default=None, positive=True)

    def describe(self, tau_ms: float | None) -> dict:
        return {} if tau_ms is None else {"tau_prior_ms": tau_ms}

    def claims(self, tau_ms: float, model) -> list[Claim]:
        """It learns the top level's prior (its mean)."""
        return [Claim("learns", "prior", model.levels[-1].name, "tau_prior_ms")]

    def pieces(self, tau_ms: float, population: Population) -> Piece | None:
        if population.role != "error" or not population.top:
            return None
        return Piece(equations="tau_prior : second (shared, constant)",
                     integrates={"prediction": FLOW})

    def build(self, tau_ms: float, context: BuildContext) -> list:
        from brian2 import ms

        context.errors[-1].tau_prior = tau_ms * ms
        return []

    def bounds(self, tau_ms: float, state: StartState) -> list[FlowBound]:
        rate = float(np.max(state.precisions[-1]))
        return [FlowBound(rate, tau_ms, state.method, "dt/tau_prior * max Pi_L < 2",
                          f"max Pi_L = {rate:.4g}, the prior precision, learned by "
                          "tau dm/dt = Pi_L (mu_L - m)")]

    def streams(self, tau_ms: float, context: BuildContext) -> list[Stream]:
        top = context.model.levels[-1]
        values = context.errors[-1].variables["prediction"].get_value()
        return [Stream(f"levels/{top.name}/prior_mean", top.size, lambda: values,
                       variable="prior_mean", units=PRIOR_MEAN.units_for(top.units),
                       declares=PRIOR_MEAN, state=(context.errors[-1].name, "prediction"))]

    def watch(self, tau_ms: float, context: BuildContext) -> list[tuple]:
        return [(context.errors[-1].name, "prediction",
                 context.errors[-1].variables["prediction"].get_value())]

    def outputs(self, tau_ms: float, context: BuildContext) -> dict:
        top = context.model.levels[-1]
        return {f"levels/{top.name}/prior_mean_final":
                np.array(context.errors[-1].variables["prediction"].get_value(), dtype=float)}

    def snapshot_shapes(self, tau_ms: float, model) -> dict[str, tuple[int, ...]]:
        top = model.levels[-1]
        return {f"levels/{top.name}/prior_mean": (top.size,)}

    def snapshot(self, tau_ms: float, context: BuildContext) -> dict:
        top = context.model.levels[-1]
        return {f"levels/{top.name}/prior_mean":
                context.errors[-1].variables["prediction"].get_value()}


MECHANISM = PriorLearning()
