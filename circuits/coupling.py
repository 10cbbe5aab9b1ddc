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
  ``network_operation``s per step: g and J' eps are ``GenerativeMap.predict`` and ``pull_back``
  (the functions F, the stability check and analysis use too), given ``out=`` buffers, bound
  to the arrays once at build (``predict_call``, ``pull_back_call``, ``Nonlinearity.f_into``:
  each operation is one loop over calls with their branches already taken; that dispatch
  was 2-7 us of a 1000-500-100 step, docs/performance.md).
  Brian2's ``(summed)`` synapses loop once per synapse per step and ran ~10x slower than this
  for dense weights. Products write straight into the target arrays (``np.dot(..., out=)``),
  f and f' are skipped for the identity, and the weights and buffers take the dtype of the
  state variables (the scenario's ``float``), so a step adds no work beyond the arithmetic
  (``pcsim bench`` measures it against a plain NumPy loop).
- ``sparse``: the same, with scipy.sparse CSR weights (local receptive fields); W' is kept as a
  CSR copy (a gather, faster than CSC's scatter) unless the weights learn.
- ``synapses``: Brian2 ``Synapses`` with ``(summed)`` variables; slower on the CPU, but it is
  plain Brian2, so it also runs on devices such as cpp_standalone or brian2cuda. f(mu) and
  f'(mu) are computed per belief unit, not per synapse (``ACTIVATION_UPDATE``).

``auto`` picks sparse below ``SPARSE_DENSITY`` nonzero weights, dense otherwise. All three
produce the same trajectories (tested to 1e-9). Weight learning (``circuits.plasticity``) is a
mechanism: it updates ``links``' weights in place just before DELIVER_TO_BELIEFS, or gives the
``synapses`` their flow on ``w`` (a ``Piece`` for the ``generative_synapses`` population).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import scipy.sparse
from brian2 import Clock, NetworkOperation, NeuronGroup, Synapses
from brian2.groups.group import CodeRunner

from circuits import schedule
from circuits.equations import gather
from circuits.generative import GenerativeMap, dense
from circuits.mechanism import Piece, Population, state_array

SPARSE_DENSITY = 0.05
TRANSPOSED_COPY_BYTES = 256 << 20  # a level's W' kept as a second, contiguous copy up to this
GENERATIVE_SYNAPSES = """
w : 1
prediction_post = w * {f} : 1 (summed)
bottom_up_pre = w * error_post * {df} : 1 (summed)
"""
# g = W f(mu) with a nonlinear f (``keeps_activation``): the belief units compute f(mu) once a
# step, just before the first delivery, and the synapses read it (``activation_pre``); the
# pull-back sums W' eps over the synapses and the units scale it by f'(mu) once it is summed,
# as ``GenerativeMap.pull_back`` does: f and f' once per unit, not once per synapse (tanh
# twice for each of 1,088 weights a step at 64-16-4, where 20 units need it twice), and f'
# from the activation where it is a function of f's value (tanh: 1 - activation**2, no
# second tanh; ``Nonlinearity.brian_slope``), as the pull-back's ``df_of_f``
ACTIVATION_UPDATE = "activation = {f}"
ACTIVATION_ORDER = schedule.DELIVER_TO_ERRORS - 1
SLOPE_UPDATE = "bottom_up = bottom_up * ({df})"
SLOPE_ORDER = schedule.DELIVER_TO_BELIEFS + 1  # after the summed W' eps, before BELIEFS


def keeps_activation(gmap: GenerativeMap) -> bool:
    """Whether the belief units of ``gmap``'s level hold f(mu) for the coupling
    (``circuits.belief``): g = W f(mu) with a nonlinear f."""
    return gmap.site == "before" and not gmap.nonlinearity.is_identity


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


ALIGNMENT = 64  # bytes: a cache line, and the widest vector load


def aligned(matrix: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """A C-contiguous copy of ``matrix`` whose data start on an ``ALIGNMENT``-byte boundary.

    NumPy's allocator aligns to 16 bytes; OpenBLAS's matrix-vector kernels ran a float64
    1000 x 500 product pair 10% slower (92 against 83 us, one core) on weights at 16 mod 32.
    """
    dtype = np.dtype(dtype)
    size = int(np.prod(matrix.shape)) * dtype.itemsize
    buffer = np.empty(size + ALIGNMENT, dtype=np.uint8)
    start = -buffer.ctypes.data % ALIGNMENT
    copy = buffer[start:start + size].view(dtype).reshape(matrix.shape)
    copy[...] = matrix
    return copy


@dataclass
class _Link:
    """Level l's beliefs, their generative map to level l-1, and the arrays both sides share.

    Every array is Brian2's own storage or a buffer allocated once; a step allocates only the
    temporaries of f'(mu), and of f(mu) where f is not one NumPy function (none for the
    identity); f(mu) is kept in the belief units' ``activation``. In a batched run (B copies
    of the network, ``sim.batch``) every array is a (B, n) view, one copy per row, and each
    product is one matrix-matrix product for all copies (``GenerativeMap.predict``,
    ``pull_back``). ``to_errors`` and ``to_beliefs``: the level's calls of a step in each
    delivery, bound to these arrays (the coupling's two operations run them).
    """

    gmap: GenerativeMap
    belief: np.ndarray
    bottom_up: np.ndarray
    own_error: np.ndarray
    error_here: np.ndarray
    signal_here: np.ndarray
    error_below: np.ndarray
    prediction_below: np.ndarray
    weights_change: bool = False
    sparse: bool = False
    activation: np.ndarray | None = None  # the belief units' f(mu), where they hold it
    drive: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        dtype = self.belief.dtype
        self.rows = self.belief.ndim == 2  # copies of the network, one per row
        self.drive = np.zeros((*self.belief.shape[:-1], self.gmap.shape[0]), dtype=dtype)
        if self.sparse:
            self.gmap.weights = scipy.sparse.csr_matrix(self.gmap.weights, dtype=dtype)
            # W' as CSR (a gather) is ~1.5x faster than W' as CSC (a scatter); learning changes
            # W.data in place, which the CSC view W.T shares.
            weights = self.gmap.weights
            self.transposed = weights.T if self.weights_change else weights.T.tocsr()
        else:
            self.gmap.weights = aligned(dense(self.gmap.weights), dtype)
            # fixed weights: W' as a contiguous copy (up to TRANSPOSED_COPY_BYTES), so that
            # both products of a step read their matrix row by row. Measured on one core at
            # 1000 x 500, OpenBLAS 0.3.30: batched, the column form of the row products
            # (circuits.generative._row_products) 1.4x faster than on the view; one copy,
            # float64 W' e 45.7 against 58.5 us with OpenBLAS's SkylakeX kernels (42 against
            # 45 with Haswell's), float32 20.5 against 22.0 us
            keep_copy = (not self.weights_change
                         and self.gmap.weights.nbytes <= TRANSPOSED_COPY_BYTES)
            self.transposed = (aligned(self.gmap.weights.T, dtype) if keep_copy
                               else self.gmap.weights.T)

        self.to_errors = [partial(np.copyto, self.signal_here, self.belief)]
        if self.activation is not None:  # f(mu), for both deliveries (mu does not move
            self.to_errors.append(  # between them)
                self.gmap.nonlinearity.f_into(self.belief, self.activation, self.rows))
        self.to_errors.append(self.gmap.predict_call(
            self.belief, self.prediction_below, self.drive, self.rows, self.activation))
        self.to_beliefs = [partial(np.copyto, self.own_error, self.error_here),
                           self.gmap.pull_back_call(self.belief, self.error_below, self.bottom_up,
                                                    self.drive, self.transposed, self.rows,
                                                    self.activation)]


class Coupling:
    """The Brian2 objects that couple the populations, and access to the current weights.

    ``links`` (NumPy couplings) and ``synapses`` (the ``synapses`` coupling's generative
    ``Synapses``, one per level) are what mechanisms acting on the weights reach for.
    """

    def __init__(self, kind: str, objects: list, weights: list, links: Sequence[_Link] = (),
                 synapses: Sequence[Synapses] = ()) -> None:
        self.kind = kind
        self.objects = objects
        self._weights = weights
        self.links = list(links)
        self.synapses = list(synapses)

    def weights(self, copy: bool = True) -> list:
        """Current W_l for l = 1..L, dense or scipy.sparse as the scenario gave them."""
        return [source().copy() if copy else source() for source in self._weights]


def build_coupling(
    kind: str,
    maps: Sequence[GenerativeMap],
    beliefs: Sequence[NeuronGroup],
    errors: Sequence[NeuronGroup],
    clock: Clock,
    weights_change: bool = False,
    pieces: Callable[[Population], Sequence[tuple[str, Piece]]] = lambda population: (),
    copies: int = 1,
) -> Coupling:
    """Couple belief groups 1..L (``beliefs[l-1]``) with error groups 0..L (``errors[l]``).

    ``maps[l-1]`` is g_l. ``kind`` is ``dense``, ``sparse``, ``synapses`` or ``auto``.
    ``weights_change``: a mechanism changes the weights while running (no cached copies of
    them). ``pieces``: the mechanisms' pieces for a ``generative_synapses`` population.
    ``copies``: every group holds that many copies of its level, copy after copy (a batched
    run); the copies share the weights and are coupled copy by copy (NumPy couplings only).
    """
    kind = choose_coupling(kind, maps)
    if kind == "synapses":
        if copies != 1:
            raise ValueError("the synapses coupling runs one copy of the network")
        return _synaptic_coupling(maps, beliefs, errors, clock, pieces)
    given = [gmap.weights for gmap in maps]
    links = [
        _Link(
            gmap=gmap,
            belief=state_array(belief, "belief", copies),
            bottom_up=state_array(belief, "bottom_up", copies),
            own_error=state_array(belief, "own_error", copies),
            error_here=state_array(errors[index + 1], "error", copies),
            signal_here=state_array(errors[index + 1], "signal", copies),
            error_below=state_array(errors[index], "error", copies),
            prediction_below=state_array(errors[index], "prediction", copies),
            weights_change=weights_change,
            sparse=kind == "sparse",
            activation=(state_array(belief, "activation", copies) if keeps_activation(gmap)
                        else None),
        )
        for index, (gmap, belief) in enumerate(zip(maps, beliefs, strict=True))
    ]

    # a step's calls, every link's in one list (``_Link.to_errors``, ``to_beliefs``): each
    # operation is one loop over calls bound to the arrays at build
    to_errors = [call for link in links for call in link.to_errors]
    to_beliefs = [call for link in links for call in link.to_beliefs]

    def deliver_to_errors() -> None:
        for call in to_errors:
            call()

    def deliver_to_beliefs() -> None:
        for call in to_beliefs:
            call()

    objects = [
        NetworkOperation(deliver_to_errors, when=schedule.SLOT, order=schedule.DELIVER_TO_ERRORS,
                         clock=clock, name="coupling_to_errors"),
        NetworkOperation(deliver_to_beliefs, when=schedule.SLOT,
                         order=schedule.DELIVER_TO_BELIEFS, clock=clock,
                         name="coupling_to_beliefs"),
    ]
    return Coupling(kind, objects, [lambda link=link, given=matrix: _as_given(link.gmap.weights,
                                                                               given)
                                    for link, matrix in zip(links, given, strict=True)], links)


def activation_runners(gmap: GenerativeMap, belief: NeuronGroup, clock: Clock) -> list:
    """The belief units' ``activation = f(mu)`` just before ``DELIVER_TO_ERRORS`` and
    ``bottom_up *= f'(mu)`` just after ``DELIVER_TO_BELIEFS``, as Brian2 code (a map that
    ``keeps_activation``): the products then sum W a and W' eps alone."""
    return [CodeRunner(belief, "stateupdate", code=code, clock=clock, when=schedule.SLOT,
                       order=order, name=f"{belief.name}_{what}")
            for what, code, order in (
                ("activation", ACTIVATION_UPDATE.format(f=gmap.nonlinearity.brian("belief")),
                 ACTIVATION_ORDER),
                ("slope", SLOPE_UPDATE.format(df=gmap.nonlinearity.brian_slope("belief",
                                                                                "activation")),
                 SLOPE_ORDER))]


def _synaptic_coupling(
    maps: Sequence[GenerativeMap],
    beliefs: Sequence[NeuronGroup],
    errors: Sequence[NeuronGroup],
    clock: Clock,
    pieces: Callable[[Population], Sequence[tuple[str, Piece]]],
    every_entry: bool = False,
) -> Coupling:
    """``every_entry``: a synapse for every entry of dense weights, zeros too (the dense
    coupling learns them all; by default an entry that is 0 has none)."""
    objects: list = []
    generatives = []
    weights = []
    for index, (gmap, belief) in enumerate(zip(maps, beliefs, strict=True)):
        if gmap.site != "before":
            raise ValueError(
                "the synapses coupling supports g = W f(mu) only (nonlinearity before the "
                "weights); use coupling = 'dense' for g = f(W mu)"
            )
        if keeps_activation(gmap):
            f, df = "activation_pre", "1"
            objects += activation_runners(gmap, belief, clock)
        else:
            f = f"({gmap.nonlinearity.brian('belief_pre')})"
            df = f"({gmap.nonlinearity.brian('belief_pre', 1)})"
        population = Population("generative_synapses", index + 1, belief.name, gmap)
        model = gather(GENERATIVE_SYNAPSES, {"f": f, "df": df}, pieces(population))
        generative = Synapses(belief, errors[index], model=model, method="euler",
                              name=f"generative_{belief.name}", clock=clock,
                              order=schedule.DELIVER_TO_BELIEFS)  # its w update, if w learns
        if every_entry and not scipy.sparse.issparse(gmap.weights):
            rows, columns = (index.ravel() for index in np.indices(gmap.shape))
            values = np.asarray(gmap.weights).ravel()
        else:
            matrix = scipy.sparse.coo_matrix(gmap.weights)
            rows, columns, values = matrix.row, matrix.col, matrix.data
        if len(values):  # none: the prediction is 0 (the summed variable of no synapse)
            generative.connect(i=columns, j=rows)
            generative.w = values
        generatives.append(generative)
        one_to_one = Synapses(
            belief, errors[index + 1],
            model="signal_post = belief_pre : 1 (summed)\nown_error_pre = error_post : 1 (summed)",
            name=f"one_to_one_{belief.name}", clock=clock,
        )
        units = np.arange(belief.N)  # arrays, not j = "i": a third of its code generation
        one_to_one.connect(i=units, j=units)
        # Brian2 updates a summed variable just before its target group (order - 1): the
        # error units' inputs are moved to DELIVER_TO_ERRORS, as the dense coupling delivers
        # them, so that a recorder between (relaxing errors) sees this step's prediction
        for synapses in (generative, one_to_one):
            schedule.summed_at(synapses, schedule.DELIVER_TO_BELIEFS)
            schedule.summed_at(synapses, schedule.DELIVER_TO_ERRORS,
                               ("prediction_post", "signal_post"))
        objects += [generative, one_to_one]
        weights.append(
            lambda syn=generative, gmap=gmap: _as_given(scipy.sparse.csr_matrix(
                (np.asarray(syn.w[:]), (np.asarray(syn.j[:]), np.asarray(syn.i[:]))),
                shape=gmap.shape), gmap.weights)
        )
    return Coupling("synapses", objects, weights, synapses=generatives)


def _as_given(weights, given):
    """Weights in the format the scenario gave them (dense stays dense, sparse stays sparse)."""
    if scipy.sparse.issparse(given):
        return scipy.sparse.csr_matrix(weights)
    return dense(weights)
