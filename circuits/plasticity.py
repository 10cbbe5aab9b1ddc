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
synapses' own flow on ``w`` (on the compiled device too, ``compiled``, at the same slot). The
weights persist across trials.

**Weight decay** (optional): a Gaussian prior on every weight, W_ij ~ N(0, sigma_W^2), is
one more term of F, 1/2 sum_ij W_ij^2 / sigma_W^2 (up to a constant), so the flow gains its
gradient,

.. math::

    \tau_W \frac{dW}{dt} = -\frac{\partial F}{\partial W}
      = \varepsilon_{\text{below}}\, f(\mu)^\top - \frac{W}{\sigma_W^2}

We treat the prior as part of F: the recorded F (and ``final_free_energy``) then includes
1/2 sum W^2 / sigma_W^2 (``energy``), the very quantity the weights descend; without decay
nothing is added. On the tiny linear case x = w mu + noise (one input, one cause, prior
N(0, 1/Pi_p), input precision Pi_x, constant input x), the joint fixed point of beliefs and
weight is w^2 = (Pi_x |x| sigma_W sqrt(Pi_p) - Pi_p) / Pi_x (tested). With the NumPy
couplings each step is W <- W (1 - r / sigma_W^2) + r eps f', r = dt / tau_W.

Scenario fields: ``[model.learning] tau_weights_ms`` (off when absent) and
``weight_prior_variance`` (sigma_W^2; no decay when absent; it needs ``tau_weights_ms``).
The final weights go to ``levels/<name>/weights_final`` in the result; snapshots to
``snapshots/levels/<name>/weights`` (``[record] snapshots_every``). It ``learns`` the
``weights`` (a trial's ``learn`` switches it, ``sim.simulation``).

Step bound: row i of W relaxes at rate Pi_i ||dg_i/dW_i||^2 / tau_W
(``GenerativeMap.weight_sensitivity``), plus 1/sigma_W^2 with decay, updated by an Euler step
whatever the method.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse
from scipy.linalg import blas

from circuits import schedule
from circuits.claims import Claim, claims_on
from circuits.mechanism import BuildContext, FlowBound, Mechanism, Piece, Population, StartState

WEIGHT_CHECK_STEPS = 1000  # the runtime guard's cadence for the weights (sim.guard)
SYNAPTIC_FLOW = "dw/dt = error_post * {f} / tau_weights : 1 (clock-driven)"
SYNAPTIC_DECAY_FLOW = ("dw/dt = (error_post * {f} - w / weight_prior_variance) / tau_weights "
                       ": 1 (clock-driven)")


@dataclass(frozen=True)
class WeightLearning:
    """``tau_ms``: tau_W; ``prior_variance``: sigma_W^2 of the weights' Gaussian prior (None:
    no decay)."""

    tau_ms: float
    prior_variance: float | None = None


def hebbian_update(weights, post: np.ndarray, pre: np.ndarray, rate: float,
                   rows: np.ndarray | None = None, decay: float = 0.0) -> None:
    """weights = weights (1 - decay) + rate * outer(post, pre), in place (dense: BLAS ger;
    sparse: existing synapses). ``decay``: r / sigma_W^2 (0: none, no work).

    For CSR weights, ``rows`` (the row of every stored entry) may be passed to save its
    recomputation.
    """
    if decay:
        if scipy.sparse.issparse(weights):
            weights.data *= 1.0 - decay
        else:
            weights *= 1.0 - decay
    if scipy.sparse.issparse(weights):
        if rows is None:
            rows = sparse_rows(weights)
        weights.data += rate * post[rows] * pre[weights.indices]
        return
    ger = blas.dger if weights.dtype == np.float64 else blas.sger
    # W is C-ordered, so W.T is a Fortran array that ger can update without copying.
    ger(rate, pre, post, a=weights.T, overwrite_a=True)


def constants(settings: WeightLearning, synapses: list) -> None:
    """tau_W (and sigma_W^2) of the generative synapses' flow on ``w``."""
    from brian2 import ms

    for group in synapses:
        group.tau_weights = settings.tau_ms * ms
        if settings.prior_variance is not None:
            group.weight_prior_variance = settings.prior_variance


def sparse_rows(weights: scipy.sparse.csr_matrix) -> np.ndarray:
    """The row index of every stored entry of a CSR matrix."""
    return np.repeat(np.arange(weights.shape[0]), np.diff(weights.indptr))


class WeightPlasticity(Mechanism):
    name = "weight_plasticity"
    family = "hierarchical"
    section = "learning"
    changes = ("weights",)
    learns = "weights"
    switched_on_by = "tau_weights_ms"

    def parse(self, fields) -> WeightLearning | None:
        tau_ms = fields.number("tau_weights_ms", default=None, positive=True)
        variance = fields.number("weight_prior_variance", default=None, positive=True)
        if variance is not None and tau_ms is None:
            raise fields.error("weight_prior_variance", "a prior on the weights decays weights "
                                                        "that learn, and none do: set "
                                                        "tau_weights_ms too")
        return None if tau_ms is None else WeightLearning(tau_ms, variance)

    def describe(self, settings: WeightLearning | None) -> dict:
        described: dict = {"tau_weights_ms": settings.tau_ms if settings else None}
        if settings is not None and settings.prior_variance is not None:
            described["weight_prior_variance"] = settings.prior_variance
        return described

    def claims(self, settings: WeightLearning, model) -> list[Claim]:
        """It learns the weights of every belief level (with decay: under its prior)."""
        return claims_on([level.name for level in model.belief_levels], "learns", "weights",
                         "tau_weights_ms")

    def pieces(self, settings: WeightLearning, population: Population) -> Piece | None:
        if population.role != "generative_synapses":
            return None
        f = f"({population.generative.nonlinearity.brian('belief_pre')})"
        if settings.prior_variance is None:
            return Piece(equations="tau_weights : second (shared, constant)",
                         integrates={"w": SYNAPTIC_FLOW.format(f=f)})
        return Piece(equations="tau_weights : second (shared, constant)\n"
                               "weight_prior_variance : 1 (shared, constant)",
                     integrates={"w": SYNAPTIC_DECAY_FLOW.format(f=f)})

    def build(self, settings: WeightLearning, context: BuildContext) -> list:
        from brian2 import NetworkOperation, ms

        coupling = context.coupling
        constants(settings, coupling.synapses)
        if not coupling.links:
            return []
        rate = float(context.clock.dt / (settings.tau_ms * ms))
        decay = rate / settings.prior_variance if settings.prior_variance else 0.0
        rows = [sparse_rows(link.gmap.weights) if link.sparse else None
                for link in coupling.links]

        def learn() -> None:
            for link, link_rows in zip(coupling.links, rows, strict=True):
                hebbian_update(link.gmap.weights,
                               *link.gmap.weight_gradient_factors(link.belief, link.error_below),
                               rate, link_rows, decay)

        switched = context.state[self.name] = schedule.Switched(learn)
        return [NetworkOperation(switched.run, when=schedule.SLOT, order=schedule.PLASTICITY,
                                 clock=context.clock, name="plasticity")]

    def compiled(self, settings: WeightLearning, context) -> list:
        """The NumPy update as the compiled coupling's synapses' own flow on ``w`` (their
        ``generative_synapses`` piece, switched by ``learning_weights`` in phases), moved to
        the update's slot (``PLASTICITY``: after the errors, before they are carried up)."""
        constants(settings, context.coupling.synapses)
        for synapses in context.coupling.synapses:
            synapses.state_updater.order = schedule.PLASTICITY
        return []

    def learning(self, settings: WeightLearning, context: BuildContext, on: bool) -> None:
        """The NumPy update runs only in trials that learn the weights (the ``synapses``
        coupling's flow is scaled by ``learning_weights``)."""
        switched = context.state.get(self.name)
        if switched is not None:
            switched.on = on

    def energy(self, settings: WeightLearning, context: BuildContext) -> float:
        """The weights' Gaussian prior, 1/2 sum W^2 / sigma_W^2 (nat; 0 without decay)."""
        if settings.prior_variance is None:
            return 0.0
        total = 0.0
        for weights in context.coupling.weights(copy=False):
            values = weights.data if scipy.sparse.issparse(weights) else weights
            total += float(np.dot(values.ravel(), values.ravel()))
        return 0.5 * total / settings.prior_variance

    def snapshot_shapes(self, settings: WeightLearning, model) -> dict[str, tuple[int, ...]]:
        """Dense weights as matrices; sparse ones as their stored entries (CSR order: the
        pattern is ``weights_initial``'s)."""
        return {f"levels/{level.name}/weights":
                ((level.generative.weights.nnz,) if level.generative.is_sparse
                 else level.generative.shape) for level in model.belief_levels}

    def snapshot(self, settings: WeightLearning, context: BuildContext) -> dict:
        return {f"levels/{level.name}/weights":
                weights.data if scipy.sparse.issparse(weights) else weights
                for level, weights in zip(context.model.belief_levels,
                                          context.coupling.weights(copy=False), strict=True)}

    def watch(self, settings: WeightLearning, context: BuildContext) -> list[tuple]:
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

    def bounds(self, settings: WeightLearning, state: StartState) -> list[FlowBound]:
        with np.errstate(all="ignore"):
            rate = max(float(np.max(state.precisions[index] * gmap.weight_sensitivity(mu)))
                       for index, (gmap, mu) in enumerate(zip(state.maps, state.beliefs,
                                                              strict=True)))
        if settings.prior_variance is None:
            return [FlowBound(rate, settings.tau_ms, "euler",
                              "dt/tau_weights * max_i Pi_i ||dg_i/dW_i||^2 < 2",
                              f"max_i Pi_i ||dg_i/dW_i||^2 = {rate:.4g} at the starting "
                              "beliefs")]
        decay = 1 / settings.prior_variance
        return [FlowBound(rate + decay, settings.tau_ms, "euler",
                          "dt/tau_weights * (max_i Pi_i ||dg_i/dW_i||^2 + 1/sigma_W^2) < 2",
                          f"max_i Pi_i ||dg_i/dW_i||^2 = {rate:.4g} at the starting beliefs, "
                          f"1/sigma_W^2 = {decay:.4g}")]

    def outputs(self, settings: WeightLearning, context: BuildContext) -> dict:
        return {f"levels/{level.name}/weights_final": weights
                for level, weights in zip(context.model.belief_levels,
                                          context.coupling.weights(), strict=True)}


MECHANISM = WeightPlasticity()
