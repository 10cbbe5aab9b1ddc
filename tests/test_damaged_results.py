"""Damaged result files: `sim.load`, `pcsim show`, `plot` and `diff` give one line naming the
file (exit 2), never a traceback, or, where the damage is in a part the tool does not need,
finish normally. Two small real results (a hierarchical and a discrete run) are damaged one way
at a time: parts deleted, wrong shapes and ranks, wrong dtypes, parameters that are not JSON,
truncated files and bytes changed at random (seeded)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest

import sim
from sim.cli import main
from sim.io import schema
from sim.io.schema_check import LENGTHS, Layout, instances

ROOT = Path(__file__).resolve().parent.parent
RUNS = {
    # 20 samples, 1 trial, the exact reference (grid and density) on
    "hierarchical": ["perception/single_cause", "--set", "protocol.trials.0.duration_ms=2",
                     "--set", "record.every_ms=0.1"],
    # 40 samples, 2 modalities, one observation each
    "discrete": ["perception/creak", "--set", "protocol.trials.0.duration_ms=20", "--set",
                 'protocol.trials.0.observations=[{time_ms=5.0, sound="thump"}, '
                 '{time_ms=10.0, meow="heard"}]'],
}
Damage = Callable[[h5py.File], None]


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("pristine")
    made = {}
    for family, argv in RUNS.items():
        made[family] = folder / f"{family}.h5"
        assert main(["run", *argv, "-o", str(made[family]), "--no-plot"]) == 0
    return made


def damaged_copy(source: Path, folder: Path, name: str, damage: Damage) -> Path:
    target = folder / (re.sub(r"[^A-Za-z0-9_.-]", "_", name) + ".h5")
    shutil.copy(source, target)
    with h5py.File(target, "a") as handle:
        damage(handle)
    return target


def run(capsys, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line(err: str, path: Path) -> None:
    assert err.count("\n") == 1, err
    assert err.startswith(f"pcsim: error: {path}: "), err
    assert "Traceback" not in err


def outcomes(capsys, source: Path, path: Path, folder: Path, draw: bool = True) -> dict[str, int]:
    """Exit codes of reading everything with sim.load (0 read, 2 a one-line ResultError),
    show, plot and diff (against the pristine file), each checked to be a normal exit or one
    line naming the damaged file. Without ``draw``, plot runs only where loading refused the
    file (a figure takes ~1 s to draw)."""
    found = {"load": read_everything(path)}
    tools = [("show", ["show", str(path)]), ("diff", ["diff", str(source), str(path)])]
    if draw or found["load"] == 2:
        tools.append(("plot", ["plot", str(path), "-o", str(folder / "figure.png")]))
    for tool, argv in tools:
        code, _, err = run(capsys, *argv)
        if code == 2:
            assert_one_line(err, path)
        else:
            assert code in ((1, 0) if tool == "diff" else (0,)), (tool, code, err)
            assert not err, (tool, err)
        found[tool] = code
    return found


def read_everything(path: Path) -> int:
    """Load ``path`` and read every dataset and the parameters: 0, or 2 for a ResultError of
    one line naming the file."""
    try:
        with sim.load(path) as result:
            for name in result.datasets:
                np.asarray(result[name])
            assert isinstance(result.parameters, dict)
    except sim.ResultError as err:
        assert "\n" not in str(err) and str(err).startswith(f"{path}: "), str(err)
        return 2
    return 0


def layout_of(path: Path) -> tuple[Layout, list[str], list[str]]:
    """The file's layout (for the schema's instances), its datasets and its groups."""
    with sim.load(path) as result:
        datasets = {name: (result.shape(name), "") for name in result.datasets}
        return (Layout(result.attrs, datasets, result.group_attrs), list(result.datasets),
                list(result.group_attrs))


def declared_parts(path: Path) -> list[str]:
    """Every dataset and group of ``path`` that the schema declares."""
    layout, datasets, groups = layout_of(path)
    found = {p for declared in schema.DATASETS for p in instances(declared, layout)
             if p in datasets}
    found |= {g for group in schema.GROUPS for g in groups
              if re.fullmatch(group.path.replace("<name>", "[^/]+"), g)}
    return sorted(found)


def deleter(path: str) -> Damage:
    def damage(handle: h5py.File) -> None:
        del handle[path]
    return damage


def attribute_deleter(where: str, name: str) -> Damage:
    def damage(handle: h5py.File) -> None:
        del handle[where].attrs[name]
    return damage


def replacer(path: str, value: Callable[[np.ndarray], object]) -> Damage:
    """``path`` rewritten as ``value(its old values)``."""
    def damage(handle: h5py.File) -> None:
        old = handle[path][()]
        del handle[path]
        handle[path] = value(old)
    return damage


def attribute_setter(where: str, name: str, value: object) -> Damage:
    def damage(handle: h5py.File) -> None:
        handle[where].attrs[name] = value
    return damage


def not_utf8_name(handle: h5py.File) -> None:
    handle[b"levels/light/err\xc1r"] = handle["levels/light/error"][()]


def not_utf8_attribute(handle: h5py.File) -> None:
    handle.attrs.create("scenario_name", b"si\xc1gle_cause", dtype=h5py.string_dtype())


# --- deleted parts --------------------------------------------------------------------------

DRAWN = 3  # deletions per family that loading accepts whose figure is drawn (seeded choice)


@pytest.mark.parametrize("family", sorted(RUNS))
def test_each_declared_part_deleted(results, tmp_path, capsys, family):
    """Every declared dataset and group, one at a time: show lists it (exit 2), diff finds the
    file damaged or different, loading refuses it unless only the scenario's parameters can
    tell it is missing (a recorded stream, a level or modality named there)."""
    source = results[family]
    parts = declared_parts(source)
    assert len(parts) > 20  # the schema covers most of the file
    drawn = set(np.random.default_rng(5).permutation(len(parts))[:DRAWN])
    accepted = []
    for number, part in enumerate(parts):
        path = damaged_copy(source, tmp_path, f"del-{part}", deleter(part))
        found = outcomes(capsys, source, path, tmp_path, draw=number in drawn)
        assert found["show"] == 2, part  # show says what is missing
        assert found["diff"] in (1, 2), part
        if found["load"] == 0:
            accepted.append(part)
    # recorded streams with no sibling recorded with them (the one belief level; each of the
    # discrete run's streams): only [record] variables in the parameters say they are missing
    streams = {"hierarchical": ["levels/food_size/belief"],
               "discrete": ["causes/belief", "causes/error", "free_energy", "surprise"]}
    assert accepted == streams[family]


@pytest.mark.parametrize("family", sorted(RUNS))
def test_each_attribute_deleted(results, tmp_path, capsys, family):
    source = results[family]
    _, _, groups = layout_of(source)
    attributes = [("/", a.name) for a in (*schema.ROOT_ATTRIBUTES,
                                          *schema.FAMILY_ATTRIBUTES.get(family, ()))]
    for group in schema.GROUPS:
        attributes += [(g, a.name) for g in groups for a in group.attributes
                       if re.fullmatch(group.path.replace("<name>", "[^/]+"), g)]
    assert len(attributes) > 15
    for where, name in attributes:
        path = damaged_copy(source, tmp_path, f"delattr-{where}-{name}",
                            attribute_deleter(where, name))
        found = outcomes(capsys, source, path, tmp_path)
        assert found["show"] == found["plot"] == found["diff"] == found["load"] == 2, \
            (where, name)


def test_a_recorded_stream_missing_is_damage_for_show_only(results, tmp_path, capsys):
    """/surprise of a discrete run: nothing in the metadata says it was recorded, so loading,
    plotting and diffing go on (diff names it as only in one file); show reads the scenario's
    [record] variables and says it is missing; result.free_energy of a run without /free_energy
    is one line too."""
    source = results["discrete"]
    path = damaged_copy(source, tmp_path, "no-surprise", deleter("surprise"))
    assert outcomes(capsys, source, path, tmp_path) == {"show": 2, "plot": 0, "diff": 1,
                                                         "load": 0}
    _, out, err = run(capsys, "show", str(path))
    assert "    /surprise: missing (recorded: [record] variables)" in out.splitlines()
    assert err == f"pcsim: error: {path}: damaged pcsim result: 1 part(s) missing or " \
                  "malformed (listed above)\n"
    _, out, _ = run(capsys, "diff", str(source), str(path))
    assert f"  only in {source}: /surprise" in out.splitlines()

    path = damaged_copy(source, tmp_path, "no-free-energy", deleter("free_energy"))
    with sim.load(path) as result, pytest.raises(sim.ResultError, match="no /free_energy"):
        np.asarray(result.free_energy)


def test_show_lists_each_problem_once(results, tmp_path, capsys):
    def damage(handle: h5py.File) -> None:
        del handle["time"], handle["levels/light/error"]
        belief = handle["levels/food_size/belief"][()]
        del handle["levels/food_size/belief"]
        handle["levels/food_size/belief"] = belief[:, :, None]

    path = damaged_copy(results["hierarchical"], tmp_path, "three", damage)
    code, out, err = run(capsys, "show", str(path))
    assert code == 2 and err.endswith("3 part(s) missing or malformed (listed above)\n")
    assert out.split("  damaged: 3 part(s) missing or malformed:\n")[1].splitlines() == [
        "    /levels/light/error: missing (recorded with /levels/food_size/error, which is "
        "there)",
        "    /time: missing",
        "    /levels/food_size/belief: has 3 axes (20, 1, 1), expected 2 (samples, size)"]
    assert "no usable /time" in out and "  trial 0 u=2: 0-2 ms" in out  # the rest is shown


def test_show_of_a_sound_file_exits_0_and_lists_nothing_missing(results, capsys):
    for source in results.values():
        code, out, err = run(capsys, "show", str(source))
        assert (code, err) == (0, "") and "damaged" not in out


# --- wrong shapes, ranks and dtypes -------------------------------------------------------

def malformed() -> list[tuple[str, str, Damage, str]]:
    """(family, case, damage, what the error names)."""
    text = h5py.string_dtype()
    return [
        ("hierarchical", "3-D belief",
         replacer("levels/food_size/belief", lambda a: a[:, :, None]), "/levels/food_size/belief"),
        ("hierarchical", "belief of 2 units",
         replacer("levels/food_size/belief", lambda a: np.hstack([a, a])), "axis 1 (size)"),
        ("hierarchical", "time one sample short", replacer("time", lambda a: a[:-1]),
         "axis 0 (samples)"),
        ("hierarchical", "time a scalar", replacer("time", lambda a: a[0]), "/time"),
        ("hierarchical", "free_energy as text",
         replacer("free_energy", lambda a: np.array([str(x) for x in a], dtype=text)),
         "/free_energy: holds text"),
        ("hierarchical", "trial names as numbers", replacer("trials/name", lambda a: [1.0]),
         "/trials/name"),
        ("hierarchical", "a trial column too long",
         replacer("trials/t_stop", lambda a: np.r_[a, a]), "/trials/t_stop"),
        ("hierarchical", "weights of the wrong shape",
         replacer("levels/food_size/weights_initial", lambda a: np.ones((3, 2))),
         "weights_initial"),
        ("hierarchical", "reference grid as text",
         replacer("trials/reference_grid", lambda a: np.array(["x"], dtype=text)),
         "reference_grid"),
        ("hierarchical", "parameters as a number", replacer("scenario/parameters", lambda a: 3),
         "/scenario/parameters"),
        ("hierarchical", "level size as text",
         attribute_setter("levels/food_size", "size", "one"), "'size'"),
        ("hierarchical", "two input levels",
         attribute_setter("levels/food_size", "index", 0), "/levels"),
        ("hierarchical", "dt as text", attribute_setter("/", "dt", "fast"), "'dt'"),
        ("hierarchical", "an unknown family", attribute_setter("/", "model_kind", "spiking"),
         "'model_kind'"),
        ("hierarchical", "an unknown status", attribute_setter("/", "status", "done"),
         "'status'"),
        ("hierarchical", "a name not UTF-8", not_utf8_name, "is not UTF-8 text"),
        ("hierarchical", "a scenario name not UTF-8", not_utf8_attribute, "'scenario_name'"),
        ("discrete", "belief over 5 causes",
         replacer("causes/belief", lambda a: a[:, :5]), "axis 1 (causes)"),
        ("discrete", "cause names as a number", attribute_setter("causes", "names", 6),
         "'names'"),
        ("discrete", "an outcome of 4 values",
         replacer("observations/sound/outcome", lambda a: np.ones((1, 4))), "outcome"),
        ("discrete", "observation times of 2 rows",
         replacer("observations/meow/time", lambda a: np.r_[a, a]), "observations/meow"),
        ("discrete", "surprise as text",
         replacer("surprise", lambda a: np.array(["x"] * len(a), dtype=text)), "/surprise"),
    ]


@pytest.mark.parametrize("family, case, damage, named", malformed(),
                         ids=[case for _, case, _, _ in malformed()])
def test_malformed_parts(results, tmp_path, capsys, family, case, damage, named):
    source = results[family]
    path = damaged_copy(source, tmp_path, case, damage)
    assert outcomes(capsys, source, path, tmp_path) == {"show": 2, "plot": 2, "diff": 2,
                                                        "load": 2}
    _, _, err = run(capsys, "plot", str(path), "-o", str(tmp_path / "figure.png"))
    assert named in err


PARAMETERS = {  # the text, and whether it is a scenario's parameters to plot and diff
    "not JSON": ("{not json", False),
    "a JSON list": ("[1, 2]", False),
    "no model": ('{"record": {}}', False),
    "no levels, no record.variables": ('{"model": {}, "record": {}}', True),
    "levels without names": ('{"model": {"levels": [1]}, "record": {"variables": []}}', True),
}


@pytest.mark.parametrize("case", sorted(PARAMETERS))
def test_parameters_that_are_not_the_scenario(results, tmp_path, capsys, case):
    """Loading reads no values; plot and diff read the parameters (plot for the learned basis
    images) and need a JSON object of tables model and record; show says what is wrong."""
    text, usable = PARAMETERS[case]
    source = results["hierarchical"]
    path = damaged_copy(source, tmp_path, "parameters",
                        replacer("scenario/parameters", lambda a: text))
    found = outcomes(capsys, source, path, tmp_path)
    assert found == ({"show": 2, "plot": 0, "diff": 1, "load": 0} if usable
                     else {"show": 2, "plot": 2, "diff": 2, "load": 2})
    _, out, _ = run(capsys, "show", str(path))
    assert "/scenario/parameters" in out.split("  damaged:")[1]


# --- truncated and bit-flipped files -----------------------------------------------------

@pytest.mark.parametrize("family", sorted(RUNS))
def test_truncated(results, tmp_path, capsys, family):
    source = results[family]
    data = source.read_bytes()
    for length in (0, 8, 512, 4096, len(data) // 4, len(data) // 2, len(data) - 4096,
                   len(data) - 1):
        path = tmp_path / f"truncated-{length}.h5"
        path.write_bytes(data[:length])
        assert outcomes(capsys, source, path, tmp_path) == {"show": 2, "plot": 2, "diff": 2,
                                                            "load": 2}, length


@pytest.mark.parametrize("family", sorted(RUNS))
def test_bytes_changed_at_random(results, tmp_path, capsys, family):
    """One byte changed (seeded): a changed value the tools do not check is a normal exit;
    anything else one line. Each tool's outcomes are counted: both kinds must occur."""
    source = results[family]
    data = source.read_bytes()
    rng = np.random.default_rng(22)
    seen: dict[str, set[int]] = {"show": set(), "plot": set(), "diff": set(), "load": set()}
    # a third in the first 4 kB (the superblock and the root group's headers), the rest anywhere
    offsets = [*rng.integers(0, 4096, 4), *rng.integers(0, len(data), 10)]
    for number, offset in enumerate(offsets):
        flipped = bytearray(data)
        flipped[offset] ^= int(rng.integers(1, 256))
        path = tmp_path / f"flipped-{offset}.h5"
        path.write_bytes(bytes(flipped))
        for tool, code in outcomes(capsys, source, path, tmp_path, draw=number % 3 == 0).items():
            seen[tool].add(code)
    assert {0, 2} <= seen["load"] and 2 in seen["show"] and 0 in seen["plot"], seen


