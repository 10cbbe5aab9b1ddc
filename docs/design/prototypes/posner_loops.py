"""Posner's flows as one loop over the whole protocol: plain NumPy, and Numba if it imports.

Both run the model of ``posner_protocol`` (same order of work in a step as pcsim: reaction-time
check, input, precision, errors, sample, beliefs), check the reaction time every step, record
every 1 ms and compare everything with pcsim's run. NumPy: a step in small-array NumPy calls,
F from the samples after the loop (vectorised). Numba: scalar loops over the (small, dense)
weights, F with its Laplace term (a 3 x 3 Cholesky) at every sample inside the loop; JIT time
reported apart, run time best of 5.

    python docs/design/prototypes/posner_loops.py   # Numba: PYTHONPATH=<a folder with numba>
"""
from __future__ import annotations

import math
import time

import numpy as np
import posner_protocol as posner

C = np.array([[1.0], [-1.0]])  # the context's mapping onto the locations' log-precision
W_1 = np.eye(2)  # target -> locations
W_2 = np.zeros((2, 1))  # context -> target
PI_1 = np.ones(2)
RATE = posner.DT_MS / posner.TAU_MS


def numpy_loop(stimulus: np.ndarray, prior: np.ndarray,
               prior_precision: float = posner.PRIOR_PRECISION) -> tuple[dict, dict, np.ndarray]:
    trials = len(prior)
    samples = trials * posner.TRIAL_STEPS // posner.RECORD_EVERY
    kept = {name: np.zeros((samples, size)) for name, size in
            (("x", 2), ("e_0", 2), ("pi_0", 2), ("mu_t", 2), ("e_1", 2), ("mu_c", 1),
             ("e_2", 1))}
    final_t, final_c = np.zeros((trials, 2)), np.zeros((trials, 1))
    reaction = np.full(trials, np.nan)
    sample = 0
    for trial in range(trials):
        mu_t, mu_c = np.zeros(2), np.zeros(1)
        answered = False
        for step in range(posner.TRIAL_STEPS):
            if not answered and step >= posner.ONSET_STEP:
                above = mu_t > posner.THRESHOLD
                if above.any():
                    answered = True
                    reaction[trial] = step * posner.DT_MS - posner.ONSET_STEP * posner.DT_MS
            x = stimulus[trial * posner.TRIAL_STEPS + step]
            pi_0 = np.exp(np.clip(C @ mu_c, -posner.CEILING, posner.CEILING))
            d_0 = x - W_1 @ mu_t
            e_0 = pi_0 * d_0
            e_1 = PI_1 * (mu_t - W_2 @ mu_c)
            e_2 = prior_precision * (mu_c - prior[trial])
            if step % posner.RECORD_EVERY == 0:
                for name, value in (("x", x), ("e_0", e_0), ("pi_0", pi_0), ("mu_t", mu_t),
                                    ("e_1", e_1), ("mu_c", mu_c), ("e_2", e_2)):
                    kept[name][sample] = value
                sample += 1
            drive_c = C.T @ (0.5 * (1.0 - pi_0 * d_0 * d_0))
            mu_t = mu_t + RATE * (W_1.T @ e_0 - e_1)
            mu_c = mu_c + RATE * (W_2.T @ e_1 - e_2 + drive_c)
        final_t[trial], final_c[trial] = mu_t, mu_c
    return kept, {"target": final_t, "context": final_c}, reaction


