r"""Is the integration step safe? The Euler stability bound of the linearised belief dynamics.

One step of the hierarchical network (``circuits.schedule``) updates the error units from the
beliefs at t, then the beliefs from the new errors. Linearise around the beliefs mu* the run
starts from: with e = mu_below - g(mu) (``sim.free_energy``), a perturbation v of the stacked
beliefs changes the errors by D v, where D has identity blocks on each level's own error and
-J_l = -dg_l/dmu_l on the error below. With Pi = diag(Pi_0, ..., Pi_L), b = dt / tau_belief,
a = dt / tau_error:

- **instantaneous errors** (eps = Pi D v):

  .. math:: v' = (I - b\, D^\top \Pi D)\, v

  D' Pi D = sum_l (J_l' Pi_{l-1} J_l + Pi_l) + off-diagonal blocks -Pi_l J_{l+1} is the
  Gauss-Newton part of the Hessian of F (``sim.free_energy.energy_hessian`` without the
  curvature term, which vanishes at a mode and for linear g). It is positive semi-definite,
  so the step is stable iff ``b * lambda_max < 2``, lambda_max its largest eigenvalue.

- **relaxing errors** (``tau_eps deps/dt = Pi e - eps``). The state-update method integrates
  the error units with the input held over the step, so eps' = eps + a' (Pi D v - eps) with
  a' = 1 - R(-a), R the method's stability function (Euler, Heun, Milstein 1 + z (Brian2's
  heun and milstein are stochastic schemes), RK2 1 + z + z^2/2,
  RK4 up to z^4/24, exponential Euler e^z). Beliefs integrate their input exactly whatever the
  method: v' = v - b D' eps'. With z = Pi^{-1/2} eps and K = Pi^{1/2} D = U S V' (SVD), each
  singular value s (s^2 an eigenvalue lambda of D' Pi D) gives an independent 2x2 system

  .. math::

      \begin{pmatrix} z' \\ v' \end{pmatrix} =
      \begin{pmatrix} 1 - a' & a' s \\ -b s (1 - a') & 1 - a' b s^2 \end{pmatrix}
      \begin{pmatrix} z \\ v \end{pmatrix}

  with trace 2 - a' - a' b s^2 and determinant 1 - a'. Jury's conditions for both eigenvalues
  inside the unit circle: |1 - a'| < 1 (the error units alone: a' < 2, for Euler dt < 2
  tau_error) and ``b * lambda_max < 4 / a' - 2``. With a' = 1 (errors relax in one step) this
  is the instantaneous bound b lambda < 2; slowly relaxing errors tolerate larger b.

The fraction of the bound a scenario uses is its *margin* m (b lambda / 2, or
b lambda a' / (4 - 2 a')): m >= 1 diverges, and above 1/2 an instantaneous-error network
overshoots the mode on every step (1 - b lambda < 0), which is no longer a gradient flow.
``preflight`` refuses m >= 1 (``[numerics] stability = "warn"`` only warns) and warns above 1/2,
with the largest stable dt and a suggested one.

The bound is exact for linear g. For nonlinear g it holds where J is close to its value at the
starting beliefs; a run that moves into a steeper region can still blow up, which the runtime
guard (``sim.guard``) catches. Learned weights and precisions are taken at their initial values.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse.linalg

from sim.generative import GenerativeMap
from sim.validation import Source

WARN_MARGIN = 0.5
DENSE_UNITS = 512  # below this, lambda_max from a dense eigendecomposition; above, Lanczos


def relaxation_factor(method: str, a: float) -> float:
    """a' = 1 - R(-a): the fraction of the way to its target an error unit moves in one step."""
    z = -a
    if method == "exponential_euler":
        growth = math.exp(z)
    elif method == "rk2":
        growth = 1 + z + z**2 / 2
    elif method == "rk4":
        growth = 1 + z + z**2 / 2 + z**3 / 6 + z**4 / 24
    else:  # euler; Brian2's heun and milstein are stochastic schemes, Euler without noise
        growth = 1 + z
    return 1 - growth


def margin(dt_ms: float, lam: float, tau_belief_ms: float, tau_error_ms: float | None,
           method: str) -> float:
    """The fraction of the stability bound used (>= 1: unstable); tau_error None: instantaneous."""
    b = dt_ms / tau_belief_ms
    if tau_error_ms is None:
        return b * lam / 2
    relax = relaxation_factor(method, dt_ms / tau_error_ms)
    if not 0 < relax < 2:
        return math.inf
    return b * lam * relax / (4 - 2 * relax)


