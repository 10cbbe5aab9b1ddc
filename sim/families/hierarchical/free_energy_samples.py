r"""F of many recorded samples at once: ``free_energy`` for a stack of S states in a few NumPy
calls, for a run whose samples come back as arrays (a compiled run's monitors) rather than one
Python call per sample (``HierarchicalSimulation.before_sample``).

The maths is ``free_energy``'s (its module docstring derives it), stacked over samples: each
level's error e_l (S, n_l), the energy sum_l 1/2 e_l' Pi_l e_l - 1/2 ln|Pi_l| + n_l/2 ln 2pi
per row, and the blocks of the energy's Hessian over all N beliefs (precisions held),

.. math::

    H_{ll} = \Pi_l + c_l + J_l^\top \Pi_{l-1} J_l - \sum_i \varepsilon_{l-1,i}\,
             \partial^2 g_{l,i}/\partial\mu_l^2,\qquad
    H_{l-1,l} = -\Pi_{l-1} J_l

as (S, n_l, n_l) and (S, n_{l-1}, n_l) stacks (c_l: the diagonal the mechanisms' energies
add, ``curvature``), whose ln|det H| comes from ``log_det.block_log_abs_det``'s block
elimination with every step one stacked LAPACK call (``slogdet``, ``solve``: an LU per sample
inside LAPACK's loop, no Python loop). For g = W f(mu) or a linear g, J' Pi J =
diag(f') W' Pi W diag(f') with W' Pi W formed once per run of equal precisions, as a run's
``GramCache`` forms it.

Each operation is the one ``free_energy`` applies, with its ``GramCache``, to one sample (the
same operands, dtypes and order; matrix-vector products as one ``gemv`` a sample, not one
matrix-matrix product), so a sample's F is the per-sample function's to the bit on every case
``tests/test_free_energy_samples.py`` checks (posner, a 3-belief-level tanh hierarchy before
and after the weights, float32, a sparse prior; the runs' own recorded ``free_energy``), not
merely within the 1e-12 a compiled device allows. Without a ``GramCache`` ``free_energy``
forms J' Pi J in another order: 5e-12 apart at perception/hierarchy's 139th sample, where
cond(H) ~ 6e5 (there a 1-ulp change of the input and beliefs moves F by up to 4e-12 too: a
compiled run's F can differ by that much from the runtime's at such a sample, whatever
computes it). float32 states stay float32 where ``free_energy`` keeps them so: pass the model
whose weights the float32 build narrowed to match a float32 run's recording.

A level's precision may be a stack of full matrices (S, n_l, n_l) (``circuits.covariance``):
the same formulas with matrix products. The weights are the model's, the same for every
sample (a run that learns them: call once per stretch of samples with the weights then).
Sparse weights, a model beyond ``STACKED_BELIEFS`` beliefs, and a sample whose block
elimination meets a singular complement (``free_energy`` then takes the whole H) take
``free_energy``'s Laplace term sample by sample.

Measured on this shared 2-core machine (one OpenBLAS thread, float64, load 4-5 from other
work; best of 3-5), posner's 18,000 samples (N = 3, precisions moving at every sample):
``free_energy`` sample by sample as the run calls it 1.2-2.7 s (68-150 us a sample; without
a ``GramCache`` 0.7-1.5 s), stacked 11-19 ms (0.6-1.1 us a sample): 100-140x;
perception/hierarchy's 400 samples (N = 20): 74 against 2.8 ms. ``STACKED_BELIEFS``: per
sample against stacked (us a sample, 1,000 random samples of tanh hierarchies with one
precision): N = 20 (64-16-4) 64 vs 6; N = 80 (128-64-16) 100-200 vs 63-124;
N = 120 (192-96-24) 307 vs 263; N = 160 (256-128-32) 224-499 vs 243-501; N = 320
(512-256-64) 928-2392 vs 1213-3114. Beyond ~128 beliefs the LAPACK work dominates and
stacks of large blocks leave the cache; smaller chunks (2 MiB) were slower still.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from circuits.generative import GenerativeMap, dense
from sim.families.hierarchical.free_energy import LN_2PI, GramCache, _normaliser, free_energy
from sim.families.hierarchical.model import HierarchicalModel

STACKED_BELIEFS = 128  # up to this many beliefs the Hessians are stacked; beyond, per sample
CHUNK_BYTES = 1 << 24  # the largest stack of Hessians (or Jacobians) formed at once: 16 MiB
KEPT_PRECISIONS = 16  # the per-sample path's GramCache size (a run's: build.GRAM_CACHE_SIZE)


def sampled_free_energy(
    model: HierarchicalModel,
    sensory: np.ndarray,
    beliefs: Sequence[np.ndarray],
    precisions: Sequence[np.ndarray],
    prior_mean: np.ndarray,
    laplace: bool | np.ndarray = True,
    curvature: dict[int, np.ndarray] | None = None,
    extra_energy: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """energy (S,) and total F (S,) for S samples: sensory (S, n0), beliefs[l] (S, n_l),
    precisions[l] (S, n_l) (the error units' precision in force at each sample, or (S, n_l,
    n_l) full matrices), prior_mean (S, n_top); laplace: all samples or a boolean mask (NaN
    total where not computed); curvature: per belief level an (S, n_l) diagonal the
    mechanisms add to the Hessian (``Simulation.mechanism_curvature`` gives it per sample);
    extra_energy: (S,) the mechanisms' own energy (``Simulation.mechanism_energy``), added to
    both. Sample s is ``free_energy(model, sensory[s], [b[s] for b in beliefs],
    [p[s] for p in precisions], laplace=True, prior_mean=prior_mean[s], curvature=...,
    cache=GramCache())`` plus ``extra_energy[s]``, by the same operations (module docstring);
    without the cache, to rounding."""
    count = len(sensory)
    sizes = [level.size for level in model.levels]
    states = [_rows(np.asarray(sensory, dtype=float), count, sizes[0]),
              *(_rows(belief, count, size)
                for belief, size in zip(beliefs, sizes[1:], strict=True))]
    precisions = [_rows(precision, count, size)
                  for precision, size in zip(precisions, sizes, strict=True)]
    prior_mean = _rows(prior_mean, count, sizes[-1])
    errors = sampled_errors(model, states, prior_mean)
    gibbs = sampled_energy(errors, precisions)
    total = np.full(count, np.nan)
    due = (np.arange(count) if laplace is True else np.arange(0) if laplace is False
           else np.flatnonzero(np.asarray(laplace, dtype=bool)))
    curvature = {index: _rows(diagonal, count, sizes[index])
                 for index, diagonal in (curvature or {}).items()}
    stacked = model.n_beliefs <= STACKED_BELIEFS and not any(
        level.generative.is_sparse for level in model.belief_levels)
    if stacked and len(due):
        for chunk in np.array_split(due, -(-len(due) // _chunk_rows(model))):
            log_det = sampled_log_abs_det(
                model, [state[chunk] for state in states], [error[chunk] for error in errors],
                [precision[chunk] for precision in precisions],
                {index: diagonal[chunk] for index, diagonal in curvature.items()})
            total[chunk] = gibbs[chunk] + (0.5 * log_det - 0.5 * model.n_beliefs * LN_2PI)
    cache = GramCache(KEPT_PRECISIONS)
    for sample in (due[np.isnan(total[due])] if stacked else due):
        found = free_energy(model, states[0][sample], [state[sample] for state in states[1:]],
                            [precision[sample] for precision in precisions],
                            prior_mean=prior_mean[sample], cache=cache,
                            curvature={index: diagonal[sample]
                                       for index, diagonal in curvature.items()})
        total[sample] = gibbs[sample] + found.laplace
    if extra_energy is not None:
        extra = np.broadcast_to(np.asarray(extra_energy, dtype=float), (count,))
        gibbs, total = gibbs + extra, total + extra
    return gibbs, total


def _rows(values, count: int, size: int) -> np.ndarray:
    """``values`` as a (count, size) stack, or (count, size, size) for full precision
    matrices (a row, or a number, is the same at every sample), in their own dtype: the
    arithmetic follows ``free_energy``'s on the same operands (float32 states stay float32
    where it keeps them so)."""
    values = np.asarray(values)
    shape = (count, size, size) if values.ndim == 3 else (count, size)
    return np.broadcast_to(values, shape)


def _weigh(precision: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Pi_s @ values_s for every sample s: ``values`` (S, n) or (S, n, k), ``precision``
    (S, n) per unit or (S, n, n) full (``free_energy.weigh``, stacked)."""
    if precision.ndim == 3:
        return (precision @ values[..., np.newaxis])[..., 0] if values.ndim == 2 else (
            precision @ values)
    return precision * values if values.ndim == 2 else precision[..., np.newaxis] * values


