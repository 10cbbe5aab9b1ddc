"""``[numerics] device = "standalone"``: a run as one compiled program equals the runtime run.

Each compilable bundled scenario is run on both devices through the CLI; every dataset of the
two files must agree to 1e-12 absolute (the issue's bound: Brian2 compiles with fast-math, so
last bits differ), datasets that are not floats (trial names, decisions, counts)
exactly, and the attributes alike. What the compiled device cannot run is refused in one line
(``standalone``) or runs on the runtime device (``auto``).
"""

from __future__ import annotations

import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from cli_output import error_line
from test_reliability import blinded

import sim
from circuits.coupling_compiled import MIN_WEIGHTS
from circuits.mechanism import Mechanism, Piece, Population
from sim import registry
from sim.cli import main
from sim.scenario_writer import write_scenario

STANDALONE = ["--set", 'numerics.device="standalone"']
IGNORED_ATTRS = {"created_utc", "finished_utc", "wall_time_s"}


def datasets(path) -> dict[str, np.ndarray]:
    found = {}
    with h5py.File(path, "r") as file:
        file.visititems(lambda name, item: found.__setitem__(name, item[()])
                        if isinstance(item, h5py.Dataset) else None)
    return found


def run_both(tmp_path, name: str, *extra: str) -> tuple[dict, dict]:
    runtime, compiled = tmp_path / "runtime.h5", tmp_path / "standalone.h5"
    assert main(["run", name, "-o", str(runtime), "--no-plot", *extra]) == 0
    assert main(["run", name, "-o", str(compiled), "--no-plot", *extra, *STANDALONE]) == 0
    return datasets(runtime), datasets(compiled)


def assert_equal_runs(runtime: dict, compiled: dict) -> None:
    assert set(runtime) == set(compiled)
    floats = 0
    for path, values in runtime.items():
        other = compiled[path]
        if path.startswith("scenario/"):  # the scenario's parameters name the device
            continue
        if isinstance(values, np.ndarray) and values.dtype.kind == "f":
            assert values.shape == other.shape, path
            assert np.array_equal(np.isnan(values), np.isnan(other)), path
            finite = ~np.isnan(values)
            assert np.max(np.abs(values[finite] - other[finite]), initial=0.0) <= 1e-12, path
            floats += values.size
        else:
            assert np.array_equal(values, other), path
    assert floats > 1000  # the traces were compared, not only the tables


def test_posner_compiled_equals_runtime_inputs_and_reaction_times_to_the_bit(tmp_path):
    """Every dataset within 1e-12; the stimulus, computed ahead (``Inputs.ahead``), and the
    reaction times (the decision readout's threshold rule), decided in compiled code at every
    step, exactly, with the choice and whether it was correct."""
    runtime, compiled = run_both(tmp_path, "attention/posner")
    assert_equal_runs(runtime, compiled)
    assert np.array_equal(runtime["levels/locations/input"], compiled["levels/locations/input"])
    for column in ("decision_time", "decision", "decision_unit", "correct", "target_unit"):
        assert np.array_equal(runtime[f"trials/{column}"], compiled[f"trials/{column}"],
                              equal_nan=column == "decision_time")
    assert np.isfinite(runtime["trials/decision_time"]).sum() > 40
    assert runtime["trials/correct"].sum() > 40


@pytest.mark.parametrize("name", ["perception/hierarchy", "attention/unknown_noise",
                                  "learning/variance"])
