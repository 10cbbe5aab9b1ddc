"""Timing refusals: how long ``pcsim run`` takes to say no to a user's mistake.

Every refusal (a missing file, a file that is not TOML, a bad ``--set``, an output that exists,
a run past ``[numerics] memory_limit_mb``) is decided before Brian2 is imported (``sim.cli``
``command_run``), so it should cost about what starting Python with NumPy costs. Each command
runs in a fresh process, as a user runs it, against ``python -c "import numpy"`` measured in the
same run (repeats alternate command and baseline, after one untimed run of each; the best of each
counts). The row's ratio is command / baseline: the target (``TARGET_S``, under 1 s, or 2 s for
the issue's 10^7-unit input) is a time on the machine that set it, where numpy imported in
``REFERENCE_NUMPY_S``; as a ratio it travels to other machines.
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from sim.bench.report_commands import pcsim_command

REFUSED = 2  # sim.cli's exit code for a user mistake
REFERENCE_NUMPY_S = 0.055  # python -c "import numpy" where the targets were set (2 cores, idle)
BASELINE = 'python -c "import numpy"'


@dataclass(frozen=True)
class RefusalCase:
    name: str
    arguments: tuple[str, ...]  # after ``pcsim``; files named here are made in the work folder
    target_s: float  # on the reference machine; the ratio target is this / REFERENCE_NUMPY_S

    @property
    def target_ratio(self) -> float:
        return self.target_s / REFERENCE_NUMPY_S


def refusal_cases() -> list[RefusalCase]:
    """One of each kind of refusal; ``existing.h5`` and ``broken.toml`` are made first."""
    huge = ("--set", "model.levels.0.size=10000000", "--set", "model.levels.0.precision=1e-7",
            "--set", "numerics.memory_limit_mb=1000")
    return [
        RefusalCase("missing file", ("run", "no/such/scenario.toml"), 1.0),
        RefusalCase("not TOML", ("run", "broken.toml"), 1.0),
        RefusalCase("bad --set", ("run", "perception/hierarchy", "--set",
                                  "model.tau_belief_ms=-1"), 1.0),
        RefusalCase("existing output", ("run", "perception/hierarchy", "-o", "existing.h5"),
                    1.0),
        RefusalCase("10^7 inputs, memory", ("run", "perception/single_cause", *huge), 2.0),
    ]


@dataclass
class RefusalRecord:
    """A refusal's wall time (fresh processes, best of ``runs_s``) and numpy's import's."""

    name: str
    command: str
    target_ratio: float
    seconds: float | None = None
    baseline_s: float | None = None
    runs_s: list[float] = field(default_factory=list)
    baseline_runs_s: list[float] = field(default_factory=list)
    message: str = ""  # the refusal's line
    note: str = ""  # why there is no time (the command was not refused)

    @property
    def ratio(self) -> float | None:
        if self.seconds is None or not self.baseline_s:
            return None
        return self.seconds / self.baseline_s

    @property
    def met(self) -> bool | None:
        return None if self.ratio is None else self.ratio <= self.target_ratio

    def row(self) -> dict:
        """The JSON record."""
        return {**self.__dict__, "baseline": BASELINE, "ratio": self.ratio,
                "target_met": self.met}


def timed(command: list[str], folder: Path) -> tuple[float, subprocess.CompletedProcess]:
    began = time.perf_counter()
    done = subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=600)
    return time.perf_counter() - began, done


def measure_refusals(cases: list[RefusalCase], folder: Path, repeats: int
                     ) -> list[RefusalRecord]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "existing.h5").write_bytes(b"")
    (folder / "broken.toml").write_text('name = "broken\n', encoding="utf-8")
    baseline = [sys.executable, "-c", "import numpy"]
    runs = [(RefusalRecord(case.name, " ".join(["pcsim", *case.arguments]), case.target_ratio),
             [*pcsim_command(), *case.arguments]) for case in cases]
    for record, command in runs:  # untimed: disk caches, and the refusal's line
        done = timed(command, folder)[1]
        lines = done.stderr.strip().splitlines() or ["no message"]
        record.message = lines[-1]
        if done.returncode != REFUSED or len(lines) != 1:
            record.note = f"not refused in one line (exit {done.returncode}): {lines[-1]}"
    timed(baseline, folder)
    for repeat in range(repeats):
        for record, command in runs:
            if record.note:
                continue
            pairs = [(command, record.runs_s), (baseline, record.baseline_runs_s)]
            for run, times in pairs[::-1] if repeat % 2 else pairs:
                times.append(timed(run, folder)[0])
    for record, _ in runs:
        if not record.note:
            record.seconds, record.baseline_s = min(record.runs_s), min(record.baseline_runs_s)
    return [record for record, _ in runs]


def refusal_lines(records: list[RefusalRecord], repeats: int) -> list[str]:
    """The refusals' table: seconds, numpy's import's, their ratio against the target."""
    head = (f"{'refusal':20s} {'seconds':>7s} {'numpy':>7s} {'ratio':>6s} {'target':>8s}   "
            "command")
    lines = ["", head, "-" * len(head)]
    for r in records:
        if r.note:
            lines.append(f"{r.name:20s} {r.note}")
            continue
        flag = "" if r.met else "  MISSED"
        lines.append(f"{r.name:20s} {r.seconds:7.3f} {r.baseline_s:7.3f} {r.ratio:6.2f} "
                     f"{'<= ' + format(r.target_ratio, '.3g'):>8s}   {r.command}{flag}")
    lines.append(f"pcsim run refusals (exit 2, one line): best of {repeats} fresh processes "
                 f"each, interleaved with {BASELINE}'s; ratio = refusal / numpy import; "
                 f"the targets are 1 s (the 10^7-unit input: 2 s) where numpy imports in "
                 f"{REFERENCE_NUMPY_S:g} s.")
    return lines