def _predictions(gmap: GenerativeMap, mu: np.ndarray) -> np.ndarray:
    """g(mu_s) for every row (``GenerativeMap.predict``, one matrix-vector product a row)."""
    f = gmap.nonlinearity
    inner = mu if gmap.site == "after" or f.is_identity else f.f(mu)
    product = ((gmap.weights @ inner.T).T if gmap.is_sparse
               else _matrix_vector(gmap.weights, inner))
    return f.f(product) if gmap.site == "after" and not f.is_identity else product


def sampled_errors(model: HierarchicalModel, states: Sequence[np.ndarray],
                   prior_mean: np.ndarray) -> list[np.ndarray]:
    """e_l (S, n_l) for l = 0..L from the stacked input and beliefs ``states`` (levels 0..L)
    (``free_energy.prediction_errors``, stacked)."""
    predictions = [_predictions(level.generative, state)
                   for level, state in zip(model.belief_levels, states[1:], strict=True)]
    return [state - prediction
            for state, prediction in zip(states, [*predictions, prior_mean], strict=True)]


def sampled_energy(errors: Sequence[np.ndarray], precisions: Sequence[np.ndarray]) -> np.ndarray:
    """E(mu) (S,) (``free_energy.energy``, stacked): units with zero precision add nothing."""
    total = np.zeros(len(errors[0]))
    for error, precision in zip(errors, precisions, strict=True):
        if precision.ndim == 3:
            quadratic = error[:, np.newaxis, :] @ _weigh(precision, error)[:, :, np.newaxis]
            total += 0.5 * quadratic[:, 0, 0].astype(float)
            total += 0.5 * (error.shape[1] * LN_2PI - np.linalg.slogdet(precision)[1])
            continue
        total += 0.5 * np.sum(precision * error**2, axis=1).astype(float)
        total += _normalisers(precision)
    return total