def test_a_compiled_run_equals_the_runtime_run(tmp_path, name, capsys):
    """learning/variance: Sigma learned over 1000 trials (100 s of network time; the trial
    ends recorded past ~32 s need clocks that tick together, ``sim.compiled.clocks``).
    perception/hierarchy's dense maps (64 x 16, 16 x 4) are under ``MIN_WEIGHTS``: the result
    and ``pcsim show`` say the synapses build ran, and why; run again, the program is reused
    (``pcsim show`` says so), with the same results (``pcsim diff``)."""
    assert_equal_runs(*run_both(tmp_path, name))
    if name == "perception/hierarchy":
        with h5py.File(tmp_path / "standalone.h5", "r") as file:
            assert file.attrs["device"] == "standalone"
            levels = file["levels"].values()
            assert max(level["weights_initial"].size for level in levels
                       if "weights_initial" in level) < MIN_WEIGHTS
            note = f"synapses: maps under {MIN_WEIGHTS} weights keep the synapses"
            assert file.attrs["compiled_coupling"] == note
        again = tmp_path / "again.h5"  # the program just built (or before) is reused
        assert main(["run", name, "-o", str(again), "--no-plot", *STANDALONE]) == 0
        capsys.readouterr()
        assert main(["show", str(tmp_path / "standalone.h5")]) == 0
        assert f"compiled coupling: {note}" in capsys.readouterr().out
        assert main(["show", str(again)]) == 0
        assert "compiled build: reused" in capsys.readouterr().out
        built = tmp_path / "built.h5"  # the same results from a build: no difference
        shutil.copyfile(again, built)
        with h5py.File(built, "a") as file:
            file.attrs["compiled_build"] = "built"
        assert main(["diff", str(built), str(again)]) == 0


def learning_phases() -> dict:
    """A 2 x 2 Sigma (``circuits.covariance``) learned for 3 trials, held for 3 (``learn =
    false``), learned again for 3: the switch a trial's start writes, played back compiled."""
    stimulus = {"kind": "constant", "value": [1.0, -1.0],
                "trial_covariance": [[1.0, 0.5], [0.5, 1.0]]}
    condition = {"name": "learn", "count": 3, "duration_ms": 50.0, "stimulus": stimulus}
    return {
        "name": "phases", "seed": 3, "dt_ms": 0.5, "method": "euler",
        "model": {"tau_error_ms": 2.5, "tau_belief_ms": 1e15,
                  "covariance": {"levels": ["input"], "initial": 1.0, "tau_ms": 500.0},
                  "levels": [{"name": "input", "size": 2},
                             {"name": "estimate", "size": 2, "weights": {"kind": "identity"}}],
                  "prior": {"mean": [1.0, -1.0]}},
        "protocol": {"reset": "beliefs", "shuffle": False, "conditions": [
            condition, {**condition, "name": "test", "learn": False},
            {**condition, "name": "again"}]},
        "record": {"every_ms": 1.0},
    }


def test_a_learned_covariance_with_a_phase_off_compiled_equals_the_runtime_run(tmp_path):
    runtime, compiled = run_both(tmp_path, str(write_scenario(tmp_path / "phases.toml",
                                                              learning_phases())))
    assert_equal_runs(runtime, compiled)
    sigma = compiled["levels/input/covariance"]  # at each trial's end
    assert sigma[2, 0, 1] != sigma[0, 0, 1]  # the off-diagonal entry learned
    assert all(np.array_equal(held, sigma[2]) for held in sigma[3:6])  # not a bit in the phase
    assert not np.array_equal(sigma[8], sigma[5])  # and learned again after it


def test_learned_weights_compiled_equal_the_runtime_weights_frozen_in_the_test_phase(tmp_path):
    """Weight learning with decay and a train/test phase (``learn = false``): every dataset,
    F at each sample with the weights then in force and the snapshots included; the test
    phase leaves the compiled weights bitwise where training left them."""
    runtime, compiled = run_both(tmp_path, "learning/weights",
                                 "--set", "protocol.conditions.0.count=30",
                                 "--set", "protocol.conditions.1.count=10")
    assert_equal_runs(runtime, compiled)
    snapshots = compiled["snapshots/levels/causes/weights"]
    assert snapshots.shape == (4, 8, 2)
    assert np.array_equal(snapshots[2], compiled["levels/causes/weights_final"])  # after trial 29
    assert np.max(np.abs(snapshots[0] - compiled["levels/causes/weights_initial"])) > 1e-3


def test_non_negative_learned_weights_compiled_equal_the_runtime_weights(tmp_path):
    """Bars: learning under the projection W >= 0 and a sparse prior (F per sample); the
    projection holds some weights at exactly 0 in both runs."""
    runtime, compiled = run_both(tmp_path, "learning/bars",
                                 "--set", "protocol.conditions.0.count=60")
    assert_equal_runs(runtime, compiled)
    weights = compiled["levels/bars/weights_final"]
    assert np.min(weights) == 0.0
    assert np.array_equal(weights == 0.0, runtime["levels/bars/weights_final"] == 0.0)
    assert 0 < np.count_nonzero(weights == 0.0) < weights.size


