r"""Laplace-approximated variational free energy of a hierarchical model, in nats.

With Q(mu) = N(mu, Sigma) and Gaussian likelihoods at every level,

.. math::

    E(\mu) = \sum_{l=0}^{L} \tfrac12 e_l^\top \Pi_l e_l - \tfrac12 \ln|\Pi_l|
             + \tfrac{n_l}{2}\ln 2\pi,
    \qquad e_l = \mu_l - g_{l+1}(\mu_{l+1}),\; e_L = \mu_L - m,\; \mu_0 = x

    F = E_Q[E] - H[Q] \approx E(\mu) + \tfrac12 \ln|H(\mu)| - \tfrac{N}{2}\ln 2\pi

where H = d^2E/dmu^2 is the energy's Hessian over all N belief units and Sigma = H^{-1} has
been chosen optimally (this is what makes the entropy term exact for a linear-Gaussian model, so
that F at the fixed point equals the surprise -ln p(x)). H is block tridiagonal:

.. math::

    H_{ll} = \Pi_l + J_l^\top \Pi_{l-1} J_l - \sum_i \varepsilon_{l-1,i}\,
             \partial^2 g_{l,i}/\partial\mu_l^2,\qquad
    H_{l,l+1} = -\Pi_l J_{l+1}

with eps_l = Pi_l e_l and J_l = dg_l/dmu_l. Pi_l is diagonal (one precision per unit, given as
a vector), or a full n_l x n_l matrix where a mechanism puts one in force (the learned
covariance of ``circuits.covariance``, Pi_l = Sigma_l^{-1}): the same formulas with the matrix
(``weigh``), and ln|Pi_l| its log-determinant. Units with zero precision (a flat prior) add no
energy and no log-determinant term: F is then defined up to that improper prior's constant.
If H is not positive definite (far from a mode) ln|det H| is used. A mechanism whose energy
acts on the beliefs (a sparse prior, ``circuits.sparse_prior``) adds its own term to E and its
second derivative to H's diagonal (``curvature``: per belief level, the diagonal it adds; the
energy the caller adds itself). With sparse weights (local
receptive fields) H is assembled as a scipy.sparse matrix and ln|det H| comes from its sparse
LU factors, so a 10^4-unit hierarchy never forms a dense N x N matrix.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse

from circuits.generative import scale_rows
from sim.families.hierarchical.log_det import block_log_abs_det, log_abs_det
from sim.families.hierarchical.model import HierarchicalModel

LN_2PI = float(np.log(2.0 * np.pi))


@dataclass(frozen=True)
class FreeEnergy:
    energy: float  # E(mu), the Gibbs energy at the mean
    laplace: float  # 1/2 ln|H| - N/2 ln 2pi, the entropy side
    total: float


def prediction_errors(
    model: HierarchicalModel, sensory: np.ndarray, beliefs: Sequence[np.ndarray],
    prior_mean: np.ndarray | None = None, predictions: Sequence[np.ndarray] | None = None,
) -> list[np.ndarray]:
    """e_l for l = 0..L given the input x and beliefs mu_1..mu_L (``prior_mean``: the one in
    force, default the model's; ``predictions``: g_{l+1}(mu_{l+1}) for l < L where already
    computed from these beliefs)."""
    states = [np.asarray(sensory, dtype=float), *beliefs]
    errors = []
    for index, state in enumerate(states):
        if index + 1 < len(states):
            prediction = (model.levels[index + 1].generative.predict(states[index + 1])
                          if predictions is None else predictions[index])
        else:
            prediction = model.prior_mean if prior_mean is None else prior_mean
        errors.append(state - prediction)
    return errors


def is_matrix(precision) -> bool:
    """A level's precision is a full matrix (n x n), not one per unit."""
    return (precision.ndim if isinstance(precision, np.ndarray) else np.ndim(precision)) == 2


