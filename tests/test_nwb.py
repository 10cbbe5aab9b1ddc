"""``pcsim export RESULT.h5 --nwb FILE.nwb`` (``sim.export_nwb``): the NWB file read back with
pynwb against the result's own datasets (read here with h5py, not through the exporter), and
checked by the NWB inspector.

Results: a two-level rate scenario written here (two trials, a mechanism defined only in this
module that declares a variable of its own), a discrete one (``perception/creak_half_asleep``,
cut short), and a spiking file made from the rate result with h5py per the spike layout of
docs/results.md (the spiking realisation writes it; this test does not need it).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from io import StringIO
from pathlib import Path

import h5py
import numpy as np
import pytest
from cli_output import error_line

import sim
from circuits.mechanism import Mechanism, Stream, state_array
from circuits.variables import Variable
from sim import registry
from sim.cli import main
from sim.export.nwb import IMPORT_LOCK, import_pynwb
from sim.file_lock import locked
from sim.scenario_writer import write_scenario

try:
    pynwb = import_pynwb()  # pcsim's import: the suite's workers import it at once
except ModuleNotFoundError:
    pytest.skip("pynwb is not installed (pip install 'pcsim[nwb]')", allow_module_level=True)
inspector = pytest.importorskip("nwbinspector",
                                reason="nwbinspector is not installed (pip install 'pcsim[nwb]')")

# what the inspector still says of a pcsim export, and why (docs/results.md, "NWB export")
EXPECTED_FINDINGS = {
    "check_subject_species_exists",  # a simulated network has no species
    "check_experimenter_exists",  # nor an experimenter or institution pcsim could know
    "check_institution",
    "check_single_row",  # a scenario of one trial has a trial table of one row
    "check_column_binary_capability",  # a trial index or unit index of two trials or units
}

# a mechanism defined only here: its declared variable is exported with no edit to the exporter
DOUBLED = Variable("belief_doubled", "2mu", "doubled belief", "parameter", units="level")


class DoubledBelief(Mechanism):
    """Records 2 mu of the top level."""

    name = "test_nwb_doubled_belief"
    family = "hierarchical"
    section = "doubled"

    def parse(self, fields):
        return fields.number("on", default=None)

    def streams(self, settings, context):
        top, name = context.beliefs[-1], context.model.levels[-1].name
        values = state_array(top, "belief")
        return [Stream(f"levels/{name}/belief_doubled", len(values), lambda: 2 * values,
                       units=DOUBLED.units_for(context.model.levels[-1].units),
                       declares=DOUBLED)]


def rate_scenario(folder: Path) -> Path:
    """Two levels in mV, two constant-input trials of 30 ms (the exact reference is stored:
    trial columns of one number, vectors and grids per trial; an ERP per level)."""
    table = {"name": "nwb_rate", "dt_ms": 0.1, "seed": 3,
             "model": {"errors": "instantaneous", "tau_belief_ms": 2.0,
                       "levels": [{"name": "x", "size": 2, "precision": 4.0, "units": "mV"},
                                  {"name": "v", "size": 1, "weights": 1.0, "units": "mV"}],
                       "prior": {"mean": 0.0, "precision": 1.0},
                       "doubled": {"on": 1.0}},
             "readouts": {"erp": {}},  # per-trial traces, declared by the readout
             "protocol": {"trials": [
                 {"name": "low", "duration_ms": 30.0,
                  "stimulus": {"kind": "constant", "value": 1.0}},
                 {"name": "high", "duration_ms": 30.0,
                  "stimulus": {"kind": "constant", "value": 2.0}}]}}
    return write_scenario(folder / "nwb_rate.toml", table)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("nwb")


@pytest.fixture(scope="module")
def rate(folder):
    """The rate result and its NWB export (through the CLI, as a user would)."""
    mechanism = registry.register_mechanism(DoubledBelief())
    try:
        sim.run(rate_scenario(folder), output=folder / "rate.h5").close()
    finally:
        registry.unregister_mechanism(mechanism.name)
    printed = StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["export", str(folder / "rate.h5"), "--nwb", str(folder / "rate.nwb")]) == 0
    assert printed.getvalue() == f"wrote {folder / 'rate.nwb'}\n"
    return folder / "rate.h5", folder / "rate.nwb"


@pytest.fixture(scope="module")
def discrete(folder):
    sim.run("perception/creak_half_asleep", output=folder / "creak.h5").close()
    return folder / "creak.h5", sim.export_nwb(folder / "creak.h5", folder / "creak.nwb")


def declared(path: Path) -> dict[str, dict]:
    """Every dataset of a result that declares its variable, with its attributes (h5py)."""
    found = {}

    def visit(name: str, node) -> None:
        if isinstance(node, h5py.Dataset) and "declared_role" in node.attrs:
            found[name] = dict(node.attrs)

    with h5py.File(path, "r") as file:
        file.visititems(visit)
    return found


def where(nwbfile, role: str) -> dict:
    """The NWB container a declared role's time series go to."""
    if role == "input":
        return nwbfile.stimulus
    if role == "energy":
        return nwbfile.processing["misc"].data_interfaces
    return nwbfile.acquisition


