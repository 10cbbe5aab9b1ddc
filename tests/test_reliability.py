"""Issue 5: precise errors, no corrupt or clobbered result files, caught divergence, same seed
same numbers. Run in-process where possible; signals need a real process (subprocess)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from cli_output import error_line

import sim
from sim.cli import main
from sim.io.schema import SCHEMA_VERSION
from sim.scenario import load_scenario
from sim.scenario_writer import write_scenario
from sim.stability import analyse, margin


def linear(dt_ms: float, steps: int, errors: str = "instantaneous", **extra) -> dict:
    """x = 1 seen through W = 1 with unit precisions and a N(0, 1) prior: posterior mean 1/2.

    lambda_max = W' Pi_0 W + Pi_1 = 2, so with tau_belief = 1 ms instantaneous errors are stable
    for dt < 1 ms; relaxing ones (tau_error = 0.5 ms) for dt^2 + dt - 1 < 0, dt < 0.618 ms.
    """
    scenario = {
        "name": "linear",
        "dt_ms": dt_ms,
        "model": {
            "errors": errors, "tau_belief_ms": 1.0, "tau_error_ms": 0.5,
            "levels": [{"name": "x", "size": 1, "precision": 1.0},
                       {"name": "v", "size": 1, "weights": 1.0}],
            "prior": {"mean": 0.0, "precision": 1.0},
        },
        "protocol": {"trials": [{"duration_ms": dt_ms * steps,
                                 "stimulus": {"kind": "constant", "value": 1.0}}]},
    }
    scenario.update(extra)
    return scenario


# --- validation messages ------------------------------------------------------------------

def test_messages_name_file_line_field_value_and_expectation(tmp_path, capsys):
    scenario = linear(0.1, 10)
    scenario["protocol"]["trials"][0]["stimulus"]["nosie_std"] = 0.1
    path = write_scenario(tmp_path / "typo.toml", scenario)
    assert main(["run", str(path), "-o", str(tmp_path / "r.h5")]) == 2
    line = error_line(capsys)
    number = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if "nosie" in text)
    assert f"{path}:{number}: protocol.trials[0].stimulus.nosie_std: unknown field" in line
    assert "did you mean 'noise_std'" in line

    scenario = linear(0.1, 10)
    scenario["model"]["levels"][1]["weights"] = [[1.0, 2.0]]
    path = write_scenario(tmp_path / "shape.toml", scenario)
    assert main(["run", str(path), "-o", str(tmp_path / "r.h5")]) == 2
    line = error_line(capsys)
    assert "model.levels[1].weights: expected 1 rows of 1 numbers" in line

    assert main(["run", str(path), "--set", "model.levels.0.size=-3", "-o",
                 str(tmp_path / "r.h5")]) == 2
    line = error_line(capsys)
    assert "(--set model.levels.0.size): model.levels[0].size" in line and "-3" in line
    assert not list(tmp_path.glob("*.h5"))


def test_expressions_are_arithmetic_only(tmp_path):
    for text in ("__import__('os').system('true')", "mu.real", "9**9**9**9", "log(0)", "x"):
        scenario = linear(0.1, 10)
        scenario["model"]["levels"][1]["nonlinearity"] = text
        with pytest.raises(sim.ScenarioError, match=r"model\.levels\[1\]\.nonlinearity"):
            load_scenario(write_scenario(tmp_path / "expr.toml", scenario))


def test_huge_sizes_are_refused_before_allocating(tmp_path):
    scenario = linear(0.1, 10)
    scenario["model"]["levels"][0]["size"] = 10**6
    scenario["model"]["levels"][1]["size"] = 10**5
    scenario["model"]["levels"][0]["precision"] = 1.0
    scenario["protocol"]["trials"][0]["stimulus"]["value"] = 0.0
    started = time.perf_counter()
    with pytest.raises(sim.ScenarioError, match=r"model\.levels\[1\]\.size: a dense "
                                                 r"1000000 x 100000 weight matrix"):
        load_scenario(write_scenario(tmp_path / "huge.toml", scenario))
    assert time.perf_counter() - started < 5


def test_shuffle_is_seeded(tmp_path):
    scenario = linear(0.1, 10)
    trial = scenario["protocol"]["trials"][0]
    scenario["protocol"] = {"shuffle": True,
                            "trials": [dict(trial, name=f"t{i}") for i in range(8)]}
    path = write_scenario(tmp_path / "shuffled.toml", scenario)
    orders = {seed: [t.name for t in load_scenario(path, seed=seed).trials] for seed in (1, 2)}
    assert orders[1] == [t.name for t in load_scenario(path, seed=1).trials]
    assert orders[1] != orders[2] and sorted(orders[1]) == [f"t{i}" for i in range(8)]


# --- numerical safety ---------------------------------------------------------------------

def test_stability_bound_matches_the_derivation():
    # instantaneous: b lambda < 2; relaxing Euler: b lambda < 4/a - 2 (a = dt / tau_error)
    assert margin(0.999, 2.0, 1.0, None, "euler") < 1 < margin(1.001, 2.0, 1.0, None, "euler")
    golden = (5**0.5 - 1) / 2
    assert margin(golden - 1e-6, 2.0, 1.0, 0.5, "euler") < 1
    assert margin(golden + 1e-6, 2.0, 1.0, 0.5, "euler") > 1
    assert margin(1.2, 0.0, 1.0, 0.5, "euler") == np.inf  # the error units alone: dt < 2 tau


@pytest.mark.parametrize(("errors", "stable_dt", "unstable_dt"),
                         [("instantaneous", 0.9, 1.1), ("relaxing", 0.55, 0.7)])
def test_unstable_dt_is_refused_and_the_bound_is_tight(tmp_path, capsys, errors, stable_dt,
                                                       unstable_dt):
    unstable = write_scenario(tmp_path / "unstable.toml", linear(unstable_dt, 200, errors))
    found = analyse(load_scenario(unstable))
    assert found.lambda_max == pytest.approx(2.0) and found.margin > 1
    output = tmp_path / "out" / "r.h5"
    assert main(["run", str(unstable), "-o", str(output), "--no-plot"]) == 2
    line = error_line(capsys)
    assert "dt_ms" in line and "stability bound" in line and "e.g. dt_ms = " in line
    assert not output.parent.exists() or not list(output.parent.iterdir())

    # told to only warn, it really diverges; just below the bound it converges
    warned = linear(unstable_dt, 200, errors, numerics={"stability": "warn"})
    with pytest.warns(UserWarning, match="stability bound"), pytest.raises(sim.DivergenceError):
        sim.run(write_scenario(tmp_path / "warned.toml", warned), output=output)
    stable = write_scenario(tmp_path / "stable.toml", linear(stable_dt, 200, errors))
    with pytest.warns(UserWarning, match="overshoot"):
        result = sim.run(stable, output=tmp_path / "stable.h5")
    assert result.level("v")["belief"][-1, 0] == pytest.approx(0.5, abs=1e-6)


def blinded() -> dict:
    """g(v) = v^2 is stable where the run starts, not where a blinding input drives it."""
    return {
        "name": "blinded", "dt_ms": 0.01,
        "model": {"tau_belief_ms": 1.0, "tau_error_ms": 1.0,
                  "levels": [{"name": "light", "size": 1},
                             {"name": "cause", "size": 1, "weights": 1.0,
                              "nonlinearity": "mu**2"}],
                  "prior": {"mean": 3.0, "precision": 1.0}},
        "protocol": {"trials": [
            {"name": "calm", "duration_ms": 2.0, "stimulus": {"kind": "constant", "value": 2.0}},
            {"name": "blinding", "duration_ms": 2.0,
             "stimulus": {"kind": "constant", "value": 1e4}}]},
        "record": {"every_ms": 0.1},
    }


def test_divergence_mid_run_is_caught_and_recorded(tmp_path, capsys):
    path = write_scenario(tmp_path / "blinded.toml", blinded())
    output = tmp_path / "blinded.h5"
    assert main(["run", str(path), "-o", str(output), "--no-plot"]) == 3
    err = capsys.readouterr().err
    (line,) = [text for text in err.splitlines() if text.startswith("pcsim: error:")]
    assert "diverged at t = 2." in line and "trial 'blinding'" in line
    assert "belief_cause.belief[0]" in line and "try dt_ms = " in line
    with pytest.raises(sim.ResultError, match="marked 'diverged'"):
        sim.load(output)
    result = sim.load(output, allow_incomplete=True)
    assert result.attrs["status"] == "diverged" and "belief_cause" in result.attrs["failure"]
    assert list(result.trials["name"]) == ["calm"]
    for name, array in result.datasets.items():
        if np.asarray(array).dtype.kind == "f":
            assert np.all(np.isfinite(array)), name
    assert result.time[-1] <= 2.1e-3


def test_a_trial_with_a_huge_precision_is_refused_or_caught(tmp_path):
    scenario = linear(0.1, 100)
    trial = scenario["protocol"]["trials"][0]
    scenario["protocol"]["trials"] = [dict(trial, name="calm"),
                                      dict(trial, name="glare", precision={"x": 1e3})]
    path = write_scenario(tmp_path / "glare.toml", scenario)
    with pytest.raises(sim.ScenarioError, match="trial 'glare'"):
        sim.run(path, output=tmp_path / "r.h5")
    assert not (tmp_path / "r.h5").exists()
    with pytest.warns(UserWarning), pytest.raises(sim.DivergenceError) as caught:
        sim.run(path, output=tmp_path / "r.h5", overrides={"numerics.stability": "warn"})
    assert "trial 'glare'" in str(caught.value) and caught.value.path == tmp_path / "r.h5"
    assert sim.load(tmp_path / "r.h5", allow_incomplete=True).trials["name"].tolist() == ["calm"]


# --- output integrity -----------------------------------------------------------------------

def long_scenario(tmp_path: Path) -> Path:
    scenario = linear(0.1, 10**7, errors="relaxing")
    scenario["model"]["tau_belief_ms"] = 5.0
    scenario["protocol"]["trials"][0]["stimulus"]["noise_std"] = 0.1
    scenario["record"] = {"every_ms": 1.0}
    return write_scenario(tmp_path / "long.toml", scenario)


def start_run(tmp_path: Path, *extra: str, env: dict | None = None
              ) -> tuple[subprocess.Popen, Path]:
    output = tmp_path / "out" / "long.h5"
    process = subprocess.Popen(
        [sys.executable, "-m", "sim.cli", "run", str(long_scenario(tmp_path)), "-o", str(output),
         "--no-plot", *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=env)
    deadline = time.monotonic() + 120
    while not list(output.parent.glob(".long.h5.*.partial")):
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.1)
    time.sleep(1.5)  # now simulating
    return process, output


def test_sigkill_leaves_no_result_and_the_next_run_cleans_up(tmp_path):
    process, output = start_run(tmp_path)
    process.kill()
    process.communicate(timeout=60)
    assert not output.exists()
    (stale,) = output.parent.glob(".long.h5.*.partial")
    sim.run(write_scenario(tmp_path / "short.toml", linear(0.1, 10)),
            output=output.parent / "short.h5")
    assert not stale.exists()


def test_no_stray_files_in_the_temp_folder(tmp_path):
    """Brian2 logs to files in the temp folder from its import on; pcsim removes them
    (sim.brian_logging): after a SIGKILL, a Ctrl-C, a refused scenario and a user's script
    that raises after sim.run returned, the temp folder is as it was."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {**os.environ, "TMPDIR": str(temp)}
    for stop in (signal.SIGKILL, signal.SIGINT):
        folder = tmp_path / stop.name
        folder.mkdir()
        process, _ = start_run(folder, env=env)
        process.send_signal(stop)
        process.communicate(timeout=60)
    bad = write_scenario(tmp_path / "bad.toml", {**linear(0.1, 10), "dt_ms": -1.0})
    refused = subprocess.run([sys.executable, "-m", "sim.cli", "run", str(bad)],
                             capture_output=True, text=True, env=env, timeout=120)
    assert refused.returncode == 2
    ok = write_scenario(tmp_path / "ok.toml", linear(0.1, 10))
    script = (f"import sim\nsim.run({str(ok)!r}, output={str(tmp_path / 'ok.h5')!r})\n"
              "raise RuntimeError('the script fails')\n")
    raised = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env=env, timeout=120)
    assert "the script fails" in raised.stderr and "Brian 2" not in raised.stderr
    assert sorted(path.name for path in temp.iterdir()) == []


