"""The decision readout's stopping rules, as the run checks them every step: in Python on the
runtime device (``Watch``), and the threshold rule in compiled code (``compiled``, ``replayed``)
on the standalone device. The rules' definitions are ``sim.readouts.decision``'s docstring."""

from __future__ import annotations

from typing import Any

import numpy as np

from circuits import schedule

ONSET_SLACK_MS = 1e-9  # a step at the onset, up to rounding of the clock, counts


def in_trial_ms(now_s: Any, start_s: Any) -> Any:
    """The time since the trial's start (ms) from network times (s), as the check computes
    it (numbers or arrays, the same arithmetic: a compiled run's decision time equals the
    runtime's bit for bit)."""
    return 1e3 * (now_s - start_s)


def before_onset(now_ms: Any, onset_ms: float) -> Any:
    return now_ms < onset_ms - ONSET_SLACK_MS


def check_order(settings: Any) -> int:
    """Where in a step Q is read: discrete, after the recorder and before the belief units
    move (Q(t) as recorded); hierarchical, before the step (mu(t), before the input)."""
    return (schedule.DISCRETE_RECORD + 1 if settings.level is None
            else schedule.STIMULUS - 1)


def q_reader(simulation: Any, settings: Any) -> Any:
    """A function giving the watched Q now as one vector: the discrete belief's factors side
    by side (each its posterior over its causes; beliefs only, not the errors or F), or the
    hierarchical level's beliefs (a view of the Brian2 array, no copy)."""
    if settings.level is None:
        state = simulation.state
        if len(state.circuits) == 1:
            return state.circuits[0].current_belief
        return lambda: np.concatenate(state.current_beliefs())
    names = [level.name for level in simulation.model.belief_levels]
    belief = simulation.beliefs[names.index(settings.level)].variables["belief"].get_value()
    return lambda: belief


class Watch:
    """The current trial's stopping rule: ``decided`` is (in-trial ms, Q) of the decision
    step once the rule has one (the stable rule may take it back while Q moves again)."""

    def __init__(self, simulation: Any, settings: Any) -> None:
        self.simulation, self.settings = simulation, settings
        self.dt_ms = simulation.scenario.dt_ms
        self.read = q_reader(simulation, settings)
        self.trial_start: float | None = None
        self.previous: np.ndarray | None = None  # Q at the step before (stable rule)
        self.change: np.ndarray | None = None  # a buffer: Q_n - Q_{n-1}
        self.decided: tuple[float, np.ndarray] | None = None

    def check(self) -> None:
        simulation, settings = self.simulation, self.settings
        if simulation.t_start != self.trial_start:  # a new trial
            self.trial_start, self.previous, self.decided = simulation.t_start, None, None
        if settings.rule == "threshold":
            if self.decided is not None:
                return
            now_ms = in_trial_ms(simulation.clock_time(), simulation.t_start)
            if before_onset(now_ms, settings.onset_ms):
                return
            q = self.read()
            if (q > settings.threshold).any():
                self.decided = (now_ms, np.array(q, dtype=float))
            return
        now_ms = in_trial_ms(simulation.clock_time(), simulation.t_start)
        q, previous, change = self.read(), self.previous, self.change
        if previous is None:  # the trial's first step: no rate yet
            self.previous = np.array(q, dtype=float)
            self.change = np.empty_like(self.previous)
            return
        np.subtract(q, previous, out=change)
        previous[:] = q
        if before_onset(now_ms, settings.onset_ms):
            return
        np.abs(change, out=change)
        if change.max() / self.dt_ms >= settings.tolerance_per_ms:
            self.decided = None
        elif self.decided is None:
            self.decided = (now_ms, previous.copy())

    def outcome(self) -> tuple[float, np.ndarray | None]:
        """(decision time from the onset in ms, or NaN; Q at the decision step, or None)."""
        if self.decided is None:
            return np.nan, None
        now_ms, q = self.decided
        return now_ms - self.settings.onset_ms, q


def compiled(simulation: Any, settings: Any, context: Any) -> list | None:
    """The threshold rule with the largest unit as the choice, in compiled code (None: the
    other rules and choices have none). A watcher unit per belief unit (the belief linked)
    keeps the step of its first crossing after the onset and its belief then; the decision,
    the first crossing's unit with the largest belief, is put together after the run
    (``replayed``) as ``Watch.check`` finds it at that step: the units above the threshold
    at the first step any is, the largest of them the largest of all. Whether a step is past
    the onset is decided ahead, with the runtime's arithmetic."""
    if settings.rule != "threshold" or settings.choose != "largest":
        return None
    from brian2 import NeuronGroup, TimedArray, linked_var

    from sim.compiled.trial_starts import ORDER, STARTS, blend

    timeline = context.timeline
    now_ms = in_trial_ms(timeline.time(np.arange(timeline.total_steps)),
                         timeline.time(timeline.trial_first_step()))
    ready = (~before_onset(now_ms, settings.onset_ms)).astype(float)
    names = [level.name for level in simulation.model.belief_levels]
    beliefs = context.clone(simulation.beliefs[names.index(settings.level)])
    watcher = NeuronGroup(beliefs.N, "watched : 1 (linked)\ncrossed_step : 1\n"
                          "crossed_value : 1\nthreshold : 1 (shared, constant)",
                          clock=context.clock, name="decision_watch",
                          namespace={**context.namespace,
                                     "decision_ready": TimedArray(ready, dt=context.clock.dt,
                                                                  name="decision_ready")})
    watcher.threshold = settings.threshold  # a value, not a constant of the code: a sweep
    # over the threshold runs one compiled program (sim.compiled.values)
    watcher.watched = linked_var(beliefs, "belief")
    watcher.crossed_step = -1
    crossing = "(decision_ready(t) * int(crossed_step < 0) * int(watched > threshold))"
    watcher.run_regularly(
        f"{blend('crossed_value', 'watched', crossing)}\n"
        f"{blend('crossed_step', 'timestep(t, dt)', crossing)}",
        when=schedule.SLOT, order=check_order(settings), name="decision_check")
    watcher.run_regularly(blend("crossed_step", "-1", f"{STARTS}(t)"), when="start",
                          order=ORDER, name="decision_reset")
    context.readout_state["decision"] = watcher
    return [watcher]


def replayed(simulation: Any, recorded: Any, position: int) -> None:
    """The trial's decision from its watcher's state at its end (``compiled``): Q of the
    units that crossed at the first crossing's step, -inf for the others (below the
    threshold then, so never the largest)."""
    steps, values = recorded["crossed_step"], recorded["crossed_value"]
    watch: Watch = simulation.readout_state["decision"]
    crossed = steps >= 0
    if not crossed.any():
        watch.decided = None
        return
    first = steps[crossed].min()
    timeline = simulation.compiled_timeline
    now_ms = in_trial_ms(timeline.time(int(first)),
                         timeline.time(int(timeline.first_steps[position])))
    watch.decided = (now_ms, np.where(steps == first, values, -np.inf))
