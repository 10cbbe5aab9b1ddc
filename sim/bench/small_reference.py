r"""One loop over a whole protocol of a small continuous hierarchy: the yardstick of the
"small models" row of ``pcsim bench`` (``sim.bench.small_models``).

Written from the equations (docs/model.md, docs/attention.md, ``circuits.schedule``), not from
the engine: no Brian2, no pcsim. Plain scalar loops over flat arrays, so that Numba compiles
them (``compiled_loop``) and plain Python runs them too (slowly: the tests' short protocols).
Levels l = 0..L (level 0 the input x, mu_0 = x), all units of all levels in one flat state
vector (level l from ``offsets[l]``), W_l (n_{l-1} x n_l) row-major in one flat array (from
``weight_offsets[l]``), g_l(mu_l) = W_l f(mu_l) with f the identity or tanh. One step from t to
t + dt, in pcsim's order:

    reaction time   from the onset on, the first belief of the watched level above the
                    threshold answers (t - onset), checked every step before the input
    input           x(t); a scheduled precision changes at its step (Pi_configured)
    attention       Pi_target = Pi_configured exp(clip(C mu_context, -20, 20))
    errors          e_l = mu_l - W_{l+1} f(mu_{l+1}),  e_L = mu_L - m
                    relaxing: eps_l += dt/tau_eps (Pi_l e_l - eps_l); instantaneous: Pi_l e_l
    sample          every ``every`` steps: mu, eps, Pi at t (relaxing errors: before they move,
                    instantaneous: after), the energy and F (below)
    beliefs         tau dmu_l/dt = f'(mu_l) W_l' eps_{l-1} - eps_l
                    (+ C' (1 - Pi_target e_target^2) / 2 on the context level)

A trial that resets starts its beliefs at ``initial`` and its errors at 0; its prior mean m and
its configured precisions (segments of the trial, each from its first step) are its own.

F at a sample, with the precisions in force held (docs/attention.md):
E = sum_l 1/2 sum_i (Pi_li e_li^2 - ln Pi_li + ln 2 pi) over units with Pi > 0, and
F = E + 1/2 ln|det H| - N/2 ln 2 pi, H the dense Hessian of E over the N belief units:
H_ll = diag(Pi_l) + J_l' diag(Pi_{l-1}) J_l - diag(f''(mu_l) W_l' Pi_{l-1} e_{l-1}),
H_{l-1,l} = -diag(Pi_{l-1}) J_l, J_l = W_l diag(f'(mu_l)); ln|det H| from an LU factorisation
with partial pivoting. The same F at each trial's end (the state after its last step).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

LN_2PI = math.log(2.0 * math.pi)
CEILING = 20.0  # |C mu| is clipped here before the exponential
NONLINEARITIES = {"identity": 0, "tanh": 1}


@dataclass
class SmallModel:
    """The numbers of one protocol: the model's and each trial's, as flat arrays."""

    sizes: np.ndarray  # (L + 1,) units per level, the input first
    weights: np.ndarray  # W_1..W_L, each row-major, one after the other
    nonlinearity: str  # "identity" or "tanh", every level
    relaxing: bool  # relaxing errors (else instantaneous)
    rate_error: float  # dt / tau_error
    rate_belief: float  # dt / tau_belief
    initial: np.ndarray  # (units,) beliefs a resetting trial starts from (input part unused)
    trial_steps: np.ndarray  # (trials,)
    reset: np.ndarray  # (trials,) bool
    prior_mean: np.ndarray  # (trials, n_L)
    segment_start: np.ndarray  # (trials, K) the step a segment of configured precision begins
    segment_precision: np.ndarray  # (trials, K, units) configured precision of every unit
    stimulus: np.ndarray  # (steps, n_0) x at every step of the protocol
    every: int  # steps between samples
    attention: tuple[int, int] = (-1, -1)  # (target level, context level); -1: none
    mapping: np.ndarray | None = None  # C, (n_target, n_context)
    reaction_level: int = -1  # -1: no reaction time
    threshold: float = 0.0
    onset_step: int = 0
    onset_ms: float = 0.0
    dt_ms: float = 0.1

    @property
    def steps(self) -> int:
        return int(self.trial_steps.sum())

    @property
    def samples(self) -> int:
        return -(-self.steps // self.every)

    @property
    def offsets(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.sizes)]).astype(np.int64)

    @property
    def weight_offsets(self) -> np.ndarray:
        products = self.sizes[:-1] * self.sizes[1:]
        return np.concatenate([[0, 0], np.cumsum(products)]).astype(np.int64)


@dataclass
class Outcome:
    samples: np.ndarray  # (samples, 3 units): state, eps, Pi at each sample
    free_energy: np.ndarray  # (samples, 2): energy, F
    final: np.ndarray  # (trials, units): the state at each trial's end
    final_free_energy: np.ndarray  # (trials,)
    reaction_ms: np.ndarray  # (trials,), NaN: no answer (or not watched)


def log_abs_det(h: np.ndarray) -> float:
    """ln|det h| by Gaussian elimination with partial pivoting (``h`` is overwritten)."""
    n = h.shape[0]
    total = 0.0
    for a in range(n):
        pivot = a
        for r in range(a + 1, n):
            if abs(h[r, a]) > abs(h[pivot, a]):
                pivot = r
        if pivot != a:
            for c in range(a, n):
                h[a, c], h[pivot, c] = h[pivot, c], h[a, c]
        total += math.log(abs(h[a, a]))
        for r in range(a + 1, n):
            factor = h[r, a] / h[a, a]
            for c in range(a + 1, n):
                h[r, c] -= factor * h[a, c]
    return total


def f_of(kind: int, v: float) -> float:
    return math.tanh(v) if kind == 1 else v


def df_of(kind: int, v: float) -> float:
    if kind == 1:
        t = math.tanh(v)
        return 1.0 - t * t
    return 1.0


def d2f_of(kind: int, v: float) -> float:
    if kind == 1:
        t = math.tanh(v)
        return -2.0 * t * (1.0 - t * t)
    return 0.0


def free_energy(s, e, pi, sizes, off, w, woff, kind, h, d, jt) -> tuple[float, float]:
    """(E, F) of the state ``s`` with raw errors ``e`` and precisions ``pi`` (module doc).
    Scratch: ``h`` the (N, N) Hessian, ``d`` (2, units) the beliefs' f' and f'', ``jt``
    (units, largest level) the rows of J_l' (unit u of level l: J_l[:, u]), so that
    J' Pi J is a sum over contiguous rows."""
    energy = 0.0
    for u in range(off[-1]):
        if pi[u] > 0.0:
            energy += 0.5 * (pi[u] * e[u] * e[u] - math.log(pi[u]) + LN_2PI)
    for u in range(off[1], off[-1]):
        d[0, u] = df_of(kind, s[u])
        d[1, u] = d2f_of(kind, s[u])
    base = off[1]
    h[:, :] = 0.0
    for level in range(1, len(sizes)):
        n_below, n_here = sizes[level - 1], sizes[level]
        low, high = off[level - 1], off[level]  # the units of levels l - 1 and l
        for i in range(n_below):  # row i of W_l: J_l' and -f'' W_l' Pi_{l-1} e_{l-1}
            error = pi[low + i] * e[low + i]
            row = woff[level] + i * n_here
            for j in range(n_here):
                jt[high + j, i] = w[row + j] * d[0, high + j]
                h[high + j - base, high + j - base] -= d[1, high + j] * w[row + j] * error
        for j in range(n_here):  # + J_l' Pi_{l-1} J_l + Pi_l
            for k in range(j, n_here):
                total = 0.0
                for i in range(n_below):
                    total += jt[high + j, i] * pi[low + i] * jt[high + k, i]
                h[high + j - base, high + k - base] += total
                if k != j:
                    h[high + k - base, high + j - base] += total
            h[high + j - base, high + j - base] += pi[high + j]
            if level > 1:  # -Pi_{l-1} J_l beside the diagonal
                for i in range(n_below):
                    value = -pi[low + i] * jt[high + j, i]
                    h[low + i - base, high + j - base] = value
                    h[high + j - base, low + i - base] = value
    laplace = 0.5 * log_abs_det(h) - 0.5 * h.shape[0] * LN_2PI
    return energy, energy + laplace


