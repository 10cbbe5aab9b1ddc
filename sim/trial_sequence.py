"""How a run's trials go through Brian2: serial trials as one ``Network.run``, ended and started
between two time steps; a batched run (``sim.batch``) one ``Network.run`` per batch.

Brian2 builds every code object of a network anew at each ``Network.run`` (so that parameters
may change between runs): ~6 ms a run for the hierarchical network, most of the cost of a trial
of 50 steps (``learning/bars``: 600 such trials took 4.8 s, 1.2 s of them time steps; in one
run, 0.65 s). So serial trials share one run: an operation first in each step (Brian2's
``start`` slot, before the guard) counts the steps of the trial running and, on the first step
of the next one, ends that trial and starts the next (``Simulation.end`` and ``start``, as
between two runs); the step then runs from the new trial's state, as a run's first step would.
What a trial switches for itself is switched inside operations that stay in the network
(``circuits.schedule.Switched``; Brian2 reads ``active`` only when a run begins).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from brian2 import NetworkOperation, ms

ORDER = -200  # in the ``start`` slot, before the guard (``sim.guard``, -100)
REPORT_PERIOD_S = 0.5  # Brian2 calls the progress report this often (wall time)


class TrialRuns:
    """Runs ``simulation``'s trials; ``members``: the positions of the trials running now.

    ``progress(fraction)`` (with ``trial_done`` when it has one, ``sim.progress.TextProgress``)
    hears how far the run is; ``on_start(name)`` the name of the trial (or batch) starting;
    ``check_end()`` that the trials running end, before their rows are read from the state
    (the guard's check, ``RunGuard.trial_end``); ``on_done(done)``, when given, that the
    first ``done`` trials in running order are done (a checkpoint may follow,
    ``sim.checkpoint``).
    """

    def __init__(self, simulation: Any, scenario: Any, progress: Any,
                 on_start: Callable[[str], None],
                 check_end: Callable[[], None] = lambda: None,
                 on_done: Callable[[int], None] | None = None) -> None:
        self.simulation, self.scenario = simulation, scenario
        self.progress, self.on_start = progress, on_start
        self.check_end, self.on_done = check_end, on_done
        self.total_ms, self.done_ms = scenario.duration_ms, 0.0
        self.members: list[int] = []
        self.serial = simulation.batch is None and len(scenario.trials) > 1
        self.steps = [scenario.steps(trial.duration_ms) for trial in scenario.trials]
        self.remaining = 0  # steps of the serial trial running
        self.objects = [NetworkOperation(self._tick, when="start", order=ORDER,
                                         clock=simulation.clock, name="trial_sequence")
                        ] if self.serial else []

    def run(self, network: Any, first: int = 0) -> None:
        """Run the trials from running position ``first`` on (a resumed run: the network
        holds the state at that trial's start, ``sim.checkpoint``)."""
        if self.serial:  # every trial in one run
            self.done_ms = sum(trial.duration_ms for trial in self.scenario.trials[:first])
            self.start_members([first])
            network.run(sum(self.steps[first:]) * self.scenario.dt_ms * ms, namespace={},
                        report=self._report(self.done_ms, 1),
                        report_period=REPORT_PERIOD_S * 1000 * ms)
            self.end_members()
            return
        for members in self.simulation.runs():  # one trial, or a batch of them
            self.start_members(members)
            network.run(self.scenario.trials[members[0]].duration_ms * ms, namespace={},
                        report=self._report(self.done_ms, len(members)),
                        report_period=REPORT_PERIOD_S * 1000 * ms)
            self.end_members()

    def _tick(self) -> None:
        if not self.remaining:  # this step is the next trial's first
            self.end_members()
            self.start_members([self.members[0] + 1])
        self.remaining -= 1

    def start_members(self, members: list[int]) -> None:
        """The trials at running positions ``members`` start (a compiled run's replay too)."""
        self.members = members
        trial = self.scenario.trials[members[0]]
        self.on_start(trial.name if len(members) == 1
                      else f"{trial.name}, ... ({len(members)} batched)")
        self.simulation.start(members)
        self.remaining = self.steps[members[0]]

    def end_members(self) -> None:
        """The trials running end: checked, their rows, progress, a checkpoint if due."""
        self.check_end()
        self.simulation.end(self.members)
        self.done_ms += sum(self.scenario.trials[p].duration_ms for p in self.members)
        progress = self.progress
        if hasattr(progress, "trial_done"):
            progress((self.done_ms / self.total_ms) if self.total_ms else 1.0)
            batch = self.simulation.batch  # keeps its rows by position until the end
            done, last = ((batch.done(), batch.rows[self.members[-1]]) if batch is not None
                          else (len(self.simulation.trial_rows), self.simulation.trial_rows[-1]))
            progress.trial_done(done, len(self.scenario.trials), last.get("final_free_energy"))
        if self.on_done is not None:
            self.on_done(self.members[-1] + 1)

    def _report(self, before_ms: float, copies: int) -> Callable:
        def report(elapsed, completed, start, duration) -> None:
            if self.progress:
                self.progress((before_ms + copies * float(completed) * float(duration / ms))
                              / self.total_ms)
        return report