def test_learned_weights_beyond_the_rate_limit_stop_the_compiled_program(tmp_path, capsys):
    """The guard's check of the learning weights (on the runtime device every
    ``WEIGHT_CHECK_STEPS`` and at trial ends) is made on the compiled synapses' ``w``, under the
    runtime's name for them, before any population goes beyond the limit."""
    output = tmp_path / "weights.h5"
    assert main(["run", "learning/weights", "-o", str(output), "--no-plot", *STANDALONE,
                 "--set", "numerics.rate_limit=2", "--set", "model.tau_belief_ms=40",
                 "--set", 'model.levels.1.weights={kind="random", scale=3}',
                 "--set", "protocol.conditions.0.count=30",
                 "--set", "protocol.conditions.1.count=10"]) == 3
    err = capsys.readouterr().err
    assert "Traceback" not in err and "WARNING" not in err
    (line,) = [text for text in err.splitlines() if text.startswith("pcsim: error:")]
    with h5py.File(output, "r") as file:  # (sim.load: a run stopped before its first
        initial = file["levels/causes/weights_initial"][()]  # snapshot reads as damaged)
        assert file.attrs["status"] == "diverged"
    beyond = np.flatnonzero(np.abs(initial.reshape(-1)) > 2)  # W's entries, row by row
    assert "diverged at t = 0 ms (trial 'train_0')" in line
    unit, value = re.search(r"weights_causes\.w\[(\d+)\] = (\S+),", line).groups()
    assert int(unit) == beyond[0] and f"({len(beyond)} unit(s))" in line
    # the program stops at the end of the step that found it: one learning step later
    assert abs(float(value) - initial.reshape(-1)[beyond[0]]) < 0.01


def test_what_has_no_compiled_form_is_refused_in_one_line(tmp_path, capsys):
    output = tmp_path / "creak.h5"
    assert main(["run", "perception/creak", "-o", str(output), *STANDALONE]) == 2
    line = error_line(capsys)
    assert "numerics.device" in line and "discrete family" in line and "runtime" in line
    assert not output.exists()


def test_auto_runs_the_rest_on_the_runtime_device(tmp_path):
    output = tmp_path / "creak.h5"
    assert main(["run", "perception/creak", "-o", str(output), "--no-plot",
                 "--set", 'numerics.device="auto"']) == 0
    assert sim.load(output).attrs["status"] == "complete"


def test_checkpoints_are_refused_on_the_standalone_device(tmp_path, capsys):
    output = tmp_path / "posner.h5"
    assert main(["run", "attention/posner", "-o", str(output), *STANDALONE,
                 "--set", "record.checkpoint_every=10"]) == 2
    assert "checkpoints and --resume" in error_line(capsys)
    assert not output.exists()


def test_divergence_stops_the_compiled_program_and_is_recorded(tmp_path, capsys):
    path = write_scenario(tmp_path / "blinded.toml",  # test_reliability's divergence
                          {**blinded(), "numerics": {"device": "standalone"}})
    output = tmp_path / "blinded.h5"
    assert main(["run", str(path), "-o", str(output), "--no-plot"]) == 3
    err = capsys.readouterr().err
    assert "Traceback" not in err and "WARNING" not in err
    (line,) = [text for text in err.splitlines() if text.startswith("pcsim: error:")]
    assert "diverged at t = 2." in line and "trial 'blinding'" in line
    assert "belief_cause.belief[0]" in line
    result = sim.load(output, allow_incomplete=True)
    assert result.attrs["status"] == "diverged"
    assert list(result.trials["name"]) == ["calm"]
    assert 2e-3 <= result.attrs["stopped_at"] < 4e-3
    assert np.all(np.isfinite(result.datasets["levels/cause/belief"]))


