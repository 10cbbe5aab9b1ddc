"""Refusing before work: validation never imports Brian2, and a run's memory is estimated (and
refused past ``[numerics] memory_limit_mb``) before anything is built (``sim.memory``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import pytest

import sim
from sim import memory
from sim.errors import ScenarioError
from sim.scenario import load_scenario

SINGLE = "perception/single_cause"


def fresh_python(code: str) -> str:
    """Run ``code`` in a new interpreter; its standard output."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    return done.stdout


def wide_input(units: int, noisy: bool = False) -> list[str]:
    """``--set`` pairs: single_cause with an input level ``units`` wide (its precision scaled
    so that the step stays stable), one short trial; ``noisy``: an input with noise, which
    has no exact reference."""
    stimulus = '{kind="constant", value=2.0, noise_std=0.1}' if noisy else None
    pairs = [f"model.levels.0.size={units}", f"model.levels.0.precision={1 / units!r}",
             "protocol.trials.0.duration_ms=0.1"]
    if stimulus:
        pairs.append(f"protocol.trials.0.stimulus={stimulus}")
    return [part for pair in pairs for part in ("--set", pair)]


def overrides(pairs: list[str]) -> dict:
    from sim.cli import parse_sets

    return parse_sets(pairs[1::2])


def too_long_to_record() -> dict:
    """Overrides: single_cause, 10^5 input units (stable, and within the memory limit) for
    10^6 ms: 10^8 samples of 10^5 units x 3 streams x 8 bytes, 240 TB to record."""
    return {"model.levels.0.size": 10**5, "model.levels.0.precision": 1e-5,
            "protocol.trials.0.duration_ms": 1e6}


# --- no Brian2 before the run ----------------------------------------------------------------

def test_validating_every_bundled_scenario_leaves_brian2_unloaded(tmp_path):
    """Loading, the preflight (stability, snapshots, memory), ``pcsim run --check``, every
    refusal of ``pcsim run`` (missing file, bad --set, existing output, too much memory) and
    ``sim.run``'s (too much memory, more than the free disk space, ``resume`` without an output:
    the same checks as ``pcsim run``)."""
    existing = tmp_path / "there.h5"
    existing.write_bytes(b"")
    refusals = [["run", "no/such/scenario"],
                ["run", SINGLE, "--set", "model.tau_belief_ms=-1"],
                ["run", SINGLE, "-o", str(existing)],
                ["run", SINGLE, "--set", "numerics.memory_limit_mb=1"]]
    api_refusals = [({"numerics.memory_limit_mb": 1}, False),
                    (too_long_to_record(), False),
                    ({}, True)]  # resume=True needs the output's name
    probe = f"""
import contextlib, io, json, sys
from sim.cli import main
from sim.scenario import bundled_scenarios, load_scenario
from sim.stability import preflight
from sim import memory
codes = []
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    for name in bundled_scenarios():
        scenario = load_scenario(name)
        preflight(scenario)
        memory.estimate(scenario)
        codes.append(main(["run", name, "--check", "-o", {str(tmp_path / "new.h5")!r}]))
    for argv in {refusals!r}:
        codes.append(main(argv))
import sim
refused = []
for overrides, resume in {api_refusals!r}:  # the API refuses before Brian2 too
    try:
        sim.run({SINGLE!r}, {str(tmp_path / "api.h5")!r} if not resume else None,
                overrides=overrides, resume=resume)
    except (sim.ScenarioError, sim.ResultError) as err:
        refused.append(str(err))
print(json.dumps(refused))
print(codes, "brian2" in sys.modules)
"""
    refused, result = fresh_python(probe).strip().splitlines()[-2:]
    codes, loaded = result.rsplit(" ", 1)
    assert loaded.strip() == "False"
    assert json.loads(codes) == [0] * (len(json.loads(codes)) - 4) + [2, 2, 2, 2]
    memory_line, disk_line, resume_line = json.loads(refused)
    assert "over the limit of 1 MB" in memory_line
    assert "record.every_ms: the recording would write about" in disk_line
    assert " TB, more than the" in disk_line  # 240 TB (too_long_to_record)
    assert resume_line.startswith("--resume: expected -o OUT.h5")
    assert not list(tmp_path.glob("api*"))


