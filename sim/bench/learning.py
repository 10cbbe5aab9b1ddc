"""The learning row of ``pcsim bench``: weights and precisions learning every step, over trials.

A dense 1000-500 hierarchy (tanh before random weights, relaxing errors) runs ``TRIALS``
trials, each driven by the same ramp and starting from reset beliefs (errors at 0), while the
weights (``tau_weights_ms``) and every level's precision (``tau_precision_ms``) learn at every
step and carry over from trial to trial. The reference is the same learning loop in NumPy:
per step the predictions, the errors eps <- eps + dt/tau_e (Pi e - eps) with the precision
before the step, Pi <- Pi + dt/tau_Pi (1/Pi - e^2)/2, the Hebbian update
W <- W + dt/tau_W eps_below f(mu)' (BLAS ger, in place) and the beliefs' step
(``circuits.plasticity``, ``circuits.precision_learned``), in the order pcsim's schedule runs
them. Trials are 1000 steps long: each trial end costs pcsim Brian2's set-up of a run and F
with its Laplace term (W' Pi W anew, as W and Pi learned), ~0.1 s here, which longer trials
amortise (at 200-step trials the ratio was 1.7), so the case runs in the full suite only
(50,000 steps), not in ``--quick``. Final weights,
precisions and beliefs must agree to ``sim.bench.cases.TOLERANCE`` after the 50 trials (later,
rounding differences grow through the symmetry breaking of learning); the speed ratio is that
of the whole run, trial boundaries included.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.linalg import blas

from sim.bench.reference import NONLINEARITIES

TRIALS = 50
SIZES = [1000, 500]
TAU_WEIGHTS_MS = 200.0
TAU_PRECISION_MS = 200.0


def learning_table(name: str, steps: int, sizes: list[int] = SIZES,
                   trials: int = TRIALS) -> dict:
    """``steps`` in all, in ``trials`` trials that reset the beliefs."""
    from sim.bench.cases import hierarchy_table

    table = hierarchy_table(name, sizes, steps // trials, learning=True)
    table["model"]["learning"] = {"tau_weights_ms": TAU_WEIGHTS_MS,
                                  "tau_precision_ms": TAU_PRECISION_MS}
    trial = table["protocol"]["trials"][0]
    table["protocol"] = {"reset": "beliefs", "shuffle": False,
                         "conditions": [{"name": "learn", "count": trials, **trial}]}
    return table


@dataclass
class LearningLoop:
    """The numbers of the run: W_l, Pi_l, m, the ramp and the time constants."""

    weights: list[np.ndarray]
    precisions: list[np.ndarray]
    prior_mean: np.ndarray
    start: np.ndarray
    stop: np.ndarray
    steps_per_trial: int
    trials: int
    nonlinearity: str
    dt_ms: float
    tau_belief_ms: float
    tau_error_ms: float
    tau_weights_ms: float
    tau_precision_ms: float


def run_learning(loop: LearningLoop) -> tuple[list[np.ndarray], list[np.ndarray],
                                             list[np.ndarray]]:
    """Beliefs mu_1..mu_L, weights W_1..W_L and precisions Pi_0..Pi_L after every trial."""
    f, df = NONLINEARITIES[loop.nonlinearity]
    W = [np.array(w, dtype=float) for w in loop.weights]
    Pi = [np.array(p, dtype=float) for p in loop.precisions]
    m = np.asarray(loop.prior_mean, dtype=float)
    L = len(W)
    initial: list[np.ndarray] = [np.zeros(0)] * (L + 1)  # top-down from the prior, W at t = 0
    above = m
    for level in range(L, 0, -1):
        initial[level] = np.array(np.broadcast_to(above, W[level - 1].shape[1]), dtype=float)
        above = W[level - 1] @ f(initial[level])
    relax = loop.dt_ms / loop.tau_error_ms
    move = loop.dt_ms / loop.tau_belief_ms
    learn = loop.dt_ms / loop.tau_weights_ms
    learn_precision = loop.dt_ms / loop.tau_precision_ms
    ramp = loop.stop - loop.start
    duration = loop.steps_per_trial * loop.dt_ms
    mu: list[np.ndarray] = []
    for _ in range(loop.trials):
        mu = [loop.start.copy()] + [state.copy() for state in initial[1:]]
        eps = [np.zeros(len(p)) for p in Pi]
        for step in range(loop.steps_per_trial):
            mu[0] = loop.start + ramp * (step * loop.dt_ms / duration)
            predictions = [W[i] @ f(mu[i + 1]) for i in range(L)] + [m]
            errors = [mu[level] - predictions[level] for level in range(L + 1)]
            for level in range(L + 1):
                eps[level] += relax * (Pi[level] * errors[level] - eps[level])
                Pi[level] += learn_precision * (1 / Pi[level] - errors[level] ** 2) / 2
            for level in range(1, L + 1):
                w, below = W[level - 1], eps[level - 1]
                # in place with BLAS ger, as a careful NumPy user would (np.outer and += make
                # and add a 1000 x 500 temporary: twice the time of the whole step)
                blas.dger(learn, f(mu[level]), below, a=w.T, overwrite_a=True)
                mu[level] += move * (df(mu[level]) * (w.T @ below) - eps[level])
    return mu[1:], W, Pi


class LearningFamily:
    """``sim.bench.measure``'s hooks: the reference's final states and pcsim's."""

    @staticmethod
    def reference(scenario, steps: int) -> Callable[[], dict]:
        model, trial = scenario.model, scenario.trials[0]
        stimulus = trial.settings.stimulus
        maps = [level.generative for level in model.belief_levels]
        learning = model.mechanisms
        loop = LearningLoop(
            [gmap.weights.copy() for gmap in maps],
            [np.array(level.precision, dtype=float) for level in model.levels],
            np.array(model.prior_mean, dtype=float), stimulus.values[0].copy(),
            stimulus.values[-1].copy(), scenario.steps(trial.duration_ms), len(scenario.trials),
            maps[0].nonlinearity.name, scenario.dt_ms, model.tau_belief_ms, model.tau_error_ms,
            learning["weight_plasticity"].tau_ms, learning["learned_precision"])

        def run() -> dict[str, np.ndarray]:
            beliefs, weights, precisions = run_learning(loop)
            levels = scenario.model.levels
            return {**{f"belief/{level.name}": mu
                       for level, mu in zip(levels[1:], beliefs, strict=True)},
                    **{f"weights/{level.name}": w
                       for level, w in zip(levels[1:], weights, strict=True)},
                    **{f"precision/{level.name}": p
                       for level, p in zip(levels, precisions, strict=True)}}

        return run

    @staticmethod
    def states(file, scenario) -> dict[str, np.ndarray]:
        levels = scenario.model.levels
        return {**{f"belief/{level.name}": np.asarray(file[f"trials/final_belief/{level.name}"][-1])
                   for level in levels[1:]},
                **{f"weights/{level.name}": np.asarray(file[f"levels/{level.name}/weights_final"])
                   for level in levels[1:]},
                **{f"precision/{level.name}":
                   np.asarray(file[f"trials/final_precision/{level.name}"][-1])
                   for level in levels}}


def cases(case_type) -> list:
    return [case_type("dense medium learning", SIZES, "1000-500 x50 trials", 50000, None, 1.3,
                      lambda n: learning_table("dense medium learning", n),
                      family=LearningFamily())]
