"""A second SIGTERM stops a run at once, except in a sweep's worker (``sim.stop_signals``):
there it asks what the first asked, the run stops at its next step, and nothing is raised where
Python could only print it (a garbage collector's callback, seen in the sweep's SIGTERM test)."""

from __future__ import annotations

import os
import signal
from types import SimpleNamespace

import pytest

from sim import stop_signals
from sim.guard import interrupt_handlers


def deliver(signum: int) -> None:
    """``signum`` to this process, its handler run before returning (at a bytecode boundary)."""
    os.kill(os.getpid(), signum)
    for _ in range(1000):  # the handler runs between these
        pass


@pytest.fixture
def restored():
    """The process's policy as it was (the default: a second signal stops at once)."""
    saved = dict(stop_signals._state)
    yield
    stop_signals._state.update(saved)


def test_a_second_signal_stops_a_run_at_once(restored):
    guard = SimpleNamespace(interrupted=None)
    with interrupt_handlers(guard):
        deliver(signal.SIGTERM)
        assert guard.interrupted == "SIGTERM"
        with pytest.raises(KeyboardInterrupt):
            deliver(signal.SIGTERM)


def test_in_a_sweeps_worker_a_second_signal_only_asks_again(restored):
    stop_signals.repeated_signals_only_ask()
    guard = SimpleNamespace(interrupted=None)
    with interrupt_handlers(guard):
        deliver(signal.SIGTERM)
        deliver(signal.SIGTERM)  # raises without the worker's setting
        deliver(signal.SIGINT)
    assert guard.interrupted == "SIGTERM"  # the run stops at its next step