# --- the limit -------------------------------------------------------------------------------

def test_a_run_over_the_memory_limit_is_refused_in_one_line(tmp_path):
    output = tmp_path / "wide.h5"
    wide = wide_input(2 * 10**5)
    scenario = load_scenario(SINGLE, overrides=overrides(wide))
    estimate = memory.total(memory.estimate(scenario)) / 1e6
    # 2 10^5 units of 8-byte numbers: 1.6 MB for each number a unit holds
    assert estimate > 1.6 * memory.UNIT_NUMBERS + memory.BASELINE_BYTES / 1e6

    def run(limit_mb: float, *more: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "sim.cli", "run", SINGLE, *wide,
                               "--set", f"numerics.memory_limit_mb={limit_mb}", "-o",
                               str(output), *more], capture_output=True, text=True, timeout=600)

    refused = run(estimate * 0.9)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    line, = refused.stderr.strip().splitlines()
    # the biggest part (the input level's units) and the key that shrinks it
    assert "model.levels[0].size" in line and "units of level 'light'" in line, line
    assert f"over the limit of {estimate * 0.9:.3g} MB" in line and "memory_limit_mb" in line
    assert not list(tmp_path.iterdir())
    assert run(estimate * 1.1, "--check").returncode == 0


def test_a_limit_below_pcsim_itself_names_the_limit_not_a_model_part():
    """No key of the model can bring a run under a limit below the interpreter's own memory:
    the refusal names the limit, not the largest of the model's (tiny) parts."""
    limit_mb = memory.BASELINE_BYTES / 1e6 / 2
    with pytest.raises(ScenarioError) as refused:
        memory.check_memory(load_scenario(SINGLE, overrides={
            "numerics.memory_limit_mb": limit_mb}))
    message = str(refused.value)
    assert "numerics.memory_limit_mb: the run would take" in message, message
    assert "pcsim itself" in message and "shrink" not in message, message


def test_the_default_limit_is_a_fraction_of_the_machines_memory():
    scenario = load_scenario(SINGLE)
    physical = memory.physical_memory()
    assert physical > 0
    assert memory.memory_limit(scenario) == pytest.approx(memory.DEFAULT_FRACTION * physical)
    limited = load_scenario(SINGLE, overrides={"numerics.memory_limit_mb": 123.0})
    assert memory.memory_limit(limited) == 123e6
    assert limited.resolved()["numerics"]["memory_limit_mb"] == 123.0
    assert "memory_limit_mb" not in scenario.resolved()["numerics"]  # machine-dependent


def test_a_reference_too_large_turns_itself_off_with_a_note(tmp_path):
    """2000 input units: the grid of the reference posterior would take 3 x 16001 points x
    2001 units x 8 bytes (768 MB); the rest of the run, about 200 MB."""
    wide = wide_input(2000)
    files = {}
    for limit in (500, 2000):
        files[limit] = tmp_path / f"limit{limit}.h5"
        ran = subprocess.run([sys.executable, "-m", "sim.cli", "run", SINGLE, *wide, "--set",
                              f"numerics.memory_limit_mb={limit}", "--no-plot", "-o",
                              str(files[limit])], capture_output=True, text=True, timeout=600)
        assert ran.returncode == 0, ran.stderr
    with h5py.File(files[500]) as off, h5py.File(files[2000]) as on:
        note = off.attrs["readouts_off"]
        assert note.startswith("reference_posterior: ") and "memory_limit_mb" in note
        assert "grid" in note and off.attrs["status"] == "complete"
        assert "surprise" not in off["trials"] and "reference_mean" not in off["trials"]
        assert "readouts_off" not in on.attrs
        assert "surprise" in on["trials"] and "reference_mean" in on["trials"]
        belief = "trials/final_belief/food_size"
        assert (off[belief][()] == on[belief][()]).all()  # the run itself is the same
    shown = subprocess.run([sys.executable, "-m", "sim.cli", "show", str(files[500])],
                           capture_output=True, text=True, timeout=600)
    assert "readout off: reference_posterior: turned off" in shown.stdout


