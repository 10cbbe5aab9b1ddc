"""Step bounds of the hierarchical network (the maths: ``sim.stability``'s docstring)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import scipy.sparse.linalg

from circuits.generative import GenerativeMap
from circuits.mechanism import StartState
from sim import registry
from sim.families.hierarchical.free_energy import weigh
from sim.stability import (
    WARN_MARGIN,
    Stability,
    flow_stability,
    largest_stable_dt,
    margin,
    round_down,
)
from sim.validation import Source

DENSE_UNITS = 512  # below this, lambda_max from a dense eigendecomposition; above, Lanczos


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
            eps.append(weigh(precisions[level], error))
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
    mechanisms = [(registry.mechanism(name), settings)
                  for name, settings in model.mechanisms.items()]
    # a prior's energy on the beliefs adds its curvature D (diagonal, at most ``stiffness``) to
    # the belief flow's Jacobian: lambda_max(J' Pi J + Pi + D) <= lambda_max(J' Pi J + Pi)
    # + max D (Weyl), the bound taken here
    stiffness = max((value for mechanism, settings_of in mechanisms
                     for value in mechanism.max_curvature(settings_of, model).values()),
                    default=0.0)
    # levels where a mechanism puts a full precision matrix in force (circuits.covariance)
    matrices = {index: matrix for mechanism, settings_of in mechanisms
                for index, matrix in mechanism.initial_precision_matrices(settings_of).items()}
    cache: dict[tuple, float] = {}
    worst: tuple[float, float, str | None] = (-1.0, 0.0, None)
    flows: list[Stability] = []
    trials = scenario.trials or [None]
    for trial in trials:
        settings = trial.settings if trial is not None else None
        times = settings.change_times_ms() if settings is not None else [0.0]
        for t_ms in times:  # every set of precisions a schedule puts in force
            trial_name = trial.name if trial is not None and len(trials) > 1 else None
            if len(times) > 1:
                trial_name = f"{trial.name} at {t_ms:g} ms"
            in_force = model.in_force(settings, t_ms)
            precisions = [np.asarray(matrices.get(index, p), dtype=float)
                          for index, p in enumerate(in_force.precisions)]
            key = tuple(p.tobytes() for p in precisions)
            if key not in cache:
                with np.errstate(all="ignore"):
                    cache[key] = gauss_newton_lambda_max(maps, beliefs, precisions)
            lam = cache[key] + stiffness
            m = margin(scenario.dt_ms, lam, model.tau_belief_ms, tau_error, scenario.method)
            if m > worst[0]:
                worst = (m, lam, trial_name)
            state = StartState(maps, beliefs, precisions, scenario.dt_ms, scenario.method)
            for mechanism, settings_of in mechanisms:
                for flow in mechanism.bounds(settings_of, state):
                    found = flow_stability(flow, scenario.dt_ms, trial_name)
                    if found is not None:
                        flows.append(found)
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
    if stiffness:
        detail += f", plus {stiffness:.4g}, the largest curvature of a prior on the beliefs"
    network = Stability(m, lam, dt_max, suggested, trial_name, bound, detail)
    return max([network, *flows], key=lambda item: item.margin)