def largest_stable_dt(lam: float, tau_belief_ms: float, tau_error_ms: float | None,
                      method: str, below: float = 1.0) -> float:
    """The largest dt (ms) whose margin stays below ``below`` (inf if there is no bound)."""
    return largest_dt(lambda dt: margin(dt, lam, tau_belief_ms, tau_error_ms, method), below,
                      min(tau_belief_ms, tau_error_ms or math.inf))


def largest_dt(margin_at: Callable[[float], float], below: float, start: float) -> float:
    """The largest dt (ms) with ``margin_at(dt) < below``, by bisection (inf if unbounded)."""
    def inside(dt: float) -> bool:
        return margin_at(dt) < below

    high = start
    while inside(high):
        high *= 2
        if high > 1e12:
            return math.inf
    low = 0.0
    for _ in range(100):
        middle = (low + high) / 2
        low, high = (middle, high) if inside(middle) else (low, middle)
    return low


def round_down(value: float) -> float:
    """The largest 1, 2 or 5 times a power of ten not above ``value``."""
    if value <= 0 or not math.isfinite(value):
        return value
    power = 10.0 ** math.floor(math.log10(value))
    for step in (5, 2, 1):
        if step * power <= value * (1 + 1e-12):
            return step * power
    return power


# --- the hierarchical model ---------------------------------------------------------------

def gauss_newton_lambda_max(maps: Sequence[GenerativeMap], beliefs: Sequence[np.ndarray],
                            precisions: Sequence[np.ndarray]) -> float:
    """lambda_max of D' Pi D at ``beliefs`` (levels 1..L), ``precisions`` for levels 0..L."""
    sizes = [len(mu) for mu in beliefs]
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
    total = int(offsets[-1])
    levels = len(beliefs)

    def apply(v: np.ndarray) -> np.ndarray:
        parts = [v[offsets[i]:offsets[i + 1]] for i in range(levels)]
        # eps = Pi D v on error levels 0..L
        eps = []
        for level in range(levels + 1):
            error = parts[level - 1].copy() if level > 0 else np.zeros(len(precisions[0]))
            if level < levels:
                error = error - maps[level].push_forward(beliefs[level], parts[level])
            eps.append(precisions[level] * error)
        # D' eps on belief levels 1..L
        out = np.empty(total)
        for i in range(levels):
            out[offsets[i]:offsets[i + 1]] = eps[i + 1] - maps[i].pull_back(beliefs[i], eps[i])
        return out

    if total <= DENSE_UNITS:
        matrix = np.column_stack([apply(column) for column in np.eye(total)])
        if not np.all(np.isfinite(matrix)):
            return math.inf  # weights or precisions too large to square
        return float(np.linalg.eigvalsh((matrix + matrix.T) / 2)[-1])
    operator = scipy.sparse.linalg.LinearOperator((total, total), matvec=apply, dtype=float)
    try:
        values = scipy.sparse.linalg.eigsh(operator, k=1, which="LA", tol=1e-3,
                                           return_eigenvectors=False)
        lam = float(values[0])
    except scipy.sparse.linalg.ArpackNoConvergence as err:
        lam = float(np.max(err.eigenvalues)) if len(err.eigenvalues) else _power(apply, total)
    except (scipy.sparse.linalg.ArpackError, ValueError, np.linalg.LinAlgError):
        lam = _power(apply, total)
    return lam if math.isfinite(lam) else math.inf


def _power(apply: Callable[[np.ndarray], np.ndarray], total: int) -> float:
    v = np.random.default_rng(0).standard_normal(total)
    lam = 0.0
    for _ in range(200):
        w = apply(v)
        lam = float(np.linalg.norm(w))
        if lam == 0:
            return 0.0
        v = w / lam
    return lam


@dataclass
class Stability:
    """What ``preflight`` found: the worst margin, where, and what dt would do."""

    margin: float
    lambda_max: float
    dt_max_ms: float
    suggested_dt_ms: float
    trial: str | None
    bound: str  # the inequality, in words
    detail: str = ""  # what lambda_max is, for the message


