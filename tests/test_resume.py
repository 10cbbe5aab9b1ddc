"""Checkpoints and ``pcsim run --resume`` (``sim.checkpoint``): a learning run killed part-way
and resumed ends with the file an uninterrupted run writes, bitwise, in every dataset and
every attribute but the wall-clock ones (and ``resumed_at_trials``, which says it resumed)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
from golden import VOLATILE_ATTRS

from sim.io.partials import HOST

# 300 trials of bars (5 ms each), a checkpoint every 50; variance: 120 trials of 100 ms
BARS = ["learning/bars", "--set", "protocol.conditions.0.count=300",
        "--set", "record.checkpoint_every=50", "--set", "record.snapshots_every=40"]
VARIANCE = ["learning/variance", "--set", "protocol.conditions.0.count=120",
            "--set", "record.checkpoint_every=30"]
WALL_CLOCK = {"created_utc"}  # when the run started; and the versions (golden.VOLATILE_ATTRS)


def pcsim(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sim.cli", "run", *args, "--no-plot"],
                          capture_output=True, text=True, timeout=600)


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "sim.cli", "run", *args, "--no-plot"],
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


def wait_for_checkpoint(process: subprocess.Popen, checkpoint: Path, done: int) -> int:
    deadline = time.monotonic() + 300
    while (found := trials_done(checkpoint)) < done:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.01)
    return found


def contents(path: Path) -> dict[str, object]:
    """Every dataset's values and every attribute of a result, by path (``@`` for an
    attribute), the wall-clock and version attributes left out."""
    found: dict[str, object] = {}
    with h5py.File(path, "r") as file:
        def visit(name: str, node) -> None:
            for key, value in node.attrs.items():
                if key not in VOLATILE_ATTRS | WALL_CLOCK:
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


def test_bars_killed_with_sigkill_resumes_to_the_uninterrupted_file(tmp_path):
    whole = tmp_path / "whole.h5"
    assert pcsim(*BARS, "-o", str(whole)).returncode == 0
    with h5py.File(whole, "r") as file:  # what the comparison covers: learning and snapshots
        assert len(file["trials/index"]) == 300 and len(file["snapshots/trial"]) == 8

    output = tmp_path / "killed.h5"
    checkpoint = checkpoint_of(output)
    process = start(*BARS, "-o", str(output))
    done = wait_for_checkpoint(process, checkpoint, 100)  # the second checkpoint
    process.send_signal(signal.SIGKILL)
    process.communicate()
    assert process.returncode == -signal.SIGKILL
    done = trials_done(checkpoint)  # a third may have come before the kill
    assert done in (100, 150, 200, 250) and not output.exists()

    resumed = pcsim(*BARS, "-o", str(output), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert_same_bitwise(whole, output, [done])
    assert not checkpoint.exists()  # removed once the result is written
    assert not list(tmp_path.glob(".*.partial"))  # nor a temporary file left


def test_variance_stopped_with_sigterm_resumes_to_the_uninterrupted_file(tmp_path):
    whole = tmp_path / "whole.h5"
    assert pcsim(*VARIANCE, "-o", str(whole)).returncode == 0

    output = tmp_path / "stopped.h5"
    checkpoint = checkpoint_of(output)
    process = start(*VARIANCE, "-o", str(output))
    wait_for_checkpoint(process, checkpoint, 30)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=300)
    # the running trial ends, a checkpoint is taken at its end, then exit 143
    assert process.returncode == 143, stderr
    done = trials_done(checkpoint)
    assert 30 <= done < 120 and not output.exists()
    lines = [line for line in stderr.splitlines() if line.startswith("pcsim: interrupted")]
    assert len(lines) == 1 and f"after trial {done} of 120" in lines[0]
    assert str(checkpoint) in lines[0] and "--resume" in lines[0]

    # refused, one line each, the checkpoint kept: another scenario, or a new run over it
    other = pcsim(*VARIANCE, "--set", "model.covariance.tau_ms=5000", "-o", str(output),
                  "--resume")
    assert other.returncode == 2
    assert other.stderr.strip().count("\n") == 0
    assert "another scenario (parameters.model.covariance.tau_ms differs)" in other.stderr
    seed = pcsim(*VARIANCE, "--seed", "7", "-o", str(output), "--resume")
    assert seed.returncode == 2 and "differs" in seed.stderr
    fresh = pcsim(*VARIANCE, "-o", str(output))
    assert fresh.returncode == 2 and "--resume" in fresh.stderr
    assert trials_done(checkpoint) == done and not output.exists()

    resumed = pcsim(*VARIANCE, "-o", str(output), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert_same_bitwise(whole, output, [done])
    assert not checkpoint.exists()


def test_a_kill_while_a_checkpoint_is_written_leaves_the_one_before(tmp_path):
    """A checkpoint is written to a temporary file and renamed: a kill in the middle leaves
    that temporary file, half written, beside the checkpoint before it, which resumes."""
    args = ["learning/bars", "--set", "protocol.conditions.0.count=60",
            "--set", "record.checkpoint_every=20"]
    whole = tmp_path / "whole.h5"
    assert pcsim(*args, "-o", str(whole)).returncode == 0
    output = tmp_path / "killed.h5"
    checkpoint = checkpoint_of(output)
    process = start(*args, "-o", str(output))
    wait_for_checkpoint(process, checkpoint, 20)
    process.send_signal(signal.SIGKILL)
    process.communicate()
    done = trials_done(checkpoint)
    # what a SIGKILL half-way through the next checkpoint leaves: its first half, under the
    # temporary name of a process that is gone
    dead = next(pid for pid in range(4_000_000, 4_100_000) if not _alive(pid))
    half = tmp_path / f".{checkpoint.name}.{HOST}-{dead}.partial"
    data = checkpoint.read_bytes()
    half.write_bytes(data[: len(data) // 2])

    resumed = pcsim(*args, "-o", str(output), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert_same_bitwise(whole, output, [done])
    assert not half.exists()  # the next run in the folder removed it


def test_resume_without_a_checkpoint_is_refused(tmp_path):
    output = tmp_path / "none.h5"
    refused = pcsim(*VARIANCE, "-o", str(output), "--resume")
    assert refused.returncode == 2
    assert refused.stderr.strip().count("\n") == 0
    assert "no checkpoint to resume from" in refused.stderr and not output.exists()
    no_output = pcsim(*VARIANCE, "--resume")
    assert no_output.returncode == 2 and "expected -o OUT.h5" in no_output.stderr


def test_a_batched_run_refuses_checkpoints(tmp_path):
    refused = pcsim("perception/single_cause", "--set", "protocol.batch=4",
                    "--set", "record.checkpoint_every=2", "--check")
    assert refused.returncode == 2
    assert "record.checkpoint_every" in refused.stderr and "batched" in refused.stderr


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True
