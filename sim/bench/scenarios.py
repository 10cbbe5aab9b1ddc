"""The "bundled scenarios" row of ``pcsim bench``: every bundled scenario as users run it.

Each scenario runs with its default recording through the public ``sim.run`` in a warm process
(``sim/bench/scenarios_child.py``, one process for all the scenarios of a side): a first run
(compiled code loaded from Brian2's cache, or compiled), then the best of ``REPEATS`` timed runs.
The code as it is ("now") and the code of an older revision ("before": ``BEFORE_ISSUE_23``
unless ``--baseline REV``, checked out for the bench by ``sim.bench.checkout``) are timed in the
same bench run, each in its own process, their runs of a scenario in turns (now, before, now,
...), so that other work on the machine slows both alike. Both processes run the same child
script by path from this checkout, with their own checkout first on ``PYTHONPATH``; each
reports which ``sim`` it imported, and one that imported another is an error. The interpreter's
start and the imports of ``sim`` and Brian2 are timed apart, in fresh processes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from sim.bench.checkout import BEFORE_ISSUE_23, revision_checkout
from sim.bench.scenarios_record import (
    ScenariosRecord,
    ScenarioTimes,
    Timing,
    head_lines,
    scenario_line,
)
from sim.errors import ScenarioError

REPEATS = 3
QUICK_REPEATS = 2
# --quick: the short scenarios only (the full row takes minutes with the code before)
QUICK_SCENARIOS = ("disorders/anxiety", "learning/weights", "perception/creak",
                   "perception/hierarchy", "perception/single_cause")
IMPORT_REPEATS = 3
NO_BASELINE = "none"  # --baseline none: time the code as it is only
CHILD = Path(__file__).with_name("scenarios_child.py")


def scenario_names(chosen: list[str] | None = None, quick: bool = False) -> list[str]:
    """The scenarios to time: ``chosen`` (``--scenario``, each a bundled name), or every bundled
    one (``--quick``: those of ``QUICK_SCENARIOS``). Raises ``ScenarioError`` for a name that
    is not bundled."""
    from sim.scenario import bundled_scenarios

    known = list(bundled_scenarios())
    if chosen:
        for name in chosen:
            if name not in known:
                raise ScenarioError(f"--scenario {name}: not a bundled scenario (pcsim list "
                                    "shows them)")
        return list(dict.fromkeys(chosen))
    return [name for name in known if not quick or name in QUICK_SCENARIOS]


def _environment(root: Path) -> dict[str, str]:
    """This process's environment with ``root`` first on ``PYTHONPATH``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(root), *[p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]])
    return env


