r"""The exact posterior of a hierarchical trial beside the circuit's Laplace Q, and the gap.

At a trial's end the circuit's belief is Q = N(m, S): m the final beliefs (levels 1..L
stacked), S = H(m)^{-1} with H the Hessian of the Gibbs energy E (``energy_hessian``). The
circuit descends the Laplace free energy

.. math::

    F_L = E(m) + \tfrac12 \ln|H(m)| - \tfrac N2 \ln 2\pi,

which approximates F but does not bound it. The exact variational free energy of the same Q is

.. math::

    F[Q] = E_Q[E] - H[Q] = -\ln p(x) + KL[Q \,\|\, p(\mu \mid x)] \ge -\ln p(x).

Where the trial allows an exact reference (below) this readout writes, per trial:

- ``surprise``: -ln p(x) = -ln int exp(-E(mu)) dmu (nat);
- ``gaussian_free_energy``: F[Q] (nat); ``kl``: F[Q] - surprise (nat, >= 0);
- ``laplace_error``: F_L - surprise (nat, either sign). F_L at the final beliefs is the
  ``final_free_energy`` column (``final_state``); it is not stored twice;
- per belief level: ``reference_mean/<level>``, ``reference_mode/<level>``,
  ``reference_variance/<level>`` (the exact posterior's), ``laplace_variance/<level>`` (Q's,
  the diagonal of S; Q's mean is ``final_belief/<level>``);
- ``reference_covariance`` and ``laplace_covariance`` over all N belief units, stacked level
  by level from level 1 (when N <= 64);
- with N <= 2: ``reference_grid`` (trials x N x G: each unit's grid values, spanning the
  posterior's mean +- 5 sd and Q's mean +- 4 sd) and ``reference_density`` (trials x G, or
  x G x G): the exact posterior density on it, for plots (G = 401 in 1-D, 101 in 2-D).

A trial allows a reference when its input is constant and noise-free (one breakpoint, zero
noise, not drawn per trial), no mechanism changes weights, precisions or the prior while
running nor adds energy on the beliefs (``posterior``: a sparse prior), and either

- (a) the model is linear-Gaussian (every nonlinearity the identity; N <= 1000): E is
  quadratic, H constant; the posterior is N(H^{-1} h, H^{-1}) with h = -dE/dmu at mu = 0
  (the information form, Cholesky, one Newton step to polish), and the surprise is the
  Gaussian integral E* + 1/2 ln|H| - N/2 ln 2 pi. F[Q] = E(m) + 1/2 tr(H S) - H[Q] exactly,
  which with S = H^{-1} is F_L: in a linear model ``kl`` = ``laplace_error``, zero at the
  fixed point. ``kl`` is then the closed-form KL between the two Gaussians (every term >= 0
  as computed, so zero stays zero instead of F[Q] - surprise's rounding); or
- (b) the model has N <= 2 belief units (any nonlinearity): the posterior, its mode and the
  surprise on a grid (``sim.reference.grid``), F[Q] by Gauss-Hermite quadrature
  (``sim.reference.variational``).

Precisions and the prior mean are those in force at the trial's last step
(``HierarchicalModel.in_force``: a scheduled precision's last value). A precision of 0 is a
flat prior: its units add no normalising term, as in F, so the surprise is relative to the
same improper prior. Other trials, and quantities that do not
exist (an improper posterior, or a Q whose H is not positive definite: no Gaussian), are NaN;
every row has the same columns. The energy is ``free_energy.energy`` of
``free_energy.prediction_errors``, evaluated for many points at once on the grid (checked
against the pointwise one at the final beliefs).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np
import scipy.sparse

from circuits.mechanism import MemoryPart
from sim import registry
from sim.families.hierarchical.free_energy import (
    energy,
    energy_hessian,
    free_energy,
    prediction_errors,
)
from sim.families.hierarchical.model import HierarchicalModel
from sim.readouts import Readout
from sim.reference.gaussian import InformationPosterior, information_posterior
from sim.reference.grid import MAX_FINE, grid_posterior
from sim.reference.variational import (
    gaussian_free_energy,
    gaussian_kl,
    gaussian_surprise,
    quadratic_free_energy,
)

MAX_EXACT_UNITS = 1000  # linear-Gaussian: a dense Cholesky of H per trial
MAX_GRID_UNITS = 2
MAX_COVARIANCE_UNITS = 64
STORED_POINTS = {1: 401, 2: 101}  # grid points per axis kept for plots
PLOT_SDS = (5.0, 4.0)  # the stored grid spans the posterior's mean +- 5 sd and Q's mean +- 4 sd
GRID_ARRAYS = 3  # (units x points) arrays alive at once in the grid's energy (measured ~2.9)
DENSE_COPIES = 8  # N x N matrices: the Hessian, its inverse, the posterior's, Q's, temporaries
FIRST_HALF_WIDTH = 6.0  # the grid's first half-width, in Q's (or the prior's) standard deviations


def is_linear(model: HierarchicalModel) -> bool:
    return all(level.generative.nonlinearity.is_identity for level in model.belief_levels)


def applies(model: HierarchicalModel) -> bool:
    """Whether the model's shape allows a reference: linear and small enough, or N <= 2."""
    count = model.n_beliefs
    return count <= MAX_GRID_UNITS or (is_linear(model) and count <= MAX_EXACT_UNITS)


