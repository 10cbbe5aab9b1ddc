r"""Weight plasticity: learning as slow inference over the generative weights.

The weights enter F through the error they predict, 1/2 e' Pi e with e = mu_below - g(W, mu).
Descending F,

.. math::

    \tau_W \frac{dW}{dt} = -\frac{\partial F}{\partial W}
      = \begin{cases} \varepsilon_{\text{below}}\, f(\mu)^\top & g = W f(\mu) \\
        \big(f'(W\mu) \odot \varepsilon_{\text{below}}\big)\, \mu^\top & g = f(W\mu) \end{cases}

a Hebbian product of presynaptic activity and postsynaptic (error) rate (Bogacz 2017, eq. 20).
``GenerativeMap.weight_gradient_factors`` gives the two factors; with the NumPy couplings the
update is applied once per step with rate dt / tau_W, in place, just before the errors are
carried up (``circuits.schedule.PLASTICITY``); with the ``synapses`` coupling it is the
synapses' own flow on ``w``. The weights persist across trials.

Scenario field: ``[model.learning] tau_weights_ms`` (off when absent). The final weights go to
``levels/<name>/weights_final`` in the result.

Step bound: row i of W relaxes at rate Pi_i ||dg_i/dW_i||^2 / tau_W
(``GenerativeMap.weight_sensitivity``), updated by an Euler step whatever the method.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse
from brian2 import NetworkOperation, ms
from scipy.linalg import blas

from circuits import schedule
from circuits.mechanism import BuildContext, FlowBound, Mechanism, Piece, Population, StartState

WEIGHT_CHECK_STEPS = 1000  # the runtime guard's cadence for the weights (sim.guard)
SYNAPTIC_FLOW = "dw/dt = error_post * {f} / tau_weights : 1 (clock-driven)"


def hebbian_update(weights, post: np.ndarray, pre: np.ndarray, rate: float,
                   rows: np.ndarray | None = None) -> None:
    """weights += rate * outer(post, pre), in place (dense: BLAS ger; sparse: existing synapses).

    For CSR weights, ``rows`` (the row of every stored entry) may be passed to save its
    recomputation.
    """
    if scipy.sparse.issparse(weights):
        if rows is None:
            rows = sparse_rows(weights)
        weights.data += rate * post[rows] * pre[weights.indices]
        return
    ger = blas.dger if weights.dtype == np.float64 else blas.sger
    # W is C-ordered, so W.T is a Fortran array that ger can update without copying.
    ger(rate, pre, post, a=weights.T, overwrite_a=True)


def sparse_rows(weights: scipy.sparse.csr_matrix) -> np.ndarray:
    """The row index of every stored entry of a CSR matrix."""
    return np.repeat(np.arange(weights.shape[0]), np.diff(weights.indptr))


class WeightPlasticity(Mechanism):
    name = "weight_plasticity"
    family = "hierarchical"
    section = "learning"
    changes = ("weights",)

    def parse(self, fields) -> float | None:
        return fields.number("tau_weights_ms", default=None, positive=True)

    def describe(self, tau_ms: float | None) -> dict:
        return {"tau_weights_ms": tau_ms}

    def pieces(self, tau_ms: float, population: Population) -> Piece | None:
        if population.role != "generative_synapses":
            return None
        f = f"({population.generative.nonlinearity.brian('belief_pre')})"
        return Piece(equations="tau_weights : second (shared, constant)",
                     integrates={"w": SYNAPTIC_FLOW.format(f=f)})

    def build(self, tau_ms: float, context: BuildContext) -> list:
        coupling = context.coupling
        for synapses in coupling.synapses:
            synapses.tau_weights = tau_ms * ms
        if not coupling.links:
            return []
        rate = float(context.clock.dt / (tau_ms * ms))
        rows = [sparse_rows(link.gmap.weights) if link.sparse else None
                for link in coupling.links]

        def learn() -> None:
            for link, link_rows in zip(coupling.links, rows, strict=True):
                hebbian_update(link.gmap.weights,
                               *link.gmap.weight_gradient_factors(link.belief, link.error_below),
                               rate, link_rows)

        return [NetworkOperation(learn, when=schedule.SLOT, order=schedule.PLASTICITY,
                                 clock=context.clock, name="plasticity")]

    def watch(self, tau_ms: float, context: BuildContext) -> list[tuple]:
        """The learning weights: flat views of the NumPy arrays updated in place, or the
        synapses' ``w``; every ``WEIGHT_CHECK_STEPS`` steps (a dense 1000 x 500 W checked
        every 50 steps cost 10% of a step)."""
        coupling, levels = context.coupling, context.model.belief_levels
        if coupling.synapses:
            return [(synapses.name, "w", synapses.variables["w"].get_value(),
                     WEIGHT_CHECK_STEPS) for synapses in coupling.synapses]
        return [(f"weights_{level.name}", "w",
                 link.gmap.weights.data if link.sparse else link.gmap.weights.reshape(-1),
                 WEIGHT_CHECK_STEPS)
                for level, link in zip(levels, coupling.links, strict=True)]

    def bounds(self, tau_ms: float, state: StartState) -> list[FlowBound]:
        with np.errstate(all="ignore"):
            rate = max(float(np.max(state.precisions[index] * gmap.weight_sensitivity(mu)))
                       for index, (gmap, mu) in enumerate(zip(state.maps, state.beliefs,
                                                              strict=True)))
        return [FlowBound(rate, tau_ms, "euler",
                          "dt/tau_weights * max_i Pi_i ||dg_i/dW_i||^2 < 2",
                          f"max_i Pi_i ||dg_i/dW_i||^2 = {rate:.4g} at the starting beliefs")]

    def outputs(self, tau_ms: float, context: BuildContext) -> dict:
        return {f"levels/{level.name}/weights_final": weights
                for level, weights in zip(context.model.belief_levels,
                                          context.coupling.weights(), strict=True)}


MECHANISM = WeightPlasticity()