def weigh(precision, values):
    """Pi @ values for a full precision matrix, diag(Pi) @ values for per-unit precisions
    (``values`` a vector, or a matrix whose rows are the level's units)."""
    if is_matrix(precision):
        if scipy.sparse.issparse(values):  # a sparse J stays sparse: so does the Hessian
            return (scipy.sparse.csr_matrix(precision) @ values).tocsr()
        return precision @ values
    if np.shape(precision) != np.shape(values)[:1]:
        precision = np.broadcast_to(precision, np.shape(values)[:1])
    return precision * values if np.ndim(values) == 1 else scale_rows(precision, values)


def energy(errors: Sequence[np.ndarray], precisions: Sequence[np.ndarray]) -> float:
    total = 0.0
    for error, precision in zip(errors, precisions, strict=True):
        if is_matrix(precision):  # 1/2 e' Pi e - 1/2 ln|Pi| + n/2 ln 2 pi
            total += 0.5 * float(error @ (precision @ error))
            total += 0.5 * (len(error) * LN_2PI - float(np.linalg.slogdet(precision)[1]))
            continue
        precision = np.asarray(precision)
        if precision.shape != error.shape:
            precision = np.broadcast_to(precision, error.shape)
        total += 0.5 * float((precision * error**2).sum())
        total += _normaliser(precision.dtype.str, precision.tobytes())
    return total


@functools.lru_cache(maxsize=64)
def _normaliser(dtype: str, values: bytes) -> float:
    """1/2 sum (ln 2pi - ln Pi_i) over the units with Pi_i > 0, kept per precision vector (by
    its bytes): precisions change rarely within a run, and this was 3/4 of ``energy``'s time at
    a sample (29 of 33 us at 1000-500-100)."""
    precision = np.frombuffer(values, dtype=dtype)
    return 0.5 * float(np.sum(LN_2PI - np.log(precision[precision > 0])))


def row_energies(
    model: HierarchicalModel, sensory: np.ndarray, beliefs: Sequence[np.ndarray],
    precisions: Sequence[np.ndarray], prior_mean: np.ndarray,
    predictions: Sequence[np.ndarray] | None = None,
) -> np.ndarray:
    """E(mu) of k copies at once (a batched run's samples): every argument a (k, n_l) stack,
    one copy per row; row by row ``energy`` of ``prediction_errors`` (to rounding), with each
    level's prediction one matrix-matrix product for all copies (or ``predictions``, as for
    ``prediction_errors``)."""
    states = [sensory, *beliefs]
    total = np.zeros(len(sensory))
    for index, (state, precision) in enumerate(zip(states, precisions, strict=True)):
        if index + 1 < len(states):
            prediction = (predictions[index] if predictions is not None else
                          model.levels[index + 1].generative.predict(states[index + 1],
                                                                     rows=True))
        else:
            prediction = prior_mean
        error = state - prediction
        total += 0.5 * np.sum(precision * error**2, axis=1)
        total += _row_normalisers(precision)
    return total


_LAST_ROWS: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}


def _row_normalisers(precision: np.ndarray) -> np.ndarray:
    """``_normaliser`` of every row of a (k, n) stack of precisions, kept for the last stack of
    each shape (compared by value): a batched run's precisions change rarely, and looking up
    every row's bytes at every sample cost ~150 us a step (16 copies of 1000-500-100)."""
    key = (precision.shape, precision.dtype.str)
    kept = _LAST_ROWS.get(key)
    if kept is not None and np.array_equal(kept[0], precision):
        return kept[1]
    found = np.array([_normaliser(row.dtype.str, row.tobytes()) for row in precision])
    _LAST_ROWS[key] = (np.array(precision), found)
    return found