@pytest.mark.parametrize("cache", ["new", "warm"])
def test_ctrl_c_stops_a_compiled_run_and_leaves_nothing(tmp_path, cache):
    """SIGINT while the program is built (a new cache: pcsim stops before make, or stops
    make) or while it runs (the signal waits for the program's process: a cold cache builds
    it first): exit 130, nothing written, no stray file."""
    scenario = {
        "name": "long", "dt_ms": 0.1,
        "model": {"errors": "relaxing", "tau_belief_ms": 5.0, "tau_error_ms": 1.0,
                  "levels": [{"name": "x", "size": 1}, {"name": "v", "size": 1, "weights": 1.0}],
                  "prior": {"mean": 0.0, "precision": 1.0}},
        "protocol": {"trials": [{"name": "long", "duration_ms": 2e6,  # ~10 s warm, or more:
                                 "stimulus": {"kind": "constant", "value": 1.0,  # still
                                              "noise_std": 0.1}}]},  # running at the signal
        "record": {"every_ms": 10.0},
        "numerics": {"device": "standalone"},
    }
    path = write_scenario(tmp_path / "long.toml", scenario)
    output = tmp_path / "out" / "long.h5"
    environment = dict(os.environ)
    if cache == "new":
        environment["PCSIM_STANDALONE_CACHE"] = str(tmp_path / "cache")
    process = subprocess.Popen([sys.executable, "-m", "sim.cli", "run", str(path), "-o",
                                str(output), "--no-plot"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=environment)
    deadline = time.monotonic() + 300  # a cold build under load
    started = ((lambda: list(output.parent.glob(".long.h5.*.partial"))) if cache == "new"
               else (lambda: _child_named(process.pid, "main")))  # the program itself runs
    while not started():
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.1)
    time.sleep(1.0)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130 and "Traceback" not in err, err
    assert "nothing written" in err
    assert not list(output.parent.iterdir())


