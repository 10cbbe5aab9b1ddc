"""Watching a run: divergence (NaN, Inf, runaway rates) and Ctrl-C stop it cleanly.

``RunGuard`` adds one ``NetworkOperation`` at the very start of every time step (Brian2's
``start`` slot, before any population moves). Every ``every_steps`` steps, and on every step
that the recorder samples, it checks each watched state variable: any value that is NaN, Inf
or larger in magnitude than ``[numerics] rate_limit`` raises ``RunStopped`` at once, so the
bad state is never written to the result. Because it runs first in the step, the state it
sees is exactly the state the recorder would sample. At every trial's end (``trial_end``, called
by ``sim.trial_sequence`` before the trial's row is read from the state, and so after the
run's last step too) it checks every watched array, whatever its cadence: a blow-up between
two checks, on a trial's last steps, never reaches the trial table. What a run computes from
its state (F, the readouts' columns) is checked as it is written (``sim.io.writer``), and
``non_finite_message`` says what was found there.

SIGINT and SIGTERM only raise a flag (``interrupt_handlers``); the guard turns it into
``RunStopped`` at the next step boundary, where the network and the HDF5 file are consistent
(a run that writes checkpoints finishes its trial first: ``defer_interrupt``, ``sim.checkpoint``).
A second signal interrupts at once (``KeyboardInterrupt``), and the engine removes the
temporary file; not in a sweep's worker, whose sweep escalates itself (``sim.stop_signals``).
"""

from __future__ import annotations

import contextlib
import signal
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from brian2 import NetworkOperation, NeuronGroup
from brian2.core.variables import Subexpression

from sim.errors import NumericalWarning
from sim.io.finite import NonFinite
from sim.stop_signals import second_signal_stops_at_once

CHECK_EVERY_STEPS = 50


class RunStopped(Exception):  # noqa: N818 - a control-flow signal, not an error
    """Raised inside the network to stop it: ``reason`` is "diverged" or "interrupted"."""

    def __init__(self, reason: str, message: str, t_ms: float) -> None:
        super().__init__(message)
        self.reason, self.message, self.t_ms = reason, message, t_ms


@dataclass
class Watched:
    """A 1-D array the guard checks; ``every_steps`` (a multiple of ``CHECK_EVERY_STEPS``)
    checks it less often than the populations, for large arrays that change slowly, such as
    learning weights (None: every check)."""

    population: str
    variable: str
    values: np.ndarray
    every_steps: int | None = None


def watched_variables(objects, recorded: tuple[str, ...] = ()) -> list[Watched]:
    """Every NeuronGroup's integrated variables and those it records (by name); the others
    (inputs delivered by the coupling) are functions of these."""
    watched = []
    for group in objects:
        if not isinstance(group, NeuronGroup):
            continue
        names = set(group.equations.diff_eq_names) | set(recorded)
        for name, variable in group.variables.items():
            if (name not in names or getattr(variable, "constant", True)
                    or getattr(variable, "scalar", True)
                    or isinstance(variable, Subexpression)  # no storage (circuits.discrete)
                    or np.dtype(getattr(variable, "dtype", np.int64)).kind != "f"):
                continue
            watched.append(Watched(group.name, name, variable.get_value()))
    return watched