# --- the estimate against a run --------------------------------------------------------------

FACTOR = 1.5  # the estimate is within this factor of the peak RSS of the run it estimates


def wide_discrete(folder: Path) -> str:
    """A discrete scenario with a likelihood of 500 outcomes x 1000 causes (random columns)."""
    import numpy as np

    from sim.scenario_writer import write_scenario

    causes, outcomes = 1000, 500
    likelihood = np.random.default_rng(0).random((outcomes, causes))
    likelihood /= likelihood.sum(axis=0)
    table = {"name": "wide_discrete", "dt_ms": 0.5,
             "model": {"kind": "discrete", "tau_belief_ms": 20.0,
                       "causes": [f"c{i}" for i in range(causes)],
                       "modalities": [{"name": "sense",
                                       "outcomes": [f"o{i}" for i in range(outcomes)],
                                       "likelihood": likelihood.tolist()}]},
             "protocol": {"trials": [{"name": "t", "duration_ms": 5.0,
                                      "observations": [{"time_ms": 1.0, "sense": "o3"}]}]}}
    return str(write_scenario(folder / "wide_discrete.toml", table))


@pytest.mark.parametrize("scenario, pairs", [
    (SINGLE, wide_input(10**6, noisy=True)),  # the units dominate
    ("perception/hierarchy",  # the weights dominate (2000 x 1000 + 1000 x 100)
     ["--set", "model.levels.0.size=2000", "--set", "model.levels.1.size=1000",
      "--set", "model.levels.2.size=100", "--set", 'numerics.stability="warn"',
      "--set", "protocol.trials.0.duration_ms=2",
      "--set", 'protocol.trials.0.stimulus={kind="constant", value=0.5, noise_std=0.3}']),
    (wide_discrete, []),  # the likelihood dominates
])
def test_the_estimate_is_within_a_factor_of_the_peak_memory(tmp_path, scenario, pairs):
    scenario = scenario(tmp_path) if callable(scenario) else scenario
    loaded = load_scenario(scenario, overrides=overrides(pairs))
    estimate = memory.total(memory.estimate(loaded))
    command = [sys.executable, "-m", "sim.cli", "run", scenario, *pairs, "--no-plot", "-o",
               str(tmp_path / "run.h5")]
    # the peak RSS of the run's process alone: measured by a parent that runs nothing else
    peak_kb = fresh_python(
        "import resource, subprocess, sys\n"
        f"done = subprocess.run({command!r}, capture_output=True, text=True)\n"
        "assert done.returncode == 0, done.stderr\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    peak = int(peak_kb) * (1 if sys.platform == "darwin" else 1024)  # macOS counts bytes
    assert peak / FACTOR < estimate < peak * FACTOR, (estimate / 1e6, peak / 1e6)


def test_a_recording_larger_than_the_free_disk_is_refused(tmp_path, monkeypatch, capsys):
    """single_cause records 2000 samples of input, error and precision (1 unit each) and of
    belief, error and precision (1 unit): 6 x 8 bytes a sample, 96 kB."""
    import shutil
    from collections import namedtuple

    from sim.cli import main

    usage = namedtuple("usage", "total used free")
    scenario = load_scenario(SINGLE)
    assert memory.recorded_bytes(scenario) == 2000 * 6 * 8
    monkeypatch.setattr(shutil, "disk_usage", lambda folder: usage(10**6, 10**6, 90_000))
    assert main(["run", SINGLE, "-o", str(tmp_path / "r.h5")]) == 2
    line = capsys.readouterr().err.strip()
    assert "\n" not in line and "record.every_ms" in line
    assert "0.096 MB" in line and "0.09 MB free" in line, line
    with pytest.raises(sim.ScenarioError) as refused:  # sim.run: the same check, the same line
        sim.run(SINGLE, tmp_path / "r.h5")
    assert line.endswith(str(refused.value)), (line, str(refused.value))
    assert not list(tmp_path.iterdir())
    monkeypatch.setattr(shutil, "disk_usage", lambda folder: usage(10**6, 0, 100_000))
    assert main(["run", SINGLE, "--check", "-o", str(tmp_path / "r.h5")]) == 0
    # with checkpoints: the previous one and the new one too, each a copy of the result so far
    # and of the state: 3 x 96 kB, and twice a state of a few hundred bytes
    assert main(["run", SINGLE, "--set", "record.checkpoint_every=1", "-o",
                 str(tmp_path / "r.h5")]) == 2
    line = capsys.readouterr().err.strip()
    assert "\n" not in line and "0.288 MB with its checkpoints" in line, line
    assert "checkpoint_every = 0" in line


# --- pcsim bench's refusal rows ----------------------------------------------------------------

def test_bench_times_every_refusal(tmp_path):
    """Each case is refused in one line (exit 2) and its row carries both times and their
    ratio (no time is asserted: that is the bench's job)."""
    from sim.bench import refusals

    cases = refusals.refusal_cases()
    assert cases[-1].name == "10^7 inputs, memory"  # its line: the test above; 10 s of parsing
    cases = cases[:-1]
    records = refusals.measure_refusals(cases, tmp_path, repeats=1)
    assert [r.name for r in records] == [case.name for case in cases]
    expected = {"missing file": "no such scenario", "not TOML": "not valid TOML",
                "bad --set": "model.tau_belief_ms", "existing output": "already exists"}
    for record in records:
        assert not record.note, record.note
        assert expected[record.name] in record.message, record.message
        row = record.row()
        assert row["ratio"] == record.seconds / record.baseline_s > 0
        assert row["target_met"] in (True, False)
    lines = refusals.refusal_lines(records, 1)
    assert [line.split()[0] for line in lines[3:7]] == ["missing", "not", "bad", "existing"]


# --- checkpoints ---------------------------------------------------------------------------------

def test_checkpoints_are_in_the_memory_and_disk_estimates(tmp_path):
    """A run with ``[record] checkpoint_every`` holds its state twice while a checkpoint is
    written (Brian2's copy and its pickle), and on the disk the previous checkpoint and the
    new one beside the result: the estimates grow by the sizes a real checkpoint has (here
    single_cause with 10^5 input units, two trials, stopped by SIGTERM after the first)."""
    trial = '{name="t", duration_ms=0.1, stimulus={kind="constant", value=2.0, noise_std=0.1}}'
    pairs = ["--set", "model.levels.0.size=100000", "--set", "model.levels.0.precision=1e-05",
             "--set", f"protocol.trials=[{trial}, {trial}]"]
    plain = load_scenario(SINGLE, overrides=overrides(pairs))
    checkpointing = load_scenario(SINGLE, overrides=overrides(
        [*pairs, "--set", "record.checkpoint_every=1"]))
    output = tmp_path / "stopped.h5"
    sizes = json.loads(fresh_python(
        "import json, os, signal, h5py\n"
        "from sim.engine import run_scenario\n"
        "from sim.errors import RunInterrupted\n"
        "from sim.scenario import load_scenario\n"
        "class Stop:\n"
        "    def __call__(self, fraction): pass\n"
        "    def trial_done(self, done, total, energy): os.kill(os.getpid(), signal.SIGTERM)\n"
        f"scenario = load_scenario({SINGLE!r}, overrides={checkpointing.overrides!r})\n"
        "try:\n"
        f"    run_scenario(scenario, {str(output)!r}, Stop())\n"
        "except RunInterrupted:\n"
        "    pass\n"
        f"path = {str(output)!r} + '.checkpoint'\n"
        "with h5py.File(path) as file:\n"
        "    print(json.dumps([file['state'].size, os.path.getsize(path)]))\n"))
    pickled, on_disk = sizes  # the state's pickle; the checkpoint file (the result so far too)

    state = memory.state_bytes(checkpointing)
    assert pickled <= state <= 3 * pickled, (state, pickled)
    grown = memory.total(memory.estimate(checkpointing)) - memory.total(memory.estimate(plain))
    assert grown == memory.CHECKPOINT_STATES * state >= 2 * pickled
    assert memory.written_bytes(plain) == memory.recorded_bytes(plain)
    # the previous checkpoint and the new one, each at most the result so far and the state
    extra = memory.written_bytes(checkpointing) - memory.recorded_bytes(checkpointing)
    assert extra >= 2 * on_disk
