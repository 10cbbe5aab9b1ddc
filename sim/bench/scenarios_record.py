"""The "bundled scenarios" row of ``pcsim bench``: what was measured, its table and JSON row.

Per scenario and per checkout (``now``: the code as it is; ``before``: an older revision,
``sim.bench.checkout``): the first run in a fresh process, then the best of the timed runs
after it, and steps/s from that best. ``ratio`` = before / now (how many times faster now).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

SUM_TARGET = 5.0  # the sum over the bundled scenarios: at least this many times less than before
SECONDS_TARGETS = {"attention/posner": 2.0}  # a scenario's best run: at most this many seconds


@dataclass
class Timing:
    """One scenario on one checkout: ``first_s`` (first run in the process), ``runs_s`` (the
    timed runs after it), ``steps`` (simulated), or ``error`` (why there is no time)."""

    first_s: float | None = None
    runs_s: list[float] = field(default_factory=list)
    steps: int | None = None
    error: str = ""

    @property
    def best_s(self) -> float | None:
        return min(self.runs_s) if self.runs_s and not self.error else None

    @property
    def steps_per_s(self) -> float | None:
        best = self.best_s
        return None if best is None or not self.steps else self.steps / best

    def row(self) -> dict:
        return {"first_s": self.first_s, "runs_s": self.runs_s, "best_s": self.best_s,
                "steps": self.steps, "steps_per_s": self.steps_per_s, "error": self.error}


@dataclass
class ScenarioTimes:
    scenario: str
    now: Timing
    before: Timing | None = None  # None: no comparison made

    @property
    def ratio(self) -> float | None:
        now = self.now.best_s
        before = self.before.best_s if self.before is not None else None
        return None if now is None or before is None else before / now

    @property
    def target_s(self) -> float | None:
        return SECONDS_TARGETS.get(self.scenario)

    @property
    def met(self) -> bool | None:
        if self.target_s is None or self.now.best_s is None:
            return None
        return self.now.best_s <= self.target_s

    def row(self) -> dict:
        return {"scenario": self.scenario, "now": self.now.row(),
                "before": None if self.before is None else self.before.row(),
                "ratio": self.ratio, "target_s": self.target_s, "target_met": self.met}


@dataclass
class ScenariosRecord:
    """The whole row: every scenario timed, the imports apart, the baseline revision used."""

    repeats: int
    baseline: str  # the revision asked for
    baseline_commit: str = ""  # its full hash, where it was timed
    baseline_note: str = ""  # why the comparison was skipped
    imports: dict[str, dict] = field(default_factory=dict)  # side -> seconds, sim's file
    scenarios: list[ScenarioTimes] = field(default_factory=list)
    load_averages: list[float] = field(default_factory=list)  # 1-minute load, before and after
    bundled: int = 0  # how many scenarios are bundled (the sum's target is over all of them)
    name: str = "bundled scenarios"

    @property
    def compared(self) -> list[ScenarioTimes]:
        """The scenarios with a time on both checkouts (the sums' ratio is over these)."""
        return [s for s in self.scenarios if s.ratio is not None]

    def sum_s(self, side: str) -> float | None:
        rows = self.compared if self.baseline_commit else self.scenarios
        times = [getattr(s, side).best_s for s in rows if getattr(s, side) is not None]
        times = [seconds for seconds in times if seconds is not None]
        return sum(times) if times else None

    @property
    def sum_ratio(self) -> float | None:
        now, before = self.sum_s("now"), self.sum_s("before")
        return None if not self.compared or not now or before is None else before / now

    @property
    def met(self) -> bool | None:
        ratio = self.sum_ratio
        if ratio is None or len(self.compared) < self.bundled:
            return None  # the target is over every bundled scenario
        return ratio >= SUM_TARGET

    def row(self) -> dict:
        """The JSON record."""
        return {"name": self.name, "repeats": self.repeats, "baseline": self.baseline,
                "baseline_commit": self.baseline_commit, "baseline_note": self.baseline_note,
                "imports": self.imports, "load_averages": self.load_averages,
                "bundled": self.bundled,
                "scenarios": [s.row() for s in self.scenarios],
                "sum_now_s": self.sum_s("now"), "sum_before_s": self.sum_s("before"),
                "sum_ratio": self.sum_ratio, "sum_target_ratio": SUM_TARGET,
                "target_met": self.met}

    def lines(self) -> list[str]:
        return table_lines(self)


def _cell(value: float | None, digits: str) -> str:
    """``value`` formatted by ``digits`` (e.g. ``8.3f``), or a dash as wide."""
    if value is not None:
        return format(value, digits)
    return "-".rjust(int(digits.split(".")[0].rstrip("df") or 0))


def _flag(met: bool | None) -> str:
    return {None: "", True: " ok", False: " MISSED"}[met]


def _side_cells(timing: Timing | None) -> str:
    if timing is None:
        return f"{'':>8s} {'':>8s} {'':>10s}"
    return (f"{_cell(timing.first_s, '8.2f')} {_cell(timing.best_s, '8.3f')} "
            f"{_cell(timing.steps_per_s, '10.0f')}")


def table_lines(record: ScenariosRecord) -> list[str]:
    return [*head_lines(record), *(scenario_line(record, s) for s in record.scenarios),
            *tail_lines(record)]


def _side_head(record: ScenariosRecord) -> str:
    side = f"{'first s':>8s} {'best s':>8s} {'steps/s':>10s}"
    return (f"{'bundled scenario':30s} {'steps':>7s} {side}"
            + (f"   {side} {'ratio':>6s}" if record.baseline_commit else "") + f" {'target':>8s}")


def head_lines(record: ScenariosRecord) -> list[str]:
    """The title and the column heads (before the first scenario is timed)."""
    before = bool(record.baseline_commit)
    title = (f"bundled scenarios (sim.run with the default recording, warm process: the first "
             f"run, then the best of {record.repeats})"
             + (f"; before = {record.baseline}" if before else "")
             + (f" ({record.baseline_commit[:12]})"
                if before and not record.baseline_commit.startswith(record.baseline) else ""))
    groups = (f"{'':38s} {'before':^28s}   {'now':^28s}" if before
              else f"{'':38s} {'now':^28s}")
    head = _side_head(record)
    return ["", title, groups, head, "-" * len(head)]


def scenario_line(record: ScenariosRecord, s: ScenarioTimes) -> str:
    errors = [f"{name}: {t.error}" for name, t in (("before", s.before), ("now", s.now))
              if t is not None and t.error]
    steps = s.now.steps or (s.before.steps if s.before is not None else None)
    cells = (f"{_side_cells(s.before)}   {_side_cells(s.now)} {_cell(s.ratio, '6.2f')}"
             if record.baseline_commit else _side_cells(s.now))
    target = f"<= {s.target_s:g} s" if s.target_s is not None else ""
    return (f"{s.scenario:30s} {_cell(steps, '7d')} {cells} {target:>8s}" + _flag(s.met)
            + "".join(f"; {e}" for e in errors))


def tail_lines(record: ScenariosRecord) -> list[str]:
    """The sums, the imports and what the ratio and targets are."""
    before = bool(record.baseline_commit)
    now_sum, before_sum = record.sum_s("now"), record.sum_s("before")
    summed = len(record.compared if before else record.scenarios)
    label = "sum" if summed >= record.bundled else f"sum of {summed} / {record.bundled}"
    if before:
        lines = [f"{label:30s} {'':7s} {'':8s} {_cell(before_sum, '8.3f')} {'':10s}   "
                 f"{'':8s} {_cell(now_sum, '8.3f')} {'':10s} "
                 f"{_cell(record.sum_ratio, '6.2f')} {'>= x' + format(SUM_TARGET, 'g'):>8s}"
                 + _flag(record.met)]
    else:
        lines = [f"{label:30s} {'':7s} {'':8s} {_cell(now_sum, '8.3f')}"]
    for name, seconds in record.imports.items():
        if "error" in seconds:
            lines.append(f"fresh process, {name}: {seconds['error']}")
            continue
        lines.append(f"fresh process, {name}: interpreter start {seconds['interpreter_s']:.3f} "
                     f"s, import sim +{seconds['import_sim_s']:.3f} s, import brian2 "
                     f"+{seconds['import_brian2_s']:.3f} s (best of {seconds['repeats']:g}; "
                     f"not in the runs' times; {seconds['sim_file']})")
    if record.load_averages:
        lines.append("load average " + " -> ".join(f"{x:.1f}" for x in record.load_averages)
                     + f" on {os.cpu_count()} cores during the row (other work slows both "
                       "sides)")
    if before:
        lines.append(f"ratio = before / now (best runs); the sum's ratio is over the scenarios "
                     f"timed on both; targets: sum x{SUM_TARGET:g} less than before, "
                     + ", ".join(f"{n} <= {t:g} s" for n, t in SECONDS_TARGETS.items()))
    else:
        lines.append(f"no comparison with the code before: {record.baseline_note}")
    return lines
