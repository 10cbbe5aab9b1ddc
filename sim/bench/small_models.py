r"""The "small models" row of ``pcsim bench``: small networks run for many steps, as users run
them, against one compiled loop over the whole protocol (``sim.bench.small_reference``).

Two models: ``attention/posner`` as bundled (5 units, top-down precision, 60 trials of 300 ms,
reaction time, recording every 1 ms) and a 64-16-4 hierarchy built here (``hierarchy_table``:
tanh before random weights, relaxing errors, the input's precision set top-down by the top
level, the middle level's precision stepping at mid-trial, 8 shuffled trials of 100 ms from
four input ramps, beliefs reset at each trial, the default recording: every variable at every
step). Both record F with its Laplace term at every sample (``laplace = "auto"`` below 256
beliefs) and at every trial's end. ``--quick``: 12 of Posner's trials (2 a condition), 4 of
the hierarchy's, pcsim once after the warm run.

pcsim runs each scenario file through ``sim.run`` (file to closed result file) on each
``[numerics] device``, once to warm Brian2's cache and the standalone build directory, then
best of ``PCSIM_REPEATS``; a device that refuses the scenario is shown with its one-line
refusal. The reference takes the numbers from the parsed scenario (``from_scenario``: weights,
precisions and their schedule, the trials in running order, each trial's input and noise from
pcsim's documented stream ``[seed, 2, trial index]``) and runs the Numba-compiled loop: time =
those arrays plus the loop, best of ``REFERENCE_REPEATS``, its JIT time (a one-trial run first)
apart. Agreement: every trial's final beliefs of every level, from each device's result file,
within ``TOLERANCE`` of the reference's (``max_abs_diff``; the row fails otherwise); F at the
samples and at the trials' ends, and the reaction times, are compared and shown too.
Without Numba the row says so and times pcsim alone.
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sim.bench import small_reference
from sim.bench.cases import DT_MS
from sim.bench.cases import hierarchy_table as dense_table
from sim.bench.records import SmallModelRecord, SmallModelsRecord
from sim.bench.small_reference import SmallModel

POSNER = "attention/posner"
SIZES = [64, 16, 4]
DEVICES = ("runtime", "standalone")
PCSIM_REPEATS = {False: 3, True: 1}  # full suite, --quick
REFERENCE_REPEATS = 5
TOLERANCE = 1e-9
HIERARCHY_RATIO = 3.0  # the targets: pcsim / reference for the hierarchy,
POSNER_US_PER_STEP = 5.0  # and pcsim's us a step for Posner's model


@dataclass
class SmallCase:
    name: str
    label: str
    scenario: str | Path  # a bundled name or a file
    overrides: dict[str, Any] = field(default_factory=dict)
    target_ratio: float | None = None
    target_us_per_step: float | None = None


def hierarchy_table(trials: int = 8, trial_ms: float = 100.0) -> dict:
    """64-16-4 tanh with top-down precision on the input and a precision schedule on the
    middle level (module doc); ``trials`` a multiple of 4."""
    table = dense_table("small hierarchy", SIZES, round(trial_ms / DT_MS))
    rng = np.random.default_rng(23)
    table["model"]["attention"] = {"context": "level2", "target": "input",
                                   "mapping": rng.normal(0.0, 0.1, (SIZES[0], SIZES[2])).tolist()}
    middle = np.asarray(table["model"]["levels"][1]["precision"], dtype=float)
    conditions = []
    for index in range(4):
        conditions.append({
            "name": f"ramp{index}", "count": trials // 4, "duration_ms": trial_ms,
            "stimulus": {"kind": "ramp", "start": rng.normal(0.0, 1.0, SIZES[0]).tolist(),
                         "stop": rng.normal(0.0, 1.0, SIZES[0]).tolist()},
            "precision": {"level1": {"times_ms": [0.0, round(trial_ms / 2, 9)],
                                     "values": [middle.tolist(),
                                                (middle * (0.5 + index)).tolist()]}}})
    table["protocol"] = {"reset": "beliefs", "conditions": conditions}
    del table["record"]  # the default: every variable at every step
    return table


def cases(workdir: Path, short: bool = False, quick: bool = False) -> list[SmallCase]:
    """The row's two models; ``quick``: 2 trials of each of Posner's conditions (of 300 ms) and
    4 of the hierarchy's; ``short``: a few trials of a few steps (the tests)."""
    from sim.scenario_writer import write_scenario

    posner: dict[str, Any] = {}
    for index in range(6) if short or quick else ():
        posner[f"protocol.conditions.{index}.count"] = 1 if short else 2
        if short:  # 20 ms after the target's onset
            posner[f"protocol.conditions.{index}.duration_ms"] = 120.0
    table = hierarchy_table(4, 2.0) if short else hierarchy_table(4 if quick else 8)
    path = write_scenario(workdir / "small_hierarchy.toml", table)
    return [SmallCase(POSNER, "5 units, top-down precision, RT", POSNER, posner,
                      target_us_per_step=POSNER_US_PER_STEP),
            SmallCase("hierarchy 64-16-4", "tanh, top-down precision, schedule", path,
                      target_ratio=HIERARCHY_RATIO)]