def traces(kept: dict, prior: np.ndarray) -> dict[str, np.ndarray]:
    energy, free = posner.free_energy(kept["x"], kept["mu_t"], kept["mu_c"][:, 0],
                                      np.repeat(prior, posner.TRIAL_STEPS // posner.RECORD_EVERY),
                                      kept["pi_0"])
    return {"levels/locations/input": kept["x"], "levels/locations/error": kept["e_0"],
            "levels/locations/precision": kept["pi_0"], "levels/target/belief": kept["mu_t"],
            "levels/target/error": kept["e_1"], "levels/context/belief": kept["mu_c"],
            "levels/context/error": kept["e_2"], "energy": energy, "free_energy": free}


def scalar_loop(stimulus, prior, c, w_1, w_2, pi_1, samples_out, free_out, final_t, final_c,
                reaction):
    """The same flows in scalar loops (compiled by Numba); F with its Laplace term per sample.

    ``samples_out`` columns: x (2), e_0 (2), pi_0 (2), mu_t (2), e_1 (2), mu_c, e_2."""
    n_0, n_1 = w_1.shape
    n_2 = w_2.shape[1]
    n = n_1 + n_2
    mu_t, mu_c = np.zeros(n_1), np.zeros(n_2)
    pi_0, d_0, e_0, e_1, e_2 = np.zeros(n_0), np.zeros(n_0), np.zeros(n_0), np.zeros(n_1), \
        np.zeros(n_2)
    v_0, hessian = np.zeros(n_0), np.zeros((n, n))
    sample = 0
    for trial in range(len(prior)):
        mu_t[:] = 0.0
        mu_c[:] = 0.0
        answered = False
        for step in range(3000):
            if not answered and step >= 1000:
                for i in range(n_1):
                    if mu_t[i] > 0.15:
                        answered = True
                if answered:
                    reaction[trial] = step * 0.1 - 100.0
            row = trial * 3000 + step
            for i in range(n_0):
                lam = 0.0
                for k in range(n_2):
                    lam += c[i, k] * mu_c[k]
                pi_0[i] = math.exp(min(max(lam, -20.0), 20.0))
                pred = 0.0
                for j in range(n_1):
                    pred += w_1[i, j] * mu_t[j]
                d_0[i] = stimulus[row, i] - pred
                e_0[i] = pi_0[i] * d_0[i]
                v_0[i] = 0.5 * (1.0 - pi_0[i] * d_0[i] * d_0[i])
            for j in range(n_1):
                pred = 0.0
                for k in range(n_2):
                    pred += w_2[j, k] * mu_c[k]
                e_1[j] = pi_1[j] * (mu_t[j] - pred)
            for k in range(n_2):
                e_2[k] = 4.0 * (mu_c[k] - prior[trial])
            if step % 10 == 0:
                energy = 0.0
                for i in range(n_0):
                    samples_out[sample, i] = stimulus[row, i]
                    samples_out[sample, 2 + i] = e_0[i]
                    samples_out[sample, 4 + i] = pi_0[i]
                    energy += e_0[i] * d_0[i] - math.log(pi_0[i])
                for j in range(n_1):
                    samples_out[sample, 6 + j] = mu_t[j]
                    samples_out[sample, 8 + j] = e_1[j]
                    energy += e_1[j] * e_1[j] / pi_1[j] - math.log(pi_1[j])
                for k in range(n_2):
                    samples_out[sample, 10 + k] = mu_c[k]
                    samples_out[sample, 11 + k] = e_2[k]
                    energy += e_2[k] * e_2[k] / 4.0 - math.log(4.0)
                energy = 0.5 * (energy + (n_0 + n_1 + n_2) * 1.8378770664093453)
                # H = [[W_1' Pi_0 W_1 + Pi_1, -W_2' Pi_1 ...]]: the Hessian over (mu_t, mu_c)
                hessian[:, :] = 0.0
                for a in range(n_1):
                    for b in range(n_1):
                        for i in range(n_0):
                            hessian[a, b] += w_1[i, a] * pi_0[i] * w_1[i, b]
                    hessian[a, a] += pi_1[a]
                    for k in range(n_2):
                        hessian[a, n_1 + k] = -pi_1[a] * w_2[a, k]
                        hessian[n_1 + k, a] = hessian[a, n_1 + k]
                for k in range(n_2):
                    for m in range(n_2):
                        for j in range(n_1):
                            hessian[n_1 + k, n_1 + m] += w_2[j, k] * pi_1[j] * w_2[j, m]
                    hessian[n_1 + k, n_1 + k] += 4.0
                log_det = 0.0  # Cholesky, in place
                for a in range(n):
                    for b in range(a):
                        hessian[a, a] -= hessian[a, b] * hessian[a, b]
                    hessian[a, a] = math.sqrt(hessian[a, a])
                    log_det += 2.0 * math.log(hessian[a, a])
                    for r in range(a + 1, n):
                        for b in range(a):
                            hessian[r, a] -= hessian[r, b] * hessian[a, b]
                        hessian[r, a] /= hessian[a, a]
                free_out[sample, 0] = energy
                free_out[sample, 1] = energy + 0.5 * log_det - 0.5 * n * 1.8378770664093453
                sample += 1
            drive = 0.0
            for i in range(n_0):
                drive += c[i, 0] * v_0[i]
            for j in range(n_1):
                up = 0.0
                for i in range(n_0):
                    up += w_1[i, j] * e_0[i]
                mu_t[j] = mu_t[j] + 0.002 * (up - e_1[j])
            for k in range(n_2):
                up = 0.0
                for j in range(n_1):
                    up += w_2[j, k] * e_1[j]
                mu_c[k] = mu_c[k] + 0.002 * (up - e_2[k] + drive)
        final_t[trial, :] = mu_t
        final_c[trial, :] = mu_c


def run_scalar(loop, protocol: posner.Protocol) -> tuple[dict, dict, np.ndarray]:
    samples = protocol.steps // posner.RECORD_EVERY
    kept, free = np.zeros((samples, 12)), np.zeros((samples, 2))
    final_t, final_c = np.zeros((protocol.trials, 2)), np.zeros((protocol.trials, 1))
    reaction = np.full(protocol.trials, np.nan)
    loop(protocol.stimulus, protocol.prior, C, W_1, W_2, PI_1, kept, free, final_t, final_c,
         reaction)
    found = {"levels/locations/input": kept[:, 0:2], "levels/locations/error": kept[:, 2:4],
             "levels/locations/precision": kept[:, 4:6], "levels/target/belief": kept[:, 6:8],
             "levels/target/error": kept[:, 8:10], "levels/context/belief": kept[:, 10:11],
             "levels/context/error": kept[:, 11:12], "energy": free[:, 0],
             "free_energy": free[:, 1]}
    return found, {"target": final_t, "context": final_c}, reaction


def main() -> None:
    result = posner.reference()
    protocol = posner.protocol(result)
    steps = protocol.steps
    start = time.perf_counter()
    kept, final, reaction = numpy_loop(protocol.stimulus, protocol.prior)
    loop_s = time.perf_counter() - start
    start = time.perf_counter()
    found = traces(kept, protocol.prior)
    free_s = time.perf_counter() - start
    print(f"NumPy loop: {loop_s:.2f} s ({1e6 * loop_s / steps:.1f} us a step); F of "
          f"{len(kept['x'])} samples after the loop, vectorised: {1e3 * free_s:.1f} ms")
    posner.compare("numpy", found, result, final, reaction)
    try:
        import numba
    except ImportError:
        print("Numba: not installed (pip install numba)")
        return
    jitted = numba.njit(cache=False, fastmath=False)(scalar_loop)
    start = time.perf_counter()
    small = posner.Protocol(protocol.seed, protocol.conditions[:1], protocol.prior[:1],
                            protocol.side[:1], protocol.stimulus[:posner.TRIAL_STEPS])
    run_scalar(jitted, small)
    jit_s = time.perf_counter() - start
    times = []
    for _ in range(5):
        start = time.perf_counter()
        found, final, reaction = run_scalar(jitted, protocol)
        times.append(time.perf_counter() - start)
    best = min(times)
    print(f"Numba {numba.__version__} loop (F and Laplace term at every sample): JIT "
          f"{jit_s:.2f} s, run best of 5 {1e3 * best:.1f} ms ({1e6 * best / steps:.2f} us a step)")
    posner.compare("numba", found, result, final, reaction)
    start = time.perf_counter()
    run_scalar(scalar_loop, posner.Protocol(protocol.seed, protocol.conditions[:2],
                                            protocol.prior[:2], protocol.side[:2],
                                            protocol.stimulus[:2 * posner.TRIAL_STEPS]))
    plain = (time.perf_counter() - start) / (2 * posner.TRIAL_STEPS)
    print(f"(the same scalar loop in plain Python, 2 trials: {1e6 * plain:.1f} us a step)")


if __name__ == "__main__":
    main()