def import_times(root: Path, repeats: int = IMPORT_REPEATS) -> dict:
    """Fresh processes with ``root`` first on the path: the interpreter's start alone, then
    ``import sim`` and ``import brian2`` on top of it (seconds, each the best of ``repeats``),
    and the file of the ``sim`` imported; ``{"error": ...}`` where an import fails."""
    env = _environment(root)

    def python(code: str) -> str:
        done = subprocess.run([sys.executable, "-c", code], env=env, cwd=root,
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError((done.stderr.strip().splitlines() or ["failed"])[-1])
        return done.stdout.strip()

    def best(code: str) -> float:
        seconds = []
        for _ in range(repeats):
            began = time.perf_counter()
            python(code)
            seconds.append(time.perf_counter() - began)
        return min(seconds)

    try:
        start, with_sim = best("pass"), best("import sim")
        with_brian2 = best("import sim, brian2")
        sim_file = python("import sim; print(sim.__file__)")
    except RuntimeError as err:
        return {"error": f"python -c 'import sim, brian2' with {root} first: {err}"}
    return {"interpreter_s": start, "import_sim_s": with_sim - start,
            "import_brian2_s": with_brian2 - with_sim, "repeats": repeats,
            "sim_file": sim_file}


class Child:
    """A warm process (``scenarios_child.py``) that runs scenarios with the checkout at ``root``
    imported, one ``run(name)`` at a time; a child that imported another ``sim`` is refused."""

    def __init__(self, root: Path, workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.log = workdir / "stderr.txt"  # a file, not a pipe: warnings cannot block the child
        with self.log.open("w") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(CHILD), str(workdir)], env=_environment(root), cwd=workdir,
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True)
        first = self._reply()
        imported = Path(first.get("sim_file", ""))
        self.error = first.get("error", "")
        if not self.error and not imported.is_relative_to(root.resolve()):
            self.error = f"the child imported {imported}, not the checkout at {root}"

    def _reply(self) -> dict:
        for line in self.process.stdout:  # anything else the run printed is passed over
            if line.startswith("{"):
                return json.loads(line)
        self.process.wait()
        lines = self.log.read_text(errors="replace").strip().splitlines()
        return {"error": "the child failed: "
                         + (lines[-1] if lines else f"exit status {self.process.returncode}")}

    def run(self, name: str) -> dict:
        """One ``sim.run`` of ``name``: ``seconds`` and ``steps``, or ``error``."""
        if self.error:
            return {"error": self.error}
        self.process.stdin.write(name + "\n")
        self.process.stdin.flush()
        reply = self._reply()
        if "sim_file" in reply or (reply.get("scenario", name) != name):
            reply = {"error": f"the child answered {reply} to {name}"}
        if reply.get("error", "").startswith("the child failed"):
            self.error = reply["error"]
        return reply

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process.stdout.close()


def time_scenario(name: str, children: dict[str, Child], repeats: int) -> dict[str, Timing]:
    """``name`` on every side: a first run each, then ``repeats`` runs, the sides in turns."""
    timings = {}
    for side, child in children.items():
        reply = child.run(name)
        timings[side] = Timing(reply.get("seconds"), steps=reply.get("steps"),
                               error=reply.get("error", ""))
    for _ in range(repeats):
        for side, child in children.items():
            if not timings[side].error:
                reply = child.run(name)
                if "error" in reply:
                    timings[side].error = reply["error"]
                else:
                    timings[side].runs_s.append(reply["seconds"])
    return timings


def measure(workdir: Path, names: list[str], repeats: int, baseline: str = BEFORE_ISSUE_23,
            echo: Callable[[str], None] | None = None) -> ScenariosRecord:
    """Time ``names`` on this checkout and, unless ``baseline`` is ``none``, on ``baseline``'s
    (``echo``: called with each line of the table as soon as it is known, the last lines
    excepted: ``scenarios_record.tail_lines``)."""
    import sim
    from sim.scenario import bundled_scenarios

    now = Path(sim.__file__).resolve().parent.parent
    workdir.mkdir(parents=True, exist_ok=True)
    record = ScenariosRecord(repeats, baseline, load_averages=[os.getloadavg()[0]],
                             bundled=len(bundled_scenarios()))
    with revision_checkout(now, baseline, skip=baseline.lower() == NO_BASELINE) as checkout:
        record.baseline_commit = checkout.commit if checkout.folder is not None else ""
        record.baseline_note = checkout.note
        sides = {"now": now, "before": checkout.folder}
        sides = {side: root for side, root in sides.items() if root is not None}
        for side, root in sides.items():
            record.imports[side] = import_times(root, min(repeats, IMPORT_REPEATS))
        for line in head_lines(record) if echo else ():
            echo(line)
        children: dict[str, Child] = {}
        try:
            for side, root in sides.items():
                children[side] = Child(root, workdir / side)
            for name in names:
                timings = time_scenario(name, children, repeats)
                record.scenarios.append(ScenarioTimes(name, timings["now"],
                                                      timings.get("before")))
                if echo:
                    echo(scenario_line(record, record.scenarios[-1]))
        finally:
            for child in children.values():
                child.close()
    record.load_averages.append(os.getloadavg()[0])
    return record
