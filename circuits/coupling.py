r"""Coupling: how belief and error populations feed each other. One module, three builds.

Between level l (beliefs mu_l) and level l-1 (error units), with g_l(mu) = W f(mu) or f(W mu):

=================  ===========================================  ==========================
target             input                                        phase (``circuits.schedule``)
=================  ===========================================  ==========================
error_{l-1}        prediction = g_l(mu_l)                       DELIVER_TO_ERRORS
error_l            signal = mu_l (one-to-one)                   DELIVER_TO_ERRORS
belief_l           bottom_up = J_l' eps_{l-1}                   DELIVER_TO_BELIEFS
belief_l           own_error = eps_l (one-to-one)               DELIVER_TO_BELIEFS
=================  ===========================================  ==========================

Builds:

- ``dense``: the products run in NumPy/BLAS, in place on Brian2's own state arrays, from two
  ``network_operation``s per step. Brian2's ``(summed)`` synapses loop once per synapse per step
  and ran ~10x slower than this for dense weights.
- ``sparse``: the same, with scipy.sparse CSR weights (local receptive fields).
- ``synapses``: Brian2 ``Synapses`` with ``(summed)`` variables; slower on the CPU, but it is
  plain Brian2, so it also runs on devices such as cpp_standalone or brian2cuda.

``auto`` picks sparse below ``SPARSE_DENSITY`` nonzero weights, dense otherwise. All three
produce the same trajectories (tested to 1e-9). Weight learning (``circuits.plasticity``) is
applied in the DELIVER_TO_BELIEFS phase, before the bottom-up products.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse
from brian2 import Clock, NetworkOperation, NeuronGroup, Synapses, ms

from circuits import schedule
from circuits.plasticity import hebbian_update, synaptic_weight_equations
from sim.generative import GenerativeMap, dense

SPARSE_DENSITY = 0.05


def choose_coupling(kind: str, maps: Sequence[GenerativeMap]) -> str:
    """Resolve ``auto`` by the density of the weights."""
    if kind != "auto":
        return kind
    total = sum(gmap.shape[0] * gmap.shape[1] for gmap in maps)
    nonzero = sum(
        gmap.weights.nnz if scipy.sparse.issparse(gmap.weights) else np.count_nonzero(gmap.weights)
        for gmap in maps
    )
    return "sparse" if total and nonzero / total < SPARSE_DENSITY else "dense"


def _state(group: NeuronGroup, name: str) -> np.ndarray:
    """Brian2's own storage for a state variable (runtime devices): written in place."""
    return group.variables[name].get_value()


@dataclass
class _Link:
    """Level l's beliefs, their generative map to level l-1, and the arrays both sides share."""

    gmap: GenerativeMap
    belief: np.ndarray
    bottom_up: np.ndarray
    own_error: np.ndarray
    error_here: np.ndarray
    signal_here: np.ndarray
    error_below: np.ndarray
    prediction_below: np.ndarray
    learning_rate: float | None
    drive: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.drive = np.zeros(self.gmap.shape[0])
        if scipy.sparse.issparse(self.gmap.weights):
            self.gmap.weights = scipy.sparse.csr_matrix(self.gmap.weights)
        else:
            self.gmap.weights = np.ascontiguousarray(self.gmap.weights, dtype=self.belief.dtype)

    def deliver_to_errors(self) -> None:
        np.copyto(self.signal_here, self.belief)
        gmap, weights, f = self.gmap, self.gmap.weights, self.gmap.nonlinearity
        source = self.belief if gmap.site == "after" or f.is_identity else f.f(self.belief)
        if scipy.sparse.issparse(weights):
            self.drive[:] = weights @ source
        else:
            np.dot(weights, source, out=self.drive)
        if gmap.site == "before" or f.is_identity:
            np.copyto(self.prediction_below, self.drive)
        else:
            self.prediction_below[:] = f.f(self.drive)

    def deliver_to_beliefs(self) -> None:
        np.copyto(self.own_error, self.error_here)
        gmap, weights, f = self.gmap, self.gmap.weights, self.gmap.nonlinearity
        if self.learning_rate is not None:
            hebbian_update(weights, *gmap.weight_gradient_factors(self.belief, self.error_below),
                           self.learning_rate)
        error_below = self.error_below
        if gmap.site == "after" and not f.is_identity:
            error_below = f.df(self.drive) * error_below
        if scipy.sparse.issparse(weights):
            self.bottom_up[:] = weights.T @ error_below
        else:
            np.dot(weights.T, error_below, out=self.bottom_up)
        if gmap.site == "before" and not f.is_identity:
            self.bottom_up *= f.df(self.belief)