def series_times(series) -> np.ndarray:
    if series.timestamps is not None:
        return np.asarray(series.timestamps[:])
    return series.starting_time + np.arange(series.data.shape[0]) / series.rate


def check_series(result: Path, nwb: Path) -> list[str]:
    """Every declared dataset sampled at /time is a TimeSeries where its role says, with equal
    values, units, times and a description from its declaration; one with a time dataset of
    its own (events) is a column of an /intervals table, each row at its time; an ERP's
    per-trial traces (trials x samples) are columns of the trial table. Returns the paths
    checked."""
    datasets = declared(result)
    with h5py.File(result, "r") as file, pynwb.NWBHDF5IO(str(nwb), "r") as io:
        nwbfile = io.read()
        for path, attrs in datasets.items():
            described = f"{attrs['declared_label']} ({attrs['declared_symbol']})"
            group, _, name = path.rpartition("/")
            if group and f"{group}/time" in file:  # events
                table = nwbfile.intervals[group.replace("/", ".")]
                np.testing.assert_array_equal(np.stack(table[name][:]), file[path][()])
                times = file[f"{group}/time"][()]
                np.testing.assert_array_equal(table["start_time"][:], times)
                np.testing.assert_array_equal(table["stop_time"][:], times + file.attrs["dt"])
                assert described in table[name].description
                assert f"({attrs['units']};" in table[name].description
                continue
            if path.startswith("erp/trials/"):  # one row per trial
                column = nwbfile.trials[path.replace("/", ".")]
                np.testing.assert_array_equal(np.stack(column[:]), file[path][()])
                assert described in column.description
                assert f"({attrs['units']};" in column.description
                continue
            series = where(nwbfile, attrs["declared_role"])[path.replace("/", ".")]
            np.testing.assert_array_equal(series.data[:], file[path][()])
            assert series.unit == attrs["units"]
            assert described in series.description
            np.testing.assert_allclose(series_times(series), file["time"][()], rtol=0,
                                       atol=1e-12)
    return sorted(datasets)


def test_a_rate_result_keeps_every_declared_variable(rate):
    result, nwb = rate
    paths = check_series(result, nwb)
    assert {"levels/x/input", "levels/x/error", "levels/v/belief", "levels/v/precision",
            "free_energy", "energy", "levels/v/belief_doubled", "erp/trials/x",
            "erp/trials/v"} <= set(paths), paths
    with pynwb.NWBHDF5IO(str(nwb), "r") as io:
        nwbfile = io.read()
        assert nwbfile.acquisition["levels.v.belief"].unit == "mV"
        assert nwbfile.acquisition["levels.x.error"].unit == "1/mV"
        doubled = nwbfile.acquisition["levels.v.belief_doubled"]  # declared only in this test
        np.testing.assert_array_equal(doubled.data[:], 2 * nwbfile.acquisition[
            "levels.v.belief"].data[:])
        assert nwbfile.units is None  # a rate result has no spikes