def _child_named(pid: int, name: str) -> bool:
    """Whether process ``pid`` has a child process called ``name`` (Linux /proc)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # ended meanwhile
            continue
        command, rest = text[text.index("(") + 1:text.rindex(")")], text[text.rindex(")") + 2:]
        if command == name and int(rest.split()[1]) == pid:
            return True
    return False


# --- the erp readout, precision schedules, learned priors (issue 23) ---------------------------

def test_the_oddball_erps_share_one_build_and_each_compiled_run_equals_the_runtime_run(tmp_path):
    """The ERP (watched every step, in compiled code, ``ERP.compiled``) and the learned prior
    the beliefs reset to (a start that copies the state, ``sim.compiled.trial_starts``): every
    dataset within 1e-12; the compiled ERP is each level's recorded errors summed (signed in
    learning/oddball, rectified in the roving scenario), trial by trial (the trials last a
    multiple of the recording interval: the ERP's samples are the recorder's).

    The two scenarios have one program shape, so one build directory
    (``sim.compiled.shape``): the second build compiles exactly the two sources whose text
    differs (the rectified sums; ``sim.compiled.project``), no other, and still runs its own
    program."""
    from sim.compiled.shape import default_cache_root, shape_key
    from sim.scenario import load_scenario

    names, trials = ["learning/oddball", "learning/oddball_roving"], ["--set", "protocol.trials=12"]
    keys = {shape_key(load_scenario(name, overrides={"protocol.trials": 12})) for name in names}
    assert len(keys) == 1
    build = default_cache_root() / keys.pop()

    def object_times() -> dict[str, int]:
        return {path.relative_to(build).as_posix(): path.stat().st_mtime_ns
                for path in build.rglob("*.o")}

    for name in names:
        objects = object_times() if build.exists() else {}  # before this scenario's build
        folder = tmp_path / name.split("/")[1]
        folder.mkdir()
        runtime, compiled = run_both(folder, name, *trials)
        assert_equal_runs(runtime, compiled)
        rectified = name.endswith("roving")
        for level in ("tone", "pitch"):
            errors = compiled[f"levels/{level}/error"]
            summed = (np.abs(errors) if rectified else errors).sum(axis=1).reshape(12, -1)
            assert np.allclose(compiled[f"erp/trials/{level}"], summed, rtol=0, atol=1e-12)
        assert np.ptp(compiled["levels/pitch/prior_mean"]) > 0.1  # the prior learned
    after = object_times()  # against the objects as the signed ERP's build left them
    assert len(after) > 30 and set(after) == set(objects)
    assert sorted(path for path in after if after[path] != objects[path]) == [
        f"code_objects/erp_sum_{level}_summed_variable_total_post_codeobject.o"
        for level in (0, 1)]


def test_a_precision_schedule_and_erp_samples_from_each_trials_start_compile(tmp_path):
    """cue_integration's last trial: sight's precision 4 for 100 ms, then 0.25 (its schedule),
    in the compiled run's recorded precisions. With an ERP (a level of two units, rectified, in
    a window) and trials that do not last a multiple of the recording interval (7 steps): the
    ERP samples from each trial's start, the recorder every 7th step of the run. Every dataset
    within 1e-12."""
    erp = ["--set", 'readouts.erp.field="rectified"', "--set", "readouts.erp.window_ms=[5, 150]",
           "--set", "record.every_ms=0.35"]
    runtime, compiled = run_both(tmp_path, "perception/cue_integration", *erp)
    assert_equal_runs(runtime, compiled)
    within = compiled["time"] * 1e3 - 1200.0  # the last trial starts at 1200 ms
    sight = compiled["levels/senses/precision"][within >= -1e-9, 0]
    assert np.array_equal(sight, np.where(within[within >= -1e-9] < 100 - 1e-9, 4.0, 0.25))
    assert np.array_equal(compiled["trials/final_precision/senses"][:, 0],
                          [4.0, 2.0, 1.0, 0.5, 0.25, 0.125, 0.25])
    trace = compiled["erp/trials/senses"]
    counts = (~np.isnan(trace)).sum(axis=1)
    assert list(counts) == [math.ceil(4000 / 7)] * 6 + [math.ceil(6000 / 7)]
    first = np.abs(compiled["levels/senses/error"][:counts[0]]).sum(axis=1)  # trial 0: step 0
    assert np.allclose(trace[0, :counts[0]], first, rtol=0, atol=1e-12)
    times = compiled["erp/time"] * 1e3
    inside = (times >= 5 - 1e-9) & (times <= 150 + 1e-9)
    assert np.array_equal(compiled["trials/erp_peak/senses"], np.nanmax(trace[:, inside], axis=1))


def learned_prior(weights: float) -> dict:
    """Three levels whose beliefs reset each trial to the prediction of a learned prior:
    with weights 1 every reset is a copy of the prior mean the last trial left."""
    return {
        "name": "learned_prior", "dt_ms": 0.5, "method": "euler",
        "model": {"tau_belief_ms": 20.0, "tau_error_ms": 10.0, "errors": "relaxing",
                  "learning": {"tau_prior_ms": 200.0},
                  "levels": [{"name": "tone", "size": 1},
                             {"name": "pitch", "size": 1, "weights": weights},
                             {"name": "cause", "size": 1, "weights": weights}],
                  "prior": {"mean": 0.0, "precision": 1.0}},
        "protocol": {"reset": "beliefs", "trials": [
            {"name": f"tone {k}", "duration_ms": 50.0,
             "stimulus": {"kind": "constant", "value": 1.0 + k}} for k in range(4)]},
        "record": {"every_ms": 1.0},
    }


def test_a_reset_to_a_learned_prior_is_copied_in_compiled_code(tmp_path):
    """Recording beliefs and the prior alone (no F, errors or precisions: the program records
    at samples only what the replay reads, ``sim.compiled.reads``; the middle level's errors
    not at all), every dataset within 1e-12 still."""
    scenario = learned_prior(1.0)
    scenario["record"]["variables"] = ["belief", "prior_mean"]
    path = write_scenario(tmp_path / "learned.toml", scenario)
    runtime, compiled = run_both(tmp_path, str(path))
    assert_equal_runs(runtime, compiled)
    assert "free_energy" not in compiled and "levels/pitch/error" not in compiled
    start = compiled["time"] * 1e3 % 50.0 == 0.0  # each trial's first sample
    prior = compiled["levels/cause/prior_mean"][:, 0]
    assert np.ptp(prior) > 0.1
    assert np.all(prior[start][1:] > 0.01)  # learned from the tones by the later trials
    for level in ("pitch", "cause"):  # each reset to the prior mean the last trial left
        assert np.array_equal(compiled[f"levels/{level}/belief"][start, 0], prior[start])


def test_a_start_that_computes_from_the_state_is_refused(tmp_path, capsys):
    """With weights 2 the lower belief resets to 2 x the learned prior mean: not a copy."""
    path = write_scenario(tmp_path / "learned.toml", learned_prior(2.0))
    output = tmp_path / "learned.h5"
    assert main(["run", str(path), "-o", str(output), *STANDALONE]) == 2
    err = capsys.readouterr().err  # refused when the build probes the starts, after the banner
    assert "Traceback" not in err
    (line,) = [text for text in err.splitlines() if text.startswith("pcsim: error:")]
    assert "from the state it finds" in line and "belief_pitch.belief" in line
    assert not output.exists()


def test_auto_runs_a_start_the_build_refuses_on_the_runtime_device(tmp_path):
    """``auto`` tries the program for a long run and the build refuses (the probe finds a
    start computed from the state): the runtime device runs the same network after all, with
    the same numbers as a runtime run (Brian2 refused to add objects the attempt had marked as
    run elsewhere: a traceback, once)."""
    scenario = learned_prior(2.0)
    for trial in scenario["protocol"]["trials"]:
        trial["duration_ms"] = 2500.0  # long enough that auto tries the compiled device
    path = write_scenario(tmp_path / "learned.toml", scenario)
    runtime, tried = tmp_path / "runtime.h5", tmp_path / "auto.h5"
    assert main(["run", str(path), "-o", str(runtime), "--no-plot"]) == 0
    assert main(["run", str(path), "-o", str(tried), "--no-plot",
                 "--set", 'numerics.device="auto"']) == 0
    assert sim.load(tried).attrs["device"] == "runtime"
    assert_equal_runs(datasets(runtime), datasets(tried))


class SignBias(Mechanism):
    """A start that reads the state through a comparison: each trial's start pushes every
    belief towards 0 by 0.5 (``sign_bias`` = -0.5 where mu > 0, else 0.5), a value that one
    probe of the starts cannot tell from a state-independent write."""

    name, family, section = "test_sign_bias", "hierarchical", "sign_bias"

    def parse(self, fields):
        return fields.number("on", default=None)

    def pieces(self, on, population: Population):
        if population.role == "belief":
            return Piece(equations="sign_bias : 1", terms={"drive": "sign_bias"})
        return None

    def build(self, on, context):
        return []

    def start_trial(self, on, context, reset):
        for group in context.beliefs:
            beliefs = group.variables["belief"].get_value()
            group.variables["sign_bias"].get_value()[:] = np.where(beliefs > 0, -0.5, 0.5)


def test_a_start_that_compares_the_state_is_refused_when_replayed(tmp_path, capsys):
    """The probe sees a plain value (0.5: its sentinels are negative); the replay's start on
    the state the program's start found (mu = 1 > 0) writes -0.5: refused, nothing written."""
    mechanism = registry.register_mechanism(SignBias())
    try:
        path = write_scenario(tmp_path / "sign.toml", {
            "name": "sign", "dt_ms": 0.1, "model": {
                "errors": "instantaneous", "tau_belief_ms": 1.0, "sign_bias": {"on": 1.0},
                "levels": [{"name": "x", "size": 1}, {"name": "v", "size": 1, "weights": 0.5}],
                "prior": {"mean": 1.0, "precision": 2.0}},
            "protocol": {"trials": [{"duration_ms": 2.0, "stimulus": {
                "kind": "constant", "value": 2.0}}] * 2}})
        output = tmp_path / "sign.h5"
        assert main(["run", str(path), "-o", str(output), "--no-plot", *STANDALONE]) == 2
    finally:
        registry.unregister_mechanism(mechanism.name)
    err = capsys.readouterr().err  # refused in the replay, after the program ran
    assert "Traceback" not in err
    (line,) = [text for text in err.splitlines() if text.startswith("pcsim: error:")]
    assert "played back another start of trial" in line and "belief_v.sign_bias" in line
    assert not output.exists()


