"""The cases of ``pcsim bench``: what runs, at which size, against which target.

A simulation case is a scenario table (written to a TOML file and run through the public
engine) with its reference: ``hierarchy_reference`` takes the numbers from the parsed scenario
for ``sim.bench.reference``, and both final states are compared. Stimuli change every step (a
ramp), so a missed or extra step would show in the difference. A command case is a report-side
``pcsim`` command, timed in fresh processes against a Python that only imports what it needs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from sim.bench import reference
from sim.io.result_file import read_matrix

DT_MS = 0.1
TOLERANCE = 1e-9
REPORT_SCENARIO = "perception/hierarchy"  # the result the command cases read


def ramp_input(size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(0.0, 1.0, size), rng.normal(0.0, 1.0, size)


def hierarchy_table(name: str, sizes: list[int], steps: int, *, learning: bool = False,
                    errors: str = "relaxing", shapes: list | None = None,
                    weights: dict | None = None, coupling: str = "auto",
                    float_type: str | None = None, inferred: bool = False) -> dict:
    """A continuous hierarchy with tanh before random weights, driven by a ramp."""
    rng = np.random.default_rng(sum(sizes))
    levels: list[dict] = []
    for index, size in enumerate(sizes):
        level: dict[str, Any] = {"name": "input" if index == 0 else f"level{index}",
                                 "size": size}
        if shapes is not None:
            level["shape"] = list(shapes[index])
        if index < len(sizes) - 1:
            level["precision"] = rng.uniform(0.5, 2.0, size)
        if index > 0:
            level["weights"] = weights or {"kind": "random", "scale": 1.0}
            level["nonlinearity"] = "tanh"
        levels.append(level)
    model: dict[str, Any] = {"errors": errors, "tau_belief_ms": 5.0, "tau_error_ms": 1.0,
                             "coupling": coupling, "levels": levels,
                             "prior": {"mean": rng.normal(0.0, 0.5, sizes[-1]).tolist()}}
    if learning:
        model["learning"] = {"tau_weights_ms": 200.0}
    if inferred:  # precision units on every error channel below the top
        model["precision_inference"] = {"tau_ms": 50.0, "prior_precision": 1.0}
    start, stop = ramp_input(sizes[0], len(sizes))
    duration = round(steps * DT_MS, 9)
    table = {
        "name": name.replace(" ", "_").replace("=", "").replace(",", ""),
        "seed": 5,
        "dt_ms": DT_MS,
        "model": model,
        "protocol": {"trials": [{"duration_ms": duration,
                                 "stimulus": {"kind": "ramp", "start": start, "stop": stop}}]},
        "record": {"every_ms": duration, "variables": []},
    }
    if float_type:
        table["float"] = float_type
    return table


def hierarchy_reference(scenario) -> reference.Hierarchy:
    """The reference's copy of a parsed hierarchical scenario's numbers."""
    model = scenario.model
    maps = [level.generative for level in model.belief_levels]
    names = {gmap.nonlinearity.name for gmap in maps}
    sites = {gmap.site for gmap in maps}
    if len(names) != 1 or len(sites) != 1:
        raise ValueError("the benchmark reference needs one nonlinearity and site for all levels")
    trial = scenario.trials[0]
    stimulus = trial.settings.stimulus
    ramp = stimulus.interpolate and list(stimulus.times_ms) == [0.0, trial.duration_ms]
    if len(scenario.trials) != 1 or np.any(stimulus.noise_std) or not (
            ramp or stimulus.is_constant):
        raise ValueError("the benchmark reference needs one trial with a constant or ramp input")
    return reference.Hierarchy(
        weights=[gmap.weights.copy() for gmap in maps],
        precisions=[np.array(level.precision, dtype=float) for level in model.levels],
        prior_mean=np.array(model.prior_mean, dtype=float),
        x=stimulus.values[0].copy(),
        x_stop=stimulus.values[-1].copy(),
        duration_ms=trial.duration_ms,
        nonlinearity=names.pop(),
        site=sites.pop(),
        errors=model.errors,
        dt_ms=scenario.dt_ms,
        tau_belief_ms=model.tau_belief_ms,
        tau_error_ms=model.tau_error_ms,
        tau_weights_ms=getattr(model.mechanisms.get("weight_plasticity"), "tau_ms", None),
        **inferred_precision(model.mechanisms.get("inferred_precision")),
    )


def inferred_precision(settings) -> dict:
    """The reference's fields for inferred precision (every level but the top)."""
    if settings is None:
        return {}
    if settings.levels is not None:
        raise ValueError("the benchmark reference infers precision on every level but the top")
    return {"tau_log_precision_ms": settings.tau_ms, "log_precision_mean": settings.prior_mean,
            "log_precision_prior": settings.prior_precision}


