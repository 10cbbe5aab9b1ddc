"""Checkpoints and ``pcsim run --resume`` (``sim.checkpoint``): a learning run killed part-way
and resumed ends with the file an uninterrupted run writes, bitwise, in every dataset and
every attribute but the wall-clock ones (and ``resumed_at_trials``, which says it resumed).

The killed runs are real processes (SIGKILL, SIGTERM); the uninterrupted runs, the resumed
ones and the refusals run in-process through ``sim.run`` and ``sim.cli.main`` (an import of
Brian2 per process would cost more than the runs)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

import sim
from sim import memory
from sim.checkpoint import copy_result
from sim.cli import main
from sim.engine import run_scenario
from sim.errors import RunInterrupted
from sim.io.finite import NonFiniteData
from sim.io.partials import HOST
from sim.io.writer import ResultWriter
from sim.scenario import load_scenario

# bars: 300 trials of 5 ms, a checkpoint every 50, snapshots every 40; variance: 60 of 100 ms
BARS = {"protocol.conditions.0.count": 300, "record.checkpoint_every": 50,
        "record.snapshots_every": 40}
VARIANCE = {"protocol.conditions.0.count": 60, "record.checkpoint_every": 15}
WALL_CLOCK = {"created_utc"}  # when the run started: the only attribute left out


def command(name: str, overrides: dict, *extra: str) -> list[str]:
    sets = [item for key, value in overrides.items() for item in ("--set", f"{key}={value}")]
    return ["run", name, *sets, "--no-plot", *extra]


def start(name: str, overrides: dict, output: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "sim.cli",
                             *command(name, overrides, "-o", str(output))],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def checkpoint_of(output: Path) -> Path:
    return output.with_name(output.name + ".checkpoint")


def trials_done(checkpoint: Path) -> int:
    """The trials a checkpoint holds (0: none yet); the file at that name is always whole."""
    try:
        with h5py.File(checkpoint, "r") as file:
            return int(file["state"].attrs["done"])
    except (OSError, KeyError):
        return 0


def wait_for_checkpoint(process: subprocess.Popen, checkpoint: Path, done: int) -> None:
    deadline = time.monotonic() + 300
    while trials_done(checkpoint) < done:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.01)


def contents(path: Path) -> dict[str, object]:
    """Every dataset's values and every attribute of a result, by path (``@`` for an
    attribute), the wall-clock one left out."""
    found: dict[str, object] = {}
    with h5py.File(path, "r") as file:
        def visit(name: str, node) -> None:
            for key, value in node.attrs.items():
                if key not in WALL_CLOCK:
                    found[f"{name}@{key}"] = value
            if isinstance(node, h5py.Dataset):
                found[name] = node[()]

        visit("", file)
        file.visititems(visit)
    return found


def assert_same_bitwise(uninterrupted: Path, resumed: Path, resumed_at: list[int]) -> None:
    a, b = contents(uninterrupted), contents(resumed)
    assert "@resumed_at_trials" not in a
    assert list(b.pop("@resumed_at_trials")) == resumed_at
    assert sorted(a) == sorted(b)
    for key, value in a.items():
        left, right = np.asarray(value), np.asarray(b[key])
        assert left.dtype == right.dtype and left.shape == right.shape, key
        if left.dtype.kind in "fc":
            assert left.tobytes() == right.tobytes(), key  # bitwise, NaN included
        else:
            assert np.array_equal(left, right), key


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("pcsim: error: "), err
    return err


def test_bars_killed_with_sigkill_resumes_to_the_uninterrupted_file(tmp_path):
    whole = tmp_path / "whole.h5"
    with sim.run("learning/bars", whole, overrides=BARS) as result:
        # what the comparison covers: 300 trials of learning, 8 snapshots of the weights
        assert len(result["trials/index"]) == 300 and len(result["snapshots/trial"]) == 8

    output = tmp_path / "killed.h5"
    checkpoint = checkpoint_of(output)
    process = start("learning/bars", BARS, output)
    wait_for_checkpoint(process, checkpoint, 100)  # the second checkpoint
    process.send_signal(signal.SIGKILL)
    process.communicate()
    assert process.returncode == -signal.SIGKILL
    done = trials_done(checkpoint)  # a later one may have come before the kill
    assert done in (100, 150, 200, 250) and not output.exists()

    # a SIGKILL half-way through writing the next checkpoint leaves its first half under the
    # temporary name of a process that is gone, beside the whole one before it
    dead = next(pid for pid in range(4_000_000, 4_100_000) if not alive(pid))
    half = tmp_path / f".{checkpoint.name}.{HOST}-{dead}.partial"
    data = checkpoint.read_bytes()
    half.write_bytes(data[: len(data) // 2])

    assert main(command("learning/bars", BARS, "-o", str(output), "--resume")) == 0
    assert_same_bitwise(whole, output, [done])
    assert not checkpoint.exists()  # removed once the result is written
    assert not list(tmp_path.glob(".*"))  # the half-written one too (the writer's cleanup)


def test_variance_stopped_with_sigterm_resumes_to_the_uninterrupted_file(tmp_path, capsys):
    whole = tmp_path / "whole.h5"
    sim.run("learning/variance", whole, overrides=VARIANCE).close()

    output = tmp_path / "stopped.h5"
    checkpoint = checkpoint_of(output)
    process = start("learning/variance", VARIANCE, output)
    wait_for_checkpoint(process, checkpoint, 15)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=300)
    # the running trial ends, a checkpoint is taken at its end, then exit 143
    assert process.returncode == 143, stderr
    done = trials_done(checkpoint)
    assert 15 <= done < 60 and not output.exists()
    lines = [line for line in stderr.splitlines() if line.startswith("pcsim: interrupted")]
    assert len(lines) == 1 and f"after trial {done} of 60" in lines[0]
    assert f"kept in the checkpoint {checkpoint} (no result at {output} yet)" in lines[0]
    assert lines[0].endswith("continue with --resume") and "nothing written" not in lines[0]

    # refused, one line each, the checkpoint kept: another scenario, another seed, or a new
    # run over it
    other = {**VARIANCE, "model.covariance.tau_ms": 5000.0}
    assert main(command("learning/variance", other, "-o", str(output), "--resume")) == 2
    assert ("another scenario (parameters.model.covariance.tau_ms differs)"
            in one_error_line(capsys))
    assert main(command("learning/variance", VARIANCE, "-o", str(output), "--resume",
                        "--seed", "7")) == 2
    assert "(parameters.seed differs)" in one_error_line(capsys)
    # a list of plain values is one parameter, named as --set and pcsim diff name it
    reordered = {**VARIANCE, "record.variables": '["free_energy","belief","error","precision"]'}
    assert main(command("learning/variance", reordered, "-o", str(output), "--resume")) == 2
    assert "(parameters.record.variables differs)" in one_error_line(capsys)
    assert main(command("learning/variance", VARIANCE, "-o", str(output))) == 2
    assert "pass --resume to continue that run" in one_error_line(capsys)
    assert trials_done(checkpoint) == done and not output.exists()

    assert main(command("learning/variance", VARIANCE, "-o", str(output), "--resume")) == 0
    assert_same_bitwise(whole, output, [done])
    assert not checkpoint.exists()


class StopAfter:
    """A progress listener that sends this process SIGTERM when trial ``trials`` ends: a
    signal at a known trial boundary."""

    def __init__(self, trials: int) -> None:
        self.trials = trials

    def __call__(self, fraction: float) -> None:
        pass

    def trial_done(self, done: int, total: int, free_energy: float | None) -> None:
        if done == self.trials:
            os.kill(os.getpid(), signal.SIGTERM)


@pytest.mark.parametrize(("name", "overrides", "stop"), [
    ("learning/oddball", {"protocol.trials": 12}, 7),  # ERP traces kept by the readout
    ("learning/prior", {"protocol.conditions.0.count": 30}, 11),  # a learned prior
    ("learning/weights", {}, 100),  # weights learned, then a test phase without learning
    ("perception/creak_where", {}, 2),  # discrete, mean-field; evidence kept across trials
    ("disorders/anxiety", {}, 3),  # discrete; the ideal observer's readout
    # top-down attention, reaction times: one trial of each of the six conditions
    ("attention/posner", {f"protocol.conditions.{i}.count": 1 for i in range(6)}, 3),
])
def test_other_mechanisms_and_families_resume_bitwise(tmp_path, name, overrides, stop):
    overrides = {**overrides, "record.checkpoint_every": 1000}  # a checkpoint on signals only
    whole, output = tmp_path / "whole.h5", tmp_path / "stopped.h5"
    run_scenario(load_scenario(name, overrides=overrides), whole)
    with pytest.raises(RunInterrupted, match=f"after trial {stop} of"):
        run_scenario(load_scenario(name, overrides=overrides), output, StopAfter(stop))
    assert trials_done(checkpoint_of(output)) == stop
    run_scenario(load_scenario(name, overrides=overrides), output, resume=True)
    assert_same_bitwise(whole, output, [stop])


def test_resume_twice_lists_both_places(tmp_path, capsys):
    """Stopped twice, resumed twice: both places in ``resumed_at_trials``, which ``pcsim show``
    reports and ``pcsim diff`` ignores (the two files are identical)."""
    overrides = {"protocol.conditions.0.count": 20, "record.checkpoint_every": 5}
    whole, output = tmp_path / "whole.h5", tmp_path / "stopped.h5"
    run_scenario(load_scenario("learning/prior", overrides=overrides), whole)
    with pytest.raises(RunInterrupted) as stopped:
        run_scenario(load_scenario("learning/prior", overrides=overrides), output, StopAfter(7))
    with h5py.File(whole, "r") as file:
        t_ms = file["trials/t_stop"][6] * 1e3
    # stopped at a checkpoint: what was kept, where, and how to go on
    assert str(stopped.value) == (
        f"interrupted by SIGTERM after trial 7 of 20 at t = {t_ms:g} ms; the trials done are "
        f"kept in the checkpoint {checkpoint_of(output)} (no result at {output} yet): "
        "continue with --resume")
    with pytest.raises(RunInterrupted):
        run_scenario(load_scenario("learning/prior", overrides=overrides), output,
                     StopAfter(13), resume=True)
    run_scenario(load_scenario("learning/prior", overrides=overrides), output, resume=True)
    assert_same_bitwise(whole, output, [7, 13])
    capsys.readouterr()
    assert main(["diff", str(whole), str(output)]) == 0
    assert f"{whole} and {output}: identical" in capsys.readouterr().out
    assert main(["show", str(output)]) == 0
    resumed = [line for line in capsys.readouterr().out.splitlines() if "resumed" in line]
    assert resumed == ["  resumed from a checkpoint with 7, then 13 trial(s) done"]
    assert main(["show", str(whole)]) == 0
    assert "resumed" not in capsys.readouterr().out


def test_a_partial_file_kept_on_sigterm_ends_at_the_checkpoint(tmp_path):
    """With --keep-partial the interrupted file holds the trials up to the checkpoint, no
    more; resuming over it (overwrite) gives the uninterrupted file."""
    overrides = {"protocol.conditions.0.count": 20, "record.checkpoint_every": 5}
    whole, output = tmp_path / "whole.h5", tmp_path / "stopped.h5"
    run_scenario(load_scenario("learning/prior", overrides=overrides), whole)
    with pytest.raises(RunInterrupted) as stopped:
        run_scenario(load_scenario("learning/prior", overrides=overrides), output,
                     StopAfter(7), keep_partial=True)
    assert str(stopped.value).endswith(
        f"ms; the trials done are kept in {output} (status interrupted) and in the checkpoint "
        f"{checkpoint_of(output)}: continue with --resume --overwrite")
    with sim.load(whole) as complete, sim.load(output, allow_incomplete=True) as partial:
        assert partial.attrs["status"] == "interrupted"
        assert partial.attrs["failure"] == "interrupted by SIGTERM after trial 7 of 20"
        assert list(partial["trials/index"]) == list(complete["trials/index"][:7])
        assert partial.attrs["stopped_at"] == complete["trials/t_stop"][6]
    run_scenario(load_scenario("learning/prior", overrides=overrides), output, resume=True,
                 overwrite=True)
    assert_same_bitwise(whole, output, [7])


def test_resume_without_a_checkpoint_is_refused(tmp_path, capsys):
    output = tmp_path / "none.h5"
    assert main(command("learning/variance", VARIANCE, "-o", str(output), "--resume")) == 2
    assert "no checkpoint to resume from" in one_error_line(capsys)
    assert not output.exists()
    assert main(command("learning/variance", VARIANCE, "--resume")) == 2
    assert "--resume: expected -o OUT.h5" in one_error_line(capsys)


def test_a_batched_run_refuses_checkpoints(capsys):
    assert main(command("perception/single_cause", {"protocol.batch": 4,
                                                    "record.checkpoint_every": 2},
                        "--check")) == 2
    line = one_error_line(capsys)
    assert "record.checkpoint_every" in line and "batched run" in line


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


@pytest.mark.parametrize("small_at", ["resume", "start"])
def test_a_resumed_run_keeps_the_readouts_its_checkpoint_had(tmp_path, monkeypatch, small_at):
    """Whether a reference readout is turned off (``sim.memory``: half the machine's memory by
    default) is decided when the run starts; resumed on a machine with less (or more) memory,
    the run keeps that decision and ends with the uninterrupted run's file."""
    overrides = {"record.checkpoint_every": 1}
    whole, output = tmp_path / "whole.h5", tmp_path / "stopped.h5"
    real = memory.physical_memory

    def machine(is_small: bool) -> None:
        monkeypatch.setattr(memory, "physical_memory",
                            (lambda: 401_000_000) if is_small else real)

    machine(small_at == "start")
    run_scenario(load_scenario("perception/laplace_gap", overrides=overrides), whole)
    with pytest.raises(RunInterrupted, match="after trial 2 of 6"):
        run_scenario(load_scenario("perception/laplace_gap", overrides=overrides), output,
                     StopAfter(2))
    machine(small_at == "resume")
    # this machine decides otherwise than the one the run started on
    off_now = bool(memory.switched_off(load_scenario("perception/laplace_gap")))
    assert off_now == (small_at == "resume")
    sim.run("perception/laplace_gap", output, overrides=overrides, resume=True).close()
    assert_same_bitwise(whole, output, [2])
    with h5py.File(whole, "r") as file:  # the comparison covers a reference readout
        assert ("readouts_off" in file.attrs) == (small_at == "start")
        assert ("surprise" in file["trials"]) == (small_at == "resume")


