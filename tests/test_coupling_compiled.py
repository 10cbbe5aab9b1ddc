"""Dense coupling on the compiled device as BLAS calls from C++ (``circuits.coupling_compiled``).

A tanh hierarchy with fixed dense weights, run through the CLI on both devices: every dataset
within 1e-12 (the compiled device's bound, ``test_compiled_runs``), the program's products
made by ``cblas_?gemv`` (relaxing errors: its generated code calls them; no generative
synapses) or by one pass over W a step (instantaneous errors, the ``fused`` build: no BLAS call,
no transposed copy), and the first trial's final beliefs against the plain NumPy loop written
from the equations (``sim.bench.reference``). After that ramp, a schedule and steps over two
trials, which the program computes from each segment's rows (no table of every step's input,
``sim.families.hierarchical.compiled.stimulus``), in both builds: the fused one runs where
NumPy has no OpenBLAS too. Learned precision, which moves what the errors read after a pass
over W would read it, keeps the ``gemv`` pair.
The library scan (``circuits.blas``) reads paths with spaces.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from test_compiled_runs import STANDALONE, assert_equal_runs, datasets

from circuits.coupling_compiled import blas_library
from sim.bench import reference
from sim.bench.cases import hierarchy_reference
from sim.cli import main
from sim.scenario import load_scenario
from sim.scenario_writer import write_scenario

SIZES = [83, 62, 4]  # 5,146 weights in the first map: this build (MIN_WEIGHTS); rows not
# a multiple of four (the fused build's last rows)
STEPS = 400
DT_MS = 0.1


def hierarchy(errors: str) -> dict:
    """An 83-62-4 hierarchy, g = W tanh(mu) with random dense weights, a ramp input."""
    rng = np.random.default_rng(4)
    levels = [{"name": "input", "size": SIZES[0], "precision": rng.uniform(0.5, 2.0, SIZES[0])},
              {"name": "middle", "size": SIZES[1], "precision": rng.uniform(0.5, 2.0, SIZES[1]),
               "weights": {"kind": "random", "scale": 1.0}, "nonlinearity": "tanh"},
              {"name": "top", "size": SIZES[2],
               "weights": {"kind": "random", "scale": 1.0}, "nonlinearity": "tanh"}]
    duration = STEPS * DT_MS
    return {"name": "blas", "seed": 5, "dt_ms": DT_MS,
            "model": {"errors": errors, "tau_belief_ms": 5.0, "tau_error_ms": 1.0,
                      "coupling": "dense", "levels": levels,
                      "prior": {"mean": rng.normal(0.0, 0.5, SIZES[2]).tolist()}},
            "protocol": {"trials": [{"duration_ms": duration, "stimulus": {
                "kind": "ramp", "start": rng.normal(0.0, 1.0, SIZES[0]).tolist(),
                "stop": rng.normal(0.0, 1.0, SIZES[0]).tolist()}}]},
            "record": {"every_ms": 1.0}}


def segmented_trials() -> list[dict]:
    """Two trials whose inputs have several segments: a schedule, then steps."""
    rng = np.random.default_rng(7)
    duration = STEPS * DT_MS / 2

    def values(rows: int) -> list:
        return rng.normal(0.0, 1.0, (rows, SIZES[0])).tolist()

    return [{"duration_ms": duration, "stimulus": {
                "kind": "schedule", "times_ms": [0.0, 4.0, 9.5, 15.0], "values": values(4)}},
            {"duration_ms": duration, "stimulus": {
                "kind": "steps", "times_ms": [0.0, 7.0], "values": values(2)}}]


def run_both(tmp_path, monkeypatch, table: dict) -> tuple[Path, Path, Path]:
    """``table`` run on the runtime device and compiled, the compiled build in a cache of its
    own: (runtime result, compiled result, the cache)."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("PCSIM_STANDALONE_CACHE", str(cache))
    path = write_scenario(tmp_path / "blas.toml", table)
    runtime, compiled = tmp_path / "runtime.h5", tmp_path / "compiled.h5"
    assert main(["run", str(path), "-o", str(runtime), "--no-plot"]) == 0
    assert main(["run", str(path), "-o", str(compiled), "--no-plot", *STANDALONE]) == 0
    return runtime, compiled, cache