def test_debug_keeps_brians_log_and_says_where(tmp_path):
    temp = tmp_path / "tmp"
    temp.mkdir()
    path = write_scenario(tmp_path / "ok.toml", linear(0.1, 10))
    ran = subprocess.run([sys.executable, "-m", "sim.cli", "--debug", "run", str(path), "-o",
                          str(tmp_path / "ok.h5"), "--no-plot"], capture_output=True, text=True,
                         env={**os.environ, "TMPDIR": str(temp)}, timeout=120)
    assert ran.returncode == 0, ran.stderr
    assert "pcsim: Brian2 logs to " + str(temp) in ran.stderr


def test_sigint_leaves_nothing_unless_asked(tmp_path):
    process, output = start_run(tmp_path)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130 and "Traceback" not in err
    assert "nothing written" in err
    assert not list(output.parent.iterdir())

    process, output = start_run(tmp_path, "--keep-partial")
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130 and "Traceback" not in err
    assert [p.name for p in output.parent.iterdir()] == ["long.h5"]
    with pytest.raises(sim.ResultError, match="marked 'interrupted'"):
        sim.load(output)
    result = sim.load(output, allow_incomplete=True)
    assert result.attrs["status"] == "interrupted" and len(result.time) > 10
    assert np.all(np.isfinite(result.level("v")["belief"]))
    assert result.trials["t_stop"][0] == pytest.approx(result.attrs["stopped_at"], abs=1e-3)