def analyse_hierarchical(scenario) -> Stability:
    """The worst stability margin over the scenario's trials (their precisions) at the
    starting beliefs. Raises ScenarioError if g or J is not finite there."""
    model = scenario.model
    source = Source(scenario.path, scenario.source_text, tuple(scenario.overrides))
    with np.errstate(all="ignore"):  # non-finite values are reported just below
        beliefs = model.top_down_beliefs()
    maps = [level.generative for level in model.belief_levels]
    for index, (gmap, mu) in enumerate(zip(maps, beliefs, strict=True), start=1):
        with np.errstate(all="ignore"):
            values = (gmap.predict(mu), gmap.nonlinearity.df(mu))
        if not all(np.all(np.isfinite(value)) for value in values):
            raise source.error(
                f"model.levels[{index}].nonlinearity",
                f"{gmap.nonlinearity.name!r} or its derivative is not finite at the starting "
                f"belief (mu = {np.asarray(mu).ravel()[:4].tolist()}...); change it, "
                "initial_belief or [model.prior] mean")
    tau_error = model.tau_error_ms if model.errors == "relaxing" else None
    cache: dict[tuple, float] = {}
    worst: tuple[float, float, str | None] = (-1.0, 0.0, None)
    trials = scenario.trials or [None]
    for trial in trials:
        overrides = trial.settings.precision if trial is not None else {}
        precisions = [np.asarray(overrides.get(level.name, level.precision), dtype=float)
                      for level in model.levels]
        key = tuple(p.tobytes() for p in precisions)
        if key not in cache:
            with np.errstate(all="ignore"):
                cache[key] = gauss_newton_lambda_max(maps, beliefs, precisions)
        lam = cache[key]
        m = margin(scenario.dt_ms, lam, model.tau_belief_ms, tau_error, scenario.method)
        if m > worst[0]:
            worst = (m, lam, trial.name if trial is not None and len(trials) > 1 else None)
    m, lam, trial_name = worst
    where = f" in trial {trial_name!r}" if trial_name else ""
    if not math.isfinite(lam):
        raise source.error("model", f"the precision-weighted coupling J' Pi J + Pi{where} "
                                    "overflows at the starting beliefs: weights or "
                                    "precisions are too large")
    dt_max = largest_stable_dt(lam, model.tau_belief_ms, tau_error, scenario.method)
    suggested = round_down(largest_stable_dt(lam, model.tau_belief_ms, tau_error,
                                             scenario.method, below=WARN_MARGIN))
    if tau_error is None:
        bound = "dt/tau_belief * lambda_max < 2"
    else:
        bound = (f"dt/tau_belief * lambda_max < 4/a' - 2 and a' < 2, a' = 1 - R(-dt/tau_error) "
                 f"for method {scenario.method!r}")
    detail = (f"lambda_max = {lam:.4g}, the largest eigenvalue of J' Pi J + Pi at the "
              f"starting beliefs{where}")
    found = [Stability(m, lam, dt_max, suggested, trial_name, bound, detail)]
    found += learning_stability(scenario, beliefs, trials)
    return max(found, key=lambda item: item.margin)