@pytest.mark.parametrize("errors, build", [("relaxing", "blas"), ("instantaneous", "fused")])
def test_dense_coupling_compiled_equals_the_runtime_run(tmp_path, monkeypatch, errors, build):
    """Three trials: the ramp, then ``segmented_trials``; the first trial's end against the
    NumPy loop's run of the ramp alone."""
    if build == "blas" and blas_library() is None:
        pytest.skip("NumPy loaded no OpenBLAS here")
    ramp = hierarchy(errors)
    table = hierarchy(errors)
    table["protocol"]["trials"] += segmented_trials()
    runtime, compiled, cache = run_both(tmp_path, monkeypatch, table)
    assert_equal_runs(datasets(runtime), datasets(compiled))

    sources = "".join(source.read_text() for source in cache.glob("*/code_objects/*.cpp"))
    if build == "blas":
        assert sources.count("cblas_dgemv") >= 4  # two products per level, two levels
    else:  # one pass over each level's W, the error units' update inside it
        assert "cblas_" not in sources and "weight_transposed" not in sources
        assert all(f"pcsim_fused_{level}()" in sources for level in (0, 1))
    assert "generative_belief" not in sources  # no synapse per weight
    tables = {path.name for path in cache.glob("*/static_arrays/pcsim_input*")}
    assert tables and "pcsim_input_values" not in tables  # no row a step: the segments' rows

    with h5py.File(compiled, "r") as file:
        assert file.attrs["compiled_coupling"] == build
        weights = [np.asarray(file[f"levels/{name}/weights_initial"]) for name in ("middle", "top")]
        found = [np.asarray(file[f"trials/final_belief/{name}"][0]) for name in ("middle", "top")]
    model = hierarchy_reference(load_scenario(write_scenario(tmp_path / "ramp.toml", ramp)))
    assert all(np.array_equal(given, stored) for given, stored in zip(model.weights, weights,
                                                                      strict=True))
    expected = reference.run_hierarchy(model, STEPS)[0]
    for got, wanted in zip(found, expected, strict=True):
        assert np.max(np.abs(got - wanted)) <= 1e-12


def test_learned_precision_keeps_instantaneous_errors_out_of_the_pass_over_w(tmp_path,
                                                                            monkeypatch):
    """Learned precision moves Pi at ``ERRORS`` (the error units' state updater, before their
    update): the runtime's eps = Pi(t + dt) (s - g), where a pass over W at
    ``DELIVER_TO_ERRORS`` would read Pi(t) (1.7e-2 off in the beliefs). The run keeps the
    ``gemv`` pair (the synapses without OpenBLAS), says why, and equals the runtime's."""
    table = hierarchy("instantaneous")
    table["model"]["learning"] = {"tau_precision_ms": 5.0}
    runtime_path, compiled_path, _ = run_both(tmp_path, monkeypatch, table)
    runtime = datasets(runtime_path)
    assert_equal_runs(runtime, datasets(compiled_path))
    learned = runtime["levels/input/precision"]
    assert np.max(np.abs(learned[-1] - learned[0])) > 1e-2  # Pi moved within the run
    with h5py.File(compiled_path, "r") as file:
        note = file.attrs["compiled_coupling"]
    if blas_library() is None:
        assert note == "synapses: no OpenBLAS library loaded by NumPy"
    else:
        assert note.startswith("blas: error_0's precision ")


def test_an_openblas_whose_path_has_spaces_is_found(tmp_path):
    """``circuits.blas.loaded_openblas`` reads the whole path of a mapped library, spaces in
    it too (a library of NumPy's wheel, copied under an OpenBLAS-like name and loaded in a
    process of its own)."""
    folder = tmp_path / "a folder with spaces"
    folder.mkdir()
    source = next(Path(np.__file__).parent.parent.joinpath("numpy.libs").glob("libquadmath*"),
                  None)
    if source is None:
        pytest.skip("no numpy.libs here (NumPy not from a wheel)")
    copy = folder / "libfake_openblas.so"
    shutil.copy(source, copy)
    found = subprocess.run(
        [sys.executable, "-c", "import ctypes, sys\nfrom circuits.blas import loaded_openblas\n"
         "ctypes.CDLL(sys.argv[1])\nprint('\\n'.join(loaded_openblas()))", str(copy)],
        capture_output=True, text=True, check=True).stdout.splitlines()
    assert str(copy) in found