def test_an_existing_result_is_never_overwritten_without_asking(tmp_path, capsys):
    path = write_scenario(tmp_path / "short.toml", linear(0.1, 10))
    output = tmp_path / "r.h5"
    output.write_bytes(b"precious")
    with pytest.raises(sim.ResultError, match="already exists"):
        sim.run(path, output=output)
    assert main(["run", str(path), "-o", str(output), "--no-plot"]) == 2
    assert "already exists" in error_line(capsys)
    assert output.read_bytes() == b"precious"
    assert sim.run(path, output=output, overwrite=True).attrs["status"] == "complete"
    assert main(["run", str(path), "-o", str(tmp_path), "--no-plot"]) == 2
    assert "is a folder" in error_line(capsys)


# --- reading ------------------------------------------------------------------------------

def test_load_refuses_what_is_not_a_finished_pcsim_result(tmp_path):
    good = sim.run(write_scenario(tmp_path / "s.toml", linear(0.1, 10)),
                   output=tmp_path / "good.h5").path
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(sim.ResultError, match="cannot open as HDF5"):
        sim.load(tmp_path / "text.h5")
    with h5py.File(tmp_path / "other.h5", "w") as handle:
        handle["x"] = [1, 2]
    with pytest.raises(sim.ResultError, match="not a pcsim result"):
        sim.load(tmp_path / "other.h5")

    def variant(name: str, **attrs) -> Path:
        copy = tmp_path / name
        copy.write_bytes(good.read_bytes())
        with h5py.File(copy, "a") as handle:
            handle.attrs.update(attrs)
        return copy

    with pytest.raises(sim.ResultError, match="upgrade pcsim"):
        sim.load(variant("newer.h5", schema_version=SCHEMA_VERSION + 1))
    with pytest.raises(sim.ResultError, match="marked 'running'"):
        sim.load(variant("running.h5", status="running"))
    assert sim.load(variant("running.h5", status="running"), allow_incomplete=True)
    older = sim.load(variant("older.h5", schema_version=SCHEMA_VERSION - 1))
    assert np.array_equal(older.level("v")["belief"], sim.load(good).level("v")["belief"])