def recording(path: Path, values: list[float]) -> ResultWriter:
    """A result being written, with one stream that has recorded ``values``."""
    writer = ResultWriter(path)
    now = {}
    writer.stream("levels/x/belief", 2, lambda: now["x"])
    for value in values:
        now["x"] = [0.5, value]
        writer.streams[0].sample()
    return writer


@pytest.mark.parametrize("bad_at", [3, 1500])  # in the first band of tiles written, the second
def test_a_nan_recorded_before_the_checkpoint_stops_the_resumed_runs_commit(tmp_path, bad_at):
    """The rows a resumed run copies back from its checkpoint are checked as the recorded ones
    are (``sim.io.finite``): its commit refuses what the uninterrupted run's refuses."""
    before, after = [1.0] * 2000, [2.0] * 500  # the samples before the checkpoint, after it
    before[bad_at] = np.nan

    whole = recording(tmp_path / "whole.h5", before + after)
    with pytest.raises(NonFiniteData) as uninterrupted:
        whole.commit()
    whole.abort()

    stopped = recording(tmp_path / "stopped.h5", before)
    stopped.flush()  # as Checkpoints.write: the partial result copied under result/
    with h5py.File(tmp_path / "stopped.h5.checkpoint", "w") as saved:
        for name in stopped.file:
            stopped.file.copy(stopped.file[name], saved.require_group("result"), name=name)
    stopped.abort()

    resumed = recording(tmp_path / "stopped.h5", [])  # built afresh: the stream, empty
    with h5py.File(tmp_path / "stopped.h5.checkpoint", "r") as saved:
        copy_result(saved["result"], resumed)  # as Checkpoints.resume
    for value in after:
        resumed.streams[0].read = lambda value=value: [0.5, value]
        resumed.streams[0].sample()
    resumed.flush()
    assert resumed.file["levels/x/belief"].shape == (2500, 2)
    with pytest.raises(NonFiniteData) as caught:
        resumed.commit()
    resumed.abort()
    assert caught.value.found.path == uninterrupted.value.found.path == "/levels/x/belief"
    assert caught.value.found.index == uninterrupted.value.found.index == (bad_at, 1)
    assert not (tmp_path / "stopped.h5").exists()
