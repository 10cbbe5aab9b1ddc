r"""Act on Q (the seed's step 5): when the belief is ready to act on, by a stopping rule the
scenario sets, the choice it acts on, and for the discrete family whether to check the
runner-up. Posner's reaction time is this readout's decision time under the threshold rule.

``[readouts.decision]`` switches it on, for both families: ``rule`` (``"stable"``, the
default, with ``tolerance_per_ms`` > 0; or ``"threshold"``, with ``threshold``) and
``onset_ms`` (default 0, from each trial's start). The discrete family adds ``check_above`` (a
probability in [0, 1]); the hierarchical family names the belief level it watches, ``level``,
and how the choice is read, ``choose``: ``"region"`` (the default) of the value of unit
``unit`` (default 0), by ``bounds`` (an increasing list, default ``[0.0]``) and ``labels`` (one
more than the bounds, default ``["negative", "positive"]``); or ``"largest"``, the unit with the
largest belief, named by ``labels`` (one per unit, default ``unit 0``, ``unit 1``, ...), with an
optional ``target`` (``"stimulus"``: the unit whose input is largest at the trial's end; or a
unit index for every trial) that the choice is scored against.

**Definition.** Q_n is the watched belief at step n of a trial (t_n = n dt in-trial ms): the
posterior over the causes (discrete; a mean-field Q's factors side by side), or the level's
beliefs mu (hierarchical), read every step of the run (not from the recording), as the recorder
reads it (discrete: after the recorder, before the belief units move; hierarchical: before the
step's input). The decision step n is, by rule:

- ``stable``: with the rate r_n = max_k |Q_n[k] - Q_{n-1}[k]| / dt (per ms, n >= 1), the first
  n with t_n >= onset_ms such that r_m < tolerance for every m >= n up to the trial's last step:
  Q has stabilised from then on. None when Q still moves by the tolerance at the last step.
- ``threshold``: the first n with t_n >= onset_ms at which some Q_n[k] > threshold (checked
  from the onset's own step). None when no entry crosses: a miss.

The trial's decision time is t_n - onset_ms (ms), NaN when there is no decision step. The
choice is read from Q at the decision step (at the trial's end, as ``final_belief``, where
there is none):

- discrete: the most probable cause (``decision``) and its probability (``decision_p``); the
  runner-up (the second most probable, ``runner_up``, ``runner_up_p``) is to be checked
  (``check_runner_up``) when its probability exceeds ``check_above``. A mean-field Q chooses
  per factor: each column is a group, ``decision/<factor>`` and so on (the decision time is
  one, Q's as a whole);
- hierarchical, ``region``: the value v of unit ``unit`` (``decision_value``) and its region
  (``decision``): ``labels[i]`` for the i with bounds[i-1] <= v < bounds[i] (``labels[0]``
  below the first bound): by default the sign;
- hierarchical, ``largest``: the unit k with the largest belief (``decision_unit``, its label
  ``decision``, its belief ``decision_value``); under the threshold rule, the first unit to
  cross (the largest of those above the threshold at that step). With a ``target``:
  ``target_unit``, and ``correct`` (a decision step, and the target's unit chosen).

``decision_text`` says it in words: ``house settling (0.52); check the cat (0.31)``, or
``house settling (0.93)`` when the runner-up is not to be checked (``positive (0.81)``,
hierarchical; ``what: cat (0.62); where: outside (0.80)``, mean-field); a scenario's
``[[report.headline]]`` may print it (perception/creak).

With a ``target``, ``/decision/<column>`` beside the table holds per condition (or per trial
name, without conditions) the mean decision time of the correct trials (``mean_ms``), the
number of trials (``count``) and of trials without a decision (``misses``), with ``condition``
naming each row: Posner's mean reaction times.

The runtime device keeps Q of every step and applies the rule to a block of steps at once
(``sim.readouts.decision_watch``; a discrete run's circuits keep their steps without a Python
call of the watch's own). The compiled device (``sim.compiled``) checks the threshold rule with
the largest choice in compiled code, every step (``sim.readouts.decision_watch.compiled``); with
the other rules and choices ``auto`` runs a hierarchical scenario on the runtime device.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from sim.io.writer import write_array
from sim.readouts import Readout
from sim.readouts import decision_watch as watching

# each stopping rule and the one field that sets it (a number; the stable rule's > 0)
RULE_FIELDS = {"stable": "tolerance_per_ms", "threshold": "threshold"}
RULES = tuple(RULE_FIELDS)
CHOICES = ("region", "largest")


@dataclass(frozen=True)
class Settings:
    rule: str
    onset_ms: float
    tolerance_per_ms: float | None = None  # rule "stable"
    threshold: float | None = None  # rule "threshold"
    check_above: float | None = None  # discrete
    factors: tuple[tuple[str, int], ...] = ()  # discrete mean-field: (name, causes) each
    level: str | None = None  # hierarchical
    choose: str = "region"
    unit: int = 0
    bounds: tuple[float, ...] = (0.0,)
    labels: tuple[str, ...] = ("negative", "positive")
    target: str | int | None = None  # choose "largest": "stimulus" or a unit


class Decision(Readout):
    name = "decision"
    family = None
    takes_settings = True
    units: ClassVar[dict[str, str]] = {"decision_time": "ms"}
    nan_means: ClassVar[dict[str, str]] = {
        "decision_time": "no decision: under the stable rule, Q's change per ms was still at "
                         "or above tolerance_per_ms at the trial's last step (Q never "
                         "stabilised); under the threshold rule, no entry of Q crossed the "
                         "threshold after the onset (a miss). The choice is read at the "
                         "trial's end"}

    def parse(self, fields: Any, model: Any) -> Settings:
        rule = fields.text("rule", default="stable", choices=RULES)
        field = RULE_FIELDS[rule]
        for other_rule, other in RULE_FIELDS.items():
            if other_rule != rule and fields.has(other):
                raise fields.error(other, f"the {other_rule} rule's field; with rule "
                                          f"= \"{rule}\" expected {field}")
        stop = {field: float(fields.number(field, **({"positive": True} if rule == "stable"
                                                     else {})))}
        onset = float(fields.number("onset_ms", default=0.0, minimum=0.0))
        if hasattr(model, "factors"):  # discrete
            check = float(fields.number("check_above", minimum=0.0, maximum=1.0))
            fields.close()
            factors = tuple((factor.name, len(factor.causes)) for factor in model.factors) \
                if model.mean_field else ()
            return Settings(rule, onset, **stop, check_above=check, factors=factors)
        names = [level.name for level in model.belief_levels]
        level = fields.text("level", choices=tuple(names))
        size = model.belief_levels[names.index(level)].size
        choose = fields.text("choose", default="region", choices=CHOICES)
        if choose == "largest":
            labels = fields.raw("labels", [f"unit {k}" for k in range(size)])
            _check_labels(fields, labels, size, "one per unit of the level")
            target = fields.raw("target", None)
            if target is not None and target != "stimulus" and not (
                    isinstance(target, int) and not isinstance(target, bool)
                    and 0 <= target < size):
                raise fields.error("target", f"expected \"stimulus\" or a unit index (0 to "
                                             f"{size - 1}), got {target!r}")
            fields.close()
            return Settings(rule, onset, **stop, level=level, choose=choose,
                            labels=tuple(labels), target=target)
        unit = int(fields.number("unit", default=0, minimum=0, maximum=size - 1, integer=True))
        bounds = fields.raw("bounds", [0.0])
        if not (isinstance(bounds, list) and bounds and all(
                isinstance(b, int | float) and not isinstance(b, bool) for b in bounds)
                and all(a < b for a, b in itertools.pairwise(bounds))):
            raise fields.error("bounds", f"expected an increasing list of numbers, got "
                                         f"{bounds!r}")
        labels = fields.raw("labels", ["negative", "positive"] if bounds == [0.0] else None)
        _check_labels(fields, labels, len(bounds) + 1, "one more than the bounds")
        fields.close()
        return Settings(rule, onset, **stop, level=level, unit=unit,
                        bounds=tuple(float(b) for b in bounds), labels=tuple(labels))

    def describe(self, settings: Settings) -> dict:
        out: dict[str, Any] = {"rule": settings.rule, "onset_ms": settings.onset_ms}
        field = RULE_FIELDS[settings.rule]
        out[field] = getattr(settings, field)
        if settings.level is None:
            return {**out, "check_above": settings.check_above}
        out.update(level=settings.level, choose=settings.choose,
                   labels=list(settings.labels))
        if settings.choose == "largest":
            return out if settings.target is None else {**out, "target": settings.target}
        return {**out, "unit": settings.unit, "bounds": list(settings.bounds)}

    def objects(self, simulation: Any, settings: Settings) -> list:
        watch = simulation.readout_state[self.name] = watching.Watch(simulation, settings)
        return watch.objects

    def compiled(self, simulation: Any, settings: Settings, context: Any) -> list | None:
        return watching.compiled(simulation, settings, context)

    def replayed(self, simulation: Any, settings: Settings, recorded: Any,
                 position: int) -> None:
        watching.replayed(simulation, recorded, position)

    def row(self, simulation: Any, trial: Any) -> dict[str, Any]:
        watch: watching.Watch = simulation.readout_state[self.name]
        settings = watch.settings
        time_ms, q = watch.outcome()
        if q is None:  # no decision: Q at the trial's end, as its final_belief
            q = np.array(watch.read(), dtype=float)
        if settings.level is None and not settings.factors:
            return {"decision_time": time_ms,
                    **_most_probable(q, simulation.model.causes, settings.check_above)}
        if settings.level is None:  # mean-field: a choice per factor
            row: dict[str, Any] = {"decision_time": time_ms}
            texts = []
            ends = np.cumsum([size for _, size in settings.factors])
            for (name, _), factor, q_f in zip(settings.factors, simulation.model.factors,
                                              np.split(q, ends[:-1]), strict=True):
                chosen = _most_probable(q_f, factor.causes, settings.check_above, ", ")
                texts.append(f"{name}: {chosen.pop('decision_text')}")
                row.update({f"{column}/{name}": value for column, value in chosen.items()})
            return {**row, "decision_text": "; ".join(texts)}
        if settings.choose == "region":
            value = float(q[settings.unit])
            label = settings.labels[int(np.searchsorted(settings.bounds, value, side="right"))]
            return {"decision_time": time_ms, "decision": label, "decision_value": value,
                    "decision_text": f"{label} ({value:.2f})"}
        unit = int(np.argmax(q))
        label, value = settings.labels[unit], float(q[unit])
        row = {"decision_time": time_ms, "decision": label, "decision_unit": unit,
               "decision_value": value, "decision_text": f"{label} ({value:.2f})"}
        if settings.target is None:
            return row
        target = settings.target
        if target == "stimulus":
            target = int(np.argmax(trial.settings.stimulus.values[-1]))
        return {**row, "correct": not math.isnan(time_ms) and unit == target,
                "target_unit": target}

    def finish(self, simulation: Any, settings: Settings) -> None:
        """Per condition: the mean decision time of the correct trials, the trials, the
        misses (with a ``target`` only)."""
        rows = simulation.trial_rows
        if not rows or settings.target is None:
            return
        keys = [row.get("condition", row["name"]) for row in rows]
        groups = list(dict.fromkeys(keys))
        table = simulation.writer.file.require_group("decision")
        means, counts, misses = [], [], []
        for group in groups:
            chosen = [row for row, key in zip(rows, keys, strict=True) if key == group]
            times = [row["decision_time"] for row in chosen if row["correct"]]
            means.append(float(np.mean(times)) if times else math.nan)
            counts.append(len(chosen))
            misses.append(sum(math.isnan(row["decision_time"]) for row in chosen))
        write_array(table, "condition", np.array(groups, dtype=object), units="")
        write_array(table, "mean_ms", np.array(means), units="ms",
                    nan_means="no trial of this condition was answered correctly")
        write_array(table, "count", np.array(counts, dtype=np.int64))
        write_array(table, "misses", np.array(misses, dtype=np.int64))


def _most_probable(q: np.ndarray, causes: list[str], check_above: float,
                   joiner: str = "; ") -> dict[str, Any]:
    """The discrete choice from Q over ``causes``: the most probable cause, the runner-up and
    whether to check it, and it in words (``joiner`` before the runner-up)."""
    first, second = np.argsort(q, kind="stable")[::-1][:2]
    check = bool(q[second] > check_above)
    text = f"{causes[first]} ({q[first]:.2f})" + (
        f"{joiner}check the {causes[second]} ({q[second]:.2f})" if check else "")
    return {"decision": causes[first], "decision_p": float(q[first]),
            "runner_up": causes[second], "runner_up_p": float(q[second]),
            "check_runner_up": check, "decision_text": text}


def _check_labels(fields: Any, labels: Any, count: int, what: str) -> None:
    if not (isinstance(labels, list) and len(labels) == count
            and all(isinstance(name, str) and name for name in labels)):
        raise fields.error("labels", f"expected {count} names ({what}), got {labels!r}")


READOUT = Decision()