NO_REFERENCE = ("no exact reference in this trial (its input is not constant and noise-free), "
                "or the quantity does not exist (an improper posterior; a Q whose H is not "
                "positive definite)")


class ReferencePosterior(Readout):
    name = "reference_posterior"
    batch_safe = True
    family = "hierarchical"
    units: ClassVar[dict[str, str]] = {"surprise": "nat", "gaussian_free_energy": "nat",
                                       "kl": "nat", "laplace_error": "nat"}
    nan_means: ClassVar[dict[str, str]] = dict.fromkeys(
        ("surprise", "gaussian_free_energy", "kl", "laplace_error", "reference_mean/",
         "reference_mode/", "reference_variance/", "laplace_variance/", "reference_covariance",
         "laplace_covariance", "reference_grid", "reference_density"), NO_REFERENCE)

    def enabled(self, scenario: Any) -> bool:
        changed = {what for name in scenario.model.mechanisms
                   for what in registry.mechanism(name).changes}
        return (applies(scenario.model)
                and not changed & {"weights", "precision", "prior", "posterior"}
                and any(trial.settings.stimulus.is_constant for trial in scenario.trials))

    def memory(self, scenario: Any) -> list[MemoryPart]:
        """The grid (N <= 2: the energy of every unit of every level at every grid point at
        once, ``GRID_ARRAYS`` arrays at the finest grid ``MAX_FINE``: an upper bound, a grid
        that is not refined takes a quarter in 1-D) and the dense Hessians and covariances
        over the N belief units."""
        model: HierarchicalModel = scenario.model
        count = model.n_beliefs
        units = sum(level.size for level in model.levels)
        parts = [MemoryPart(f"the reference posterior's {count} x {count} covariances",
                            DENSE_COPIES * count**2 * 8, "model.levels")]
        if count <= MAX_GRID_UNITS:
            points = MAX_FINE[count] ** count
            parts.append(MemoryPart(f"the reference posterior's grid ({points} points x "
                                    f"{units} units)", GRID_ARRAYS * points * units * 8,
                                    "model.levels"))
        return parts

    def row(self, simulation: Any, trial: Any) -> dict[str, Any]:
        model: HierarchicalModel = simulation.model
        row = blank_row(model)
        if trial.settings.stimulus.is_constant:
            beliefs = simulation.final_beliefs()
            dt_ms = simulation.scenario.dt_ms
            last_step_ms = (simulation.scenario.steps(trial.duration_ms) - 0.5) * dt_ms
            row.update(reference_row(model, trial.settings, [
                np.asarray(beliefs[f"final_belief/{level.name}"], dtype=float)
                for level in model.belief_levels], last_step_ms))
        return row


READOUT = ReferencePosterior()


# --- the columns ------------------------------------------------------------------------------

def blank_row(model: HierarchicalModel) -> dict[str, Any]:
    """Every column of the model's rows, NaN."""
    count = model.n_beliefs
    row: dict[str, Any] = {key: np.nan for key in
                           ("surprise", "gaussian_free_energy", "kl", "laplace_error")}
    for level in model.belief_levels:
        for key in ("reference_mean", "reference_mode", "reference_variance",
                    "laplace_variance"):
            row[f"{key}/{level.name}"] = np.full(level.size, np.nan)
    if count <= MAX_COVARIANCE_UNITS:
        row["reference_covariance"] = np.full((count, count), np.nan)
        row["laplace_covariance"] = np.full((count, count), np.nan)
    if count <= MAX_GRID_UNITS:
        points = STORED_POINTS[count]
        row["reference_grid"] = np.full((count, points), np.nan)
        row["reference_density"] = np.full((points,) * count, np.nan)
    return row


