"""Reading results in parts: time series sliced through h5py (LazyArray), recorded streams
stored in tiles over time and units, the trial table as a DataFrame, and `pcsim diff`."""

from __future__ import annotations

import contextlib
import io
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

import sim
from sim.cli import main
from sim.io.lazy import LazyArray
from sim.io.writer import ResultWriter, StreamedDataset

WIDTH = 64
SAMPLES = 40_000  # 20 MB of float64 beliefs: 640 tiles of 1024 samples x 4 units


class CountingFile(io.RawIOBase):
    """A file read through h5py's file-object driver, counting the bytes HDF5 reads."""

    def __init__(self, path: Path) -> None:
        self.file = open(path, "rb")  # noqa: SIM115 (closed with the HDF5 file)
        self.count = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        read = self.file.readinto(buffer) or 0
        self.count += read
        return read

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.file.seek(offset, whence)

    def tell(self) -> int:
        return self.file.tell()

    def close(self) -> None:
        self.file.close()
        super().close()


def synthetic(path: Path, samples: int, width: int, seed: int = 0) -> Path:
    """A complete result written by the streaming writer: time and random beliefs (noise
    compresses little, so stored bytes track the values)."""
    rng = np.random.default_rng(seed)
    writer = ResultWriter(path)
    now: dict[str, object] = {}
    writer.stream("time", None, lambda: now["t"], units="s")
    writer.stream("levels/input/input", 1, lambda: 0.0)
    writer.stream("levels/x/belief", width, lambda: now["x"])
    for sample in range(samples):
        now["t"], now["x"] = sample * 1e-4, rng.normal(size=width)
        for stream in writer.streams:
            stream.sample()
    complete_the_layout(writer.file, width, samples * 1e-4)
    return writer.commit()


def complete_the_layout(file: h5py.File, width: int, duration: float) -> None:
    """What every hierarchical result holds besides its streams (sim.io.schema), for a model of
    one input unit and ``width`` top units, one trial."""
    file.attrs.update({"scenario_name": "synthetic", "model_kind": "hierarchical", "seed": 0,
                       "dt": 1e-4, "dt_units": "s", "method": "euler", "duration": duration})
    scenario = file.create_group("scenario")
    scenario.attrs.update({"path": "", "description": ""})
    scenario["source"], scenario["parameters"] = "", json.dumps({"model": {}, "record": {}})
    for index, (name, role, size) in enumerate((("input", "input", 1), ("x", "top", width))):
        file["levels"][name].attrs.update({"index": index, "role": role, "size": size})
        file[f"trials/final_precision/{name}"] = np.ones((1, size))
        file[f"trials/precision_share/{name}"] = np.ones((1, size)) / size
    file["levels/x/weights_initial"] = np.zeros((1, width))
    file["trials/final_belief/x"] = np.zeros((1, width))
    for column, value in (("index", 0), ("name", "only"), ("t_start", 0.0),
                          ("t_stop", duration), ("final_free_energy", 0.0)):
        file[f"trials/{column}"] = [value]


@pytest.fixture(scope="module")
def large(tmp_path_factory) -> Path:
    return synthetic(tmp_path_factory.mktemp("large") / "large.h5", SAMPLES, WIDTH)


@contextlib.contextmanager
def counted_load(path: Path, monkeypatch):
    """``sim.load(path)`` reading through a ``CountingFile``: (result, counter)."""
    opened: list[CountingFile] = []
    real = h5py.File

    def counting(name, mode="r", **options):
        opened.append(CountingFile(Path(name)))
        return real(opened[-1], mode, **options)

    with monkeypatch.context() as patch:
        patch.setattr(h5py, "File", counting)
        result = sim.load(path)
    with result:
        yield result, opened[0]