class Coupling:
    """The Brian2 objects that couple the populations, and access to the current weights."""

    def __init__(self, kind: str, objects: list, weights: list) -> None:
        self.kind = kind
        self.objects = objects
        self._weights = weights

    def weights(self) -> list[np.ndarray]:
        """Current W_l for l = 1..L (dense copies)."""
        return [dense(source()) for source in self._weights]


def build_coupling(
    kind: str,
    maps: Sequence[GenerativeMap],
    beliefs: Sequence[NeuronGroup],
    errors: Sequence[NeuronGroup],
    clock: Clock,
    tau_weights_ms: float | None = None,
) -> Coupling:
    """Couple belief groups 1..L (``beliefs[l-1]``) with error groups 0..L (``errors[l]``).

    ``maps[l-1]`` is g_l. ``kind`` is ``dense``, ``sparse``, ``synapses`` or ``auto``.
    """
    kind = choose_coupling(kind, maps)
    if kind == "synapses":
        return _synaptic_coupling(maps, beliefs, errors, clock, tau_weights_ms)
    rate = None if tau_weights_ms is None else float(clock.dt / (tau_weights_ms * ms))
    links = [
        _Link(
            gmap=gmap,
            belief=_state(belief, "belief"),
            bottom_up=_state(belief, "bottom_up"),
            own_error=_state(belief, "own_error"),
            error_here=_state(errors[index + 1], "error"),
            signal_here=_state(errors[index + 1], "signal"),
            error_below=_state(errors[index], "error"),
            prediction_below=_state(errors[index], "prediction"),
            learning_rate=rate,
        )
        for index, (gmap, belief) in enumerate(zip(maps, beliefs, strict=True))
    ]
    if kind == "sparse":
        for link in links:
            link.gmap.weights = scipy.sparse.csr_matrix(link.gmap.weights)

    def deliver_to_errors() -> None:
        for link in links:
            link.deliver_to_errors()

    def deliver_to_beliefs() -> None:
        for link in links:
            link.deliver_to_beliefs()

    objects = [
        NetworkOperation(deliver_to_errors, when=schedule.SLOT, order=schedule.DELIVER_TO_ERRORS,
                         clock=clock, name="coupling_to_errors"),
        NetworkOperation(deliver_to_beliefs, when=schedule.SLOT,
                         order=schedule.DELIVER_TO_BELIEFS, clock=clock, name="coupling_to_beliefs"),
    ]
    return Coupling(kind, objects, [lambda link=link: link.gmap.weights for link in links])


def _synaptic_coupling(
    maps: Sequence[GenerativeMap],
    beliefs: Sequence[NeuronGroup],
    errors: Sequence[NeuronGroup],
    clock: Clock,
    tau_weights_ms: float | None,
) -> Coupling:
    objects: list = []
    weights = []
    for index, (gmap, belief) in enumerate(zip(maps, beliefs, strict=True)):
        if gmap.site != "before":
            raise ValueError(
                "the synapses coupling supports g = W f(mu) only (nonlinearity before the "
                "weights); use coupling = 'dense' for g = f(W mu)"
            )
        f, df = gmap.nonlinearity.brian("belief_pre"), gmap.nonlinearity.brian("belief_pre", 1)
        model = synaptic_weight_equations(f, tau_weights_ms is not None) + (
            f"prediction_post = w * {f} : 1 (summed)\n"
            f"bottom_up_pre = w * error_post * {df} : 1 (summed)\n"
        )
        generative = Synapses(belief, errors[index], model=model, method="euler",
                              name=f"generative_{belief.name}", clock=clock,
                              when=schedule.SLOT, order=schedule.DELIVER_TO_BELIEFS)
        matrix = scipy.sparse.coo_matrix(gmap.weights)
        generative.connect(i=matrix.col, j=matrix.row)
        generative.w = matrix.data
        if tau_weights_ms is not None:
            generative.tau_weights = tau_weights_ms * ms
        one_to_one = Synapses(
            belief, errors[index + 1],
            model="signal_post = belief_pre : 1 (summed)\nown_error_pre = error_post : 1 (summed)",
            name=f"one_to_one_{belief.name}", clock=clock,
        )
        one_to_one.connect(j="i")
        objects += [generative, one_to_one]
        weights.append(
            lambda syn=generative, shape=gmap.shape: scipy.sparse.csr_matrix(
                (np.asarray(syn.w[:]), (np.asarray(syn.j[:]), np.asarray(syn.i[:]))), shape=shape
            )
        )
    return Coupling("synapses", objects, weights)
