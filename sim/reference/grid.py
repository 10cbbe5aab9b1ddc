r"""Exact posteriors of one or two continuous causes on a grid (NumPy only).

Given the log joint :math:`\ln p(x, \mu) = -E(\mu)` of d <= 2 belief units (any generative
nonlinearity), the posterior and the evidence are integrals over mu, done here by the
rectangle rule on a regular grid :math:`\mu_k` with cell volume :math:`\Delta`:

.. math::

    \ln p(x) = \ln \int e^{-E(\mu)} d\mu \approx \ln \sum_k e^{-E(\mu_k)} \Delta,
    \qquad p(\mu_k \mid x) = e^{-E(\mu_k)} / p(x),

    \langle \mu \rangle = \sum_k \mu_k\, p(\mu_k \mid x)\,\Delta, \qquad
    \mathrm{Cov}[\mu] = \sum_k (\mu_k - \langle\mu\rangle)(\mu_k - \langle\mu\rangle)^\top
                        p(\mu_k \mid x)\,\Delta.

The grid is placed in two passes. A coarse grid around a point the caller trusts to hold mass
(the circuit's final belief) grows by doubling until the density on its boundary is below
``e^-CUT`` of its peak (CUT = 40 nat); a posterior that never falls that far within
``MAX_DOUBLINGS`` doublings is improper or too heavy-tailed and gets no reference (None). The
fine grid then spans the cells where the density exceeds e^-CUT of the peak, plus one coarse
cell each side. Where the integrand falls to ~e^-40 at both ends, the rectangle rule equals
the trapezoidal rule, which converges geometrically for smooth integrands; its error is
estimated by repeating the sum on every other point (twice the step) and the grid is refined
until the two agree to ``TOLERANCE`` nat (1e-9), or the reference is dropped. The mode is the
highest local maximum of the grid, refined by zooming in (a 21-point-per-axis grid around it,
10x finer each round, six rounds) down to ~1e-6 of the fine step; in practice it is then
limited by ln p itself, flat at a maximum to within its rounding over
~sqrt(1e-16 |E| / E''): ~2e-8 for u = v^2 (tests/test_variational_gap.py checks 1e-6).
Of two modes equally high (to 1e-9 nat, as for a symmetric posterior) the one nearer
``prefer`` is reported.

The cost is bounded: a few thousand evaluations per coarse pass in 1-D (129^2 in 2-D) and one
fine grid of 4001 points (401^2 in 2-D), its step halved at most twice (once in 2-D).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

CUT = 40.0  # nat below the peak: the grid covers where the density is above e^-40 of it
MAX_DOUBLINGS = 12  # the coarse grid may grow to 4096x its first half-width
TOLERANCE = 1e-9  # nat: agreement of ln p(x) on the grid and on every other point of it
COARSE = {1: 1025, 2: 129}  # coarse points per axis
FINE = {1: 4001, 2: 401}  # first fine points per axis (odd: halving keeps the ends)
MAX_FINE = {1: 16001, 2: 801}  # refined (step halved) at most up to these
ZOOM_POINTS, ZOOM_ROUNDS = 21, 6
TIE = 1e-9  # nat: modes this close in height are equally high

LogJoint = Callable[[np.ndarray], np.ndarray]  # (d, P) points -> (P,) values of ln p(x, mu)


@dataclass(frozen=True)
class GridPosterior:
    """The posterior of d <= 2 units on a grid; ``axes[i]`` holds unit i's grid values."""

    mean: np.ndarray  # (d,)
    covariance: np.ndarray  # (d, d)
    mode: np.ndarray  # (d,)
    surprise: float  # -ln p(x), nat
    axes: list[np.ndarray]  # the fine grid, per unit
    error: float  # |ln p(x) on the grid - ln p(x) on every other point|, nat

    def density_on(self, log_joint: LogJoint, axes: Sequence[np.ndarray]) -> np.ndarray:
        """p(mu | x) = exp(ln p(x, mu) + surprise) on the grid spanned by ``axes``."""
        points = _mesh(axes)
        values = np.exp(log_joint(points) + self.surprise)
        return values.reshape([len(axis) for axis in axes])


def _mesh(axes: Sequence[np.ndarray]) -> np.ndarray:
    """(d, P) points of the regular grid with these axes (first axis slowest)."""
    grids = np.meshgrid(*axes, indexing="ij")
    return np.stack([grid.ravel() for grid in grids])


def _evaluate(log_joint: LogJoint, axes: Sequence[np.ndarray]) -> np.ndarray:
    """ln p(x, mu) on the grid, shaped (len(axis_0), ...); NaN counts as -inf."""
    with np.errstate(all="ignore"):
        values = np.asarray(log_joint(_mesh(axes)), dtype=float)
    values = np.where(np.isnan(values), -np.inf, values)
    return values.reshape([len(axis) for axis in axes])


def _boundary_max(values: np.ndarray) -> float:
    edges = [np.take(values, index, axis=axis) for axis in range(values.ndim) for index in (0, -1)]
    return float(max(np.max(edge) for edge in edges))


def _log_sum(values: np.ndarray, cell: float) -> float:
    """ln sum_k exp(values_k) cell, without overflow."""
    top = float(np.max(values))
    return top + float(np.log(np.sum(np.exp(values - top)) * cell))