# --- a spiking run's spikes and rate reference ------------------------------------------

SPIKING = ["perception/single_cause", "--set", "model.neurons=spiking", "--set",
           "model.spiking.neurons_per_unit=10", "--set", "dt_ms=0.25", "--set",
           "protocol.trials.0.duration_ms=20", "--set", "record.every_ms=1", "--set",
           "readouts.rate_reference={}"]
POPULATION = "spikes/food_size/belief_positive"


@pytest.fixture(scope="module")
def spiking(tmp_path_factory) -> Path:
    """20 ms of single_cause as spikes (10 neurons a unit), with its rate model beside it."""
    path = tmp_path_factory.mktemp("spiking") / "spiking.h5"
    assert main(["run", *SPIKING, "-o", str(path), "--no-plot"]) == 0
    return path


def spiking_damage() -> list[tuple[str, Damage, str]]:
    """(case, damage, what the error names)."""
    text = h5py.string_dtype()
    return [
        ("spike neurons one short", replacer(f"{POPULATION}/neuron", lambda a: a[:-1]),
         f"/{POPULATION}/neuron: axis 0 (spikes)"),
        ("spike times one short", replacer(f"{POPULATION}/time", lambda a: a[:-1]),
         f"/{POPULATION}/neuron: axis 0 (spikes)"),
        ("spike times 2-D", replacer(f"{POPULATION}/time", lambda a: a[:, None]),
         f"/{POPULATION}/time: has 2 axes"),
        ("spike neurons as numbers", replacer(f"{POPULATION}/neuron", lambda a: a + 0.5),
         f"/{POPULATION}/neuron: holds float values, expected integer"),
        ("spike times as text", replacer(f"{POPULATION}/time", lambda a: np.array(
            [str(x) for x in a], dtype=text)), f"/{POPULATION}/time: holds text"),
        ("a sign neither positive nor negative", attribute_setter(POPULATION, "sign", "up"),
         "'sign'"),
        ("neurons per unit as text", attribute_setter(POPULATION, "neurons_per_unit", "ten"),
         "'neurons_per_unit'"),
        ("a rate of 2 units", replacer("levels/food_size/rate_error_positive",
                                       lambda a: np.hstack([a, a])),
         "/levels/food_size/rate_error_positive: axis 1 (size)"),
        ("reference beliefs of 2 units",
         replacer("rate_reference/levels/food_size/belief", lambda a: np.hstack([a, a])),
         "/rate_reference/levels/food_size/belief: axis 1 (size)"),
        ("reference beliefs cut short",
         replacer("rate_reference/levels/food_size/belief", lambda a: a[:-2]),
         "/rate_reference/levels/food_size/belief: axis 0 (samples)"),
        ("reference F a row too many",
         replacer("rate_reference/trials/final_free_energy", lambda a: np.r_[a, a]),
         "/rate_reference/trials/final_free_energy: axis 0 (trials)"),
    ]


