"""What a second SIGINT or SIGTERM means in this process.

A run's first signal asks it to stop at the next step boundary (``sim.guard.interrupt_handlers``;
a compiled program is sent SIGINT: ``sim.compiled.launch``). A second one stops at once by
default: ``KeyboardInterrupt``, raised wherever the interpreter is (a user pressing Ctrl-C twice).

A sweep's worker asks instead (``sim.sweeps.serve``): it can be sent SIGTERM twice for one stop,
by a scheduler signalling the sweep's process group and by its sweep stopping its workers
(``sim.sweeps.pool.LocalPool.close``), and the sweep itself escalates with SIGKILL. Raised there,
the second signal's ``KeyboardInterrupt`` landed once inside a garbage collector's callback,
where Python prints it as a traceback ("Exception ignored in") instead of raising it (seen in
the suite's SIGTERM sweep test). No Brian2, no NumPy."""

from __future__ import annotations

_state = {"second_stops_at_once": True}


def second_signal_stops_at_once() -> bool:
    """Whether a second SIGINT or SIGTERM raises ``KeyboardInterrupt`` (the default)."""
    return _state["second_stops_at_once"]


def repeated_signals_only_ask() -> None:
    """From now on in this process, a repeated signal asks what the first asked, nothing more."""
    _state["second_stops_at_once"] = False