def learning_stability(scenario, beliefs: Sequence[np.ndarray], trials) -> list[Stability]:
    r"""Step bounds of the slow parameter flows (``circuits.precision``, ``circuits.plasticity``).

    Each is a first-order flow towards its fixed point, linearised at the starting values:

    - precision, tau dPi/dt = (1/Pi - e^2)/2: d(dPi)/dt = -dPi / (2 Pi^2 tau), rate
      1/(2 Pi^2 tau), largest for the smallest Pi (units with Pi = 0, an improper prior, are
      left to the runtime guard);
    - weights, tau dW_i/dt = Pi_i e_i dg_i/dW_i with e_i = x_i - g_i(W): rate
      Pi_i ||dg_i/dW_i||^2 / tau for row i (``GenerativeMap.weight_sensitivity``).

    A rate r integrated by ``method`` multiplies a deviation by R(-r dt) per step (weights are
    updated by an Euler step in every case): the margin is a'/2 with a' = 1 - R(-r dt), as for
    instantaneous errors.
    """
    model, dt, method = scenario.model, scenario.dt_ms, scenario.method
    learning = model.learning
    named = len(trials) > 1
    found = []

    def add(rate: float, tau_ms: float, step_method: str, bound: str, detail: str,
            trial) -> None:
        if not rate > 0:
            return
        margin_at = lambda step: relaxation_factor(step_method, step * rate / tau_ms) / 2  # noqa: E731
        where = f" in trial {trial.name!r}" if named and trial is not None else ""
        found.append(Stability(margin_at(dt), rate, largest_dt(margin_at, 1.0, tau_ms),
                               round_down(largest_dt(margin_at, WARN_MARGIN, tau_ms)),
                               trial.name if where else None, bound, detail + where))

    for trial in trials:
        overrides = trial.settings.precision if trial is not None else {}
        precisions = [np.asarray(overrides.get(level.name, level.precision), dtype=float)
                      for level in model.levels]
        if learning.tau_precision_ms is not None:
            smallest = min((float(p[p > 0].min()) for p in precisions if np.any(p > 0)),
                           default=math.inf)
            add(1 / (2 * smallest**2), learning.tau_precision_ms, method,
                "dt/tau_precision / (2 Pi_min^2) < 2 (for method R(-h) > -1)",
                f"Pi_min = {smallest:.4g}, the smallest precision, learned by "
                "tau dPi/dt = (1/Pi - e^2)/2", trial)
        if learning.tau_weights_ms is not None:
            with np.errstate(all="ignore"):
                rate = max(float(np.max(precisions[index] * level.generative.weight_sensitivity(
                    beliefs[index]))) for index, level in enumerate(model.belief_levels))
            add(rate, learning.tau_weights_ms, "euler",
                "dt/tau_weights * max_i Pi_i ||dg_i/dW_i||^2 < 2",
                f"max_i Pi_i ||dg_i/dW_i||^2 = {rate:.4g} at the starting beliefs", trial)
    return found


# --- categorical beliefs ----------------------------------------------------------------------

def analyse_discrete(scenario) -> Stability:
    """Categorical beliefs (``circuits.discrete``): tau dv/dt = eps - sum_j Q_j eps_j.

    The pool computes the errors once per step and holds them over it, so every method takes
    the same step v' = v + h (eps - mean eps), h = dt/tau. Around the posterior,
    ln Q - ln p(s|o) (up to a constant) is multiplied by 1 - h per step: the instantaneous
    bound above with lambda = 1. h < 2 is stable; F never increases for h <= 1 (margin 1/2).
    """
    tau = scenario.model.tau_belief_ms
    m = margin(scenario.dt_ms, 1.0, tau, None, scenario.method)
    return Stability(m, 1.0, largest_stable_dt(1.0, tau, None, scenario.method),
                     round_down(largest_stable_dt(1.0, tau, None, scenario.method,
                                                  below=WARN_MARGIN)),
                     None, "dt/tau_belief < 2 (F never increases for dt <= tau_belief)",
                     "ln Q - ln p(s|o) shrinks by 1 - dt/tau_belief per step, for any method")


# --- before a run ------------------------------------------------------------------------------

def preflight(scenario) -> list[str]:
    """Refuse (ScenarioError on ``dt_ms``) an unstable step; return warnings for marginal ones.

    A model family opts in with a ``stability(scenario) -> Stability`` function on its kind.
    """
    analyse = getattr(scenario.kind, "stability", None)
    if analyse is None:
        return []
    found: Stability = analyse(scenario)
    if found.margin < WARN_MARGIN:
        return []
    source = Source(scenario.path, scenario.source_text, tuple(scenario.overrides))
    numbers = f"{found.bound} ({found.detail})"
    advice = (f"use dt_ms < {found.dt_max_ms:.4g}, e.g. dt_ms = {found.suggested_dt_ms:g}"
              if math.isfinite(found.dt_max_ms) and found.dt_max_ms > 0 else "reduce dt_ms")
    if found.margin >= 1:
        message = (f"{scenario.dt_ms:g} ms is beyond the Euler stability bound {numbers}: "
                   f"the run would diverge; {advice}")
        if scenario.numerics.stability == "refuse":
            raise source.error("dt_ms", message + " (or set [numerics] stability = \"warn\")")
        return [str(source.error("dt_ms", message))]
    used = f"{100 * found.margin:.0f}%"
    return [str(source.error(
        "dt_ms", f"{scenario.dt_ms:g} ms uses {used} of the Euler stability bound {numbers}: "
                 f"beliefs may overshoot and oscillate; {advice}"))]