def reference_row(model: HierarchicalModel, settings: Any, beliefs: list[np.ndarray],
                  t_ms: float = 0.0) -> dict[str, Any]:
    """The columns of one trial with constant input ``settings.stimulus`` whose circuit ended
    at ``beliefs`` (levels 1..L), under the values in force at ``t_ms`` (its last step)."""
    in_force = model.in_force(settings, t_ms)
    sizes = [level.size for level in model.belief_levels]
    top = model.levels[-1].size
    model = dataclasses.replace(
        model, prior_mean=np.array(np.broadcast_to(in_force.prior_mean, top), dtype=float))
    precisions = [np.array(np.broadcast_to(p, level.size), dtype=float)
                  for p, level in zip(in_force.precisions, model.levels, strict=True)]
    x = np.asarray(settings.stimulus.values[0], dtype=float)
    m = np.concatenate(beliefs)
    count = len(m)

    def energy_of(points: np.ndarray) -> np.ndarray:
        return batched_energy(model, x, precisions, points)

    errors = prediction_errors(model, x, beliefs)
    energy_at_m = energy(errors, precisions)
    if not np.isfinite(energy_at_m):
        return {}
    check = float(energy_of(m[:, np.newaxis])[0])
    if not np.isclose(check, energy_at_m, rtol=1e-9, atol=1e-9):
        raise RuntimeError(f"batched energy {check!r} differs from energy() {energy_at_m!r}")
    hessian = _dense(energy_hessian(model, beliefs, errors, precisions))
    laplace = free_energy(model, x, beliefs, precisions).total
    linear = is_linear(model)
    exact = _linear_posterior(model, x, precisions, hessian) if linear else None
    q = exact[0] if exact is not None else information_posterior(hessian, np.zeros(count))
    q_covariance = q.covariance if q is not None else np.full((count, count), np.nan)

    columns: dict[str, Any] = {}
    half_width = FIRST_HALF_WIDTH * _scale(precisions, q_covariance, sizes)
    grid = None
    if linear:
        if exact is None:
            return columns
        posterior, surprise = exact
        mean, covariance, mode = posterior.mean, posterior.covariance, posterior.mean
        free = quadratic_free_energy(energy_at_m, hessian, q_covariance)
        gap = gaussian_kl(m, q_covariance, mean, posterior.precision)
    else:
        grid = grid_posterior(lambda points: -energy_of(points), m, half_width)
        if grid is None:
            return columns
        mean, covariance, surprise, mode = grid.mean, grid.covariance, grid.surprise, grid.mode
        free = gaussian_free_energy(energy_of, m, q_covariance)
        gap = free - surprise
    columns.update({"surprise": surprise, "gaussian_free_energy": free, "kl": gap,
                    "laplace_error": laplace - surprise})
    splits = np.cumsum(sizes)[:-1]
    for key, values in (("reference_mean", mean), ("reference_mode", mode),
                        ("reference_variance", np.diag(covariance)),
                        ("laplace_variance", np.diag(q_covariance))):
        for level, part in zip(model.belief_levels, np.split(values, splits), strict=True):
            columns[f"{key}/{level.name}"] = part
    if count <= MAX_COVARIANCE_UNITS:
        columns["reference_covariance"] = covariance
        columns["laplace_covariance"] = q_covariance
    if count <= MAX_GRID_UNITS:
        grid = grid or grid_posterior(lambda points: -energy_of(points), m, half_width)
        if grid is not None:
            axes = [np.linspace(low, high, STORED_POINTS[count])
                    for low, high in _plot_span(mean, covariance, m, q_covariance)]
            columns["reference_grid"] = np.stack(axes)
            columns["reference_density"] = grid.density_on(lambda points: -energy_of(points),
                                                            axes)
    return columns


# --- the pieces ---------------------------------------------------------------------------