class _Recent:
    """Values kept under keys (float arrays of one shape), most recent first: ``find`` compares
    a key with every kept one in one NumPy comparison (what ``np.array_equal`` with each would
    find, in the same order), where a loop of ``array_equal`` calls cost 16 x 2-3 us at every
    Laplace term of a model whose precision changes at every sample (a miss each time)."""

    def __init__(self) -> None:
        self.shape: object = None  # the keys' shape (one shape a cache: a level's, or a tuple)
        self.keys = np.empty((0, 0))  # one flattened key a row, most recent first
        self.values: list = []

    def find(self, shape: object, key: np.ndarray):
        """The value kept under an equal key of this shape (the most recent), None if none."""
        if shape != self.shape or not self.values:
            return None
        hits = (self.keys == key.reshape(-1)).all(axis=1)
        first = int(hits.argmax())  # the first hit, or 0 if none
        return self.values[first] if hits[first] else None

    def keep(self, shape: object, key: np.ndarray, value, size: int) -> None:
        """Put ``value`` in front under a copy of ``key``, keeping at most ``size`` (a key of
        another shape starts afresh: the shapes are the model's, fixed in a run)."""
        row = np.array(key, dtype=float).reshape(1, -1)
        if shape != self.shape:
            self.shape, self.keys, self.values = shape, row, [value]
            return
        self.keys = np.concatenate((row, self.keys[:size - 1]))
        self.values = [value, *self.values[:size - 1]]