# --- reproducibility ------------------------------------------------------------------------

def datasets(result: sim.Result) -> dict:
    return {name: np.asarray(array) for name, array in result.datasets.items()}


def test_same_seed_same_datasets_bitwise(tmp_path):
    overrides = {"protocol.trials.0.duration_ms": 20.0}
    runs = [sim.run("perception/hierarchy", output=tmp_path / f"{i}.h5", seed=seed,
                    overrides=overrides) for i, seed in enumerate((5, 5, 6))]
    first, again, other = (datasets(run) for run in runs)
    assert first.keys() == again.keys()
    for name in first:
        a, b = first[name], again[name]
        assert a.dtype == b.dtype and a.shape == b.shape, name
        assert a.tobytes() == b.tobytes() if a.dtype.kind != "O" else a.tolist() == b.tolist()
    for name in ("levels/input/input", "levels/features/weights_initial",
                 "levels/objects/belief"):
        assert not np.array_equal(first[name], other[name]), name


def test_no_result_when_the_output_folder_cannot_be_written(tmp_path, capsys):
    if os.geteuid() == 0:
        blocked = tmp_path / "file"
        blocked.write_text("")
        output = blocked / "r.h5"  # a folder that is a file
    else:
        blocked = tmp_path / "ro"
        blocked.mkdir(mode=0o500)
        output = blocked / "r.h5"
    path = write_scenario(tmp_path / "s.toml", linear(0.1, 10))
    assert main(["run", str(path), "-o", str(output), "--no-plot"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    (line,) = [text for text in err.splitlines() if text.startswith("pcsim: error:")]
    assert "cannot write the result here" in line


# --- the command line: output names, pipes, warnings ----------------------------------------

def pcsim(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sim.cli", *args], capture_output=True,
                          text=True, timeout=300, **kwargs)


def test_run_writes_only_hdf5_names_and_never_clobbers_the_figure(tmp_path, capsys):
    path = write_scenario(tmp_path / "s.toml", linear(0.1, 10))
    assert main(["run", str(path), "-o", str(tmp_path / "x.png")]) == 2
    assert "give a name ending in .h5 or .hdf5" in error_line(capsys)
    assert not (tmp_path / "x.png").exists()

    figure = tmp_path / "r.png"
    figure.write_bytes(b"precious")
    assert main(["run", str(path), "-o", str(tmp_path / "r.h5")]) == 2
    line = error_line(capsys)
    assert f"{figure}: already exists" in line and "--overwrite" in line
    assert figure.read_bytes() == b"precious" and not (tmp_path / "r.h5").exists()
    assert main(["run", str(path), "-o", str(tmp_path / "r.h5"), "--no-plot"]) == 0
    assert figure.read_bytes() == b"precious"
    assert main(["run", str(path), "-o", str(tmp_path / "r.h5"), "--overwrite"]) == 0
    assert figure.read_bytes().startswith(b"\x89PNG")
    assert sim.load(tmp_path / "r.h5").attrs["status"] == "complete"


def test_plot_refuses_names_it_cannot_or_must_not_write(tmp_path, capsys):
    result = sim.run(write_scenario(tmp_path / "s.toml", linear(0.1, 10)),
                     output=tmp_path / "r.h5").path
    capsys.readouterr()
    for name, message in [("x.txt", "unsupported image format '.txt'"),
                          ("x", "no image suffix"), ("other.h5", "is a result file name"),
                          ("r.h5", "is a result file name")]:
        assert main(["plot", str(result), "-o", str(tmp_path / name)]) == 2, name
        line = error_line(capsys)
        assert message in line and ".png" in line, line
        assert not (tmp_path / name).exists() or name == "r.h5"
    assert sim.load(result).attrs["status"] == "complete"
    assert main(["plot", str(result), "-o", str(tmp_path / "f.svg")]) == 0
    assert (tmp_path / "f.svg").read_text().lstrip().startswith("<?xml")


def test_a_closed_pipe_ends_quietly(tmp_path):
    result = sim.run(write_scenario(tmp_path / "s.toml", linear(0.1, 10)),
                     output=tmp_path / "r.h5").path
    read, write = os.pipe()
    os.close(read)  # like `| head -1` gone before pcsim writes: every write is EPIPE
    try:
        done = subprocess.run([sys.executable, "-m", "sim.cli", "show", str(result)],
                              stdout=write, stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write)
    assert done.returncode == 128 + signal.SIGPIPE and done.stderr == ""


@pytest.mark.parametrize(("setting", "field"), [
    ('model.levels.1.nonlinearity="1/mu"', "model.levels[1].nonlinearity"),
    ("protocol.trials.0.stimulus.noise_std=1e300", "protocol.trials[0].stimulus.noise_std"),
])
def test_numpy_warnings_do_not_break_the_one_line_error(tmp_path, setting, field):
    done = pcsim("run", "perception/hierarchy", "--set", setting, "-o", str(tmp_path / "r.h5"),
                 "--no-plot")
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pcsim: error:"), done.stderr
    assert field in lines[0]
    assert not list(tmp_path.iterdir())


def test_warnings_while_running_stay_one_line_each_after_brian2_is_imported(tmp_path):
    path = write_scenario(tmp_path / "blinded.toml", blinded())  # overflows as it diverges
    done = pcsim("run", str(path), "-o", str(tmp_path / "r.h5"), "--no-plot")
    assert done.returncode == 3, done.stderr
    lines = done.stderr.strip().splitlines()
    assert all(line.startswith("pcsim: ") for line in lines), done.stderr
    assert "pcsim: warning: overflow" in done.stderr and lines[-1].startswith("pcsim: error:")


def test_stimulus_times_within_the_trial_and_noise_bounded(tmp_path):
    def load(**stimulus):
        scenario = linear(0.1, 4000)  # 400 ms
        scenario["protocol"]["trials"][0]["stimulus"] = stimulus
        return load_scenario(write_scenario(tmp_path / "s.toml", scenario))

    with pytest.raises(sim.ScenarioError, match=r"stimulus\.times_ms: 500 ms is after the "
                                                r"trial's end \(duration_ms = 400\)"):
        load(kind="schedule", times_ms=[0, 500], values=[1.0, 0.0])
    load(kind="schedule", times_ms=[0, 400], values=[1.0, 0.0])  # ends on the trial's end
    load(kind="steps", times_ms=[0, 500], values=[1.0, 0.0])  # a trial shortened with --set
    with pytest.raises(sim.ScenarioError, match=r"stimulus\.noise_std: 1e\+300 is over the "
                                                r"limit of 1e\+06"):
        load(kind="constant", value=1.0, noise_std=1e300)
    load(kind="constant", value=1.0, noise_std=1e6)


def test_a_huge_discrete_likelihood_is_refused_before_allocating(tmp_path):
    scenario = {
        "name": "huge", "dt_ms": 0.5,
        "model": {"kind": "discrete", "causes": 10**6,
                  "modalities": [{"name": "sound", "outcomes": 10**6,
                                  "likelihood": {"kind": "random"}}]},
        "protocol": {"trials": [{"duration_ms": 10.0}]},
    }
    started = time.perf_counter()
    with pytest.raises(sim.ScenarioError, match=r"model\.modalities\[0\]\.outcomes: 1000000 "
                                                r"outcomes x 1000000 causes .* over the limit"):
        load_scenario(write_scenario(tmp_path / "huge.toml", scenario))
    assert time.perf_counter() - started < 10
