"""``pcsim bench``'s "bundled scenarios" row, on one short scenario: the table and the JSON
record have their fields, and the comparison runs the other revision's code in its own
checkout (no timing is asserted: speed is measured by ``pcsim bench`` itself)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import sim
from sim.bench.checkout import revision_checkout
from sim.bench.scenarios_record import ScenariosRecord, tail_lines
from sim.scenario import bundled_scenarios

ROOT = Path(sim.__file__).resolve().parent.parent
SCENARIO = "perception/creak"


def pcsim(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sim.cli", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=600)


def head_commit() -> str | None:
    """This checkout's commit, where it is a git checkout (the comparison needs one)."""
    if shutil.which("git") is None:
        return None
    done = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--show-toplevel", "HEAD"],
                          capture_output=True, text=True, check=False)
    lines = done.stdout.split()
    if done.returncode != 0 or Path(lines[0]).resolve() != ROOT:
        return None
    return lines[1]


def expected_steps(name: str) -> int:
    """Steps the scenario simulates, from its file: its trials' durations over its step."""
    with bundled_scenarios()[name].open("rb") as file:
        table = tomllib.load(file)
    return round(sum(trial["duration_ms"] for trial in table["protocol"]["trials"])
                 / table["dt_ms"])


def bench_row(tmp_path: Path, baseline: str) -> tuple[list[str], dict]:
    out = tmp_path / "bench.json"
    done = pcsim("bench", "--quick", "--only", "bundled scenarios", "--scenario", SCENARIO,
                 "--baseline", baseline, "--json", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    rows = json.loads(out.read_text())
    assert [row["name"] for row in rows] == ["bundled scenarios"]
    return done.stdout.splitlines(), rows[0]


def check_timing(timing: dict, repeats: int) -> None:
    assert timing["error"] == ""
    assert len(timing["runs_s"]) == repeats
    assert timing["best_s"] == min(timing["runs_s"]) > 0
    assert timing["first_s"] > 0
    assert timing["steps"] == expected_steps(SCENARIO)
    assert abs(timing["steps_per_s"] - timing["steps"] / timing["best_s"]) < 1e-6


def test_the_row_times_the_code_now_and_at_a_revision_in_its_own_checkout(tmp_path):
    commit = head_commit()
    lines, row = bench_row(tmp_path, "HEAD")
    [line] = [line for line in lines if line.startswith(SCENARIO + " ")]
    assert [s["scenario"] for s in row["scenarios"]] == [SCENARIO]
    times = row["scenarios"][0]
    check_timing(times["now"], row["repeats"])
    assert str(times["now"]["steps"]) in line.split()
    assert row["imports"]["now"]["sim_file"] == str(ROOT / "sim" / "__init__.py")
    for seconds in row["imports"].values():
        assert min(seconds["interpreter_s"], seconds["import_brian2_s"]) > 0
    assert len(row["load_averages"]) == 2
    if commit is None:  # no git checkout here: one line says so, and there is no "before"
        assert times["before"] is None and row["sum_ratio"] is None
        assert any(line.startswith("no comparison with the code before: ") for line in lines)
        return
    assert row["baseline_commit"] == commit
    check_timing(times["before"], row["repeats"])
    before_file = Path(row["imports"]["before"]["sim_file"])
    assert not before_file.is_relative_to(ROOT)  # a checkout of its own ...
    assert not before_file.parent.exists()  # ... removed afterwards
    assert times["ratio"] == times["before"]["best_s"] / times["now"]["best_s"]
    assert row["sum_ratio"] == row["sum_before_s"] / row["sum_now_s"]
    assert f"{times['ratio']:.2f}" in line.split()
    subset = f"sum of 1 / {len(bundled_scenarios())} "
    [total] = [line for line in lines if line.startswith(subset)]
    assert row["target_met"] is None  # the target is over every bundled scenario
    assert f"{row['sum_ratio']:.2f}" in total.split()
    listed = subprocess.run(["git", "-C", str(ROOT), "worktree", "list"], capture_output=True,
                            text=True, check=True).stdout
    assert str(before_file.parent.parent) not in listed


def test_an_unknown_revision_gives_no_checkout_and_says_why():
    with revision_checkout(ROOT, "no-such-revision-23") as checkout:
        assert checkout.folder is None and checkout.commit == ""
        assert "no-such-revision-23" in checkout.note or "not a git checkout" in checkout.note
    record = ScenariosRecord(1, "no-such-revision-23", baseline_note=checkout.note)
    assert tail_lines(record)[-1] == f"no comparison with the code before: {checkout.note}"


def test_an_unknown_scenario_is_refused_before_anything_runs(tmp_path):
    done = pcsim("bench", "--only", "bundled scenarios", "--scenario", "perception/nope",
                 cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() == ("pcsim: error: --scenario perception/nope: not a bundled "
                                   "scenario (pcsim list shows them)")
    assert done.stdout == ""
