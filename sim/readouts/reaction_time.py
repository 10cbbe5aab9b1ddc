"""Reaction time: from a target's onset until the belief that it is present crosses a threshold.

``[readouts.reaction_time]`` switches it on: ``level`` (a belief level, one unit per
location), ``threshold`` (the belief at which the target counts as seen; within the range the
belief reaches), ``onset_ms`` (the target's onset, from each trial's start) and ``target``
(``"stimulus"``: the unit whose input is largest at the trial's end, the target's location;
or a unit index for every trial). From the onset on, every step, the first unit whose belief
exceeds the threshold answers: the trial's reaction time is when it did, and it is correct if it
is the target's unit. A trial where no unit crosses is a miss: RT = NaN, not correct.

Columns: ``reaction_time`` (ms), ``correct``, ``target_unit``. Beside the table,
``/reaction_time/<column>`` holds per condition (or per trial name, without conditions) the
mean RT of correct trials (``mean_ms``), the number of trials (``count``) and of misses
(``misses``), with ``condition`` naming each row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from circuits import schedule
from sim.io.writer import write_array
from sim.readouts import Readout


@dataclass(frozen=True)
class Settings:
    level: str
    threshold: float
    onset_ms: float
    target: str | int


ONSET_SLACK_MS = 1e-9  # a step at the onset, up to rounding of the clock, counts


def in_trial_ms(now_s: Any, start_s: Any) -> Any:
    """The time since the trial's start (ms) from network times (s), as the check computes
    it (numbers or arrays, the same arithmetic: a compiled run's readout equals the
    runtime's bit for bit)."""
    return 1e3 * (now_s - start_s)


def before_onset(now_ms: Any, onset_ms: float) -> Any:
    return now_ms < onset_ms - ONSET_SLACK_MS


class Watch:
    """The run's crossing detector: which unit crossed first in this trial, and when."""

    def __init__(self, simulation: Any, settings: Settings) -> None:
        names = [level.name for level in simulation.model.belief_levels]
        self.belief = simulation.beliefs[names.index(settings.level)].variables[
            "belief"].get_value()
        self.simulation, self.settings = simulation, settings
        self.answer: tuple[int, float] | None = None

    def check(self) -> None:
        if self.answer is not None:
            return
        now_ms = in_trial_ms(self.simulation.clock_time(), self.simulation.t_start)
        if before_onset(now_ms, self.settings.onset_ms):
            return
        above = self.belief > self.settings.threshold
        if above.any():
            self.answer = (int(np.argmax(np.where(above, self.belief, -np.inf))),
                           now_ms - self.settings.onset_ms)


class ReactionTime(Readout):
    name = "reaction_time"
    family = "hierarchical"
    takes_settings = True
    units: ClassVar[dict[str, str]] = {"reaction_time": "ms"}
    nan_means: ClassVar[dict[str, str]] = {
        "reaction_time": "a miss: no belief crossed the threshold after the onset"}

    def parse(self, fields: Any, model: Any) -> Settings:
        names = [level.name for level in model.belief_levels]
        level = fields.text("level", choices=tuple(names))
        threshold = fields.number("threshold")
        onset = fields.number("onset_ms", minimum=0.0)
        raw = fields.raw("target", default="stimulus")
        if raw != "stimulus" and not (isinstance(raw, int) and not isinstance(raw, bool)
                                      and raw >= 0):
            raise fields.error("target", f"expected \"stimulus\" or a unit index, got {raw!r}")
        fields.close()
        return Settings(level, float(threshold), float(onset), raw)

    def describe(self, settings: Settings) -> dict:
        return {"level": settings.level, "threshold": settings.threshold,
                "onset_ms": settings.onset_ms, "target": settings.target}

    def objects(self, simulation: Any, settings: Settings) -> list:
        from brian2 import NetworkOperation

        watch = simulation.readout_state[self.name] = Watch(simulation, settings)
        return [NetworkOperation(watch.check, when=schedule.SLOT, order=schedule.STIMULUS - 1,
                                 clock=simulation.clock, name="reaction_time")]

    def compiled(self, simulation: Any, settings: Settings, context: Any) -> list:
        """The check in compiled code: a watcher unit per belief unit (the belief linked)
        keeps the step of its first crossing after the onset and the belief then; the
        answer, the first crossing's unit with the largest belief, is chosen after the run
        (``replayed``) as the runtime's ``Watch.check`` chooses it at that step. Whether a step
        is past the onset is decided ahead, with the runtime's arithmetic."""
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
                              clock=context.clock, name="reaction_time_watch",
                              namespace={**context.namespace,
                                         "rt_ready": TimedArray(ready, dt=context.clock.dt,
                                                               name="rt_ready")})
        watcher.threshold = settings.threshold  # a value, not a constant of the code: a
        # sweep over the threshold runs one compiled program (sim.compiled)
        watcher.watched = linked_var(beliefs, "belief")
        watcher.crossed_step = -1
        crossing = "(rt_ready(t) * int(crossed_step < 0) * int(watched > threshold))"
        watcher.run_regularly(
            f"{blend('crossed_value', 'watched', crossing)}\n"
            f"{blend('crossed_step', 'timestep(t, dt)', crossing)}",
            when=schedule.SLOT, order=schedule.STIMULUS - 1, name="reaction_time_check")
        watcher.run_regularly(blend("crossed_step", "-1", f"{STARTS}(t)"), when="start",
                              order=ORDER, name="reaction_time_reset")
        context.readout_state[self.name] = watcher
        return [watcher]

    def replayed(self, simulation: Any, settings: Settings, recorded: Any,
                 position: int) -> None:
        """The trial's answer from its watcher's state at its end (``compiled``)."""
        steps, values = recorded["crossed_step"], recorded["crossed_value"]
        crossed = steps >= 0
        watch: Watch = simulation.readout_state[self.name]
        if not crossed.any():
            watch.answer = None
            return
        first = steps[crossed].min()
        unit = int(np.argmax(np.where(steps == first, values, -np.inf)))
        timeline = simulation.compiled_timeline
        start = timeline.first_steps[position]
        now_ms = in_trial_ms(timeline.time(int(first)), timeline.time(int(start)))
        watch.answer = (unit, now_ms - settings.onset_ms)

    def row(self, simulation: Any, trial: Any) -> dict[str, Any]:
        watch: Watch = simulation.readout_state[self.name]
        target = watch.settings.target
        if target == "stimulus":
            target = int(np.argmax(trial.settings.stimulus.values[-1]))
        answer, watch.answer = watch.answer, None  # ready for the next trial
        if answer is None:
            return {"reaction_time": math.nan, "correct": False, "target_unit": target}
        unit, time_ms = answer
        return {"reaction_time": time_ms, "correct": unit == target, "target_unit": target}

    def finish(self, simulation: Any, settings: Settings) -> None:
        rows = simulation.trial_rows
        if not rows:
            return
        keys = [row.get("condition", row["name"]) for row in rows]
        groups = list(dict.fromkeys(keys))
        table = simulation.writer.file.require_group("reaction_time")
        means, counts, misses = [], [], []
        for group in groups:
            chosen = [row for row, key in zip(rows, keys, strict=True) if key == group]
            times = [row["reaction_time"] for row in chosen if row["correct"]]
            means.append(float(np.mean(times)) if times else math.nan)
            counts.append(len(chosen))
            misses.append(sum(math.isnan(row["reaction_time"]) for row in chosen))
        write_array(table, "condition", np.array(groups, dtype=object), units="")
        write_array(table, "mean_ms", np.array(means), units="ms",
                    nan_means="no trial of this condition was answered correctly")
        write_array(table, "count", np.array(counts, dtype=np.int64))
        write_array(table, "misses", np.array(misses, dtype=np.int64))


READOUT = ReactionTime()