def protocol_loop(sizes, off, w, woff, kind, relaxing, rate_error, rate_belief, initial,
                  trial_steps, reset, prior_mean, segment_start, segment_precision, stimulus,
                  every, target, context, mapping, reaction_level, threshold, onset_step,
                  onset_ms, dt_ms, samples_out, free_out, final_out, final_free_out,
                  reaction_out):
    """Every step of every trial (module doc); fills the ``*_out`` arrays (``Outcome``)."""
    units, top = off[-1], len(sizes) - 1
    s, eps, e = initial.copy(), np.zeros(units), np.zeros(units)
    pi, configured = np.zeros(units), np.zeros(units)
    drive, flow = np.zeros(units), np.zeros(units)
    fs = np.zeros(units)  # f(mu)
    h, d = np.zeros((units - off[1], units - off[1])), np.zeros((2, units))
    jt = np.zeros((units, sizes.max()))
    n_input = sizes[0]
    step = 0  # in the protocol
    sample = 0
    for trial in range(len(trial_steps)):
        if reset[trial]:
            for u in range(n_input, units):
                s[u] = initial[u]
                eps[u] = 0.0
            for u in range(n_input):
                eps[u] = 0.0
        segment = 0
        configured[:] = segment_precision[trial, 0]
        pi[:] = configured
        answered = reaction_level < 0
        for k in range(trial_steps[trial]):
            if not answered and k >= onset_step:
                for i in range(sizes[reaction_level]):
                    if s[off[reaction_level] + i] > threshold:
                        answered = True
                if answered:
                    reaction_out[trial] = k * dt_ms - onset_ms
            for i in range(n_input):
                s[i] = stimulus[step, i]
            while (segment + 1 < segment_start.shape[1]
                   and segment_start[trial, segment + 1] == k):
                segment += 1
                configured[:] = segment_precision[trial, segment]
            for u in range(units):
                pi[u] = configured[u]
            if target >= 0:
                for i in range(sizes[target]):
                    lam = 0.0
                    for c in range(sizes[context]):
                        lam += mapping[i, c] * s[off[context] + c]
                    u = off[target] + i
                    pi[u] = configured[u] * math.exp(min(max(lam, -CEILING), CEILING))
            for u in range(n_input, units):
                fs[u] = f_of(kind, s[u])
            for level in range(top + 1):
                for i in range(sizes[level]):
                    if level < top:
                        prediction = 0.0
                        row = woff[level + 1] + i * sizes[level + 1]
                        for j in range(sizes[level + 1]):
                            prediction += w[row + j] * fs[off[level + 1] + j]
                    else:
                        prediction = prior_mean[trial, i]
                    e[off[level] + i] = s[off[level] + i] - prediction
            recording = step % every == 0
            if recording and relaxing:
                _sample(samples_out, free_out, sample, s, eps, pi, e, sizes, off, w, woff,
                        kind, h, d, jt)
            for u in range(units):
                if relaxing:
                    eps[u] += rate_error * (pi[u] * e[u] - eps[u])
                else:
                    eps[u] = pi[u] * e[u]
            if recording:
                if not relaxing:
                    _sample(samples_out, free_out, sample, s, eps, pi, e, sizes, off, w, woff,
                            kind, h, d, jt)
                sample += 1
            drive[:] = 0.0
            if target >= 0:
                for c in range(sizes[context]):
                    total = 0.0
                    for i in range(sizes[target]):
                        u = off[target] + i
                        total += mapping[i, c] * 0.5 * (1.0 - pi[u] * e[u] * e[u])
                    drive[off[context] + c] = total
            flow[:] = 0.0  # W_l' eps_{l-1}, row by row of W_l
            for level in range(1, top + 1):
                for i in range(sizes[level - 1]):
                    below = eps[off[level - 1] + i]
                    row = woff[level] + i * sizes[level]
                    for j in range(sizes[level]):
                        flow[off[level] + j] += w[row + j] * below
            for u in range(n_input, units):
                flow[u] = df_of(kind, s[u]) * flow[u] - eps[u] + drive[u]
            for u in range(n_input, units):
                s[u] += rate_belief * flow[u]
            step += 1
        final_out[trial, :] = s
        for u in range(n_input, units):
            fs[u] = f_of(kind, s[u])
        for level in range(top + 1):  # F at the trial's end: the errors of the final state
            for i in range(sizes[level]):
                prediction = prior_mean[trial, i] if level == top else 0.0
                if level < top:
                    row = woff[level + 1] + i * sizes[level + 1]
                    for j in range(sizes[level + 1]):
                        prediction += w[row + j] * fs[off[level + 1] + j]
                e[off[level] + i] = s[off[level] + i] - prediction
        final_free_out[trial] = free_energy(s, e, pi, sizes, off, w, woff, kind, h, d, jt)[1]


