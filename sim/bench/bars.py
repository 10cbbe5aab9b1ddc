"""The bars row of ``pcsim bench``: many short learning trials (``learning/bars``).

The bundled scenario as users run it (its own recording), with ``steps / 50`` trials of 50
steps: a 64-24 network whose weights learn (Hebbian, kept non-negative) under a sparse
(log-cosh) prior on the causes, each trial a new bars image. A network this small sits on
Brian2's cost per step, and each trial adds a ``Network.run``'s set-up, so the ratio measures
pcsim's cost per trial; there is no target (issue 9). The reference is the same learning in
NumPy, per step in the engine's order (``circuits.schedule``): instantaneous errors
eps = Pi (x - W mu); W += dt/tau_W eps mu' (BLAS ger, in place), then W = max(W, 0);
mu += dt/tau_mu (W' eps - strength tanh(mu / width)); each trial's image drawn from the
stream ``[seed, 6, trial index]`` (rows then columns, each bar present with its probability,
a pixel on where any present bar covers it). Final weights and beliefs must agree.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable

import numpy as np
from scipy.linalg import blas

STEPS_PER_TRIAL = 50
SCENARIO = "learning/bars"


def bars_table(name: str, steps: int) -> dict:
    """The bundled scenario with ``steps // STEPS_PER_TRIAL`` trials."""
    from sim.scenario import bundled_scenarios

    table = tomllib.loads(bundled_scenarios()[SCENARIO].read_text())
    table["name"] = "".join(c if c.isalnum() else "_" for c in name)
    table["protocol"]["conditions"][0]["count"] = max(1, steps // STEPS_PER_TRIAL)
    return table


def draw_bars(rng: np.random.Generator, size: int, probability: float) -> np.ndarray:
    present = rng.random(2 * size) < probability
    return (present[:size, np.newaxis] | present[np.newaxis, size:]).astype(float).ravel()


class BarsFamily:
    """``sim.bench.measure``'s hooks: the reference's final states and pcsim's."""

    @staticmethod
    def reference(scenario, steps: int) -> Callable[[], dict]:
        table = tomllib.loads(scenario.source_text)
        model, condition = table["model"], table["protocol"]["conditions"][0]
        stimulus, prior = condition["stimulus"], model["sparse_prior"]
        weights0 = np.array(scenario.model.belief_levels[0].generative.weights, dtype=float)
        precision = float(model["levels"][0]["precision"])
        dt = float(table["dt_ms"])
        learn, move = dt / model["learning"]["tau_weights_ms"], dt / model["tau_belief_ms"]
        trial_steps = round(condition["duration_ms"] / dt)
        order = [trial.index for trial in scenario.trials]

        def run() -> dict[str, np.ndarray]:
            weights = np.array(weights0, order="C")
            mu = np.zeros(weights.shape[1])
            for index in order:
                x = draw_bars(np.random.default_rng([table["seed"], 6, index]),
                              stimulus["size"], stimulus["probability"])
                mu = np.zeros(weights.shape[1])
                for _ in range(trial_steps):
                    eps = precision * (x - weights @ mu)
                    blas.dger(learn, mu, eps, a=weights.T, overwrite_a=True)
                    np.maximum(weights, 0.0, out=weights)
                    mu += move * (weights.T @ eps
                                  - prior["strength"] * np.tanh(mu / prior["width"]))
            return {"weights/bars": weights, "belief/bars": mu}

        return run

    @staticmethod
    def states(file, scenario) -> dict[str, np.ndarray]:
        return {"weights/bars": np.asarray(file["levels/bars/weights_final"]),
                "belief/bars": np.asarray(file["trials/final_belief/bars"][-1])}


def cases(case_type) -> list:
    return [case_type("bars (many short trials)", [64, 24], "64-24, 50-step trials", 30000,
                      5000, None, lambda n: bars_table("bars (many short trials)", n),
                      family=BarsFamily())]