@pytest.mark.parametrize("case, damage, named", spiking_damage(),
                         ids=[case for case, _, _ in spiking_damage()])
def test_damaged_spikes_and_rate_reference(spiking, tmp_path, capsys, case, damage, named):
    """A spike dataset truncated, of the wrong rank or dtype, a population's attribute wrong, a
    decoded rate or the rate reference of the wrong shape: load, show, plot and diff each
    give one line naming the file (plot: naming the part), as for any other dataset."""
    path = damaged_copy(spiking, tmp_path, case, damage)
    assert outcomes(capsys, spiking, path, tmp_path) == {"show": 2, "plot": 2, "diff": 2,
                                                         "load": 2}
    _, _, err = run(capsys, "plot", str(path), "-o", str(tmp_path / "figure.png"))
    assert named in err, err


def test_spikes_and_rate_reference_deleted(spiking, tmp_path, capsys):
    """Each spike dataset, each attribute of a population, and each dataset of the rate
    reference deleted one at a time: the reader refuses the file and show lists the part."""
    _, datasets, _ = layout_of(spiking)
    parts = [p for p in declared_parts(spiking) if p.startswith(("spikes/", "rate_reference/"))
             and p in datasets]
    assert len([p for p in parts if p.startswith("spikes/")]) == 16  # 8 populations
    assert len([p for p in parts if p.startswith("rate_reference/")]) == 4
    damages = [(f"/{part}: missing", deleter(part)) for part in parts]
    damages += [(f"/{POPULATION}: no attribute {a.name!r}", attribute_deleter(POPULATION,
                                                                               a.name))
                for group in schema.GROUPS if group.path == schema.SPIKES
                for a in group.attributes]
    for number, (named, damage) in enumerate(damages):
        path = damaged_copy(spiking, tmp_path, f"spiking-{number}", damage)
        assert read_everything(path) == 2, named
        code, out, _ = run(capsys, "show", str(path))
        assert code == 2 and named in out.split("  damaged:")[1], (named, out)