def _sample(samples_out, free_out, sample, s, eps, pi, e, sizes, off, w, woff, kind, h, d, jt):
    units = off[-1]
    for u in range(units):
        samples_out[sample, u] = s[u]
        samples_out[sample, units + u] = eps[u]
        samples_out[sample, 2 * units + u] = pi[u]
    energy, total = free_energy(s, e, pi, sizes, off, w, woff, kind, h, d, jt)
    free_out[sample, 0] = energy
    free_out[sample, 1] = total


Loop = Callable[..., None]


def compiled_loop() -> tuple[Loop, str] | tuple[None, str]:
    """``protocol_loop`` compiled by Numba (lazily, at its first call), with Numba's version;
    (None, why) where Numba does not import."""
    try:
        import numba
    except ImportError as err:
        return None, f"Numba is not installed ({err}; pip install 'pcsim[bench]')"
    jit = numba.njit(cache=False, fastmath=False)
    helpers = {name: jit(globals()[name]) for name in
               ("log_abs_det", "f_of", "df_of", "d2f_of")}
    energy = jit(_rebind(free_energy, helpers))
    sample = jit(_rebind(_sample, {"free_energy": energy}))
    loop = jit(_rebind(protocol_loop, {**helpers, "free_energy": energy, "_sample": sample}))
    return loop, f"Numba {numba.__version__}"