def _support(log_joint: LogJoint, centre: np.ndarray, half: np.ndarray
             ) -> list[tuple[float, float]] | None:
    """Per axis, the span where ln p(x, mu) > peak - CUT on a coarse grid (plus one cell)."""
    points = COARSE[len(centre)]
    for _ in range(MAX_DOUBLINGS + 1):
        axes = [np.linspace(c - h, c + h, points) for c, h in zip(centre, half, strict=True)]
        values = _evaluate(log_joint, axes)
        top = float(np.max(values))
        if not np.isfinite(top):
            return None
        if _boundary_max(values) < top - CUT:
            inside = values > top - CUT
            spans = []
            for axis, grid in enumerate(axes):
                other = tuple(a for a in range(len(axes)) if a != axis)
                held = np.flatnonzero(np.any(inside, axis=other) if other else inside)
                low, high = max(held[0] - 1, 0), min(held[-1] + 1, points - 1)
                spans.append((float(grid[low]), float(grid[high])))
            return spans
        half = 2.0 * half
    return None


def _zoom(log_joint: LogJoint, start: np.ndarray, step: np.ndarray) -> tuple[np.ndarray, float]:
    """Refine a grid maximum: a 21-point grid of +-1 step around it, 10x finer each round."""
    best = np.array(start, dtype=float)
    value = float(_evaluate(log_joint, [np.array([b]) for b in best]).ravel()[0])
    for _ in range(ZOOM_ROUNDS):
        axes = [np.linspace(b - s, b + s, ZOOM_POINTS) for b, s in zip(best, step, strict=True)]
        values = _evaluate(log_joint, axes)
        index = np.unravel_index(int(np.argmax(values)), values.shape)
        if values[index] > value:
            best = np.array([axis[i] for axis, i in zip(axes, index, strict=True)])
            value = float(values[index])
        step = step * 2.0 / (ZOOM_POINTS - 1)
    return best, value


def _local_maxima(values: np.ndarray, below: float) -> list[tuple[int, ...]]:
    """Grid points at least as high as every neighbour (8 in 2-D), above ``below``."""
    padded = np.pad(values, 1, constant_values=-np.inf)
    peak = values > below
    for shift in np.ndindex(*(3,) * values.ndim):
        if all(s == 1 for s in shift):
            continue
        neighbour = padded[tuple(slice(s, s + n) for s, n in zip(shift, values.shape,
                                                                  strict=True))]
        peak &= values >= neighbour
    return [tuple(int(i) for i in index) for index in np.argwhere(peak)]


def _mode(log_joint: LogJoint, axes: list[np.ndarray], values: np.ndarray,
          prefer: np.ndarray) -> np.ndarray:
    top = float(np.max(values))
    candidates = _local_maxima(values, top - 1.0)
    candidates.sort(key=lambda index: -values[index])
    step = np.array([axis[1] - axis[0] for axis in axes])
    refined = [_zoom(log_joint, np.array([axis[i] for axis, i in zip(axes, index, strict=True)]),
                     step) for index in candidates[:8]]
    highest = max(value for _, value in refined)
    tied = [point for point, value in refined if value >= highest - TIE]
    return min(tied, key=lambda point: float(np.sum((point - prefer) ** 2)))


def grid_posterior(log_joint: LogJoint, centre: Sequence[float], half_width: Sequence[float],
                   prefer: Sequence[float] | None = None) -> GridPosterior | None:
    """The posterior of d <= 2 units from their log joint ``log_joint`` ((d, P) -> (P,)).

    ``centre`` should hold posterior mass (the circuit's final belief), ``half_width`` is the
    first coarse grid's half-width per unit (it grows as needed). None: no proper posterior
    could be pinned down (improper, too heavy-tailed, or too fine a structure for the grid).
    """
    centre = np.asarray(centre, dtype=float)
    dimension = len(centre)
    if dimension not in FINE:
        raise ValueError(f"grid posteriors are for 1 or 2 units, not {dimension}")
    half = np.asarray(half_width, dtype=float) * np.ones(dimension)
    spans = _support(log_joint, centre, half)
    if spans is None:
        return None
    points = FINE[dimension]
    while points <= MAX_FINE[dimension]:
        axes = [np.linspace(low, high, points) for low, high in spans]
        values = _evaluate(log_joint, axes)
        top = float(np.max(values))
        if not np.isfinite(top) or _boundary_max(values) > top - CUT + 10.0:
            return None
        cell = float(np.prod([axis[1] - axis[0] for axis in axes]))
        log_evidence = _log_sum(values, cell)
        halved = _log_sum(values[(np.s_[::2],) * dimension], cell * 2.0**dimension)
        error = abs(log_evidence - halved)
        if error <= TOLERANCE:
            break
        points = 2 * points - 1
    else:
        return None
    density = np.exp(values - log_evidence)
    mesh = _mesh(axes)
    weights = density.ravel() * cell
    mean = mesh @ weights
    offsets = mesh - mean[:, np.newaxis]
    covariance = (offsets * weights) @ offsets.T
    prefer_at = centre if prefer is None else np.asarray(prefer, dtype=float)
    mode = _mode(log_joint, axes, values, prefer_at)
    return GridPosterior(mean, covariance, mode, -log_evidence, axes, error)