def batched_energy(model: HierarchicalModel, x: np.ndarray, precisions: list[np.ndarray],
                   points: np.ndarray) -> np.ndarray:
    """E(mu) for many stacked belief vectors at once: ``points`` (N, P) -> (P,).

    ``prediction_errors`` on columns (input and prior mean as columns); per point the
    quadratic part 1/2 sum_l e_l' Pi_l e_l, plus the normalising part of ``energy``
    (-1/2 ln|Pi_l| + n_l/2 ln 2 pi over proper units), which does not depend on mu.
    """
    sizes = [level.size for level in model.belief_levels]
    beliefs = np.split(np.asarray(points, dtype=float), np.cumsum(sizes)[:-1], axis=0)
    columns = dataclasses.replace(model, prior_mean=model.prior_mean[:, np.newaxis])
    with np.errstate(over="ignore", invalid="ignore"):
        errors = prediction_errors(columns, x[:, np.newaxis], beliefs)
        quadratic = sum(0.5 * np.sum(precision[:, np.newaxis] * error**2, axis=0)
                        for precision, error in zip(precisions, errors, strict=True))
    normalising = energy([np.zeros(len(p)) for p in precisions], precisions)
    return quadratic + normalising


def energy_gradient(model: HierarchicalModel, x: np.ndarray, beliefs: list[np.ndarray],
                    precisions: list[np.ndarray]) -> np.ndarray:
    """dE/dmu_l = Pi_l e_l - J_l' Pi_{l-1} e_{l-1}, stacked over levels 1..L."""
    errors = prediction_errors(model, x, beliefs)
    weighted = [precision * error for precision, error in zip(precisions, errors, strict=True)]
    return np.concatenate([
        weighted[index] - level.generative.pull_back(beliefs[index - 1], weighted[index - 1])
        for index, level in enumerate(model.belief_levels, start=1)])


def _linear_posterior(model: HierarchicalModel, x: np.ndarray, precisions: list[np.ndarray],
                      hessian: np.ndarray) -> tuple[InformationPosterior, float] | None:
    """A linear-Gaussian model's posterior and surprise (None: improper). ``hessian``: E's
    Hessian, the same at every mu since E is quadratic."""
    sizes = [level.size for level in model.belief_levels]
    splits = np.cumsum(sizes)[:-1]
    zeros = [np.zeros(size) for size in sizes]
    posterior = information_posterior(hessian, -energy_gradient(model, x, zeros, precisions))
    if posterior is None:
        return None
    mean = posterior.mean - posterior.covariance @ energy_gradient(
        model, x, np.split(posterior.mean, splits), precisions)  # one Newton step
    posterior = dataclasses.replace(posterior, mean=mean)
    lowest = energy(prediction_errors(model, x, np.split(mean, splits)), precisions)
    return posterior, gaussian_surprise(lowest, posterior.log_det_precision, len(mean))


def _scale(precisions: list[np.ndarray], q_covariance: np.ndarray, sizes: list[int]
           ) -> np.ndarray:
    """Per unit, the grid's scale: Q's standard deviation, else the prior's, else 1."""
    scale = np.sqrt(np.diag(q_covariance))
    prior = np.ones(sum(sizes))
    top = precisions[-1]
    prior[-sizes[-1]:] = np.where(top > 0, 1.0 / np.sqrt(np.where(top > 0, top, 1.0)), 1.0)
    return np.where(np.isfinite(scale) & (scale > 0), scale, prior)


def _plot_span(mean: np.ndarray, covariance: np.ndarray, m: np.ndarray,
               q_covariance: np.ndarray) -> list[tuple[float, float]]:
    """Per unit, where a plot shows both: the posterior's mean +- 5 sd and Q's m +- 4 sd."""
    sd, q_sd = np.sqrt(np.diag(covariance)), np.sqrt(np.diag(q_covariance))
    low, high = mean - PLOT_SDS[0] * sd, mean + PLOT_SDS[0] * sd
    shown = np.isfinite(q_sd)
    low[shown] = np.minimum(low, m - PLOT_SDS[1] * q_sd)[shown]
    high[shown] = np.maximum(high, m + PLOT_SDS[1] * q_sd)[shown]
    return list(zip(low.tolist(), high.tolist(), strict=True))


def _dense(matrix: Any) -> np.ndarray:
    return matrix.toarray() if scipy.sparse.issparse(matrix) else np.asarray(matrix, dtype=float)