def test_the_trial_table_becomes_nwb_trials(rate):
    result, nwb = rate
    with h5py.File(result, "r") as file, pynwb.NWBHDF5IO(str(nwb), "r") as io:
        trials = io.read().trials
        columns = {}

        def visit(name: str, node) -> None:
            if isinstance(node, h5py.Dataset):
                columns[name] = node[()]

        file["trials"].visititems(visit)
        np.testing.assert_array_equal(trials["start_time"][:], columns.pop("t_start"))
        np.testing.assert_array_equal(trials["stop_time"][:], columns.pop("t_stop"))
        np.testing.assert_array_equal(trials.id[:], columns.pop("index"))
        assert list(trials["trial_name"][:]) == ["low", "high"]
        assert [n.decode() for n in columns.pop("name")] == ["low", "high"]
        assert {"kl", "final_belief/v", "reference_grid"} <= set(columns), sorted(columns)
        for name, values in columns.items():
            exported = np.asarray([np.asarray(row) for row in trials[name.replace("/", ".")][:]])
            np.testing.assert_array_equal(exported, values, err_msg=name)


def test_the_scenario_and_versions_are_in_the_metadata(rate):
    result, nwb = rate
    with h5py.File(result, "r") as file, pynwb.NWBHDF5IO(str(nwb), "r") as io:
        nwbfile = io.read()
        assert nwbfile.source_script == file["scenario/source"][()].decode()
        assert nwbfile.source_script_file_name == "nwb_rate.toml"
        software = {name: version for name, version in nwbfile.was_generated_by[:]}
        for name in ("pcsim", "brian2", "numpy"):
            assert software[name] == file.attrs[f"{name}_version"]
        assert software["pynwb"] == pynwb.__version__
        assert "seed 3" in nwbfile.session_description
        assert "seed: 3" in nwbfile.notes.splitlines()
        stored = json.loads(file["scenario/parameters"][()])
        assert json.loads(nwbfile.notes.splitlines()[-1]) == stored
        assert nwbfile.session_start_time.isoformat() == file.attrs["created_utc"]


def test_a_discrete_result_keeps_beliefs_observations_and_f(discrete):
    result, nwb = discrete
    paths = check_series(result, nwb)
    assert {"causes/belief", "causes/error", "free_energy", "surprise",
            "observations/sound/outcome", "observations/meow/outcome"} <= set(paths), paths
    with pynwb.NWBHDF5IO(str(nwb), "r") as io:
        nwbfile = io.read()
        belief = nwbfile.acquisition["causes.belief"]
        assert "wind, house settling, cat, intruder, pipes, imagination" in belief.description
        np.testing.assert_allclose(belief.data[:].sum(axis=1), 1.0, rtol=0, atol=1e-12)
        assert list(nwbfile.trials["trial_name"][:]) == ["awake", "half asleep"]


@pytest.mark.parametrize("family", ["rate", "discrete"])
def test_every_recorded_stream_is_declared_and_show_names_it(family, request, capsys):
    """Both families declare each stream they record (the discrete family's Q, eps, F and
    surprise, and its observations, as the hierarchical family's variables): the file carries
    the declaration and ``pcsim show`` prints its label and symbol."""
    result = request.getfixturevalue(family)[0]
    streams = []

    def visit(name: str, node) -> None:
        if isinstance(node, h5py.Dataset) and name != "time" and (
                (node.maxshape and node.maxshape[0] is None) or name.endswith("/outcome")):
            streams.append((name, dict(node.attrs)))

    with h5py.File(result, "r") as file:
        file.visititems(visit)
    assert len(streams) >= 4, streams
    assert main(["show", str(result)]) == 0
    printed = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()
               if line.strip().startswith("/")}
    for name, attrs in streams:
        assert "declared_role" in attrs, name
        label = f"({attrs['declared_label']} {attrs['declared_symbol']})"
        assert printed[f"/{name}"].endswith(label), printed[f"/{name}"]


