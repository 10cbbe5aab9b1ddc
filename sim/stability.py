r"""Is the integration step safe? The Euler stability bound of the linearised belief dynamics.

One step of the hierarchical network (``circuits.schedule``) updates the error units from the
beliefs at t, then the beliefs from the new errors. Linearise around the beliefs mu* the run
starts from: with e = mu_below - g(mu) (``sim.families.hierarchical.free_energy``), a
perturbation v of the stacked beliefs changes the errors by D v, where D has identity blocks
on each level's own error and -J_l = -dg_l/dmu_l on the error below. With
Pi = diag(Pi_0, ..., Pi_L) (block diagonal where a level carries a full precision matrix,
``circuits.covariance``), b = dt / tau_belief, a = dt / tau_error:

- **instantaneous errors** (eps = Pi D v):

  .. math:: v' = (I - b\, D^\top \Pi D)\, v

  D' Pi D = sum_l (J_l' Pi_{l-1} J_l + Pi_l) + off-diagonal blocks -Pi_l J_{l+1} is the
  Gauss-Newton part of the Hessian of F (``energy_hessian`` in
  ``sim.families.hierarchical.free_energy``, without the curvature term, which vanishes at a
  mode and for linear g). It is positive semi-definite,
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

A prior on the beliefs besides the Gaussian ones (a mechanism's energy, e.g.
``circuits.sparse_prior``) adds its curvature D (diagonal) to D' Pi D in the belief flow; the
preflight takes lambda_max + max D, an upper bound (Weyl) that is safe for instantaneous
errors; with relaxing errors it is an approximation (the prior acts on the beliefs directly,
without the errors' lag).

The bound is exact for linear g. For nonlinear g it holds where J is close to its value at the
starting beliefs; a run that moves into a steeper region can still blow up, which the runtime
guard (``sim.guard``) catches. Learned weights and precisions are taken at their initial values.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from circuits.mechanism import FlowBound
from sim.learning import check_snapshots
from sim.memory import check_memory
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


def flow_stability(flow: FlowBound, dt_ms: float, trial: str | None) -> Stability | None:
    """The margin of a mechanism's first-order flow (``circuits.mechanism.FlowBound``).

    A deviation decaying at rate r = ``flow.rate / flow.tau_ms``, integrated by
    ``flow.method``, is multiplied by R(-r dt) per step: the margin is a'/2 with
    a' = 1 - R(-r dt), as for instantaneous errors. None for a flow that does not decay.
    """
    if not flow.rate > 0:
        return None
    where = f" in trial {trial!r}" if trial else ""
    dt_max, suggested = _flow_steps(flow.method, flow.rate, flow.tau_ms)
    return Stability(_flow_margin(flow.method, flow.rate, flow.tau_ms, dt_ms), flow.rate,
                     dt_max, suggested, trial, flow.bound, flow.detail + where)


def _flow_margin(method: str, rate: float, tau_ms: float, step: float) -> float:
    return relaxation_factor(method, step * rate / tau_ms) / 2


@lru_cache(maxsize=1024)  # a many-trial scenario asks for the same flow in every trial
def _flow_steps(method: str, rate: float, tau_ms: float) -> tuple[float, float]:
    """A first-order flow's largest stable dt and the dt suggested for it (ms)."""
    def margin_at(step: float) -> float:
        return _flow_margin(method, rate, tau_ms, step)

    return (largest_dt(margin_at, 1.0, tau_ms),
            round_down(largest_dt(margin_at, WARN_MARGIN, tau_ms)))


# --- before a run ------------------------------------------------------------------------------

def analyse(scenario) -> Stability | None:
    """The scenario's worst step margin, from its model family's ``stability`` (None: the
    family has no bound)."""
    family_bound = getattr(scenario.kind, "stability", None)
    return None if family_bound is None else family_bound(scenario)


def preflight(scenario) -> list[str]:
    """Refuse (ScenarioError on ``dt_ms``) an unstable step; return warnings for marginal ones.

    First the sizes: snapshots past ``[record] snapshots_limit_mb`` and a run past
    ``[numerics] memory_limit_mb`` are refused (``sim.memory``).

    A model family opts in with a ``stability(scenario) -> Stability`` function on its kind.
    """
    check_snapshots(scenario)  # the snapshots' size (sim.learning), before anything is written
    check_memory(scenario)  # the run's memory (sim.memory), before anything is allocated
    found = analyse(scenario)
    if found is None:
        return []
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
