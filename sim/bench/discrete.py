"""The discrete rows of ``pcsim bench``: K categorical causes, evidence arriving over time."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from sim.bench import reference

DT_MS = 0.1
OUTCOMES = 8
EVERY_MS = 5.0  # one observation every 5 ms keeps the beliefs moving


def discrete_table(name: str, causes: int, steps: int) -> dict:
    duration = round(steps * DT_MS, 9)
    rng = np.random.default_rng(causes)
    times = np.arange(0.0, duration, EVERY_MS)
    return {
        "name": name.replace(" ", "_").replace("=", ""),
        "seed": 9,
        "dt_ms": DT_MS,
        "model": {"kind": "discrete", "causes": causes, "tau_belief_ms": 10.0,
                  "modalities": [{"name": "sense", "outcomes": OUTCOMES, "precision": 0.5,
                                  "likelihood": {"kind": "random", "concentration": 1.0}}]},
        "protocol": {"trials": [{
            "duration_ms": duration,
            "observations": [{"time_ms": float(t), "sense": int(o)}
                             for t, o in zip(times, rng.integers(0, OUTCOMES, len(times)),
                                             strict=True)],
        }]},
        "record": {"every_ms": duration, "variables": []},
    }


def reference_observations(scenario, steps: int) -> list[tuple]:
    """(step, A, gamma, outcome) of the first trial's observations, for a NumPy reference."""
    model, trial = scenario.model, scenario.trials[0]
    return [(min(round(obs.time_ms / scenario.dt_ms), steps - 1),
             model.modalities[obs.modality].likelihood.copy(),
             float(trial.settings.precision[obs.modality]), int(obs.category))
            for obs in trial.settings.observations]


class DiscreteFamily:
    """How the suite runs a discrete case: the reference's numbers and pcsim's final state."""

    @staticmethod
    def reference(scenario, steps: int) -> Callable[[], dict]:
        model, observations = scenario.model, reference_observations(scenario, steps)
        categorical = reference.Categorical(model.prior.copy(), observations, scenario.dt_ms,
                                            model.tau_belief_ms)
        return lambda: {"belief": reference.run_categorical(categorical, steps)}

    @staticmethod
    def states(file, scenario) -> dict[str, np.ndarray]:
        return {"belief": np.asarray(file["trials/final_belief"][-1])}


def factors_table(name: str, sizes: tuple[int, ...], steps: int) -> dict:
    """Several factors (a mean-field belief), two modalities over the joint cause."""
    table = discrete_table(name, int(np.prod(sizes)), steps)
    model = table["model"]
    del model["causes"]
    model["factors"] = [{"name": f"factor{i}", "causes": size} for i, size in enumerate(sizes)]
    model["modalities"].append({**model["modalities"][0], "name": "other", "precision": 1.0})
    rng = np.random.default_rng(sum(sizes))
    for index, observation in enumerate(table["protocol"]["trials"][0]["observations"]):
        if index % 2:
            observation["other"] = int(rng.integers(0, OUTCOMES))
    return table


class FactorsFamily:
    """A discrete case with several factors: the mean-field reference and final beliefs."""

    @staticmethod
    def reference(scenario, steps: int) -> Callable[[], dict]:
        model, observations = scenario.model, reference_observations(scenario, steps)
        mean_field = reference.MeanField([f.prior.copy() for f in model.factors],
                                         observations, scenario.dt_ms, model.tau_belief_ms)
        names = [f.name for f in model.factors]
        return lambda: dict(zip(names, reference.run_mean_field(mean_field, steps),
                                strict=True))

    @staticmethod
    def states(file, scenario) -> dict[str, np.ndarray]:
        return {f.name: np.asarray(file[f"trials/final_belief/{f.name}"][-1])
                for f in scenario.model.factors}


def cases(case_type) -> list:
    family = DiscreteFamily()
    single = [
        case_type(f"discrete K={k}", [k], f"K={k}", steps, quick, target,
                  lambda n, k=k: discrete_table(f"discrete K{k}", k, n), family=family)
        for k, steps, quick, target in ((6, 20000, 10000, None), (2000, 10000, 5000, 1.5))
    ]
    sizes = (200, 50)
    return [*single, case_type("discrete 2 factors", list(sizes), "200x50", 10000, 5000, 1.5,
                               lambda n: factors_table("discrete 2 factors", sizes, n),
                               family=FactorsFamily())]