def _rebind(function, names: dict):
    """``function`` with the globals ``names`` replaced (the jitted helpers it calls)."""
    import types

    scope = {**function.__globals__, **names}
    return types.FunctionType(function.__code__, scope, function.__name__,
                              function.__defaults__, function.__closure__)


def run(model: SmallModel, loop: Loop = protocol_loop) -> Outcome:
    """The whole protocol through ``loop`` (``protocol_loop`` or ``compiled_loop``'s)."""
    units = int(model.sizes.sum())
    trials = len(model.trial_steps)
    outcome = Outcome(np.zeros((model.samples, 3 * units)), np.zeros((model.samples, 2)),
                      np.zeros((trials, units)), np.zeros(trials), np.full(trials, np.nan))
    target, context = model.attention
    mapping = model.mapping if model.mapping is not None else np.zeros((1, 1))
    loop(model.sizes, model.offsets, model.weights, model.weight_offsets,
         NONLINEARITIES[model.nonlinearity], model.relaxing, model.rate_error,
         model.rate_belief, model.initial, model.trial_steps, model.reset, model.prior_mean,
         model.segment_start, model.segment_precision, model.stimulus, model.every, target,
         context, mapping, model.reaction_level, model.threshold, model.onset_step,
         model.onset_ms, model.dt_ms, outcome.samples, outcome.free_energy, outcome.final,
         outcome.final_free_energy, outcome.reaction_ms)
    return outcome