# the reference's numbers -------------------------------------------------------------------------

def from_scenario(scenario: Any) -> SmallModel:
    """The reference's copy of a parsed hierarchical scenario's numbers and protocol (trials in
    running order, inputs with their noise); ValueError for what the loop does not cover."""
    model, dt = scenario.model, scenario.dt_ms
    maps = [level.generative for level in model.belief_levels]
    names = {gmap.nonlinearity.name for gmap in maps}
    if len(names) != 1 or {gmap.site for gmap in maps} != {"before"}:
        raise ValueError("the small-model reference needs g = W f(mu), one f for all levels")
    known = {"topdown_precision"}
    if set(model.mechanisms) - known:
        raise ValueError(f"the small-model reference covers {', '.join(known)} only")
    sizes = np.array([level.size for level in model.levels], dtype=np.int64)
    levels = {level.name: index for index, level in enumerate(model.levels)}
    weights = np.concatenate([np.asarray(gmap.weights, dtype=float).ravel() for gmap in maps])
    beliefs = [np.zeros(0)] * len(sizes)  # each level's start: given, else the prediction
    above = np.broadcast_to(np.asarray(model.prior_mean, dtype=float), sizes[-1])
    for index in range(len(sizes) - 1, 0, -1):
        given = model.levels[index].initial_belief
        beliefs[index] = np.array(np.broadcast_to(above if given is None else given,
                                                  sizes[index]), dtype=float)
        above = maps[index - 1].weights @ f_numpy(names, beliefs[index])
    beliefs[0] = np.zeros(sizes[0])
    trials = scenario.trials
    steps = np.array([scenario.steps(trial.duration_ms) for trial in trials], dtype=np.int64)
    starts = [sorted({_step(t, dt) for t in trial.settings.change_times_ms()}) for trial in trials]
    width = max(len(s) for s in starts)
    segment_start = np.full((len(trials), width), -1, dtype=np.int64)
    segment_precision = np.zeros((len(trials), width, int(sizes.sum())))
    for row, (trial, begins) in enumerate(zip(trials, starts, strict=True)):
        for k, step in enumerate(begins):
            segment_start[row, k] = step
            in_force = model.in_force(trial.settings, step * dt).precisions
            segment_precision[row, k] = np.concatenate([np.broadcast_to(p, n) for p, n in
                                                        zip(in_force, sizes, strict=True)])
    found = SmallModel(
        sizes=sizes, weights=weights, nonlinearity=names.pop(),
        relaxing=model.errors == "relaxing", rate_error=dt / model.tau_error_ms,
        rate_belief=dt / model.tau_belief_ms, initial=np.concatenate(beliefs),
        trial_steps=steps, reset=np.array([trial.reset for trial in trials]),
        prior_mean=np.array([np.broadcast_to(model.in_force(trial.settings).prior_mean,
                                             sizes[-1]) for trial in trials], dtype=float),
        segment_start=segment_start, segment_precision=segment_precision,
        stimulus=stimulus(scenario, steps), every=scenario.record.every_steps, dt_ms=dt)
    attention = model.mechanisms.get("topdown_precision")
    if attention is not None:
        found.attention = (levels[attention.target], levels[attention.context])
        found.mapping = np.asarray(attention.mapping, dtype=float)
    reaction = scenario.readouts.get("decision")  # the reference's is the threshold rule
    if reaction is not None and reaction.rule == "threshold" and reaction.level is not None:
        found.reaction_level, found.threshold = levels[reaction.level], reaction.threshold
        found.onset_step, found.onset_ms = _step(reaction.onset_ms, dt), reaction.onset_ms
    return found