class RunGuard:
    """Checks a running network; ``operation(clock)`` is the NetworkOperation to add to it."""

    def __init__(self, watched: list[Watched], rate_limit: float, dt_ms: float,
                 record_every_steps: int, every_steps: int = CHECK_EVERY_STEPS) -> None:
        self.watched, self.rate_limit, self.dt_ms = watched, rate_limit, dt_ms
        self.limit_squared = rate_limit**2
        self.record_every = max(1, record_every_steps)
        self.every = max(1, every_steps)
        self.step = 0
        self.interrupted: str | None = None
        self.last_good_ms = 0.0
        self.trial_name = ""
        self.trials: list[str] = []  # the trial of each copy of the network (``start``)
        self.shown: Callable[[str], str] = str  # a population's name as users see it
        self.on_first_step: Callable[[], None] | None = None
        # a run that checkpoints finishes its trial on a signal (``sim.checkpoint``)
        self.defer_interrupt = False

    def operation(self, clock) -> NetworkOperation:
        return NetworkOperation(self._tick, clock=clock, when="start", order=-100,
                                name="pcsim_guard")

    def _tick(self) -> None:
        step = self.step
        self.step += 1
        if self.on_first_step is not None:  # the code is compiled by now (a resumed run
            first, self.on_first_step = self.on_first_step, None  # starts past step 0)
            first()
        if self.interrupted and not self.defer_interrupt:
            raise RunStopped("interrupted", f"interrupted by {self.interrupted}", step * self.dt_ms)
        if step % self.record_every and step % self.every:
            return
        for watched in self.watched:
            if watched.every_steps and step % watched.every_steps:
                continue
            if not self._within_limit(watched.values):
                self._diverged(watched, step * self.dt_ms)
        self.last_good_ms = step * self.dt_ms

    def start(self, name: str, trials: list[str]) -> None:
        """A trial starts, or a batch of them: ``name`` says which, ``trials`` names the
        trial of each copy of the network (one in a serial run)."""
        self.trial_name, self.trials = name, trials

    def trial_end(self, t_ms: float) -> None:
        """The trials running ended at ``t_ms``: every watched array is checked now, whatever
        its cadence (``RunStopped`` naming the trial), before anything is read from the state."""
        for watched in self.watched:
            if not self._within_limit(watched.values):
                self._diverged(watched, t_ms, at_end=True)
        self.last_good_ms = t_ms

    def _within_limit(self, values: np.ndarray) -> bool:
        """Every value finite and at most ``rate_limit`` in magnitude."""
        # v.v <= limit^2 (one BLAS call) implies every |v_i| <= limit; NaN fails it too
        if values.dot(values) <= self.limit_squared or not values.size:
            return True
        return bool(np.max(np.abs(values)) <= self.rate_limit)  # many large-ish values: fine

    def _diverged(self, watched: Watched, t_ms: float, at_end: bool = False) -> None:
        """Stop the run at ``t_ms`` (``at_end``: a trial's end) on ``watched``'s first bad
        unit, naming the trial of its copy (a copy's units are a block of a population's
        array, ``sim.batch``)."""
        values = watched.values
        bad = ~(np.abs(values) <= self.rate_limit)
        unit = int(np.argmax(bad))
        value = values[unit]
        what = (f"= {float(value)}" if not np.isfinite(value) else
                f"= {value:.3g}, beyond [numerics] rate_limit = {self.rate_limit:g}")
        copies, trial = len(self.trials), self.trial_name
        if copies > 1 and len(values) % copies == 0:  # a batch: the copy's own trial and unit
            per_copy = len(values) // copies
            trial, unit = self.trials[unit // per_copy], unit % per_copy
        if at_end:
            when = f"by the end of trial {trial!r} (t = {t_ms:g} ms)"
        else:
            when = f"at t = {t_ms:g} ms (trial {trial!r})" if trial else f"at t = {t_ms:g} ms"
        suggestion = self.dt_ms / 4
        message = (f"diverged {when}: {self.shown(watched.population)}.{watched.variable}"
                   f"[{unit}] {what} ({int(bad.sum())} unit(s)); the last check that passed was "
                   f"at t = {self.last_good_ms:g} ms. The integration step dt_ms = "
                   f"{self.dt_ms:g} is likely too large for the state the run reached: try "
                   f"dt_ms = {suggestion:g} or smaller, or lower the precisions or gains")
        raise RunStopped("diverged", message, t_ms)


def non_finite_message(found: NonFinite, file: Any, trials: list[str]) -> str:
    """Why a run whose every trial ended is not complete: its result holds a value that its
    dataset may not hold (``sim.io.finite``), named with the trial (a row of ``trials/``) or
    the time (a sample of a stream, read from ``file``'s ``time``) it belongs to."""
    row = found.index[0] if found.index else None
    where = ""
    if row is not None and found.path.startswith("/trials/") and row < len(trials):
        where = f" (trial {trials[row]!r})"
    elif row is not None and found.streamed and "time" in file and row < len(file["time"]):
        where = f" (t = {1e3 * float(file['time'][row]):g} ms)"
    return (f"diverged: {found.describe()}{where}. It was computed from a state within "
            "[numerics] rate_limit: a smaller rate_limit stops such a run where it goes wrong, "
            "a smaller dt_ms or lower precisions or gains may keep it finite")


@contextlib.contextmanager
def interrupt_handlers(guard: RunGuard) -> Iterator[None]:
    """While running, SIGINT and SIGTERM ask the guard to stop at the next step boundary."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}

    def handler(signum, frame) -> None:
        if guard.interrupted:  # a second signal: stop now (sim.stop_signals)
            if second_signal_stops_at_once():
                raise KeyboardInterrupt
            return
        guard.interrupted = signal.Signals(signum).name

    for signum in (signal.SIGINT, signal.SIGTERM):
        previous[signum] = signal.signal(signum, handler)
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


class FreeEnergyMonitor:
    """Watches F between recorded samples while the evidence stays the same: a flow that
    descends F never lets it rise (``circuits.discrete``, ``circuits.mean_field``), so a rise
    means the step is too large for it (dt > tau_belief). Rises are counted and reported at the
    end: root attributes ``free_energy_rises`` and ``free_energy_max_rise`` (nat), and a
    ``NumericalWarning``."""

    RELATIVE_TOLERANCE = 1e-9  # rounding of F itself

    def __init__(self) -> None:
        self.previous: float | None = None
        self.rises = 0
        self.max_rise = 0.0
        self.first_rise_s: float | None = None

    def evidence_changed(self) -> None:
        self.previous = None

    def sample(self, t_s: float, free_energy: float) -> None:
        previous, self.previous = self.previous, free_energy
        if previous is None:
            return
        rise = free_energy - previous
        if rise > self.RELATIVE_TOLERANCE * max(1.0, abs(previous)):
            self.rises += 1
            self.max_rise = max(self.max_rise, rise)
            if self.first_rise_s is None:
                self.first_rise_s = t_s

    def report(self, file) -> None:
        file.attrs["free_energy_rises"] = self.rises
        file.attrs["free_energy_max_rise"] = self.max_rise
        if self.rises:
            warnings.warn(f"the free energy rose between {self.rises} pair(s) of samples with "
                          f"the same evidence (by up to {self.max_rise:.3g} nat, first at "
                          f"t = {1e3 * self.first_rise_s:g} ms): the step is too large for the "
                          "belief flow; use dt_ms <= tau_belief_ms", NumericalWarning,
                          stacklevel=2)