def _normalisers(precision: np.ndarray) -> np.ndarray:
    """``free_energy._normaliser`` of every row: in one call where every unit has a precision
    (the same sum, in the same order, as the row's own), once per run of equal rows where
    some have none (a flat prior)."""
    positive = (precision > 0).all(axis=1)
    found = np.empty(len(precision))
    found[positive] = 0.5 * np.sum(LN_2PI - np.log(precision[positive]), axis=1).astype(float)
    if not positive.all():
        distinct, which = _runs(precision[~positive])
        found[~positive] = np.array([_normaliser(row.dtype.str, row.tobytes())
                                     for row in distinct])[which]
    return found


def _chunk_rows(model: HierarchicalModel) -> int:
    """How many samples' Hessian blocks (and Jacobians) fit in ``CHUNK_BYTES``."""
    blocks = sum(level.size**2 for level in model.belief_levels)
    largest = max([blocks, *(np.prod(level.generative.shape) for level in model.belief_levels)])
    return max(1, CHUNK_BYTES // (8 * int(largest)))


def sampled_log_abs_det(model: HierarchicalModel, states: Sequence[np.ndarray],
                        errors: Sequence[np.ndarray], precisions: Sequence[np.ndarray],
                        curvature: dict[int, np.ndarray]) -> np.ndarray:
    """ln|det H| (C,) of the energy's Hessian at C samples (``states``: the input and beliefs,
    levels 0..L; ``errors`` e_0..e_L; ``precisions`` Pi_0..Pi_L; ``curvature`` the mechanisms'
    diagonals by level 1..L), by ``log_det.block_log_abs_det``'s elimination, every step one
    stacked LAPACK call; NaN where a complement is singular (the caller takes those samples
    one by one, as ``free_energy`` takes the whole matrix there)."""
    diagonal_blocks, upper_blocks = sampled_hessian_blocks(model, states, errors, precisions,
                                                           curvature)
    diagonal_blocks = [np.asarray(block, dtype=float) for block in diagonal_blocks]
    sizes = [block.shape[1] for block in diagonal_blocks]
    largest = sizes.index(max(sizes))
    total_above, incoming, regular_above = _eliminate(diagonal_blocks[:largest],
                                                      upper_blocks[:largest])
    total_below, from_below, regular_below = _eliminate(
        diagonal_blocks[largest + 1:][::-1],
        [np.swapaxes(upper, 1, 2) for upper in upper_blocks[largest:][::-1]])
    last = diagonal_blocks[largest]
    for removed in (incoming, from_below):
        if removed is not None:
            last -= removed
    sign, log_det = np.linalg.slogdet(last)
    found = total_above + total_below + log_det
    found[(sign == 0) | ~regular_above | ~regular_below] = np.nan
    return found


def _eliminate(diagonal_blocks: Sequence[np.ndarray], couplings: Sequence[np.ndarray]
               ) -> tuple[np.ndarray | float, np.ndarray | None, np.ndarray | bool]:
    """``log_det._eliminate`` stacked: sum_b ln|det S_b| per sample, what the chain takes from
    the block after it (None for an empty chain), and where every complement was regular."""
    total, incoming, regular = 0.0, None, np.True_
    for diagonal, coupling in zip(diagonal_blocks, couplings, strict=True):
        if incoming is not None:
            diagonal -= incoming
        sign, log_det = np.linalg.slogdet(diagonal)
        regular = regular & (sign != 0)
        total = total + log_det
        solved = np.linalg.solve(np.where((sign != 0)[:, np.newaxis, np.newaxis], diagonal,
                                          np.eye(len(diagonal[0]))), coupling)
        incoming = np.swapaxes(coupling, 1, 2) @ solved
    return total, incoming, regular


def sampled_hessian_blocks(model: HierarchicalModel, states: Sequence[np.ndarray],
                           errors: Sequence[np.ndarray], precisions: Sequence[np.ndarray],
                           curvature: dict[int, np.ndarray]
                           ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``free_energy.hessian_blocks`` for C samples (dense weights, with W' Pi W as its
    ``GramCache`` forms it): the diagonal blocks (C, n_l, n_l) and the upper blocks
    (C, n_{l-1}, n_l), each formed by the same operations on the same operands, sample by
    sample inside the stacked calls (matrix-vector products as per-sample ``gemv``)."""
    diagonal_blocks, upper_blocks = [], []
    for block, level in enumerate(model.belief_levels):
        index, mu, gmap = block + 1, states[block + 1], level.generative
        weights = dense(gmap.weights)
        below = precisions[index - 1]
        f = gmap.nonlinearity
        identity = f.is_identity
        if gmap.site == "before" or identity:  # diag(f') W' Pi W diag(f')
            curvature_free = _grams(weights, np.asarray(below, dtype=float))
            if not identity:
                slope = f.df(mu) * np.ones(mu.shape[1])
                curvature_free *= slope[:, :, np.newaxis]
                curvature_free *= slope[:, np.newaxis, :]
            jacobian = (None if block == 0
                        else np.broadcast_to(weights.astype(float), (len(mu), *weights.shape))
                        if identity
                        else weights * f.df(mu)[:, np.newaxis, :])
        else:  # g = f(W mu): J = diag(f'(W mu)) W, J' Pi J sample by sample
            jacobian = f.df(_matrix_vector(weights, mu))[:, :, np.newaxis] * weights
            curvature_free = np.swapaxes(jacobian, 1, 2) @ _weigh(below, jacobian)
        own = precisions[index].astype(float)
        if index in curvature:
            own = own + (_diagonal_matrices(curvature[index]) if own.ndim == 3
                         else curvature[index])
        diagonal = np.einsum("sii->si", curvature_free)  # a writeable view of the diagonals
        if own.ndim == 3:
            curvature_free += own
        else:
            diagonal += own
        if not identity:  # - sum_i eps_i d2 g_i / dmu dmu', eps = Pi e from below
            epsilon = _weigh(below, errors[index - 1])
            if gmap.site == "before":
                diagonal -= f.d2f(mu) * _matrix_vector(weights.T, epsilon)
            else:
                drive = f.d2f(_matrix_vector(weights, mu)) * epsilon
                curvature_free -= weights.T @ (drive[:, :, np.newaxis] * weights)
        diagonal_blocks.append(curvature_free)
        if block > 0:  # -Pi_{l-1} J_l, with the level above it
            upper_blocks.append(-_weigh(below, jacobian))
    return diagonal_blocks, upper_blocks


def _matrix_vector(matrix: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """matrix @ row for every row, (C, m): one matrix-vector product each (``gemv``, as
    ``free_energy`` forms it for one sample), not one matrix-matrix product."""
    return (matrix @ rows[:, :, np.newaxis])[:, :, 0]


def _diagonal_matrices(rows: np.ndarray) -> np.ndarray:
    """diag(row) for every row, (C, n, n)."""
    found = np.zeros((*rows.shape, rows.shape[1]))
    np.einsum("sii->si", found)[...] = rows
    return found


GRAM_ROWS = 256  # distinct precisions whose Pi W is formed at once (a block stays in cache)


def _grams(weights: np.ndarray, precision: np.ndarray) -> np.ndarray:
    """W' Pi_s W for every sample s, (C, n, n), formed once per run of equal Pi_s (precisions
    change rarely within a run; a top-down one, every sample) as ``GramCache.gram`` forms it:
    W' (Pi W), ``GRAM_ROWS`` distinct precisions at a time, bitwise the same: the whole
    (C, m, n) stack of Pi W at once (65 MB for 8,000 samples of a 64 x 16 map) took 27 ms CPU
    against 17 ms, and F of those samples 67 against 55 ms (medians, loaded machine)."""
    distinct, which = _runs(precision)
    found = np.empty((len(distinct), weights.shape[1], weights.shape[1]))
    for first in range(0, len(distinct), GRAM_ROWS):
        part = distinct[first:first + GRAM_ROWS]
        weighted = part @ weights if precision.ndim == 3 else part[:, :, np.newaxis] * weights
        np.matmul(weights.T, weighted, out=found[first:first + GRAM_ROWS])
    return found if len(distinct) == len(precision) else found[which]


def _runs(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The first row of each run of equal consecutive rows, and each row's run: values that
    change now and then (a trial's precisions), found in one comparison (``np.unique`` over
    rows sorts them: 10 ms for 18,000 rows of 2)."""
    flat = rows.reshape(len(rows), -1)
    starts = np.flatnonzero(np.concatenate(([True], (flat[1:] != flat[:-1]).any(axis=1))))
    which = np.zeros(len(rows), dtype=np.intp)
    which[starts[1:]] = 1
    return rows[starts], np.cumsum(which)


def mechanism_terms(simulation: Any, recorded: dict) -> tuple[list, dict] | None:
    """The mechanisms' parts of F for ``simulation``'s recorded states at once and the full
    precision matrices they put in force; None where one cannot, or the weights learn."""
    if simulation.changed_at_run_time("weights"):
        return None
    terms = [mechanism.sampled_terms(settings, simulation.context, recorded)
             for mechanism, settings in simulation.mechanisms]
    if any(term is None for term in terms):
        return None
    return terms, {index: stack for term in terms
                   for index, stack in term.precision_matrices.items()}


def recorded_free_energy(simulation: Any, recorded: dict, terms: list, matrices: dict,
                         laplace: bool | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Energy and F of ``simulation``'s recorded states (one trial's samples, or its trial
    ends) with the mechanisms' ``terms`` and the precision ``matrices`` they put in force."""
    curvature: dict[int, np.ndarray] = {}
    for term in terms:
        for level, diagonal in term.curvature.items():
            curvature[level] = curvature.get(level, 0.0) + np.asarray(diagonal, dtype=float)
    energies = [term.energy for term in terms if term.energy is not None]
    return sampled_free_energy(
        simulation.model, recorded[simulation.errors[0].name]["signal"],
        [recorded[group.name]["belief"] for group in simulation.beliefs],
        [matrices.get(level, recorded[group.name]["precision"])
         for level, group in enumerate(simulation.errors)],
        recorded[simulation.errors[-1].name]["prediction"], laplace=laplace,
        curvature=curvature, extra_energy=sum(energies[1:], energies[0]) if energies else None)