def test_the_inspector_finds_nothing_critical(rate, discrete, folder):
    spiking = spiking_file(rate[0], folder)
    findings = []
    for nwb in (discrete[1], sim.export_nwb(spiking, folder / "spiking.nwb")):  # spiking:
        # the rate result and its spikes
        findings += list(inspector.inspect_nwbfile(nwbfile_path=str(nwb)))
    important = [f for f in findings if f.importance in (inspector.Importance.CRITICAL,
                                                         inspector.Importance.ERROR,
                                                         inspector.Importance.PYNWB_VALIDATION)]
    assert important == [], important
    assert {finding.check_function_name for finding in findings} <= EXPECTED_FINDINGS, findings


# spikes ----------------------------------------------------------------------------------------
POPULATIONS = {  # name: (role, sign, units, neurons per unit)
    "belief_positive": ("belief", "positive", 1, 3),
    "error_negative": ("error", "negative", 3, 2),
}


def spiking_file(rate_result: Path, folder: Path) -> Path:
    """The rate result with spikes added per the layout (docs/results.md, "Spikes"): random
    spikes of each population's neurons, sorted by time, one neuron left silent."""
    path = folder / "spiking.h5"
    shutil.copy(rate_result, path)
    rng = np.random.default_rng(5)
    with h5py.File(path, "a") as file:
        file.attrs["neurons"] = "spiking"
        end = float(file["trials/t_stop"][-1])
        for name, (role, sign, units, per_unit) in POPULATIONS.items():
            group = file.create_group(f"spikes/v/{name}")
            count = 40
            neuron = rng.integers(1, units * per_unit, count).astype(np.uint32)  # 0 silent
            time = np.sort(rng.uniform(0, end, count))
            group.create_dataset("time", data=time, maxshape=(None,), chunks=True)
            group["time"].attrs["units"] = "s"
            group.create_dataset("neuron", data=neuron, maxshape=(None,), chunks=True)
            group.attrs.update({"level": "v", "role": role, "sign": sign,
                                "neurons_per_unit": per_unit, "unit_count": units,
                                "neuron_model": "LIF"})
    return path