def stored_bytes(dataset: h5py.Dataset, rows: range, columns: range) -> int:
    """Bytes on disk of the chunks that hold ``rows`` x ``columns`` (from the chunk index)."""
    chunk_rows, chunk_columns = dataset.chunks
    total = 0
    for band in range(rows.start // chunk_rows, (rows.stop - 1) // chunk_rows + 1):
        for tile in range(columns.start // chunk_columns, (columns.stop - 1) // chunk_columns + 1):
            total += dataset.id.get_chunk_info_by_coord(
                (band * chunk_rows, tile * chunk_columns)).size
    return total


# --- tiles over time and units --------------------------------------------------------------

def amplification(shape: tuple[int, int], chunks: tuple[int, int], rows: range,
                  columns: range) -> float:
    """Values in the chunks a selection touches over the values selected (edge chunks are
    stored whole)."""
    bands = math.ceil(rows.stop / chunks[0]) - rows.start // chunks[0]
    tiles = math.ceil(columns.stop / chunks[1]) - columns.start // chunks[1]
    return bands * chunks[0] * tiles * chunks[1] / (len(rows) * len(columns))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("width", [1, 2, 3, 5, 7, 16, 64, 100, 1000, 2048, 3000, 4096, 5000,
                                   10_000, 100_000])
def test_tiles_read_a_few_times_what_is_asked(tmp_path, width, dtype):
    """One unit's whole trace reads at most 4x its bytes up to 4096 units, about width / 1024 x
    beyond; every unit over a window of one tile's rows (or more),
    anywhere, at most 3x (times the padding of the last tile, <= 1.25)."""
    with h5py.File(tmp_path / "tiles.h5", "w") as handle:
        stream = StreamedDataset(handle, "x", width, "1", np.dtype(dtype), lambda: 0.0)
        chunks = stream.dataset.chunks
        buffer = stream.buffer.nbytes
    samples = 10**6
    shape = (samples, width)
    assert buffer <= max(8 << 20, width * np.dtype(dtype).itemsize)  # one band, bounded
    unit = max(amplification(shape, chunks, range(samples), range(u, u + 1))
               for u in (0, width // 2, width - 1))
    if width <= 4096:
        assert unit <= 4 * (1 + chunks[0] / samples)
    else:
        assert unit <= width / 1024 * 1.25
    padding = math.ceil(width / chunks[1]) * chunks[1] / width
    assert padding <= 1.25
    for window in (chunks[0], 2 * chunks[0], 10 * chunks[0] + 7):
        for start in (0, chunks[0] // 2 + 1, samples - window):
            rows = range(start, start + window)
            assert amplification(shape, chunks, rows, range(width)) <= 3 * padding


def test_a_unit_or_a_window_reads_only_its_tiles(large, monkeypatch):
    """Bytes HDF5 reads: opening ~nothing; one unit's trace about 1/16 of the dataset (4 of
    64 units per tile); 1024 samples of every unit two bands of tiles; the values are h5py's."""
    size = large.stat().st_size
    with counted_load(large, monkeypatch) as (result, counter):
        opened = counter.count
        beliefs = result["levels/x/belief"]
        assert isinstance(beliefs, LazyArray) and beliefs.shape == (SAMPLES, WIDTH)
        assert counter.count == opened  # the wrapper reads nothing
        trace = beliefs[:, 37]
        unit_bytes = counter.count - opened
        window = beliefs[5000:6024]
        window_bytes = counter.count - opened - unit_bytes
        dataset = result._file.handle["levels/x/belief"]
        unit_tiles = stored_bytes(dataset, range(SAMPLES), range(37, 38))
        window_tiles = stored_bytes(dataset, range(5000, 6024), range(WIDTH))
    with h5py.File(large) as handle:
        assert np.array_equal(trace, handle["levels/x/belief"][:, 37])
        assert np.array_equal(window, handle["levels/x/belief"][5000:6024])
    assert opened < 100_000 and opened < size / 100
    assert unit_tiles < size / 12  # 4 of 64 units per tile: ~1/16 of the file
    assert unit_tiles <= unit_bytes <= unit_tiles + 65_536  # + the chunk index
    assert window_tiles <= window_bytes <= window_tiles + 65_536
    assert window_bytes < 3 * 1024 * WIDTH * 8  # 2 bands of 1024 samples hold the window


def test_opening_does_not_grow_with_the_file(tmp_path, monkeypatch):
    small = synthetic(tmp_path / "small.h5", 2048, WIDTH)
    big = synthetic(tmp_path / "big.h5", 20 * 2048, WIDTH)
    read = {}
    for path in (small, big):
        with counted_load(path, monkeypatch) as (result, counter):
            assert result.shape("levels/x/belief")[0] in (2048, 20 * 2048)
            read[path] = counter.count
    assert big.stat().st_size > 15 * small.stat().st_size
    assert read[big] < 100_000 and read[big] < 4 * read[small]


# --- lazy time series -----------------------------------------------------------------------

def test_time_series_slice_like_numpy(tmp_path):
    path = synthetic(tmp_path / "r.h5", 3000, 6, seed=3)
    with h5py.File(path) as handle:
        expected, times = handle["levels/x/belief"][()], handle["time"][()]
    with sim.load(path) as result:
        beliefs = result["levels/x/belief"]
        assert result.level("x")["belief"] is beliefs
        assert result.datasets["levels/x/belief"] is beliefs
        assert (beliefs.shape, beliefs.ndim, beliefs.dtype, len(beliefs)) == (
            (3000, 6), 2, np.float64, 3000)
        assert beliefs.units == "1" and result.time.units == "s"
        selections = [np.s_[:, 2], np.s_[100:200], np.s_[-5:], np.s_[10], np.s_[::7, 1:4],
                      np.s_[..., 5], np.s_[[3, 1, 3]], np.s_[::-1, 0], np.s_[-1, -1],
                      np.s_[expected[:, 0] > 1.0]]
        for selection in selections:
            np.testing.assert_array_equal(beliefs[selection], expected[selection],
                                          err_msg=str(selection))
        np.testing.assert_array_equal(np.asarray(beliefs), expected)
        np.testing.assert_array_equal(beliefs[()], expected)
        assert np.asarray(beliefs, dtype=np.float32).dtype == np.float32
        np.testing.assert_array_equal(beliefs * 2 - result.time[:, None],
                                      2 * expected - times[:, None])
        np.testing.assert_array_equal(np.sin(beliefs), np.sin(expected))
        np.testing.assert_array_equal(np.mean(beliefs, axis=0), expected.mean(axis=0))
        np.testing.assert_array_equal(beliefs.sum(axis=1), expected.sum(axis=1))
        assert beliefs.T.shape == (6, 3000) and beliefs.tolist() == expected.tolist()
        with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
            _ = beliefs.nonsense
        np.testing.assert_array_equal(np.stack(list(beliefs)), expected)
        blocks = list(beliefs.blocks(700))
        assert [where.start for where, _ in blocks] == [0, 700, 1400, 2100, 2800]
        np.testing.assert_array_equal(np.concatenate([b for _, b in blocks]), expected)
        with pytest.raises(IndexError):
            beliefs[3000]


# --- the trial table as a DataFrame ---------------------------------------------------------

@pytest.fixture(scope="module")
def cues(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("cues")
    return sim.run("perception/cue_integration", output=folder / "cues.h5").path


def test_trials_frame_holds_the_trial_table(cues):
    pandas = pytest.importorskip("pandas")
    with sim.load(cues) as result:
        frame = result.trials_frame()
        trials = {name: np.asarray(result.trials[name]) for name in result.trials}
    assert isinstance(frame, pandas.DataFrame) and len(frame) == len(trials["name"]) == 7
    assert frame["name"].tolist() == trials["name"].tolist()
    np.testing.assert_array_equal(frame["final_free_energy"], trials["final_free_energy"])
    for unit in range(2):  # (trials, 2): one column per unit
        np.testing.assert_array_equal(frame[f"final_precision/senses[{unit}]"],
                                      trials["final_precision/senses"][:, unit])
    assert "final_precision/senses" not in frame
    # (trials, 401) and (trials, 1, 401): one array per trial
    for name in ("reference_density", "reference_grid"):
        np.testing.assert_array_equal(np.stack(frame[name].tolist()), trials[name])
    # the fog sweep, as an analysis would select it: as fog fades the first cue (at 1), the
    # percept moves towards the second (at 3)
    fog = frame[frame["name"].str.fullmatch(r"fog \d")]
    assert len(fog) == 5 and fog["final_belief/position[0]"].is_monotonic_increasing


def test_trials_frame_without_pandas_says_what_is_missing(cues, monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas now fails
    with sim.load(cues) as result, pytest.raises(ModuleNotFoundError) as caught:
        result.trials_frame()
    assert "needs pandas" in str(caught.value) and "\n" not in str(caught.value)


# --- figures in each format -------------------------------------------------------------------

MAGIC = {".png": b"\x89PNG\r\n\x1a\n", ".pdf": b"%PDF-", ".svg": b"<?xml"}


@pytest.mark.parametrize("suffix", sorted(MAGIC))
def test_plot_writes_the_format_its_extension_names(cues, tmp_path, suffix):
    figure = tmp_path / f"figure{suffix}"
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["plot", str(cues), "-o", str(figure)]) == 0
    content = figure.read_bytes()
    assert content.startswith(MAGIC[suffix]) and len(content) > 1000
    if suffix == ".svg":
        assert b"<svg" in content[:2000]


def figure_of(path: Path):
    from sim.report.figures.hierarchical import plot_hierarchical

    with sim.load(path) as result:
        return plot_hierarchical(result)


def texts(figure) -> dict[str, list[str]]:
    """Axis labels, legend entries and colour-bar labels of a figure."""
    found: dict[str, list[str]] = {"x": [], "y": [], "legend": []}
    for axis in figure.axes:
        found["x"].append(axis.get_xlabel())
        found["y"].append(axis.get_ylabel())
        legend = axis.get_legend()
        if legend:
            found["legend"] += [t.get_text() for t in legend.get_texts()]
    return found


def test_few_units_are_named_in_a_legend_many_get_a_colour_map(tmp_path):
    import matplotlib.pyplot as plt

    path = tmp_path / "hierarchy.h5"
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main(["run", "perception/hierarchy", "-o", str(path), "--no-plot",
                     "--set", "protocol.trials.0.duration_ms=40"]) == 0
    figure = figure_of(path)
    found = texts(figure)
    # objects: 4 units, lines named in a legend; input (64) and features (16): images
    assert [f"objects[{unit}]" for unit in range(4)] == [t for t in found["legend"]
                                                          if t.startswith("objects[")]
    assert not any(t.startswith(("input[", "features[")) for t in found["legend"])
    images = [axis for axis in figure.axes if axis.images]
    assert len(images) == 4  # input x, input error, features belief, features error
    bars = [child.get_ylabel() for axis in images for child in axis.child_axes]
    assert bars == ["input x", "error eps", "belief mu", "error eps"]  # dimensionless
    assert "free energy F (nat)" in found["y"] and "time (ms)" in found["x"]
    assert all(label for axis, label in zip(figure.axes, found["y"], strict=True)
               if axis.lines or axis.images)
    plt.close(figure)


def test_many_causes_get_a_colour_map(tmp_path):
    import matplotlib.pyplot as plt

    from sim.bench.discrete import discrete_table
    from sim.report.figures.discrete import plot_discrete
    from sim.scenario_writer import write_scenario

    table = discrete_table("many", 40, 500)  # 40 causes, an observation every 5 ms
    table["record"] = {"every_ms": 1.0}
    result = sim.run(write_scenario(tmp_path / "many.toml", table), output=tmp_path / "m.h5")
    with result:
        figure = plot_discrete(result)
    (image,) = [axis for axis in figure.axes if axis.images]
    assert image.images[0].get_array().shape == (40, 50)  # causes x samples
    assert [child.get_ylabel() for child in image.child_axes] == ["belief Q (probability)"]
    assert image.get_ylabel() == "Q(causes)\ncause" and image.get_legend() is None
    plt.close(figure)


# --- pcsim diff -------------------------------------------------------------------------------

SHORT = ["--set", "protocol.trials.0.duration_ms=20", "--no-plot"]


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def hierarchy_runs(tmp_path_factory) -> dict[str, Path]:
    """perception/hierarchy (noisy input), 20 ms: seed 1 twice, seed 2, and seed 1 with a
    slower belief time constant."""
    folder = tmp_path_factory.mktemp("diff")
    runs = {"a": ["--seed", "1"], "again": ["--seed", "1"], "seed": ["--seed", "2"],
            "tau": ["--seed", "1", "--set", "model.tau_belief_ms=8"]}
    paths = {}
    for name, extra in runs.items():
        paths[name] = folder / f"{name}.h5"
        code, _, err = run_cli("run", "perception/hierarchy", "-o", str(paths[name]), *SHORT,
                               *extra)
        assert code == 0, err
    return paths


def h5_max_difference(first: Path, second: Path, path: str) -> float:
    with h5py.File(first) as a, h5py.File(second) as b:
        return float(np.max(np.abs(a[path][()] - b[path][()])))


def test_diff_of_the_same_run_twice_is_identical(hierarchy_runs):
    code, out, err = run_cli("diff", str(hierarchy_runs["a"]), str(hierarchy_runs["again"]))
    assert (code, err) == (0, "")
    assert out.splitlines() == [f"{hierarchy_runs['a']} and {hierarchy_runs['again']}: "
                                f"identical (same parameters; {count(hierarchy_runs['a'])} "
                                "datasets equal)"]


def count(path: Path) -> int:
    found = []
    with h5py.File(path) as handle:
        handle.visititems(lambda name, node: found.append(name)
                          if isinstance(node, h5py.Dataset) else None)
    return len([name for name in found if name != "scenario/parameters"])


def section(out: str, header: str) -> dict[str, str]:
    """The `    key  value` lines under `  header:` of `pcsim diff`'s output."""
    found: dict[str, str] = {}
    inside = False
    for line in out.splitlines():
        if not line.startswith("    "):
            inside = line == f"  {header}:"
        elif inside:
            key, value = line.split(None, 1)
            found[key] = value
    return found


def differences(out: str) -> dict[str, str]:
    return section(out, "datasets")


def parameter_lines(out: str) -> dict[str, str]:
    return section(out, "parameters (A -> B)")


def test_diff_names_the_seed_and_each_dataset_it_moved(hierarchy_runs):
    a, b = hierarchy_runs["a"], hierarchy_runs["seed"]
    code, out, _ = run_cli("diff", str(a), str(b))
    assert code == 1
    assert parameter_lines(out) == {"seed": "1 -> 2", "overrides.seed": "1 -> 2"}
    found = differences(out)
    # the input noise differs, so does everything downstream of it; the trial names do not
    for path in ("levels/input/input", "levels/features/belief", "levels/objects/belief",
                 "free_energy", "trials/final_free_energy"):
        assert found[f"/{path}"] == f"max |A - B| = {h5_max_difference(a, b, path):.6g}"
    assert "/time" not in found and "/trials/name" not in found
    assert "/levels/input/weights_initial" not in found  # weights are drawn from their own seed


def test_diff_names_a_changed_parameter(hierarchy_runs):
    a, b = hierarchy_runs["a"], hierarchy_runs["tau"]
    code, out, _ = run_cli("diff", str(a), str(b))
    assert code == 1
    assert parameter_lines(out) == {"model.tau_belief_ms": "5.0 -> 8",
                                    "overrides.model.tau_belief_ms": "(absent) -> 8"}
    found = differences(out)
    assert "/levels/input/input" not in found  # same seed: same input
    assert found["/levels/objects/belief"] == (
        f"max |A - B| = {h5_max_difference(a, b, 'levels/objects/belief'):.6g}")


def test_diff_finds_one_changed_value_and_a_missing_dataset(hierarchy_runs, tmp_path):
    a = hierarchy_runs["a"]
    b = tmp_path / "edited.h5"
    shutil.copy(a, b)
    errors = ["levels/input/error", "levels/features/error", "levels/objects/error"]
    with h5py.File(b, "a") as handle:
        handle["free_energy"][7] += 0.5
        for path in errors:  # every level's: as if `error` were not recorded (one level's
            del handle[path]  # alone is a damaged file, tests/test_damaged_results.py)
        handle["trials/name"][0] = "renamed"
    code, out, _ = run_cli("diff", str(a), str(b))
    assert code == 1
    assert "parameters" not in out
    assert differences(out) == {"/free_energy": "max |A - B| = 0.5",
                                "/trials/name": "text differs"}
    assert f"  only in {a}: " + ", ".join(sorted(f"/{p}" for p in errors)) in out.splitlines()


@pytest.mark.parametrize("bad", ["missing", "text", "other_hdf5", "folder"])
def test_diff_of_what_is_not_a_result_is_one_line_and_exit_2(hierarchy_runs, tmp_path, bad):
    target = tmp_path / f"{bad}.h5"
    if bad == "text":
        target.write_text("not hdf5")
    elif bad == "other_hdf5":
        with h5py.File(target, "w") as handle:
            handle["x"] = [1, 2]
    elif bad == "folder":
        target.mkdir()
    code, out, err = run_cli("diff", str(hierarchy_runs["a"]), str(target))
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith(f"pcsim: error: {target}: ")
    assert "Traceback" not in err


def test_diff_imports_neither_brian2_nor_pandas(hierarchy_runs):
    files = [str(hierarchy_runs["a"]), str(hierarchy_runs["seed"])]
    probe = ("import sys; from sim.cli import main; "
             f"code = main(['diff', *{files!r}]); "
             "print(code, [m for m in ('brian2', 'pandas', 'matplotlib') if m in sys.modules])")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "1 []"


def test_flatten_names_keys_as_set_does():
    from sim.parameters import flatten

    table = {"seed": 1, "model": {"levels": [{"name": "a", "precision": [1.0, 2.0]}]},
             "trials": [{"duration_ms": 20.0}], "empty": {}}
    assert flatten(table) == {"seed": 1, "model.levels.0.name": "a",
                              "model.levels.0.precision": [1.0, 2.0],
                              "trials.0.duration_ms": 20.0}
    assert json.loads(json.dumps(flatten(table)))  # plain values


def test_the_software_versions_are_looked_up_once_per_process(tmp_path, monkeypatch):
    """Every result records the versions it was computed with; a process that writes many
    (a sweep's worker) reads the installed metadata once, and each file gets the same values
    (a caller changing its copy changes no later file's)."""
    import importlib.metadata

    from sim.io import writer

    asked = []
    real = importlib.metadata.version
    monkeypatch.setattr(importlib.metadata, "version",
                        lambda name: asked.append(name) or real(name))
    writer.installed_versions.cache_clear()
    try:
        files = []
        for name in ("a", "b"):
            written = ResultWriter(tmp_path / f"{name}.h5")
            writer.versions()["brian2_version"] = "changed by a caller"
            written.commit("complete")
            files.append(tmp_path / f"{name}.h5")
    finally:
        writer.installed_versions.cache_clear()
    assert asked == ["brian2"], asked
    with h5py.File(files[0], "r") as first, h5py.File(files[1], "r") as second:
        assert first.attrs["brian2_version"] == second.attrs["brian2_version"] == real("brian2")
