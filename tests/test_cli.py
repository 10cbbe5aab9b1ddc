"""The pcsim command end to end, and the HDF5 layout that docs/results.md promises."""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys

import h5py
import numpy as np
import pytest
from golden import spiking, spiking_mismatches, stored_path, traces
from xdist_groups import BUNDLED

import sim
from sim.cli import main
from sim.scenario import bundled_scenarios

# one xdist worker runs every module that reads the session's bundled runs (tests/bundled_runs.py)
pytestmark = pytest.mark.xdist_group(BUNDLED)


def pcsim(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sim.cli", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=600)


def in_process(*argv: str) -> tuple[int, str]:
    """``pcsim ARGV`` through ``sim.cli.main`` in this process: exit code and stdout."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = main(list(argv))
    return code, out.getvalue()


def test_list_names_every_bundled_scenario():
    listed = pcsim("list")
    assert listed.returncode == 0
    for name in bundled_scenarios():
        assert name in listed.stdout


@pytest.mark.parametrize("name", sorted(bundled_scenarios()))
def test_run_show_plot_each_bundled_scenario(bundled, tmp_path, name):
    """``pcsim run NAME`` as a user runs it (the session's run: ``tests/bundled_runs.py``);
    ``show`` and ``plot`` of its file in this process (every figure is also drawn and linted
    by ``test_figures.py``; the entry point's own process is tested once, below)."""
    ran = bundled[name]
    output = ran.output
    assert ran.returncode == 0, ran.stderr
    assert output.exists() and ran.figure.stat().st_size > 0
    assert f"wrote {output}" in ran.stdout

    # every number as before (tests/golden.py stored them): beliefs and errors to 1e-12; a
    # spiking scenario's spike counts and mean beliefs to golden.py's stated tolerance
    stored = np.load(stored_path(name))
    found = traces(output)
    if spiking(found):
        assert not spiking_mismatches(found, stored), spiking_mismatches(found, stored)
    else:
        assert sorted(found) == sorted(stored.files)
        for key, values in found.items():
            np.testing.assert_allclose(values, stored[key], rtol=0, atol=1e-12,
                                       err_msg=f"{name}: {key}")

    code, shown = in_process("show", str(output))
    assert code == 0 and "status complete" in shown

    figure = tmp_path / "figure.png"
    code, _ = in_process("plot", str(output), "-o", str(figure))
    assert code == 0 and figure.stat().st_size > 0

    with h5py.File(output) as handle:
        attrs = handle.attrs
        assert attrs["schema_version"] >= 1 and attrs["status"] == "complete"
        for key in ("pcsim_version", "brian2_version", "numpy_version", "seed", "dt",
                    "scenario_name", "model_kind"):
            assert key in attrs
        assert handle["scenario/source"][()].decode() == bundled_scenarios()[name].read_text()
        assert handle["time"].attrs["units"] == "s"
        assert handle["free_energy"].attrs["units"] == "nat"
        # streamed in chunks, uncompressed (gzip took most of a recorded run: sim/io/writer.py)
        assert handle["free_energy"].compression is None and handle["free_energy"].chunks
        for key in ("index", "name", "t_start", "t_stop"):
            assert len(handle[f"trials/{key}"]) >= 1


def test_show_and_plot_in_their_own_process(bundled, tmp_path):
    output = bundled["perception/single_cause"].output
    shown = pcsim("show", str(output))
    assert shown.returncode == 0 and "status complete" in shown.stdout
    figure = tmp_path / "figure.png"
    plotted = pcsim("plot", str(output), "-o", str(figure))
    assert plotted.returncode == 0 and figure.stat().st_size > 0


def test_default_run_writes_hierarchy_under_outputs(tmp_path):
    ran = pcsim("run", "--set", "protocol.trials.0.duration_ms=20", "--no-plot", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    (written,) = (tmp_path / "outputs").glob("hierarchy-*.h5")
    result = sim.load(written)
    assert result.level_names == ["input", "features", "objects"]
    assert result.level("features")["belief"].shape == (20, 16)
    assert result.level("input")["precision"].shape == (20, 64)
    assert result.parameters["model"]["levels"][1]["nonlinearity"] == "tanh"
    assert result.parameters["trials"][0]["duration_ms"] == 20.0
    assert np.isclose(result.dt, 1e-4)


def test_set_and_seed_change_the_run(tmp_path):
    first = sim.run("perception/hierarchy", output=tmp_path / "a.h5", seed=1,
                    overrides={"protocol.trials.0.duration_ms": 5.0})
    second = sim.run("perception/hierarchy", output=tmp_path / "b.h5", seed=2,
                     overrides={"protocol.trials.0.duration_ms": 5.0})
    assert first.seed == 1 and second.seed == 2
    assert not np.array_equal(first.level("input")["input"], second.level("input")["input"])


def test_user_mistake_is_one_line_and_exit_code_2(tmp_path):
    ran = pcsim("run", "perception/hierarchy", "--set", "model.tau_belief_ms=-1",
                "-o", str(tmp_path / "x.h5"))
    assert ran.returncode == 2
    assert "Traceback" not in ran.stderr
    assert "model.tau_belief_ms" in ran.stderr and "positive" in ran.stderr
    assert not list(tmp_path.iterdir())