def test_auto_keeps_a_run_with_large_compiled_tables_on_the_streaming_runtime_device(tmp_path,
                                                                                      capsys):
    """A compiled program holds its input table and whole recording until it ends; the
    runtime device streams the recording in memory that does not grow with the run. ``auto``
    compiles only tables up to ``AUTO_TABLES_MB``; an explicit ``standalone`` counts them in
    the memory preflight."""
    from sim.compiled.choice import AUTO_TABLES_MB, choose, tables_mb
    from sim.scenario import load_scenario

    def loaded(**overrides: float):
        return load_scenario("attention/posner",
                             overrides={"numerics.device": "auto", **overrides})

    posner = loaded()
    assert tables_mb(posner) <= AUTO_TABLES_MB and choose(posner, False) == "standalone"
    # 10x the trials' duration: 10x the table (posner's input at every step)
    longer = loaded(**{f"protocol.conditions.{index}.count": 10 * count
                       for index, count in enumerate([16, 16, 4, 4, 10, 10])})
    assert tables_mb(longer) > AUTO_TABLES_MB and choose(longer, False) == "runtime"
    output = tmp_path / "posner.h5"
    limit = ["--set", "numerics.memory_limit_mb=205"]  # pcsim itself: 200 MB, posner's: ~1
    assert main(["run", "attention/posner", "-o", str(output), "--check", *limit]) == 0
    capsys.readouterr()
    assert main(["run", "attention/posner", "-o", str(output), "--check", *limit,
                 *STANDALONE]) == 2
    line = error_line(capsys)
    assert "compiled program" in line and "numerics.device" in line