def hierarchy_states(file, scenario, learning: bool) -> dict[str, np.ndarray]:
    states = {}
    for level in scenario.model.belief_levels:
        states[f"belief/{level.name}"] = np.asarray(file[f"trials/final_belief/{level.name}"][-1])
        if learning:
            states[f"weights/{level.name}"] = read_matrix(file[f"levels/{level.name}"],
                                                          "weights_final")
    return states


def reference_states(scenario, steps: int, learning: bool) -> Callable[[], dict]:
    model = hierarchy_reference(scenario)

    def run() -> dict[str, np.ndarray]:
        beliefs, weights = reference.run_hierarchy(model, steps)
        states = {f"belief/{level.name}": mu
                  for level, mu in zip(scenario.model.belief_levels, beliefs, strict=True)}
        if learning:
            states.update({f"weights/{level.name}": w
                           for level, w in zip(scenario.model.belief_levels, weights,
                                               strict=True)})
        return states

    return run


@dataclass
class Case:
    name: str
    sizes: list[int]  # units per level (discrete: [causes])
    label: str  # the sizes as the table shows them
    steps: int  # full suite
    quick_steps: int | None  # None: not in --quick
    target: float | None
    table: Callable[[int], dict]
    learning: bool = False
    available: str = ""  # why the case cannot run, if it cannot
    cold: bool = False  # measure a cold start-up in --quick too
    family: Any = None  # reference and final states; None: the continuous hierarchy
    tolerance: float = TOLERANCE  # the largest max|diff| that counts as the same work
    whole_run: Any = None  # recorded cases (``sim.bench.recorded``): the reference's whole run


def local_shapes() -> list[tuple[int, int]]:
    return [(128, 128), (64, 64), (32, 32)]


def cases() -> list[Case]:
    dense = [
        ("dense small", [64, 16, 4], 20000, 10000, 3.0),
        ("dense medium", [1000, 500, 100], 3000, 1500, 1.25),
        ("dense large", [4000, 2000, 500], 150, None, 1.25),
    ]
    out = [
        Case(name, sizes, "-".join(map(str, sizes)), steps, quick, target,
             lambda n, name=name, sizes=sizes: hierarchy_table(name, sizes, n),
             cold=name == "dense small")
        for name, sizes, steps, quick, target in dense
    ]
    out += [
        Case("dense medium + plasticity", [1000, 500, 100], "1000-500-100", 3000, 1500, 1.25,
             lambda n: hierarchy_table("dense medium plastic", [1000, 500, 100], n,
                                       learning=True), learning=True),
        Case("dense medium + inferred", [1000, 500, 100], "1000-500-100", 3000, 1500,
             1.3, lambda n: hierarchy_table("dense medium inferred", [1000, 500, 100], n,
                                            inferred=True)),
        Case("dense large + plasticity", [4000, 2000, 500], "4000-2000-500", 150, None, 1.25,
             lambda n: hierarchy_table("dense large plastic", [4000, 2000, 500], n,
                                       learning=True), learning=True),
        Case("sparse local 5x5", [128 * 128, 64 * 64, 32 * 32], "128x128-64x64-32x32",
             2000, 1000, 1.5,
             lambda n: hierarchy_table(
                 "sparse local", [128 * 128, 64 * 64, 32 * 32], n, shapes=local_shapes(),
                 weights={"kind": "local", "field": 5, "scale": 1.0})),
    ]
    from sim.bench import bars, learning, recorded  # learning over trials; as users run

    return (out + discrete_cases() + learning.cases(Case) + bars.cases(Case)
            + recorded.cases())


def discrete_cases() -> list[Case]:
    try:
        from sim.bench import discrete
    except ImportError as err:
        why = f"not available: {err}"
        return [Case(f"discrete K={k}", [k], f"K={k}", 0, 0, target, lambda n: {},
                     available=why)
                for k, target in ((6, None), (2000, 1.5))]
    return discrete.cases(Case)


@dataclass(frozen=True)
class CommandCase:
    """A ``pcsim`` command on a finished result against a Python that imports ``baseline``."""

    name: str  # as the table shows it, e.g. "pcsim plot"
    arguments: tuple[str, ...]  # after ``pcsim``; "{result}" stands for the result file
    baseline: str  # the modules the baseline imports, e.g. "h5py, numpy"
    target_s: float  # the largest difference to the baseline that meets the target


def command_cases() -> list[CommandCase]:
    """The report side: drawing and summarising a result should cost little beyond the
    imports it cannot avoid (the figure is written beside the result)."""
    return [
        CommandCase("pcsim plot", ("plot", "{result}"), "h5py, numpy, matplotlib.pyplot", 0.5),
        CommandCase("pcsim show", ("show", "{result}"), "h5py, numpy", 0.03),
    ]
