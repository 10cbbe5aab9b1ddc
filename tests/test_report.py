"""The report side: results read lazily, `pcsim show` and `plot` without Brian2, and the
headline table `pcsim run` ends with, made from the result file."""

from __future__ import annotations

import ast
import contextlib
import gc
import io
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest

import sim
from sim.cli import main
from sim.report.headlines import headline_lines

# The hierarchy records every step (4000 samples of 64 inputs): the large arrays a reader must
# leave alone. Recording more often does not change the trial table.
RUNS = {
    "perception/hierarchy": ["--set", "record.every_ms=0.1"],
    "perception/cue_integration": [],
    "perception/creak": [],
    "perception/creak_half_asleep": [],
}

LARGE = ("levels/input/input", "levels/input/error", "levels/input/precision")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Each scenario run once by `pcsim run` (in this process): name -> (file, stdout)."""
    folder = tmp_path_factory.mktemp("runs")
    done = {}
    for name, extra in RUNS.items():
        output = folder / (name.replace("/", "__") + ".h5")
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(io.StringIO()):
            assert main(["run", name, "-o", str(output), "--no-plot", *extra]) == 0
        done[name] = output, printed.getvalue()
    return done


@pytest.fixture
def big(runs):
    return runs["perception/hierarchy"][0]


def fresh_process(*argv: str) -> list[str]:
    """Run `pcsim <argv>` in a new Python; the heavy modules it left loaded."""
    probe = (f"import sys; from sim.cli import main; code = main({list(argv)!r}); "
             "print(code, [m for m in ('brian2', 'pandas', 'matplotlib') if m in sys.modules])")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    code, loaded = done.stdout.splitlines()[-1].split(" ", 1)
    assert code == "0", done.stdout
    return ast.literal_eval(loaded)


# --- the report side never imports Brian2 ---------------------------------------------------

def test_show_imports_neither_brian2_nor_pandas_nor_matplotlib(big):
    assert fresh_process("show", str(big)) == []


def test_plot_does_not_import_brian2(big, tmp_path):
    figure = tmp_path / "figure.png"
    assert fresh_process("plot", str(big), "-o", str(figure)) == ["matplotlib"]
    assert figure.stat().st_size > 0


# --- reading lazily ---------------------------------------------------------------------------

@pytest.fixture
def reads(monkeypatch) -> list[str]:
    """The HDF5 paths of every dataset read (h5py's Dataset.__getitem__), in order."""
    read: list[str] = []
    original = h5py.Dataset.__getitem__

    def recording(self, *args, **kwargs):
        read.append(self.name.lstrip("/"))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(h5py.Dataset, "__getitem__", recording)
    return read


def test_load_reads_only_what_it_is_asked_for(big, reads):
    with sim.load(big) as result:
        assert reads == []
        assert result.shape("levels/input/input") == (4000, 64)
        assert all(path in result and path in result.datasets for path in LARGE)
        assert sorted(result.level("input")) == ["error", "input", "precision"]
        assert "name" in result.trials and len(result.datasets) > len(LARGE)
        assert result.units("free_energy") == "nat" and result.kind == "hierarchical"
        assert reads == []

        time, names = result.time, result.trials["name"]
        assert reads == ["trials/name"]  # a time series reads nothing until it is indexed
        assert result.time is time and result.trials["name"] is names  # names: kept
        assert time.shape == (4000,) and time.units == "s" and len(time) == 4000
        assert reads == ["trials/name"]
        trace = result["levels/input/input"][:, 5]  # one unit's trace
        window = result.level("input")["input"][100:200]  # every unit in a time window
        assert reads == ["trials/name", "levels/input/input", "levels/input/input"]
        assert result.read("levels/input/input", np.s_[-2:]).shape == (2, 64)
        times, belief = np.asarray(time), np.asarray(result.level("objects")["belief"])
        late = result["levels/input/input"][[3999, 7, 7]]  # h5py refuses: NumPy indexes
        ahead = result.free_energy * 2 - result["energy"]  # arithmetic reads whole arrays
        assert type(ahead) is np.ndarray and ahead.shape == (4000,)

    assert names.tolist() == ["object A, then object B"]
    with h5py.File(big) as handle:
        assert np.array_equal(times, handle["time"][()])
        assert np.array_equal(belief, handle["levels/objects/belief"][()])
        assert np.array_equal(trace, handle["levels/input/input"][:, 5])
        assert np.array_equal(window, handle["levels/input/input"][100:200])
        assert np.array_equal(late, handle["levels/input/input"][()][[3999, 7, 7]])
        assert np.array_equal(ahead, 2 * handle["free_energy"][()] - handle["energy"][()])


def test_show_reads_no_recorded_array(big, reads, capsys):
    assert main(["show", str(big)]) == 0
    shown = capsys.readouterr().out
    assert "4000 samples to 399.9 ms" in shown
    assert "/levels/input/input                       (4000, 64)     1" in shown
    # the scenario's parameters say what was recorded (pcsim show lists what is missing);
    # the headlines read trial columns (sim.report.headlines)
    assert set(reads) <= {"time", "trials/name", "trials/t_start", "trials/t_stop",
                          "trials/final_free_energy", "scenario/parameters",
                          "trials/final_belief/objects"}


def test_the_file_closes_with_the_block_or_close(big, tmp_path):
    copy = tmp_path / "copy.h5"
    shutil.copy(big, copy)

    def open_for_writing() -> None:
        # HDF5 refuses this while the file is open (read-only) in this process
        h5py.File(copy, "r+").close()

    with sim.load(copy) as result:
        free_energy, names = np.asarray(result.free_energy), result.trials["name"]
        with pytest.raises(OSError):
            open_for_writing()
    open_for_writing()
    assert result.trials["name"] is names  # read before closing: still there
    with h5py.File(copy) as handle:
        assert np.array_equal(free_energy, handle["free_energy"][()])
    with pytest.raises(sim.ResultError, match="closed, /time was not read"):
        np.asarray(result.time)  # a time series is read from the file when indexed
    with pytest.raises(sim.ResultError, match="closed"):
        result.level("input")["input"][:, 0]
    with pytest.raises(sim.ResultError, match="closed"):
        result.trials["t_start"]

    plain = sim.load(copy)
    with pytest.raises(OSError):
        open_for_writing()
    plain.close()
    plain.close()
    open_for_writing()

    plain = sim.load(copy)
    del plain
    gc.collect()
    open_for_writing()

    with h5py.File(copy, "a") as handle:
        handle.attrs["status"] = "interrupted"
    with pytest.raises(sim.ResultError, match="marked 'interrupted'"):
        sim.load(copy)
    open_for_writing()  # a refused file is not left open


# --- run summaries from the file --------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(RUNS))
def test_run_ends_with_the_headlines_of_its_file(runs, name):
    """What ``pcsim run`` prints is ``headline_lines`` of the file it wrote (the numbers against
    the file's datasets: tests/test_headlines.py)."""
    output, stdout = runs[name]
    with sim.load(output) as result:
        table = headline_lines(result)
    assert table[0] == "headlines:" and len(table) > 2
    assert stdout.splitlines() == [*table, f"wrote {output}"]