def test_a_sweep_over_values_compiles_its_program_once(tmp_path, capsys, monkeypatch):
    """Points of one program shape run one program: the values a sweep varies (a time
    constant, a readout's threshold, the seed) are data the program reads when it starts
    (``sim.compiled.values``, ``sim.compiled.shape``), so after the program's first build no
    source is compiled again, and each point still equals its run on the runtime device. The
    sweep says what it will compile before it starts."""
    monkeypatch.setenv("PCSIM_STANDALONE_CACHE", str(tmp_path / "cache"))
    posner = ["attention/posner", "--set", 'numerics.device="auto"',  # 36,000 steps
              *(f"--set=protocol.conditions.{index}.count=2" for index in range(6))]
    assert main(["sweep", *posner, "--vary", "readouts.decision.threshold=0.15",
                 "-j", "1", "-o", str(tmp_path / "first")]) == 0
    assert "1 of 1 points run compiled ([numerics] device): 1 program shape, 1 to compile " \
           "first" in capsys.readouterr().err
    objects = {path: path.stat().st_mtime_ns for path in (tmp_path / "cache").rglob("*.o")}
    assert len(objects) > 10
    second = tmp_path / "second"  # another rate_limit too: the stop checks read it as data
    assert main(["sweep", *posner, "--set", "numerics.rate_limit=1e9",
                 "--vary", "readouts.decision.threshold=0.12,0.2",
                 "--vary", "model.tau_belief_ms=15,30", "--seeds", "2", "-j", "2",
                 "-o", str(second)]) == 0
    assert "8 of 8 points run compiled ([numerics] device): 1 program shape, compiled " \
           "before" in capsys.readouterr().err
    assert {path: path.stat().st_mtime_ns for path in (tmp_path / "cache").rglob("*.o")} \
        == objects
    point = sim.open_sweep(second).table.query(
        "`model.tau_belief_ms` == 30 and `readouts.decision.threshold` == 0.2")
    assert len(point) == 2
    row = point.iloc[-1]
    runtime = tmp_path / "runtime.h5"
    assert main(["run", *posner, "-o", str(runtime), "--no-plot", "--seed", str(row["seed"]),
                 "--set", "model.tau_belief_ms=30", "--set",
                 "readouts.decision.threshold=0.2", "--set",
                 'numerics.device="runtime"']) == 0
    assert_equal_runs(datasets(runtime), datasets(second / row["file"]))