class GramCache:
    """W' Pi W per level, kept while W and Pi stay the same (compared on every use, a cost of
    n_{l-1} n_l against the product's n_{l-1} n_l^2): for g = W f(mu),
    J' Pi J = diag(f'(mu)) W' Pi W diag(f'(mu)), so a recorded sample only rescales it.
    ``size``: how many precisions it keeps a product for, most recent first (the trials of a
    protocol take turns with their own precisions, and so do the copies of a batched run),
    as far as ``KEEP_BYTES`` a block allows (one at least)."""

    KEEP_BYTES = 1 << 27  # W' Pi W products kept per block (128 MB: 64 of 500 x 500)

    def __init__(self, size: int = 1) -> None:
        self.size = size  # W' Pi W kept per block for this many Pi (and as many ln|det H|)
        self.entries: dict[int, tuple[np.ndarray, _Recent]] = {}
        self.log_dets = _Recent()  # linear models: ln|det H| by all the precisions
        self.workspaces: dict[int, np.ndarray] = {}

    def workspace(self, block: int, shape: tuple[int, ...]) -> np.ndarray:
        """An array kept for a block's Hessian, overwritten at each use. Fresh n x n arrays at
        every Laplace term cost page faults: glibc hands the freed ones back to the system
        (they pass its trim threshold together) and takes them again at the next term,
        3.5 ms of a 7 ms term at 1000-500-100."""
        kept = self.workspaces.get(block)
        if kept is None or kept.shape != shape:
            kept = self.workspaces[block] = np.empty(shape)
        return kept

    def gram(self, block: int, weights: np.ndarray, precision: np.ndarray) -> np.ndarray:
        kept = self.entries.get(block)
        if kept is None or kept[0].shape != weights.shape or not (kept[0] == weights).all():
            kept = self.entries[block] = (weights.copy(), _Recent())
            self.log_dets = _Recent()  # the Hessian changed with the weights
        products = kept[1]
        product = products.find(precision.shape, precision)
        if product is None:
            product = weights.T @ weigh(precision, weights)
            products.keep(precision.shape, precision, product,
                          max(1, min(self.size, self.KEEP_BYTES // product.nbytes)))
        return product

    def constant_log_det(self, key: tuple[tuple, np.ndarray]) -> float | None:
        """For a linear model the whole Hessian is constant while W and Pi are: its ln|det|
        from a time with the same precisions (``key``: ``precisions_key``), if the weights did
        not change since."""
        return self.log_dets.find(*key)

    def keep_log_det(self, key: tuple[tuple, np.ndarray], value: float) -> None:
        self.log_dets.keep(*key, value, self.size)


def precisions_key(precisions: Sequence[np.ndarray]) -> tuple[tuple, np.ndarray]:
    """Every level's precisions as one flat array, with the levels' shapes: what
    ``GramCache.constant_log_det`` compares."""
    return tuple(np.shape(p) for p in precisions), np.concatenate(precisions, axis=None)


def hessian_blocks(
    model: HierarchicalModel,
    beliefs: Sequence[np.ndarray],
    errors: Sequence[np.ndarray],
    precisions: Sequence[np.ndarray],
    cache: GramCache | None = None,
    curvature: dict[int, np.ndarray] | None = None,
) -> tuple[list, list, bool]:
    """The energy Hessian's diagonal blocks (level l with itself) and upper blocks (level l
    with l + 1), and whether they are sparse (any W is); ``curvature`` adds to the diagonal
    of the levels it names (1..L).

    Block l: Pi_l + J_l' Pi_{l-1} J_l - sum_i (Pi_{l-1} e_{l-1})_i d^2 g_{l,i}; block (l-1, l):
    -Pi_{l-1} J_l (how mu_l moves the error that mu_{l-1} sees). With a ``cache`` and dense
    g = W f(mu) (or a linear g), J' Pi J is the cached W' Pi W rescaled by f'(mu) on both
    sides.
    """
    sparse = any(level.generative.is_sparse for level in model.belief_levels)
    diagonal_blocks, upper_blocks = [], []
    for block, level in enumerate(model.belief_levels):
        index, mu, gmap = block + 1, beliefs[block], level.generative
        precision_below = precisions[index - 1]
        if not is_matrix(precision_below) and np.shape(precision_below) != errors[index - 1].shape:
            precision_below = np.broadcast_to(precision_below, errors[index - 1].shape)
        cached = cache is not None and not sparse and (gmap.site == "before"
                                                       or gmap.nonlinearity.is_identity)
        identity = gmap.nonlinearity.is_identity
        # J and Pi J: for an upper block, or for J' Pi J when it is not cached (a linear g's J
        # is W: ``jacobian`` would multiply it by f' = 1)
        if block == 0 and cached:
            jacobian = None
        elif identity and not sparse and gmap.weights.dtype == np.float64:
            jacobian = gmap.weights
        else:
            jacobian = gmap.jacobian(mu)
        weighted_jacobian = None if jacobian is None else weigh(precision_below, jacobian)
        if cached:  # into the cache's array for the block (see GramCache.workspace)
            gram = cache.gram(block, gmap.weights, np.asarray(precision_below, dtype=float))
            curvature_free = cache.workspace(block, gram.shape)
            if identity:  # f' = 1: the scaling below would leave W' Pi W as it is
                np.copyto(curvature_free, gram)
            else:
                slope = gmap.nonlinearity.df(mu) * np.ones(len(mu))
                np.multiply(gram, slope[:, np.newaxis], out=curvature_free)
                curvature_free *= slope[np.newaxis, :]
        else:
            curvature_free = jacobian.T @ weighted_jacobian
        prior = curvature.get(index) if curvature else None  # a mechanism's prior's d2/dmu2
        own = _own_precision(precisions[index], mu.shape)
        if prior is not None:
            own = own + (np.diag(np.broadcast_to(prior, mu.shape)) if is_matrix(own) else prior)
        # Pi e from below, for the generative curvature (none for a linear g on a dense block)
        epsilon_below = (None if identity and not sparse
                         else weigh(precision_below, errors[index - 1]))
        if sparse:
            own = scipy.sparse.csr_matrix(own) if is_matrix(own) else scipy.sparse.diags(own)
            diagonal_blocks.append(own + curvature_free - gmap.curvature(mu, epsilon_below))
        else:
            diagonal_blocks.append(_dense_block(curvature_free, own, gmap, mu, epsilon_below))
        if block > 0:
            upper_blocks.append(-weighted_jacobian)
    return diagonal_blocks, upper_blocks, sparse


def _own_precision(own, shape: tuple[int, ...]) -> np.ndarray:
    """A level's own precision as a float array (a matrix, or one per unit): the array itself
    where it is one already (it is only read), else a float copy of its units."""
    if is_matrix(own):
        return np.asarray(own, dtype=float)
    if isinstance(own, np.ndarray) and own.shape == shape and own.dtype == np.float64:
        return own
    return np.broadcast_to(own, shape).astype(float)


def _dense_block(curvature_free: np.ndarray, own: np.ndarray, gmap, mu: np.ndarray,
                 epsilon_below: np.ndarray | None) -> np.ndarray:
    """Own precision + J' Pi J - generative curvature, added into ``curvature_free`` (an array
    of this call's: fresh, or the cache's workspace): a diagonal term goes onto its diagonal,
    not through an n x n temporary. ``epsilon_below`` None: g is linear (no curvature)."""
    on_diagonal = (curvature_free.reshape(-1)[::len(curvature_free) + 1]  # a writeable view
                   if curvature_free.flags.c_contiguous else np.einsum("ii->i", curvature_free))
    if is_matrix(own):
        curvature_free += own
    else:
        on_diagonal += own
    if epsilon_below is None:
        return curvature_free
    generative = gmap.curvature_diagonal(mu, epsilon_below)
    if generative is None:
        curvature_free -= gmap.curvature(mu, epsilon_below)
    else:
        on_diagonal -= generative
    return curvature_free


def energy_hessian(
    model: HierarchicalModel,
    beliefs: Sequence[np.ndarray],
    errors: Sequence[np.ndarray],
    precisions: Sequence[np.ndarray],
    curvature: dict[int, np.ndarray] | None = None,
) -> np.ndarray | scipy.sparse.csc_matrix:
    """d^2 E / dmu^2 over all belief units (levels 1..L stacked); sparse if any W is."""
    diagonal_blocks, upper_blocks, sparse = hessian_blocks(model, beliefs, errors, precisions,
                                                           curvature=curvature)
    count = len(diagonal_blocks)
    blocks: list[list] = [[None] * count for _ in range(count)]
    for block, value in enumerate(diagonal_blocks):
        blocks[block][block] = value
    for block, value in enumerate(upper_blocks):
        blocks[block][block + 1] = value
        blocks[block + 1][block] = value.T
    if sparse:
        return scipy.sparse.bmat(blocks, format="csc")
    sizes = [level.size for level in model.belief_levels]
    return np.block([[blocks[i][j] if blocks[i][j] is not None else np.zeros((sizes[i], sizes[j]))
                      for j in range(count)] for i in range(count)])


def free_energy(
    model: HierarchicalModel,
    sensory: np.ndarray,
    beliefs: Sequence[np.ndarray],
    precisions: Sequence[np.ndarray] | None = None,
    laplace: bool = True,
    prior_mean: np.ndarray | None = None,
    cache: GramCache | None = None,
    curvature: dict[int, np.ndarray] | None = None,
    predictions: Sequence[np.ndarray] | None = None,
) -> FreeEnergy:
    """F at beliefs mu_1..mu_L for input x; precisions and prior mean default to the model's
    (pass those in force in the trial). With dense weights the Laplace term comes from the
    Hessian's blocks (``block_log_abs_det``, with W' Pi W from ``cache`` when given); with
    sparse ones from the sparse LU of the whole Hessian. ``curvature``: what the mechanisms'
    energies add to the Hessian's diagonal, by belief level (their energy is not included
    here: the caller adds it). ``predictions``: as for ``prediction_errors``."""
    if precisions is None:
        precisions = [level.precision for level in model.levels]
    errors = prediction_errors(model, sensory, beliefs, prior_mean, predictions)
    gibbs = energy(errors, precisions)
    if not laplace:
        return FreeEnergy(gibbs, 0.0, gibbs)
    diagonal_blocks, upper_blocks, sparse = hessian_blocks(model, beliefs, errors, precisions,
                                                           cache, curvature)
    linear = cache is not None and not sparse and not curvature and all(
        level.generative.nonlinearity.is_identity for level in model.belief_levels)
    key = precisions_key(precisions) if linear else None
    log_det = cache.constant_log_det(key) if linear else None
    if log_det is None and not sparse:
        log_det = block_log_abs_det(diagonal_blocks, upper_blocks, overwrite=True)
        if linear and log_det is not None:
            cache.keep_log_det(key, log_det)
    if log_det is None:
        log_det = log_abs_det(energy_hessian(model, beliefs, errors, precisions, curvature))
    entropy_side = 0.5 * log_det - 0.5 * model.n_beliefs * LN_2PI
    return FreeEnergy(gibbs, entropy_side, gibbs + entropy_side)
