"""Signals that land where Python cannot raise (a garbage collector's callback, where an
exception is printed as a traceback and dropped; seen in the sweep's SIGTERM test):

- a second SIGTERM stops a run at once, except in a sweep's worker (``sim.stop_signals``):
  there it asks what the first asked, and the run stops at its next step;
- the sweep's own ``Terminated``, raised inside such a callback, is kept quiet and raised
  again by the sweep's loop (``sim.sweeps.run.terminate_as_interrupt``)."""

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



class _Referent:
    """An object whose weakref callback runs, as a garbage collector's callbacks do, when it
    goes."""


def test_a_sweeps_sigterm_lost_in_a_callback_is_raised_again(capsys):
    """The sweep's SIGTERM raises ``Terminated`` where the interpreter is; inside a weakref's
    callback Python prints it and goes on. It is kept quiet there, and the sweep's loop raises
    it at its next outcome or tick (``raise_if_lost``)."""
    import weakref

    from sim.sweeps.run import Terminated, terminate_as_interrupt

    referent = _Referent()
    with terminate_as_interrupt() as term:
        ref = weakref.ref(referent, lambda _: deliver(signal.SIGTERM))
        del referent  # the callback runs here; its Terminated does not come out
        assert ref() is None and term.fired and term.lost
        with pytest.raises(Terminated):
            term.raise_if_lost()
        term.raise_if_lost()  # once
        deliver(signal.SIGTERM)  # a second SIGTERM is ignored
    assert "Traceback" not in capsys.readouterr().err