def f_numpy(names: set[str], mu: np.ndarray) -> np.ndarray:
    return np.tanh(mu) if "tanh" in names else mu


def _step(time_ms: float, dt_ms: float) -> int:
    step = round(time_ms / dt_ms)
    if abs(step * dt_ms - time_ms) > 1e-9:
        raise ValueError(f"the small-model reference needs times on the steps, got {time_ms} ms")
    return step


def stimulus(scenario: Any, steps: np.ndarray) -> np.ndarray:
    """x at every step of the protocol: each trial's breakpoints (steps or lines, held
    outside them) plus its noise from the stream ``[seed, 2, trial index]``."""
    out = np.zeros((int(steps.sum()), scenario.model.levels[0].size))
    first = 0
    for trial, count in zip(scenario.trials, steps, strict=True):
        given = trial.settings.stimulus
        if given.generator is not None or given.trial_factor is not None:
            raise ValueError("the small-model reference needs inputs given in the scenario")
        rows = out[first:first + count]
        t_ms = np.arange(count) * scenario.dt_ms
        if given.interpolate and len(given.times_ms) > 1:
            for unit in range(rows.shape[1]):
                rows[:, unit] = np.interp(t_ms, given.times_ms, given.values[:, unit])
        else:
            begins = [_step(t, scenario.dt_ms) for t in given.times_ms]
            rows[:] = given.values[np.searchsorted(begins, np.arange(count), side="right") - 1]
        if np.any(given.noise_std):
            noise = np.random.default_rng([scenario.seed, 2, trial.index])
            rows += given.noise_std * noise.standard_normal(rows.shape)
        first += count
    return out


# measuring ---------------------------------------------------------------------------------------

def measure(workdir: Path, quick: bool, small: list[SmallCase] | None = None,
            devices: tuple[str, ...] = DEVICES, loop: Any = None,
            pcsim_repeats: int | None = None,
            reference_repeats: int = REFERENCE_REPEATS) -> SmallModelsRecord:
    """The row: every case on every device against the reference (``loop``: the compiled
    one by default; ``small_reference.protocol_loop`` runs it in plain Python)."""
    record = SmallModelsRecord(devices=list(devices), reference_repeats=reference_repeats,
                               pcsim_repeats=pcsim_repeats or PCSIM_REPEATS[quick])
    if loop is None:
        loop, record.reference = small_reference.compiled_loop()
    else:
        record.reference = "plain Python"
    for case in small if small is not None else cases(workdir, quick=quick):
        record.models.append(measure_case(case, workdir, record, loop))
    return record


