r"""Independent NumPy Euler loops of pcsim's update scheme: the yardstick of ``pcsim bench``.

Written from the equations (docs/model.md, ``circuits.schedule``), not from the engine: no
Brian2, no pcsim circuits. One step from t to t + dt, for levels l = 0..L (mu_0 = x)::

    p_l   = g_{l+1}(mu_{l+1})  (l < L),   p_L = m            predictions from beliefs at t
    eps_l += dt/tau_eps * (Pi_l (mu_l - p_l) - eps_l)         relaxing errors
    eps_l  = Pi_l (mu_l - p_l)                                 (instantaneous errors)
    W_l   += dt/tau_W * a_l b_l'                               Hebbian step, if weights learn
    mu_l  += dt/tau_mu * (J_l(mu_l)' eps_{l-1} - eps_l)        beliefs from the new errors
    lam_l += dt/tau_lam * ((1 - Pi_l e_l^2)/2 - p (lam_l - lam_0))   inferred precision, if on

where, with inferred precision, Pi_l = Pi_configured,l exp(lam_l) (levels below the top) is
taken at the start of the step and e_l = mu_l - p_l is this step's error.

with g(mu) = W f(mu) (``before``) or f(W mu) (``after``), and (a, b) = (eps_{l-1}, f(mu_l)) or
(f'(W mu_l) eps_{l-1}, mu_l). Beliefs start at the top-down prediction of the prior mean, errors
at zero; the input is constant or a ramp. Weights may be dense arrays or scipy.sparse matrices
(then only the existing entries learn). The loop is the plain one a modeller would write; it
only avoids computing the same product twice in a step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse

Function = Callable[[np.ndarray], np.ndarray]


def _tanh_derivative(mu: np.ndarray) -> np.ndarray:
    return 1.0 - np.tanh(mu) ** 2


NONLINEARITIES: dict[str, tuple[Function, Function]] = {
    "identity": (lambda mu: mu, np.ones_like),
    "tanh": (np.tanh, _tanh_derivative),
}


@dataclass
class Hierarchy:
    """The numbers of one continuous hierarchy: W_1..W_L, Pi_0..Pi_L, m, x and time constants."""

    weights: list  # W_l, (n_{l-1}, n_l), dense or scipy.sparse
    precisions: list[np.ndarray]
    prior_mean: np.ndarray
    x: np.ndarray  # the input at t = 0
    x_stop: np.ndarray | None = None  # a ramp: x(t) = x + (x_stop - x) t / duration
    duration_ms: float | None = None
    nonlinearity: str = "identity"
    site: str = "before"
    errors: str = "relaxing"
    dt_ms: float = 0.1
    tau_belief_ms: float = 10.0
    tau_error_ms: float = 2.0
    tau_weights_ms: float | None = None
    tau_log_precision_ms: float | None = None  # inferred precision on every level but the top
    log_precision_mean: float = 0.0
    log_precision_prior: float = 1.0
    dtype: type = np.float64


def _hebbian(weights, post: np.ndarray, pre: np.ndarray, rate: float) -> None:
    if scipy.sparse.issparse(weights):
        rows = np.repeat(np.arange(weights.shape[0]), np.diff(weights.indptr))
        weights.data += rate * post[rows] * pre[weights.indices]
    else:
        weights += rate * np.outer(post, pre)


def run_hierarchy(
    model: Hierarchy, steps: int, record_every: int | None = None,
    samples: list | None = None,
    on_sample: Callable[[list[np.ndarray], list[np.ndarray]], None] | None = None,
) -> tuple[list[np.ndarray], list]:
    """Integrate ``steps`` Euler steps; returns beliefs mu_1..mu_L and weights W_1..W_L.

    With ``record_every``, ``samples`` receives a copy of (x, mu_1..mu_L) at t before every
    ``record_every``-th step, starting with the first, and ``on_sample`` is called there with
    the states themselves, (x, mu_1..mu_L) and (eps_0..eps_L) at t (to be copied, not kept).
    """
    f, df = NONLINEARITIES[model.nonlinearity]
    dtype = model.dtype
    W = [w.astype(dtype, copy=True) for w in model.weights]
    L = len(W)
    Pi = [np.asarray(p, dtype=dtype) for p in model.precisions]
    m = np.asarray(model.prior_mean, dtype=dtype)
    x = np.asarray(model.x, dtype=dtype)
    before = model.site == "before"
    g = (lambda w, mu: w @ f(mu)) if before else (lambda w, mu: f(w @ mu))

    mu: list[np.ndarray] = [x] + [np.zeros(0, dtype=dtype)] * L
    above = m
    for level in range(L, 0, -1):
        mu[level] = np.array(np.broadcast_to(above, W[level - 1].shape[1]), dtype=dtype)
        above = g(W[level - 1], mu[level])
    eps = [np.zeros(len(p), dtype=dtype) for p in Pi]
    relax = model.dt_ms / model.tau_error_ms
    move = model.dt_ms / model.tau_belief_ms
    learn = None if model.tau_weights_ms is None else model.dt_ms / model.tau_weights_ms
    infer = (None if model.tau_log_precision_ms is None
             else model.dt_ms / model.tau_log_precision_ms)
    configured = [p.copy() for p in Pi]
    lam = [np.full(len(p), model.log_precision_mean, dtype=dtype) for p in Pi[:-1]]

    ramp = None if model.x_stop is None else (np.asarray(model.x_stop, dtype=dtype) - x)
    for step in range(steps):
        if ramp is not None:
            mu[0] = x + ramp * (step * model.dt_ms / model.duration_ms)
        if record_every and step % record_every == 0:
            if samples is not None:
                samples.append([state.copy() for state in mu])
            if on_sample is not None:
                on_sample(mu, eps)
        if infer is not None:
            for level in range(L):
                Pi[level] = configured[level] * np.exp(np.clip(lam[level], -20.0, 20.0))
        drives = [W[i] @ (f(mu[i + 1]) if before else mu[i + 1]) for i in range(L)]
        predictions = [d if before else f(d) for d in drives] + [m]
        errors = [mu[level] - predictions[level] for level in range(L + 1)]
        for level in range(L + 1):
            target = Pi[level] * errors[level]
            if model.errors == "relaxing":
                eps[level] += relax * (target - eps[level])
            else:
                eps[level] = target
        for level in range(1, L + 1):
            w, below = W[level - 1], eps[level - 1]
            if not before:
                below = df(drives[level - 1]) * below
            if learn is not None:
                _hebbian(w, below, f(mu[level]) if before else mu[level], learn)
            bottom_up = w.T @ below
            if before:
                bottom_up = df(mu[level]) * bottom_up
            mu[level] += move * (bottom_up - eps[level])
        if infer is not None:
            for level in range(L):
                lam[level] += infer * (0.5 * (1 - Pi[level] * errors[level] ** 2)
                                       - model.log_precision_prior
                                       * (lam[level] - model.log_precision_mean))
    return mu[1:], W


# --- discrete causes ---------------------------------------------------------------------------

@dataclass
class Categorical:
    """A categorical cause: prior D, likelihoods A_m, and observations (step, modality, outcome).

    ``observations`` are (step, A, gamma, outcome index); their evidence enters at that step.
    """

    prior: np.ndarray
    observations: list[tuple[int, np.ndarray, float, int]]
    dt_ms: float = 0.1
    tau_belief_ms: float = 10.0


def tempered_log_likelihood(A: np.ndarray, gamma: float, outcome: int) -> np.ndarray:
    """ln Ã[o, k] with Ã = A^gamma, each column renormalised over outcomes."""
    weighted = gamma * np.log(A)
    top = weighted.max(axis=0)
    return weighted[outcome] - (top + np.log(np.exp(weighted - top).sum(axis=0)))


def run_categorical(
    model: Categorical, steps: int, record_every: int | None = None,
    on_sample: Callable[[np.ndarray, np.ndarray, np.ndarray], None] | None = None,
) -> np.ndarray:
    r"""Euler steps of tau dv/dt = eps - Q.eps with Q = softmax(v), eps = ln D + s - ln Q.

    v starts at ln D and the evidence s at 0; returns Q after ``steps`` steps. With
    ``record_every``, ``on_sample(Q, eps, s)`` is called at t of every ``record_every``-th step
    (this step's evidence in, before the step moves v; the arrays to be copied, not kept).
    """
    log_prior = np.log(model.prior)
    v = log_prior.copy()
    evidence = np.zeros_like(v)
    arriving: dict[int, list] = {}
    for step, A, gamma, outcome in model.observations:
        arriving.setdefault(step, []).append(tempered_log_likelihood(A, gamma, outcome))
    h = model.dt_ms / model.tau_belief_ms
    for step in range(steps):
        for message in arriving.get(step, ()):
            evidence += message
        top = v.max()
        log_norm = top + np.log(np.exp(v - top).sum())
        error = log_prior + evidence - (v - log_norm)
        belief = np.exp(v - log_norm)
        if record_every and step % record_every == 0:
            on_sample(belief, error, evidence)
        v += h * (error - belief @ error)
    top = v.max()
    return np.exp(v - (top + np.log(np.exp(v - top).sum())))


@dataclass
class MeanField:
    """Independent factors with priors D_f, likelihoods over the joint cause, observations
    (step, A, gamma, outcome index) whose log-likelihood tensors add to the evidence L."""

    priors: list[np.ndarray]
    observations: list[tuple[int, np.ndarray, float, int]]
    dt_ms: float = 0.1
    tau_belief_ms: float = 10.0


def run_mean_field(model: MeanField, steps: int) -> list[np.ndarray]:
    r"""Euler steps of the mean-field flow, factors in turns within a step: for f = 1..F,
    s_f = E_{Q_-f}[L] from the others' current Q, eps_f = ln D_f + s_f - ln Q_f,
    v_f += h (eps_f - Q_f . eps_f). Returns every Q_f after ``steps`` steps."""
    log_priors = [np.log(prior) for prior in model.priors]
    v = [log_prior.copy() for log_prior in log_priors]
    shape = tuple(len(prior) for prior in model.priors)
    evidence = np.zeros(shape)
    arriving: dict[int, list] = {}
    for step, A, gamma, outcome in model.observations:
        arriving.setdefault(step, []).append(tempered_log_likelihood(A, gamma, outcome))
    h = model.dt_ms / model.tau_belief_ms

    def belief(values: np.ndarray) -> np.ndarray:
        weights = np.exp(values - values.max())
        return weights / weights.sum()

    for step in range(steps):
        for message in arriving.get(step, ()):
            evidence += message
        for f in range(len(v)):
            expected = evidence
            for other in range(len(v) - 1, -1, -1):
                if other != f:
                    expected = np.tensordot(expected, belief(v[other]), axes=([other], [0]))
            q = belief(v[f])
            error = log_priors[f] + expected - np.log(q)
            v[f] = v[f] + h * (error - q @ error)
    return [belief(values) for values in v]
