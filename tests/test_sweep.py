"""Sweeps (issue 12): the grid, local and Dask workers giving the same bits, resume after
SIGINT and SIGKILL with no orphan and no half-written file, failed points, bad keys, locks of
gone writers, the index's summaries against the point files, and show/plot on an index.

Scenario: perception/single_cause (one trial of 20 ms); seeds matter because the axes switch on
stimulus noise.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from cli_output import error_line

import sim
from sim.cli import main
from sim.io.partials import HOST
from sim.sweeps.index import read_index
from sim.sweeps.locks import start_ticks

SCENARIO = "perception/single_cause"
SLOW_POINT_MS = 300  # a slow sweep's points (start_slow_sweep)
GRID = ["--vary", "model.tau_belief_ms=1.0,2.0",
        "--vary", "protocol.trials.0.stimulus.noise_std=0.05,0.1", "--seeds", "2"]
VARY = {"model.tau_belief_ms": [1.0, 2.0], "protocol.trials.0.stimulus.noise_std": [0.05, 0.1]}


def pcsim(*args: str, **options) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sim.cli", *args], capture_output=True,
                          text=True, timeout=600, **options)


def datasets(path: Path) -> dict[str, np.ndarray]:
    out = {}
    with h5py.File(path, "r") as file:
        file.visititems(lambda name, node: out.__setitem__(name, np.asarray(node[()]))
                        if isinstance(node, h5py.Dataset) else None)
    return out


def point_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("point-*.h5"))


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            found += [int(p) for p in (task / "children").read_text().split()]
    return found


def running(pid: int) -> bool:
    """Alive and not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


@pytest.fixture(scope="module")
def serial(tmp_path_factory) -> Path:
    """The 2 x 2 x 2-seed sweep, one local worker, through the CLI."""
    folder = tmp_path_factory.mktemp("serial")
    done = pcsim("sweep", SCENARIO, *GRID, "-j", "1", "-o", str(folder))
    assert done.returncode == 0, done.stderr
    return folder


def test_grid_runs_every_point_once(serial):
    index = read_index(serial)
    assert len(index.files) == 8 and index.counts() == {"done": 8}
    combos = {(*index.values(r).values(), int(index.point_seeds[r])) for r in range(8)}
    assert combos == {(t, n, s) for t in (1.0, 2.0) for n in (0.05, 0.1) for s in (0, 1)}
    assert sorted(serial / f for f in index.files) == point_files(serial)
    for row, name in enumerate(index.files):
        with sim.load(serial / name) as result:
            parameters = result.parameters
            assert result.seed == index.point_seeds[row]
        assert parameters["model"]["tau_belief_ms"] == index.values(row)["model.tau_belief_ms"]
        assert parameters["overrides"] == {**index.values(row),
                                           "seed": int(index.point_seeds[row])}
    # the seeds matter here (noise): two seeds of one point differ
    first = [serial / index.files[r] for r in range(2)]
    assert not np.array_equal(*(datasets(f)["levels/food_size/belief"] for f in first))


def test_summary_is_the_point_files_numbers(serial):
    """The index's summary columns are the trial table's numbers, read again here."""
    table = sim.open_sweep(serial / "sweep.h5").table
    assert len(table) == 8
    for row in range(8):
        with sim.load(table["file"][row]) as result:
            trials = {name: np.asarray(result.trials[name]) for name in result.trials}
        assert table["final_free_energy"][row] == trials["final_free_energy"][-1]
        assert table["final_belief/food_size"][row] == trials["final_belief/food_size"][-1, 0]
        assert table["mean[u=2]/precision_share/light"][row] == \
            trials["precision_share/light"][0, 0]


CONDITIONS = """
[protocol]
reset = "beliefs"

[[protocol.conditions]]
name = "dim"
count = 3
duration_ms = 4.0
stimulus = { kind = "constant", value = 1.0, noise_std = 0.3 }

[[protocol.conditions]]
name = "bright"
count = 2
duration_ms = 4.0
stimulus = { kind = "constant", value = 2.0, noise_std = 0.3 }
"""