def test_spikes_become_the_units_table(rate, folder):
    path = spiking_file(rate[0], folder)
    nwb = sim.export_nwb(path, folder / "units.nwb")
    with h5py.File(path, "r") as file, pynwb.NWBHDF5IO(str(nwb), "r") as io:
        units = io.read().units.to_dataframe()
        rows = 0
        for name, (role, sign, count, per_unit) in POPULATIONS.items():
            group = file[f"spikes/v/{name}"]
            mine = units[units["population"] == name].sort_values("neuron")
            assert list(mine["neuron"]) == list(range(count * per_unit))
            assert list(mine["unit"]) == [n // per_unit for n in range(count * per_unit)]
            assert set(mine["level"]) == {"v"} and set(mine["role"]) == {role}
            assert set(mine["sign"]) == {sign} and set(mine["neuron_model"]) == {"LIF"}
            for neuron, times in zip(mine["neuron"], mine["spike_times"], strict=True):
                expected = [t for t, n in zip(group["time"], group["neuron"], strict=True)
                            if n == neuron]
                np.testing.assert_array_equal(times, expected)
            assert len(mine.iloc[0]["spike_times"]) == 0  # neuron 0 never fired
            rows += count * per_unit
        assert len(units) == rows


def test_a_spiking_run_exports_every_spike(folder):
    """A real spiking run (``[model] neurons = "spiking"``): each neuron's row of the units
    table holds exactly the spikes the result stores for it, and the decoded belief is a
    time series as in a rate result."""
    path = sim.run("perception/single_cause", output=folder / "spiking_run.h5",
                   overrides={"model.neurons": "spiking", "model.tau_belief_ms": 200.0,
                              "protocol.trials.0.duration_ms": 100.0}).path
    nwb = sim.export_nwb(path, folder / "spiking_run.nwb")
    with h5py.File(path, "r") as file, pynwb.NWBHDF5IO(str(nwb), "r") as io:
        nwbfile = io.read()
        units = nwbfile.units.to_dataframe()
        stored = 0
        for level, populations in file["spikes"].items():
            for name, group in populations.items():
                mine = units[(units["level"] == level) & (units["population"] == name)]
                assert len(mine) == group.attrs["neurons_per_unit"] * group.attrs["unit_count"]
                neurons, times = group["neuron"][()], group["time"][()]
                for neuron, trains in zip(mine["neuron"], mine["spike_times"], strict=True):
                    np.testing.assert_array_equal(trains, times[neurons == neuron])
                stored += len(times)
        assert stored > 1000 and sum(len(train) for train in units["spike_times"]) == stored
    checked = check_series(path, nwb)
    assert "levels/food_size/belief" in checked and any("rate_error_positive" in p for p in checked)


# refusals --------------------------------------------------------------------------------------
def test_bad_input_is_one_line_and_leaves_no_file(rate, folder, capsys):
    def refused(*args: str) -> str:  # exit 2, one line on stderr, no traceback
        assert main(["export", *args]) == 2
        return error_line(capsys)

    result, nwb = rate
    before = nwb.read_bytes()
    assert "already exists" in refused(str(result), "--nwb", str(nwb))
    assert nwb.read_bytes() == before
    assert "ending in .nwb" in refused(str(result), "--nwb", str(folder / "out.h5"))
    text = folder / "notes.txt"
    text.write_text("not a result\n")
    assert "cannot open as HDF5" in refused(str(text), "--nwb", str(folder / "text.nwb"))
    plain = folder / "plain.h5"
    with h5py.File(plain, "w") as file:
        file["x"] = 1.0
    assert "not a pcsim result" in refused(str(plain), "--nwb", str(folder / "plain.nwb"))
    damaged = folder / "damaged.h5"
    damaged.write_bytes(result.read_bytes()[: result.stat().st_size // 2])
    assert str(damaged) in refused(str(damaged), "--nwb", str(folder / "damaged.nwb"))
    assert not any((folder / name).exists() for name in ("out.h5", "text.nwb", "plain.nwb",
                                                         "damaged.nwb"))
    assert not list(folder.glob(".*partial")), list(folder.glob(".*"))


def test_without_pynwb_the_command_says_what_to_install(rate, folder):
    hide = ("import sys; sys.modules['pynwb'] = None; from sim.cli import main; "
            f"sys.exit(main(['export', {str(rate[0])!r}, '--nwb', "
            f"{str(folder / 'none.nwb')!r}]))")
    done = subprocess.run([sys.executable, "-c", hide], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 2, done
    assert done.stderr.strip() == ("pcsim: error: pcsim export --nwb needs pynwb, which is not "
                                   "installed: pip install 'pcsim[nwb]' (or pip install pynwb)")
    assert not (folder / "none.nwb").exists()


def test_a_damaged_series_of_a_compressed_result_is_one_line(rate, folder, capsys):
    """A result compressed afterwards (docs/results.md: h5repack -f GZIP=4) whose belief chunk
    has changed bytes: the read fails while pynwb writes; that is the reader's one line, no file."""
    path = folder / "repacked.h5"
    shutil.copy(rate[0], path)
    with h5py.File(path, "a") as file:
        values, attrs = file["levels/v/belief"][()], dict(file["levels/v/belief"].attrs)
        del file["levels/v/belief"]
        made = file.create_dataset("levels/v/belief", data=values, maxshape=(None, 1),
                                   chunks=(len(values), 1), compression="gzip")
        made.attrs.update(attrs)
        chunk = made.id.get_chunk_info(0)
    data = bytearray(path.read_bytes())
    data[chunk.byte_offset + chunk.size // 2:chunk.byte_offset + chunk.size // 2 + 8] = bytes(8)
    path.write_bytes(bytes(data))
    assert main(["export", str(path), "--nwb", str(folder / "repacked.nwb")]) == 2
    line = error_line(capsys)
    assert line.startswith(f"pcsim: error: {path}: ") and "/levels/v/belief" in line, line
    assert not (folder / "repacked.nwb").exists()
    assert not list(folder.glob(".repacked*"))


def test_an_interrupted_run_is_exported_with_its_status(rate, folder):
    path = folder / "interrupted.h5"
    shutil.copy(rate[0], path)
    with h5py.File(path, "a") as file:
        file.attrs["status"] = "interrupted"
        file.attrs["failure"] = "interrupted by Ctrl-C"
    with pynwb.NWBHDF5IO(str(sim.export_nwb(path, folder / "interrupted.nwb")), "r") as io:
        nwbfile = io.read()
        assert nwbfile.session_description.endswith(", status interrupted")
        assert {"status: interrupted", "failure: interrupted by Ctrl-C"} <= set(
            nwbfile.notes.splitlines())


def test_export_does_not_import_brian2(rate, folder):
    code = ("import sys; from sim.cli import main; "
            f"code = main(['export', {str(rate[0])!r}, '--nwb', {str(folder / 'light.nwb')!r}]); "
            "assert 'brian2' not in sys.modules, 'brian2 imported'; sys.exit(code)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert (folder / "light.nwb").exists()


def test_uneven_sample_times_are_kept_as_timestamps(rate, folder):
    path = folder / "uneven.h5"
    shutil.copy(rate[0], path)
    with h5py.File(path, "a") as file:
        file["time"][3] += 2e-5  # not a step of [record] every_ms
    nwb = sim.export_nwb(path, folder / "uneven.nwb")
    check_series(path, nwb)  # every series' times equal /time
    with pynwb.NWBHDF5IO(str(nwb), "r") as io:
        belief = io.read().acquisition["levels.v.belief"]
        assert belief.rate is None and belief.timestamps is not None


def _first_import(tmp_path: Path) -> subprocess.Popen:
    """A process importing pynwb through pcsim on a machine where no process has yet: its own
    cache folder (platformdirs reads ``XDG_CACHE_HOME``) and temporary folder (the lock's)."""
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"), "TMPDIR": str(tmp_path)}
    code = "from sim.export.nwb import import_pynwb; import_pynwb()"
    return subprocess.Popen([sys.executable, "-c", code], env=env, stderr=subprocess.PIPE,
                            text=True)


def test_a_first_import_of_pynwb_waits_for_the_lock(tmp_path):
    """pynwb's first import on a machine writes its type map's cache in place, and a process
    reading it meanwhile failed (``EOFError``: seen when the suite's two workers collected this
    module at once). A first import waits while another process holds the lock, then writes the
    cache, which later imports read."""
    with locked(tmp_path / IMPORT_LOCK):
        process = _first_import(tmp_path)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5)
        assert process.poll() is None  # still waiting
        assert not list((tmp_path / "cache").rglob("*.pkl"))
    assert process.wait(timeout=120) == 0, process.stderr.read()
    assert list((tmp_path / "cache").rglob("*.pkl"))


def test_a_lock_file_that_cannot_be_opened_does_not_stop_the_import(tmp_path):
    """(Another user's file in a shared temporary folder; here a folder in its place.)"""
    (tmp_path / IMPORT_LOCK).mkdir()
    process = _first_import(tmp_path)
    assert process.wait(timeout=120) == 0, process.stderr.read()
    assert list((tmp_path / "cache").rglob("*.pkl"))
