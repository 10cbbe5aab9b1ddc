r"""Act on Q (the seed's step 5): when the belief has stabilised, the choice it acts on, and for
the discrete family whether to check the runner-up.

``[readouts.decision]`` switches it on, for both families: ``tolerance_per_ms`` (> 0, per ms)
and ``onset_ms`` (default 0, from each trial's start). The discrete family (one factor) adds
``check_above`` (a probability in [0, 1]); the hierarchical family names the belief it watches,
``level``, and the unit whose value is the choice, ``unit`` (default 0), with ``bounds`` (an
increasing list, default ``[0.0]``) and ``labels`` (one more than the bounds, default
``["negative", "positive"]``): the regions of the unit's value.

**Definition.** Q_n is the watched belief at step n of a trial (t_n = n dt in-trial ms): the
posterior over the causes (discrete), or the level's beliefs mu (hierarchical), read every step
of the run (not from the recording), before the step's update, as the recorder reads it. Its
rate at step n >= 1 is

    r_n = max_k |Q_n[k] - Q_{n-1}[k]| / dt        (per ms)

and the decision step is the first n >= 1 with t_n >= onset_ms such that r_m < tolerance for
every m >= n up to the trial's last step: Q has stabilised from then on. The trial's decision
time is t_n - onset_ms (ms); NaN when there is none (Q still moves by the tolerance at the
trial's last step). The choice is read from Q at the decision step (at the trial's end, as
``final_belief``, where there is none):

- discrete: the most probable cause (``decision``) and its probability (``decision_p``); the
  runner-up (the second most probable, ``runner_up``, ``runner_up_p``) is to be checked
  (``check_runner_up``) when its probability exceeds ``check_above``;
- hierarchical: the value v of unit ``unit`` (``decision_value``) and its region
  (``decision``): ``labels[i]`` for the i with bounds[i-1] <= v < bounds[i] (``labels[0]``
  below the first bound): by default the sign.

``decision_text`` says it in words: ``house settling (0.52); check the cat (0.31)``, or
``house settling (0.93)`` when the runner-up is not to be checked (``positive (0.81)``,
hierarchical); a scenario's ``[[report.headline]]`` may print it (perception/creak).

The hierarchical compiled device (``sim.compiled``) has no form of this watch (``compiled``
None): ``auto`` runs a scenario with it on the runtime device. A mean-field Q (several factors)
is refused.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from circuits import schedule
from sim.readouts import Readout
from sim.readouts.reaction_time import before_onset, in_trial_ms


@dataclass(frozen=True)
class Settings:
    tolerance_per_ms: float
    onset_ms: float
    check_above: float | None = None  # discrete
    level: str | None = None  # hierarchical
    unit: int = 0
    bounds: tuple[float, ...] = (0.0,)
    labels: tuple[str, ...] = ("negative", "positive")


class Watch:
    """The run's stabilisation detector for the current trial (see the module's docstring)."""

    def __init__(self, simulation: Any, settings: Settings) -> None:
        self.simulation, self.settings = simulation, settings
        self.dt_ms = simulation.scenario.dt_ms
        if settings.level is None:  # discrete: Q from the circuit's state, every step
            def read() -> np.ndarray:
                simulation.state.readout()
                return simulation.state.beliefs[0]
        else:
            names = [level.name for level in simulation.model.belief_levels]
            belief = simulation.beliefs[names.index(settings.level)].variables[
                "belief"].get_value()

            def read() -> np.ndarray:
                return belief
        self.read = read
        self.trial_start: float | None = None
        self.previous: np.ndarray | None = None
        self.decided: tuple[float, np.ndarray] | None = None  # (in-trial ms, Q) of the step

    def check(self) -> None:
        simulation = self.simulation
        if simulation.t_start != self.trial_start:  # a new trial: no rate at its first step
            self.trial_start, self.previous, self.decided = simulation.t_start, None, None
        now_ms = in_trial_ms(simulation.clock_time(), simulation.t_start)
        q = np.array(self.read(), dtype=float)
        previous, self.previous = self.previous, q
        if previous is None or before_onset(now_ms, self.settings.onset_ms):
            return
        rate = float(np.max(np.abs(q - previous))) / self.dt_ms
        if rate >= self.settings.tolerance_per_ms:
            self.decided = None
        elif self.decided is None:
            self.decided = (now_ms, q)

    def outcome(self) -> tuple[float, np.ndarray]:
        """(decision time from the onset in ms, or NaN; Q the choice reads)."""
        if self.decided is None:  # Q at the trial's end, as its final_belief
            return math.nan, np.array(self.read(), dtype=float)
        now_ms, q = self.decided
        return now_ms - self.settings.onset_ms, q


class Decision(Readout):
    name = "decision"
    family = None
    takes_settings = True
    units: ClassVar[dict[str, str]] = {"decision_time": "ms"}
    nan_means: ClassVar[dict[str, str]] = {
        "decision_time": "Q never stabilised: its change per ms was still at or above "
                         "tolerance_per_ms at the trial's last step (the choice is read at "
                         "its end)"}

    def parse(self, fields: Any, model: Any) -> Settings:
        tolerance = float(fields.number("tolerance_per_ms", positive=True))
        onset = float(fields.number("onset_ms", default=0.0, minimum=0.0))
        if hasattr(model, "factors"):  # discrete
            if model.mean_field:
                raise fields.error("tolerance_per_ms", "the decision readout reads one factor's "
                                   "Q; expected a model with one factor (causes), not several")
            check = float(fields.number("check_above", minimum=0.0, maximum=1.0))
            fields.close()
            return Settings(tolerance, onset, check_above=check)
        names = [level.name for level in model.belief_levels]
        level = fields.text("level", choices=tuple(names))
        size = model.belief_levels[names.index(level)].size
        unit = int(fields.number("unit", default=0, minimum=0, maximum=size - 1, integer=True))
        bounds = fields.raw("bounds", [0.0])
        if not (isinstance(bounds, list) and bounds and all(
                isinstance(b, int | float) and not isinstance(b, bool) for b in bounds)
                and all(a < b for a, b in itertools.pairwise(bounds))):
            raise fields.error("bounds", f"expected an increasing list of numbers, got "
                                         f"{bounds!r}")
        labels = fields.raw("labels", ["negative", "positive"] if bounds == [0.0] else None)
        if not (isinstance(labels, list) and len(labels) == len(bounds) + 1
                and all(isinstance(name, str) and name for name in labels)):
            raise fields.error("labels", f"expected {len(bounds) + 1} region names (one more "
                                         f"than the bounds), got {labels!r}")
        fields.close()
        return Settings(tolerance, onset, level=level, unit=unit,
                        bounds=tuple(float(b) for b in bounds), labels=tuple(labels))

    def describe(self, settings: Settings) -> dict:
        out = {"tolerance_per_ms": settings.tolerance_per_ms, "onset_ms": settings.onset_ms}
        if settings.level is None:
            return {**out, "check_above": settings.check_above}
        return {**out, "level": settings.level, "unit": settings.unit,
                "bounds": list(settings.bounds), "labels": list(settings.labels)}

    def objects(self, simulation: Any, settings: Settings) -> list:
        from brian2 import NetworkOperation

        watch = simulation.readout_state[self.name] = Watch(simulation, settings)
        # discrete: after the recorder, before the belief units move (Q(t) as recorded);
        # hierarchical: before the step, as the reaction time reads mu(t)
        order = (schedule.DISCRETE_RECORD + 1 if settings.level is None
                 else schedule.STIMULUS - 1)
        return [NetworkOperation(watch.check, when=schedule.SLOT, order=order,
                                 clock=simulation.clock, name="decision")]

    def row(self, simulation: Any, trial: Any) -> dict[str, Any]:
        watch: Watch = simulation.readout_state[self.name]
        settings = watch.settings
        time_ms, q = watch.outcome()
        if settings.level is None:
            causes = simulation.model.causes
            first, second = np.argsort(q, kind="stable")[::-1][:2]
            check = bool(q[second] > settings.check_above)
            text = f"{causes[first]} ({q[first]:.2f})" + (
                f"; check the {causes[second]} ({q[second]:.2f})" if check else "")
            return {"decision_time": time_ms, "decision": causes[first],
                    "decision_p": float(q[first]), "runner_up": causes[second],
                    "runner_up_p": float(q[second]), "check_runner_up": check,
                    "decision_text": text}
        value = float(q[settings.unit])
        label = settings.labels[int(np.searchsorted(settings.bounds, value, side="right"))]
        return {"decision_time": time_ms, "decision": label, "decision_value": value,
                "decision_text": f"{label} ({value:.2f})"}


READOUT = Decision()
