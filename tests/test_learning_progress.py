"""A long learning run shows its progress on a terminal (trials done, F, time left) and Ctrl-C
(SIGINT) leaves either nothing or, with --keep-partial, a readable file whose snapshots and
trial table agree."""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import sim
from sim.scenario_writer import write_scenario

TRIALS = 10_000  # ~10 s: the run goes on well after the bar first shows a trial


def learning_run(tmp_path):
    table = {
        "name": "long_learning", "dt_ms": 0.5,
        "model": {"errors": "instantaneous", "tau_belief_ms": 2.0,
                  "learning": {"tau_weights_ms": 200.0, "weight_prior_variance": 1.0},
                  "levels": [{"name": "x", "size": 4},
                             {"name": "v", "size": 2, "weights": {"kind": "random"}}]},
        "protocol": {"reset": "beliefs", "conditions": [{
            "name": "train", "count": TRIALS, "duration_ms": 5.0,
            "stimulus": {"kind": "linear_gaussian",
                         "weights": [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.5, -1.0]]}}]},
        "record": {"every_ms": 1.0, "snapshots_every": 2},
    }
    return write_scenario(tmp_path / "long.toml", table)


def start_on_a_terminal(path, output, *extra):
    """The CLI with its stderr on a pseudo-terminal; returns the process and the pty's end."""
    master, slave = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "sim.cli", "run", str(path), "-o", str(output), "--no-plot",
         *extra], stdout=subprocess.PIPE, stderr=slave, text=True)
    os.close(slave)
    return process, master


def read_until(master, pattern: bytes, timeout: float = 300.0) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while pattern not in seen:
        if time.monotonic() > deadline:
            raise AssertionError(f"no {pattern!r} on the terminal in {timeout} s: {seen[-500:]!r}")
        ready, _, _ = select.select([master], [], [], 1.0)
        if ready:
            try:
                seen += os.read(master, 4096)
            except OSError:
                break
    return seen


@pytest.mark.parametrize("keep", [False, True])
def test_progress_then_ctrl_c(tmp_path, keep):
    path = learning_run(tmp_path)
    output = tmp_path / "out" / "long.h5"
    process, master = start_on_a_terminal(path, output, *(["--keep-partial"] if keep else []))
    try:
        shown = read_until(master, f"/{TRIALS}, F ".encode())  # a trial done, its F shown
        shown += read_until(master, b" left")
        process.send_signal(signal.SIGINT)
        _, _ = process.communicate(timeout=120)
        shown += read_until(master, b"\n", timeout=5.0)
    finally:
        if process.poll() is None:
            process.kill()
        os.close(master)
    assert process.returncode == 130
    text = shown.decode(errors="replace")
    assert "Traceback" not in text
    assert ("kept what was simulated" if keep else "nothing written") in text
    if not keep:
        assert not output.exists() and not list(output.parent.iterdir())
        return
    assert [p.name for p in output.parent.iterdir()] == ["long.h5"]
    result = sim.load(output, allow_incomplete=True)
    assert result.attrs["status"] == "interrupted"
    rows = len(result.trials["index"])
    taken = result.snapshots["trial"]
    assert 5 <= rows < TRIALS and len(taken) >= 2
    assert list(taken) == list(range(1, 2 * len(taken), 2))  # after every 2nd trial
    assert taken[-1] < rows
    weights = result.snapshots["levels/v/weights"]
    assert weights.shape == (len(taken), 4, 2) and np.all(np.isfinite(weights))