def measure_case(case: SmallCase, workdir: Path, record: SmallModelsRecord,
                 loop: Any) -> SmallModelRecord:
    import sim
    from sim.scenario import load_scenario

    scenario = load_scenario(case.scenario, case.overrides)
    model = from_scenario(scenario)
    row = SmallModelRecord(case.name, case.label, model.steps, model.samples,
                           target_ratio=case.target_ratio,
                           target_us_per_step=case.target_us_per_step)
    outputs = {}
    for device in record.devices:
        overrides = {**case.overrides, "numerics.device": device}
        output = workdir / f"small_{device}.h5"
        gc.collect()  # no network of an earlier run alive: standalone would rename (rebuild)
        try:  # warm: Brian2's code cache, the standalone build directory
            sim.run(case.scenario, output=output, overwrite=True, overrides=overrides)
        except sim.ScenarioError as err:
            row.refused[device] = str(err)
            continue
        seconds = []
        for _ in range(record.pcsim_repeats):
            output.unlink()
            gc.collect()
            began = time.perf_counter()
            sim.run(case.scenario, output=output, overwrite=True, overrides=overrides)
            seconds.append(time.perf_counter() - began)
        row.pcsim_s[device] = min(seconds)
        outputs[device] = read_result(output, scenario)
    if loop is None:
        return row
    if record.jit_s is None:  # the compiled loop's JIT: one trial of this model
        began = time.perf_counter()
        small_reference.run(first_trial(model), loop)
        record.jit_s = time.perf_counter() - began
    seconds = []
    for _ in range(record.reference_repeats):
        began = time.perf_counter()
        found = small_reference.run(from_scenario(scenario), loop)
        seconds.append(time.perf_counter() - began)
    row.reference_s = min(seconds)
    for device, result in outputs.items():
        row.agreement[device] = agreement(found, result, model)
    return row


def first_trial(model: SmallModel) -> SmallModel:
    from dataclasses import replace

    steps = int(model.trial_steps[0])
    return replace(model, trial_steps=model.trial_steps[:1], reset=model.reset[:1],
                   prior_mean=model.prior_mean[:1], segment_start=model.segment_start[:1],
                   segment_precision=model.segment_precision[:1],
                   stimulus=model.stimulus[:steps])


def read_result(path: Path, scenario: Any) -> dict[str, np.ndarray]:
    """What the comparison needs from a pcsim result file: final beliefs (trials x units,
    levels side by side), F at the samples and trial ends, reaction times."""
    import h5py

    with h5py.File(path, "r") as file:
        trials = file["trials"]
        found = {"final": np.concatenate(
            [np.asarray(trials[f"final_belief/{level.name}"], dtype=float)
             for level in scenario.model.belief_levels], axis=1),
            "free_energy": np.asarray(file["free_energy"], dtype=float),
            "final_free_energy": np.asarray(trials["final_free_energy"], dtype=float)}
        if "decision_time" in trials:
            found["reaction_ms"] = np.asarray(trials["decision_time"], dtype=float)
    return found


def agreement(found: small_reference.Outcome, result: dict[str, np.ndarray],
              model: SmallModel) -> dict[str, Any]:
    """max|diff| of the final beliefs (the check), of F (samples and trial ends), and whether
    the reaction times are the same (to 1e-9 ms; NaN: a miss)."""
    beliefs = found.final[:, int(model.sizes[0]):]
    out: dict[str, Any] = {
        "max_abs_diff": _largest(beliefs, result["final"]),
        "free_energy_diff": max(_largest(found.free_energy[:, 1], result["free_energy"]),
                                _largest(found.final_free_energy,
                                         result["final_free_energy"]))}
    if "reaction_ms" in result:
        ours, theirs = found.reaction_ms, result["reaction_ms"]
        out["reaction_times_equal"] = bool(
            np.array_equal(np.isnan(ours), np.isnan(theirs))
            and np.allclose(ours[~np.isnan(ours)], theirs[~np.isnan(theirs)], rtol=0,
                            atol=1e-9))
    return out


def _largest(ours: np.ndarray, theirs: np.ndarray) -> float:
    if ours.shape != theirs.shape:
        return float("inf")
    return float(np.max(np.abs(ours - theirs), initial=0.0))