def test_a_sound_spiking_result_is_not_damaged(spiking, capsys):
    code, out, err = run(capsys, "show", str(spiking))
    assert (code, err) == (0, "") and "damaged" not in out


# --- a fresh process, as a user meets it ----------------------------------------------------

@pytest.mark.parametrize("tool", ["show", "plot", "diff"])
def test_one_line_from_a_fresh_process(results, tmp_path, tool):
    source = results["hierarchical"]
    damage = {"show": deleter("time"), "plot": deleter("levels"),
              "diff": replacer("scenario/parameters", lambda a: "{not json")}[tool]
    path = damaged_copy(source, tmp_path, tool, damage)
    argv = {"show": [str(path)], "plot": [str(path), "-o", str(tmp_path / "f.png")],
            "diff": [str(source), str(path)]}[tool]
    done = subprocess.run([sys.executable, "-m", "sim.cli", tool, *argv], capture_output=True,
                          text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 2
    assert_one_line(done.stderr, path)


# --- the schema and its documentation ------------------------------------------------------

def test_every_declared_axis_has_a_length():
    assert LENGTHS.keys() == schema.AXES.keys()
    used = {axis for declared in schema.DATASETS for axis in declared.axes} - {"..."}
    assert used <= schema.AXES.keys()


def test_the_docs_list_what_the_schema_declares():
    """Each declared dataset is in docs/results.md or docs/discrete.md, as `/path` (the
    pattern's `<name>` as the docs name it: `<level>`, `<modality>`...) or, in a table of one
    group's members (trial columns, reaction times), by its path in the group; each root
    attribute is named there too."""
    docs = (ROOT / "docs" / "results.md").read_text() + (ROOT / "docs" / "discrete.md").read_text()
    documented = {re.sub(r"<[^>]+>", "<name>", token) for token in re.findall(r"`([^` ]+)`", docs)}
    undocumented = [d.path for d in schema.DATASETS if "**" not in d.path
                    and f"/{d.path}" not in documented
                    and d.path.split("/", 1)[-1] not in documented]
    assert undocumented == []
    attributes = [a.name for a in (*schema.ROOT_ATTRIBUTES,
                                   *schema.FAMILY_ATTRIBUTES["discrete"])]
    assert [name for name in attributes if name not in documented] == []


# --- a sweep's index ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def sweep_index(tmp_path_factory) -> Path:
    """The index of a 2-point sweep none of whose points ran (no point is needed to damage
    the index)."""
    from sim.sweeps.grid import make_grid
    from sim.sweeps.index import PointState, write_index

    grid = make_grid("perception/single_cause", {"model.tau_belief_ms": [1.0, 2.0]}, seeds=1)
    states = {point.key: PointState("missing") for point in grid.points}
    return write_index(tmp_path_factory.mktemp("sweep"), grid, grid.points, states,
                       "perception/single_cause")


def test_a_damaged_sweep_index(sweep_index, tmp_path, capsys):
    """show and plot of an index with a part deleted, a points column cut short, a status or
    axis position that is not one, truncated or with bytes changed: one line naming it."""
    with h5py.File(sweep_index) as handle:
        datasets: list[str] = []
        handle.visititems(lambda name, node: datasets.append(name)
                          if isinstance(node, h5py.Dataset) else None)
    damages: dict[str, Damage] = {f"del-{name}": deleter(name) for name in datasets}
    damages |= {"short keys": replacer("points/key", lambda a: a[:1]),
                "unknown status": replacer("points/status", lambda a: np.array(
                    ["finished"] * len(a), dtype=h5py.string_dtype())),
                "beyond its axis": replacer("points/axis_index", lambda a: a + 5),
                "values not a list": replacer("grid/values", lambda a: np.array(
                    ["3"], dtype=h5py.string_dtype()))}
    data = sweep_index.read_bytes()
    cases = [damaged_copy(sweep_index, tmp_path, name, damage) for name, damage in damages.items()]
    for length in (100, len(data) // 2, len(data) - 1):
        cases.append(tmp_path / f"truncated-{length}.h5")
        cases[-1].write_bytes(data[:length])
    rng = np.random.default_rng(7)
    for offset in rng.integers(0, len(data), 6):
        flipped = bytearray(data)
        flipped[offset] ^= int(rng.integers(1, 256))
        cases.append(tmp_path / f"flipped-{offset}.h5")
        cases[-1].write_bytes(bytes(flipped))
    refused, drawn = 0, 0
    for path in cases:
        code, _, err = run(capsys, "show", str(path))
        if code == 2:
            assert_one_line(err, path)
            refused += 1
        else:
            assert code == 0 and not err, (path, err)
            drawn += 1
            if drawn > 2:  # a figure takes ~1 s: those of the first two accepted are drawn
                continue
        code, _, err = run(capsys, "plot", str(path), "-o", str(tmp_path / "f.png"))
        if code == 2:
            assert_one_line(err, path)
        else:
            assert code == 0 and not err, (path, err)
    assert refused >= len(damages) + 3  # every part, every truncation
