"""Running a result's scenario again (``pcsim run RESULT.h5``, ``sim.run(RESULT.h5)``), what a
result records about where it ran (BLAS, CPU, git commit), and ``pcsim diff`` with a tolerance
and of two sweeps: through the CLI, as a user would."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

import sim

CHECKOUT = Path(sim.__file__).resolve().parents[1]  # where sim is imported from (a checkout,
# or site-packages in an installed pcsim, as in CI); the repository's files are beside this test
REPOSITORY = Path(__file__).resolve().parents[1]
# short runs: a noisy input with random weights (hierarchical), and the discrete family
RUNS = {"hierarchy": ("perception/hierarchy", "protocol.trials.0.duration_ms=40", "11"),
        "creak": ("perception/creak", "record.every_ms=2.0", "3")}
ONE_SETTING = "protocol.trials.0.duration_ms=2"


def pcsim(*args: str, **environment: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sim.cli", *args], capture_output=True,
                          text=True, timeout=600, env={**os.environ, **environment},
                          cwd=CHECKOUT)  # ``-m`` imports the sim this test imported


def contents(path: Path) -> dict[str, object]:
    """Every dataset (dtype, shape, and its bytes, or its values where they are objects) and
    every attribute of the file, by ``path`` and ``path@attribute``: read with h5py alone."""
    found: dict[str, object] = {}
    with h5py.File(path, "r") as handle:
        for key, value in handle.attrs.items():
            found[f"@{key}"] = repr(value)

        def visit(name: str, node) -> None:
            for key, value in node.attrs.items():
                found[f"{name}@{key}"] = repr(value)
            if isinstance(node, h5py.Dataset):
                values = np.asarray(node[()])
                data = (values.tolist() if values.dtype.kind == "O" else values.tobytes())
                found[name] = (values.dtype.str, values.shape, data)

        handle.visititems(visit)
    return found


def differing(first: Path, second: Path) -> list[str]:
    a, b = contents(first), contents(second)
    return sorted(key for key in set(a) | set(b) if a.get(key) != b.get(key))


@pytest.fixture(scope="module", params=sorted(RUNS))
def stored(request, tmp_path_factory) -> Path:
    """A result of a short run with --set and --seed, on the runtime device, one BLAS thread."""
    name, setting, seed = RUNS[request.param]
    output = tmp_path_factory.mktemp(request.param) / "first.h5"
    ran = pcsim("run", name, "--set", setting, "--seed", seed, "-o", str(output), "--no-plot",
                OPENBLAS_NUM_THREADS="1")
    assert ran.returncode == 0, ran.stderr
    return output


def test_rerun_gives_every_dataset_bitwise(stored, tmp_path):
    again = tmp_path / "again.h5"
    ran = pcsim("run", str(stored), "-o", str(again), "--no-plot", OPENBLAS_NUM_THREADS="1")
    assert ran.returncode == 0, ran.stderr
    assert "warning" not in ran.stderr  # the same software: nothing to say
    # every dataset bitwise, every attribute equal, but the time the run started
    assert differing(stored, again) == ["@created_utc"]


@pytest.fixture(scope="module")
def one(tmp_path_factory) -> Path:
    """One short hierarchical result, with a --set (the tests below re-run it, or read it)."""
    output = tmp_path_factory.mktemp("one") / "result.h5"
    ran = pcsim("run", "perception/single_cause", "--set", ONE_SETTING, "-o", str(output),
                "--no-plot", OPENBLAS_NUM_THREADS="1")
    assert ran.returncode == 0, ran.stderr
    return output


def test_rerun_keeps_the_device_that_ran(one, tmp_path):
    """The result ran on the runtime device; $PCSIM_DEVICE now asks for the compiled one."""
    again = tmp_path / "again.h5"
    ran = pcsim("run", str(one), "-o", str(again), "--no-plot", OPENBLAS_NUM_THREADS="1",
                PCSIM_DEVICE="standalone")
    assert ran.returncode == 0, ran.stderr
    assert differing(one, again) == ["@created_utc"]


def test_new_overrides_apply_on_top_from_python(one, tmp_path):
    """``sim.run(RESULT.h5, seed=...)`` is the scenario run with the stored --set and the new
    seed: the file a direct run of the bundled scenario with both writes."""
    direct = tmp_path / "direct.h5"
    ran = pcsim("run", "perception/single_cause", "--set", ONE_SETTING, "--seed", "5", "-o",
                str(direct), "--no-plot", OPENBLAS_NUM_THREADS="1")
    assert ran.returncode == 0, ran.stderr
    rerun = tmp_path / "rerun.h5"
    sim.run(one, output=rerun, seed=5).close()
    assert "@created_utc" in differing(direct, rerun)
    assert set(differing(direct, rerun)) <= {"@created_utc", "@blas_threads"}
    with h5py.File(rerun, "r") as handle:
        assert handle.attrs["seed"] == 5


def test_other_versions_give_one_warning_line(one, tmp_path):
    older = tmp_path / "older.h5"
    shutil.copy(one, older)
    with h5py.File(older, "a") as handle:
        handle.attrs["numpy_version"] = "1.0.0"
        handle.attrs["pcsim_version"] = "0.0.1"
    again = tmp_path / "again.h5"
    ran = pcsim("run", str(older), "-o", str(again), "--no-plot", OPENBLAS_NUM_THREADS="1")
    assert ran.returncode == 0, ran.stderr
    warnings = [line for line in ran.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1, ran.stderr
    assert "pcsim 0.0.1" in warnings[0] and "numpy 1.0.0" in warnings[0]
    assert f"pcsim {sim.__version__}" in warnings[0] and f"numpy {np.__version__}" in warnings[0]
    assert ran.stderr.index(warnings[0]) < ran.stderr.index("running")  # before running
    assert differing(one, again) == ["@created_utc"]


def test_what_cannot_be_rerun_is_one_line(one, tmp_path):
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(one.read_bytes()[:3000])
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as handle:
        handle["x"] = 1
    for path, says in ((truncated, "cannot open as HDF5"), (other, "not a pcsim result")):
        ran = pcsim("run", str(path), "-o", str(tmp_path / "out.h5"))
        assert ran.returncode == 2 and ran.stderr.count("\n") == 1, ran.stderr
        assert says in ran.stderr and not (tmp_path / "out.h5").exists()
    ran = pcsim("run", str(one), "--set", "model.levels.0.size=0", "-o",
                str(tmp_path / "out.h5"))
    assert ran.returncode == 2 and ran.stderr.count("\n") == 1, ran.stderr
    assert str(one) in ran.stderr and "model.levels[0].size" in ran.stderr


# --- where it ran ---------------------------------------------------------------------------

def git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(CHECKOUT), *args], capture_output=True, text=True,
                          check=False)


def test_result_records_blas_cpu_and_commit(one):
    with h5py.File(one, "r") as handle:
        attrs = dict(handle.attrs)
    assert attrs["blas_threads"] == 1  # OPENBLAS_NUM_THREADS=1
    blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    assert attrs["blas"] == f"{blas['name']} {blas['version']}"
    if "openblas" in blas["name"]:  # the kernels it runs: what the build reports at run time
        assert attrs["blas_core"].lower() in blas.get("openblas configuration", "").lower()
    cpu = Path("/proc/cpuinfo")
    if cpu.exists() and "model name" in cpu.read_text():
        assert f"model name\t: {attrs['cpu_model']}" in cpu.read_text()
    if (CHECKOUT / ".git").exists() and git("rev-parse", "HEAD").returncode == 0:
        assert attrs["git_commit"] == git("rev-parse", "HEAD").stdout.strip()
        dirty = git("diff", "--quiet", "HEAD").returncode
        assert attrs["git_dirty"] == dirty
    shown = pcsim("show", str(one))
    assert shown.returncode == 0
    assert f"BLAS {attrs['blas']}" in shown.stdout and "1 thread)" in shown.stdout
    assert f"CPU {attrs['cpu_model']}" in shown.stdout
    if "git_commit" in attrs:
        assert attrs["git_commit"] in shown.stdout


def test_the_docs_name_each_attribute():
    from sim.io.schema import PROVENANCE_ATTRIBUTES

    docs = (REPOSITORY / "docs" / "results.md").read_text()
    assert [a.name for a in PROVENANCE_ATTRIBUTES if f"`{a.name}`" not in docs] == []


def test_no_git_outside_a_checkout(tmp_path, monkeypatch):
    from sim.io import provenance

    def no_subprocess(*args, **kwargs):
        raise AssertionError("git was called outside a checkout")

    monkeypatch.setattr(subprocess, "run", no_subprocess)
    assert provenance.git_state(tmp_path) == {}


def test_diff_and_golden_ignore_where_it_ran(one, tmp_path):
    moved = tmp_path / "moved.h5"
    shutil.copy(one, moved)
    with h5py.File(moved, "a") as handle:
        for key, value in (("cpu_model", "another CPU"), ("blas_threads", 64),
                           ("git_commit", "0" * 40), ("git_dirty", 1), ("blas", "MKL"),
                           ("blas_core", "SkylakeX")):
            handle.attrs[key] = value
    ran = pcsim("diff", str(one), str(moved))
    assert ran.returncode == 0 and "identical" in ran.stdout, ran.stdout
    sys.path.insert(0, str(REPOSITORY / "tests"))
    from golden import compare

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    shutil.copy(one, tmp_path / "a" / "x.h5")
    shutil.copy(moved, tmp_path / "b" / "x.h5")
    assert compare(tmp_path / "a", tmp_path / "b") == 0


# --- diff with a tolerance -----------------------------------------------------------------

def nudged(source: Path, target: Path, path: str, change) -> tuple[float, float]:
    """A copy of ``source`` with the first value of dataset ``path`` changed by ``change``;
    the value before and after."""
    shutil.copy(source, target)
    with h5py.File(target, "a") as handle:
        values = handle[path][()]
        before = values.flat[0]
        values.flat[0] = change(before)
        handle[path][...] = values
        return before, values.flat[0]


def test_tolerance_decides_what_counts_as_equal(one, tmp_path):
    zero, tiny = tmp_path / "zero.h5", tmp_path / "tiny.h5"  # 0 in one, 1e-28 in the other
    nudged(one, zero, "trials/final_free_energy", lambda x: 0.0)
    nudged(one, tiny, "trials/final_free_energy", lambda x: 1e-28)
    ran = pcsim("diff", str(zero), str(tiny))
    assert ran.returncode == 1 and "/trials/final_free_energy" in ran.stdout
    ran = pcsim("diff", str(zero), str(tiny), "--atol", "1e-20")
    assert ran.returncode == 0 and "equal within rtol 0, atol 1e-20" in ran.stdout, ran.stdout
    assert "/trials/final_free_energy" in ran.stdout  # named: equal, but not bitwise

    relative = tmp_path / "relative.h5"
    before, after = nudged(one, relative, "levels/food_size/belief", lambda x: x * (1 + 3e-9))
    gap = abs(after - before) / max(abs(after), abs(before))
    assert 2e-9 < gap < 4e-9
    assert pcsim("diff", str(one), str(relative), "--rtol", f"{gap * 0.9:.6g}").returncode == 1
    assert pcsim("diff", str(one), str(relative), "--rtol", f"{gap * 1.1:.6g}").returncode == 0
    assert pcsim("diff", str(relative), str(one), "--rtol", f"{gap * 1.1:.6g}").returncode == 0
    ran = pcsim("diff", str(one), str(relative), "--atol", f"{abs(after - before) * 0.9:.6g}")
    assert ran.returncode == 1
    assert f"max |A - B| = {abs(after - before):.6g}" in ran.stdout


def test_tolerance_leaves_integers_and_nan_exact(one, tmp_path):
    shifted = tmp_path / "shifted.h5"
    nudged(one, shifted, "trials/index", lambda x: x + 1)
    ran = pcsim("diff", str(one), str(shifted), "--atol", "10", "--rtol", "1")
    assert ran.returncode == 1 and "/trials/index" in ran.stdout
    missing = tmp_path / "missing.h5"
    nudged(one, missing, "trials/final_free_energy", lambda x: np.nan)
    ran = pcsim("diff", str(one), str(missing), "--atol", "1e300")
    assert ran.returncode == 1 and "NaN at different places" in ran.stdout


@pytest.mark.parametrize("bad", ["-1", "nan", "inf", "x"])
def test_bad_tolerance_is_a_user_mistake(one, bad):
    ran = pcsim("diff", str(one), str(one), "--rtol", bad)
    assert ran.returncode == 2 and "--rtol: expected a number >= 0" in ran.stderr


# --- diff of two sweeps --------------------------------------------------------------------

@pytest.fixture(scope="module")
def sweeps(tmp_path_factory) -> dict[str, Path]:
    """Three sweeps of a 2 ms single_cause: ``a`` and ``same`` alike but for the order of their
    points; ``other`` with another prior mean in its scenario and a third value on its axis."""
    folder = tmp_path_factory.mktemp("sweeps")
    text = (REPOSITORY / "scenarios/perception/single_cause.toml").read_text()
    short = text.replace("duration_ms = 20.0", "duration_ms = 2.0")
    assert short != text
    (folder / "short.toml").write_text(short)
    (folder / "other.toml").write_text(short.replace("mean = 3.0 ", "mean = 3.5 "))
    out = {}
    for name, scenario, values in (("a", "short", "1,2"), ("same", "short", "2,1"),
                                   ("other", "other", "1,2,3")):
        ran = pcsim("sweep", str(folder / f"{scenario}.toml"), "--vary",
                    f"model.tau_belief_ms={values}", "-o", str(folder / name), "-j", "1")
        assert ran.returncode == 0, ran.stderr
        out[name] = folder / name
    return out


def test_equal_sweeps(sweeps):
    ran = pcsim("diff", str(sweeps["a"]), str(sweeps["same"] / "sweep.h5"))
    assert ran.returncode == 0, ran.stdout
    assert "equal (2 points in both, 2 compared file by file" in ran.stdout


def test_sweeps_differ_point_by_point(sweeps):
    ran = pcsim("diff", str(sweeps["a"]), str(sweeps["other"]))
    assert ran.returncode == 1
    lines = ran.stdout.splitlines()
    assert "differ (2 of 2 points in both" in lines[0] and "1 only in the second" in lines[0]
    for value in ("1", "2"):
        assert any(line.startswith(f"  point model.tau_belief_ms={value}, seed 0: differ")
                   for line in lines), ran.stdout
    assert sum("model.prior.mean  [3.0] -> [3.5]" in line for line in lines) == 2
    assert sum("/levels/food_size/belief" in line for line in lines) == 2
    assert "model.tau_belief_ms=3, seed 0 (done)" in lines[-1]


def test_a_sweep_in_a_folder_named_with_a_colon(sweeps, tmp_path):
    """Each point's lines name what differs, whatever the sweeps' folders are called (the
    point's first line was once cut out of ``pcsim diff``'s text at its first ": ")."""
    copy = tmp_path / "other: copied"
    shutil.copytree(sweeps["other"], copy)
    ran = pcsim("diff", str(sweeps["a"]), str(copy))
    assert ran.returncode == 1
    lines = ran.stdout.splitlines()
    for value in ("1", "2"):
        start = f"  point model.tau_belief_ms={value}, seed 0: differ (1 parameter(s), "
        assert any(line.startswith(start) for line in lines), ran.stdout


def test_a_point_that_failed_in_one_sweep_differs(sweeps, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(sweeps["a"], copy)
    with h5py.File(copy / "sweep.h5", "a") as handle:
        status = [value.decode() for value in handle["points/status"][()]]
        status[1] = "failed"
        del handle["points/status"]
        handle["points/status"] = np.array(status, dtype=h5py.string_dtype())
    ran = pcsim("diff", str(sweeps["a"]), str(copy))
    assert ran.returncode == 1
    assert "seed 0: status done -> failed" in ran.stdout


def test_a_sweep_and_a_result_is_one_line(sweeps, one):
    ran = pcsim("diff", str(sweeps["a"]), str(one))
    assert ran.returncode == 2 and ran.stderr.count("\n") == 1
    assert "diff compares two results or two sweeps" in ran.stderr


def test_a_sweep_point_reruns_bitwise_and_the_index_is_refused(sweeps, tmp_path):
    """A point's file stores the sweep's scenario and the point's values as its overrides."""
    point = sorted(sweeps["other"].glob("point-*.h5"))[0]
    again = tmp_path / "again.h5"
    ran = pcsim("run", str(point), "-o", str(again), "--no-plot", OPENBLAS_NUM_THREADS="1")
    assert ran.returncode == 0, ran.stderr
    assert differing(point, again) == ["@created_utc"]  # the workers ran BLAS on 1 thread too
    ran = pcsim("run", str(sweeps["a"] / "sweep.h5"), "-o", str(tmp_path / "index.h5"))
    assert ran.returncode == 2 and ran.stderr.count("\n") == 1
    assert "is a sweep's index, not a result" in ran.stderr