def test_summary_means_per_condition(tmp_path):
    """Trials generated from conditions: the index holds each condition's mean of each
    column, computed again here from the trial table's condition labels."""
    source = (Path(__file__).resolve().parents[1] / "scenarios/perception/single_cause.toml")
    head = source.read_text().split("[protocol]")[0]
    path = tmp_path / "conditions.toml"
    path.write_text(head + CONDITIONS)
    sweep = sim.sweep(path, vary={"model.tau_belief_ms": [1.0]}, seeds=2, jobs=1,
                      output=tmp_path / "s")
    index = sweep.index
    for row in range(2):
        with sim.load(sweep.folder / index.files[row]) as result:
            condition = np.asarray(result.trials["condition"])
            belief = np.asarray(result.trials["final_belief/food_size"])[:, 0]
        for name, count in (("dim", 3), ("bright", 2)):
            rows = condition == name
            assert rows.sum() == count
            column = index.summary_columns.index(f"mean[{name}]/final_belief/food_size")
            assert index.summary[row, column] == pytest.approx(belief[rows].mean(), rel=1e-12)


def test_dask_cluster_gives_the_same_bits(serial, tmp_path):
    """The same sweep on a LocalCluster (processes, 2 workers, loopback) writes the same
    datasets, bit for bit."""
    pytest.importorskip("dask.distributed", reason="dask[distributed] is not installed "
                                                   "(pip install '.[cluster]')")
    from dask.distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster:
        done = pcsim("sweep", SCENARIO, *GRID, "--scheduler", cluster.scheduler_address,
                     "-o", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert read_index(tmp_path).counts() == {"done": 8}
    names = [p.name for p in point_files(serial)]
    assert [p.name for p in point_files(tmp_path)] == names
    for name in names:
        ours, theirs = datasets(serial / name), datasets(tmp_path / name)
        assert ours.keys() == theirs.keys()
        for key, value in ours.items():
            assert np.asarray(value).dtype == np.asarray(theirs[key]).dtype, key
            assert np.array_equal(value, theirs[key], equal_nan=value.dtype.kind == "f"), \
                f"{name}: /{key} differs"


def test_missing_dask_is_one_line_naming_the_extra(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "dask", None)
    monkeypatch.setitem(sys.modules, "dask.distributed", None)
    code = main(["sweep", SCENARIO, "--vary", "model.tau_belief_ms=1,2", "--scheduler",
                 "tcp://127.0.0.1:1", "-o", str(tmp_path / "s")])
    error = capsys.readouterr().err.strip()
    assert code == 2 and len(error.splitlines()) == 1
    assert "pcsim[cluster]" in error and not (tmp_path / "s").exists()


def unwritable_folders(tmp_path: Path) -> list[Path]:
    """Existing folders this process cannot write in: a read-only one (not for root, who may
    write anyway), and one of sysfs (no one may create files there)."""
    found = []
    if os.geteuid() != 0:
        found.append(tmp_path / "read-only")
        found[-1].mkdir()
        found[-1].chmod(0o555)
    probe = Path("/sys/kernel/.pcsim-probe")
    try:
        probe.write_text("")
        probe.unlink()
    except OSError:
        found.append(probe.parent)
    return found


def test_a_folder_it_cannot_write_is_one_line(tmp_path, capsys):
    under_a_file = tmp_path / "file" / "sweep"
    under_a_file.parent.write_text("")
    for folder in [under_a_file, *unwritable_folders(tmp_path)]:
        code = main(["sweep", SCENARIO, "--vary", "model.tau_belief_ms=1,2", "-o", str(folder)])
        assert code == 2
        assert f"{folder}: cannot hold the sweep's files here" in error_line(capsys)
        assert not folder.exists() or not list(folder.glob("*scenario.toml*"))


def test_bad_value_fails_its_point_only(tmp_path):
    done = pcsim("sweep", SCENARIO, "--vary", "model.tau_belief_ms=-1,5", "-j", "2", "-o",
                 str(tmp_path))
    assert done.returncode == 1, done.stderr
    # not a terminal: no progress bar, only the final line
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "2 points: 1 done, 1 failed" in done.stderr
    index = read_index(tmp_path)
    assert index.status == ["failed", "done"]
    error = index.errors[0]
    assert "\n" not in error and "model.tau_belief_ms" in error
    assert "expected a positive number, got -1" in error
    assert len(point_files(tmp_path)) == 1
    shown = pcsim("show", str(tmp_path))
    assert "1 done, 1 failed" in shown.stdout and "got -1" in shown.stdout


def test_diverged_point_is_kept_and_marked(tmp_path):
    """A ceiling below the belief's start value stops that point as diverged (the engine keeps
    its file, so marked); the index says so with the engine's message."""
    sweep = sim.sweep(SCENARIO, vary={"numerics.rate_limit": [1e-3, 1e8]}, jobs=1,
                      output=tmp_path)
    index = sweep.index
    assert index.status == ["diverged", "done"]
    with sim.load(tmp_path / index.files[0], allow_incomplete=True) as result:
        assert result.attrs["status"] == "diverged"
        assert index.errors[0] == result.attrs["failure"]
    assert "1e-03" in index.errors[0] or "0.001" in index.errors[0]
    assert "diverged point-" in "\n".join(pcsim("show", str(tmp_path)).stdout.splitlines())


def test_bad_key_stops_before_anything_runs(tmp_path):
    for key in ("model.tau_belif_ms=1,2", "protocol.trials.3.duration_ms=5",
                "protocol.conditions.*.count=1"):
        done = pcsim("sweep", SCENARIO, "--vary", key, "-o", str(tmp_path / "s"))
        assert done.returncode == 2, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert "--vary" in done.stderr and "Traceback" not in done.stderr
        assert not (tmp_path / "s").exists()
    assert "did you mean 'tau_belief_ms'" in pcsim(
        "sweep", SCENARIO, "--vary", "model.tau_belif_ms=1").stderr


def test_sweep_table_in_the_scenario(tmp_path):
    """``[sweep]`` declares the grid; --vary overrides an axis and adds one; the file still
    runs on its own with ``pcsim run``."""
    source = (Path(__file__).resolve().parents[1] / "scenarios/perception/single_cause.toml")
    path = tmp_path / "swept.toml"
    path.write_text(source.read_text() + '\n[sweep]\nseeds = 2\n'
                    '[sweep.vary]\n"model.tau_belief_ms" = [1.0, 2.0]\n'
                    'model.tau_error_ms = [1.0]\n')
    assert pcsim("run", str(path), "--check").returncode == 0
    folder = tmp_path / "s"
    sweep = sim.sweep(path, vary={"model.tau_belief_ms": [3.0]}, jobs=1, output=folder)
    assert sweep.grid == {"model.tau_belief_ms": [3.0], "model.tau_error_ms": [1.0],
                          "seed": [0, 1]}
    assert sweep.counts == {"done": 2}
    bad = tmp_path / "bad.toml"
    bad.write_text(source.read_text() + '\n[sweep]\nseeds = 0\n')
    done = pcsim("sweep", str(bad), "-o", str(tmp_path / "b"))
    assert done.returncode == 2 and "sweep.seeds" in done.stderr


def test_gone_writers_are_recognised(tmp_path):
    """A lock of a dead pid on this host (or of a pid now another process's), or one of another
    host not touched for the stale time, is stale: its point is redone and its orphan temporary
    file removed; a live lock's point is left to its writer, and the sweep waits for it."""
    vary = {"model.tau_belief_ms": [1.0, 2.0, 3.0, 4.0]}
    sweep = sim.sweep(SCENARIO, vary=vary, jobs=1, output=tmp_path)
    keys = sweep.index.keys
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    old = time.time() - 3600
    held = tmp_path / f"point-{keys[2]}.h5"
    kept = held.rename(tmp_path / "kept.h5")  # what the live lock's holder will write
    kept_inode = kept.stat().st_ino
    for key in keys:
        (tmp_path / f"point-{key}.h5").unlink(missing_ok=True)
    (tmp_path / f"point-{keys[0]}.lock").write_text(f'{{"host": "{HOST}", "pid": {dead}}}')
    (tmp_path / f"point-{keys[1]}.lock").write_text('{"host": "elsewhere", "pid": 1}')
    os.utime(tmp_path / f"point-{keys[1]}.lock", (old, old))
    orphan = tmp_path / f".point-{keys[1]}.h5.elsewhere-1.partial"
    orphan.write_bytes(b"half")
    os.utime(orphan, (old, old))
    (tmp_path / f"point-{keys[2]}.lock").write_text(
        f'{{"host": "{HOST}", "pid": {os.getpid()}}}')  # alive: this test
    reused = start_ticks(os.getpid()) + 1  # this pid, but a process that started earlier
    (tmp_path / f"point-{keys[3]}.lock").write_text(
        f'{{"host": "{HOST}", "pid": {os.getpid()}, "start_ticks": {reused}}}')
    others = [tmp_path / f"point-{key}.h5" for key in (keys[0], keys[1], keys[3])]

    def holder() -> None:  # the live lock's point is left to it: it finishes after the others
        while not all(path.exists() for path in others):
            time.sleep(0.05)
        time.sleep(0.5)
        assert not held.exists()
        kept.rename(held)
        (tmp_path / f"point-{keys[2]}.lock").unlink()

    thread = threading.Thread(target=holder)
    thread.start()
    again = sim.sweep(SCENARIO, vary=vary, jobs=1, output=tmp_path)
    thread.join()
    assert list(again.table["status"]) == ["done", "done", "done", "done"]
    assert held.stat().st_ino == kept_inode  # the holder's file: not run again by the sweep
    assert not orphan.exists()
    assert not (tmp_path / f"point-{keys[0]}.lock").exists()


def start_slow_sweep(folder: Path) -> subprocess.Popen:
    """8 points of ~1 s each (``SLOW_POINT_MS`` simulated at dt = 0.01 ms: 30,000 steps),
    two workers; in a process group of its own (a batch scheduler signals a job's whole
    group). A point is long enough that the signal finds points still running (the test
    waits for one done and two running; six more are left, ~3 s of the workers' time)."""
    return subprocess.Popen(
        [sys.executable, "-m", "sim.cli", "sweep", SCENARIO, "--vary",
         "model.tau_belief_ms=1.0,2.0,3.0,4.0",
         "--vary", f"protocol.trials.0.duration_ms={SLOW_POINT_MS}",
         "--vary", "record.every_ms=1.0", "--seeds", "2", "-j", "2", "-o", str(folder)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def wait_for_progress(process: subprocess.Popen, folder: Path) -> list[int]:
    """Until some points are done and others are running; the workers' pids."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        if point_files(folder) and list(folder.glob("point-*.lock")):
            workers = children(process.pid)
            if len(workers) >= 2:
                return workers
        time.sleep(0.05)
    raise AssertionError("the sweep made no progress")


def check_folder(folder: Path, killed: bool) -> set[str]:
    """The index reads; every point file is complete; returns the done points' names. The
    index of a sweep killed outright may lag behind its files (it is rewritten every 2 s)."""
    index = read_index(folder)
    assert set(index.status) <= {"done", "missing", "running"}
    listed = {name for name, status in zip(index.files, index.status, strict=True)
              if status == "done"}
    done = set()
    for path in point_files(folder):
        with sim.load(path) as result:  # refuses anything not complete
            assert result.attrs["status"] == "complete"
        done.add(path.name)
    assert listed <= done if killed else listed == done
    return done


def finish_and_compare(folder: Path, done: set[str]) -> None:
    """A re-run runs only the missing points: the files already there are untouched."""
    before = {name: (folder / name).stat() for name in done}
    assert 0 < len(done) < 8
    finished = pcsim("sweep", SCENARIO, "--vary", "model.tau_belief_ms=1.0,2.0,3.0,4.0",
                     "--vary", f"protocol.trials.0.duration_ms={SLOW_POINT_MS}", "--vary",
                     "record.every_ms=1.0", "--seeds", "2", "-j", "2", "-o", str(folder))
    assert finished.returncode == 0, finished.stderr
    assert f"({8 - len(done)} run now, {len(done)} already there)" in finished.stderr
    assert read_index(folder).counts() == {"done": 8}
    for name, stat in before.items():
        now = (folder / name).stat()
        assert (now.st_ino, now.st_mtime_ns) == (stat.st_ino, stat.st_mtime_ns)
    assert not list(folder.glob(".*.partial")) and not list(folder.glob("*.lock"))


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL],
                         ids=["SIGINT", "SIGTERM", "SIGKILL"])
def test_interrupted_sweep_resumes(tmp_path, how):
    """Ctrl-C (to the sweep), SIGTERM (to its process group, workers included, as a batch
    scheduler sends it) and SIGKILL (to the sweep): the index agrees with the files (after
    SIGKILL it may lag behind), and a re-run runs only what is missing."""
    process = start_slow_sweep(tmp_path)
    workers = wait_for_progress(process, tmp_path)
    if how == signal.SIGTERM:
        os.killpg(process.pid, how)
    else:
        process.send_signal(how)
    _, err = process.communicate(timeout=60)
    if how == signal.SIGINT:
        assert process.returncode == 130 and "sweep interrupted" in err, err
    elif how == signal.SIGTERM:
        assert process.returncode == 143 and "sweep terminated (SIGTERM)" in err, err
        assert "Traceback" not in err
    else:
        assert process.returncode == -signal.SIGKILL
    deadline = time.monotonic() + 20
    while any(running(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in workers if running(pid)], "a worker outlived its sweep"
    if how != signal.SIGKILL:
        assert not list(tmp_path.glob(".*.partial")) and not list(tmp_path.glob("*.lock"))
    done = check_folder(tmp_path, killed=how == signal.SIGKILL)
    finish_and_compare(tmp_path, done)


def test_two_identical_sweeps_at_once_both_report_the_final_state(tmp_path):
    """Two sweeps of one folder started together: each point is run once, by one of them (the
    counts of points each ran add up to the grid), and both end reporting every point done,
    including the one the other was still running when its own share was over (the first
    point, ten times longer than the second: whichever sweep takes it, the other waits)."""
    command = [sys.executable, "-m", "sim.cli", "sweep", SCENARIO, "--vary",
               "protocol.trials.0.duration_ms=400,40", "-j", "1", "-o", str(tmp_path)]
    sweeps = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True) for _ in range(2)]
    ran = 0
    for sweep in sweeps:
        _, err = sweep.communicate(timeout=300)
        assert sweep.returncode == 0, err
        line = err.strip().splitlines()[-1]
        assert "sweep of 2 points: 2 done (" in line, line
        ran += int(line.split("(")[1].split(" run now")[0])
    assert ran == 2
    assert read_index(tmp_path).counts() == {"done": 2} and len(point_files(tmp_path)) == 2
    assert not list(tmp_path.glob("*.lock")) and not list(tmp_path.glob(".*.partial"))


def test_cluster_workers_stop_writing_for_a_killed_sweep(tmp_path):
    """Dask workers are not the sweep's children: when it is killed outright they stop its
    running points within the heartbeat's stale time, writing nothing, and release the locks;
    no point file appears afterwards."""
    pytest.importorskip("dask.distributed", reason="dask[distributed] is not installed "
                                                   "(pip install '.[cluster]')")
    from dask.distributed import LocalCluster

    from sim.sweeps.locks import SWEEP_GONE_S

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster:
        process = subprocess.Popen(
            [sys.executable, "-m", "sim.cli", "sweep", SCENARIO, "--vary",
             "model.tau_belief_ms=1.0,2.0", "--vary", "protocol.trials.0.duration_ms=100000",
             "--vary", "record.every_ms=10.0", "--scheduler", cluster.scheduler_address,
             "-o", str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 300
        while len(list(tmp_path.glob("point-*.lock"))) < 2:
            assert process.poll() is None and time.monotonic() < deadline, \
                process.communicate()
            time.sleep(0.1)
        process.kill()
        process.wait()
        killed = time.monotonic()
        while list(tmp_path.glob("point-*.lock")) and time.monotonic() - killed < 3 * \
                SWEEP_GONE_S:
            time.sleep(0.2)
        assert not list(tmp_path.glob("point-*.lock")), "a worker still runs a point"
        assert not list(tmp_path.glob(".*.partial")) and not point_files(tmp_path)
        assert [p.name for p in tmp_path.glob(".sweep-*.alive")]  # the killed sweep's


def test_show_and_plot_an_index(serial, tmp_path):
    code = ("import sys; from sim.cli import main; code = main(['show', sys.argv[1]]); "
            "assert 'brian2' not in sys.modules, 'show imported Brian2'; sys.exit(code)")
    shown = subprocess.run([sys.executable, "-c", code, str(serial / "sweep.h5")],
                           capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr
    assert "model.tau_belief_ms = 1.0, 2.0 (2)" in shown.stdout
    assert "seed = 0, 1 (2)" in shown.stdout and "status: 8 done, 0 failed" in shown.stdout
    figure = tmp_path / "sweep.svg"
    plotted = pcsim("plot", str(serial), "-o", str(figure))
    assert plotted.returncode == 0, plotted.stderr
    assert figure.stat().st_size > 10_000 and "<svg" in figure.read_text()[:500]
    default = pcsim("plot", str(serial / "sweep.h5"))
    assert default.returncode == 0 and (serial / "sweep.png").stat().st_size > 10_000


def test_plot_follows_the_reaction_time(tmp_path):
    """attention/posner (one trial per condition): the sweep's figure follows the mean
    reaction time (the decision time) per condition, and the index holds those means from the
    trial table."""
    from sim.sweeps.report import groups_and_column

    sweep = sim.sweep("attention/posner", vary={"protocol.conditions.*.count": [1],
                                                "model.prior.precision": [2.0, 4.0]},
                      jobs=2, output=tmp_path)
    assert sweep.counts == {"done": 2}
    groups, column = groups_and_column(sweep.index)
    assert column == "decision_time"
    assert groups == ["valid_left", "valid_right", "invalid_left", "invalid_right",
                      "neutral_left", "neutral_right"]
    table = sweep.table
    with sweep.result(1) as result:
        condition = np.asarray(result.trials["condition"])
        rt = np.asarray(result.trials["decision_time"])
    for group in groups:
        expected = rt[condition == group]
        assert len(expected) == 1
        assert table[f"mean[{group}]/decision_time"][1] == pytest.approx(expected[0])
    plotted = pcsim("plot", str(tmp_path), "-o", str(tmp_path / "rt.png"))
    assert plotted.returncode == 0 and (tmp_path / "rt.png").stat().st_size > 10_000


def test_progress_line_on_a_terminal():
    import io

    from sim.sweeps.progress import SweepProgress

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Terminal()
    bar = SweepProgress(5, stream=stream, width=10)
    bar.start(already=1)  # finished by an earlier run: not in the time left
    bar.began -= 10.0  # 10 s ago
    bar.add("failed")
    assert bar.line().startswith("[####......] 2/5 points, 1 failed, 0:10 elapsed, 0:30 left")
    bar.end()
    assert stream.getvalue().endswith("\n") and stream.getvalue().count("\r") == 3
    quiet = io.StringIO()
    SweepProgress(5, stream=quiet).add("done")
    assert quiet.getvalue() == ""


def test_table_without_pandas(serial, monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)
    table = sim.open_sweep(serial).table
    assert isinstance(table, np.ndarray) and table.dtype.names is not None
    assert len(table) == 8 and set(table["status"]) == {"done"}
    assert np.array_equal(np.unique(table["model.tau_belief_ms"]), [1.0, 2.0])


def test_a_worker_whose_point_is_interrupted_exits_by_itself(tmp_path):
    """SIGTERM to a busy local worker (its sweep stopping its workers, or a scheduler stopping
    the job): the point ends interrupted and the worker exits on its own, with nothing more
    sent to it. Before, it waited for another task until its sweep killed it ``GRACE_S``
    later, so every interrupted sweep took that long to stop."""
    from sim.scenario import bundled_scenarios
    from sim.sweeps.pool import LocalPool

    pool = LocalPool(1)
    worker = pool.workers[0]
    task = {"scenario": str(bundled_scenarios()[SCENARIO]), "folder": str(tmp_path),
            "key": "long", "overrides": {"protocol.trials.0.duration_ms": 100000.0},
            "seed": 0, "since": time.time()}
    try:
        signalled = False
        for outcome in pool.run([task]):
            if outcome:
                break
            if not signalled and list(tmp_path.glob("point-*.lock")):  # the point runs
                time.sleep(0.5)
                worker.process.send_signal(signal.SIGTERM)
                signalled = True
        assert signalled and outcome["status"] == "interrupted", outcome
        assert worker.process.wait(timeout=60) == 0
    finally:
        pool.close()
    assert not point_files(tmp_path) and not list(tmp_path.glob("*.lock"))
