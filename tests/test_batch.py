"""Batched trials (``[protocol] batch``, sim/batch.py): B independent trials run as B copies of
one network, and the file is the serial run's, to 1e-10.

The reference is the serial run of the same scenario (batch = 1), whose per-trial numbers the
other tests check against closed forms; here every dataset of both files is compared, sample
by sample, for a shuffled generated protocol whose trials differ in stimulus (constant, steps,
ramp, noise), precision (overrides and schedules) and duration, recorded at a cadence that
does not divide the trials, on a linear and a tanh model. Scenarios whose trials are not
independent refuse to batch with one line (exit code 2) and write nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

import sim
from circuits.generative import COLUMN_FORM_ROWS
from sim.batch import plan
from sim.cli import main

TOLERANCE = 1e-10
TOLERANCE32 = 1e-6

MODEL = {
    "linear": """
[[model.levels]]
name = "input"
size = 4
precision = [1.0, 2.0, 0.5, 1.5]

[[model.levels]]
name = "hidden"
size = 3
precision = 1.5
weights = {{ kind = "random", scale = 0.8 }}

[[model.levels]]
name = "cause"
size = 2
weights = {{ kind = "random", scale = 0.8 }}
""",
    "tanh": """
[[model.levels]]
name = "input"
size = 6
precision = 1.2

[[model.levels]]
name = "hidden"
size = 4
precision = [1.0, 2.0, 0.5, 1.0]
weights = {{ kind = "random", scale = 1.0 }}
nonlinearity = "tanh"

[[model.levels]]
name = "cause"
size = 2
weights = {{ kind = "random", scale = 1.0 }}
nonlinearity = "tanh"
apply = "{apply}"
""",
}

SCENARIO = """
name = "batched"
seed = 7
dt_ms = 0.5

[model]
tau_belief_ms = 5.0
tau_error_ms = 1.0
errors = "{errors}"
coupling = "{coupling}"
prior = {{ mean = [0.3, -0.2], precision = 0.7 }}
{model}
[record]
every_ms = 1.5
laplace = 2

[protocol]
reset = "beliefs"
{protocol}

[[protocol.conditions]]
name = "constant"
count = 4
duration_ms = 12.0
stimulus = {{ kind = "constant", value = {a} }}

[[protocol.conditions]]
name = "attended"
count = 3
duration_ms = 12.0
stimulus = {{ kind = "steps", times_ms = [0, 4.5], values = [{a}, {b}] }}
precision = {{ input = 3.0, hidden = {{ times_ms = [0, 6.0], values = [0.5, 2.0] }} }}

[[protocol.conditions]]
name = "ramp"
count = 3
duration_ms = 9.5
stimulus = {{ kind = "ramp", start = {b}, stop = {a} }}
prior_precision = 2.0
prior_mean = [0.1, 0.4]

[[protocol.conditions]]
name = "noisy"
count = 3
duration_ms = 12.0
stimulus = {{ kind = "constant", value = {b}, noise_std = 0.3 }}
"""


def scenario_file(tmp_path: Path, kind: str, errors: str = "relaxing", apply: str = "before",
                  protocol: str = "", coupling: str = "dense") -> Path:
    size = 4 if kind == "linear" else 6
    rng = np.random.default_rng(size)
    a, b = (rng.normal(0.0, 1.0, size).round(3).tolist() for _ in range(2))
    text = SCENARIO.format(errors=errors, model=MODEL[kind].format(apply=apply),
                           protocol=protocol, a=a, b=b, coupling=coupling)
    path = tmp_path / f"{kind}.toml"
    path.write_text(text)
    return path


def datasets(path: Path) -> dict[str, np.ndarray]:
    found: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as file:
        def visit(name, item):
            if isinstance(item, h5py.Dataset) and not name.startswith("scenario/"):
                found[name] = item[()]
        file.visititems(visit)
    return found


def assert_same_run(serial: Path, batched: Path, tolerance: float = TOLERANCE) -> None:
    """Every dataset of the batched file equals the serial one's (numbers to ``tolerance``, NaN
    where it is NaN, text exactly); same root attributes but ``batched``."""
    expected, found = datasets(serial), datasets(batched)
    assert sorted(found) == sorted(expected)
    for name, value in expected.items():
        got = found[name]
        assert got.shape == value.shape, name
        if value.dtype.kind in "fc":
            np.testing.assert_allclose(got, value, rtol=tolerance, atol=tolerance,
                                       err_msg=name)
        else:
            assert np.array_equal(got, value), name
    with h5py.File(serial, "r") as a, h5py.File(batched, "r") as b:
        assert "batched" not in a.attrs
        assert int(b.attrs["batched"]) > 1
        volatile = {"created_utc", "batched"}
        assert ({k: str(v) for k, v in a.attrs.items() if k not in volatile}
                == {k: str(v) for k, v in b.attrs.items() if k not in volatile})
        for name in ("free_energy", "levels/input/input"):
            assert dict(a[name].attrs).keys() == dict(b[name].attrs).keys()
        parameters = [json.loads(f["scenario/parameters"][()]) for f in (a, b)]
    assert parameters[1]["protocol"].pop("batch") > 1
    assert parameters[0]["trials"] == parameters[1]["trials"]
    assert parameters[0]["protocol"] == parameters[1]["protocol"]


@pytest.mark.parametrize(("kind", "errors", "apply", "coupling"), [
    ("linear", "relaxing", "before", "dense"),
    ("tanh", "relaxing", "before", "dense"),
    ("tanh", "instantaneous", "after", "dense"),
    ("tanh", "relaxing", "after", "sparse"),
])
def test_batched_trials_equal_serial_trials(tmp_path, kind, errors, apply, coupling):
    path = scenario_file(tmp_path, kind, errors, apply, coupling=coupling)
    serial = tmp_path / "serial.h5"
    sim.run(path, serial)
    batched = tmp_path / "batched.h5"
    result = sim.run(path, batched, overrides={"protocol.batch": 4})
    assert_same_run(serial, batched)
    # the protocol is shuffled, so batches hold trials of several conditions
    conditions = [str(c) for c in result.trials["condition"][:4]]
    assert len(set(conditions)) > 1
    with h5py.File(serial, "r") as file:  # the noisy trials really are noisy
        noisy = [i for i, c in enumerate(file["trials/condition"][()]) if c == b"noisy"]
        assert noisy and np.all(np.isfinite(file["free_energy"][()][::2]))


def test_one_batch_of_every_trial_equals_serial(tmp_path):
    """B larger than the protocol: one batch per duration, copies left over repeat a trial."""
    path = scenario_file(tmp_path, "tanh")
    sim.run(path, tmp_path / "serial.h5")
    sim.run(path, tmp_path / "batched.h5", overrides={"protocol.batch": 64})
    assert_same_run(tmp_path / "serial.h5", tmp_path / "batched.h5")
    with h5py.File(tmp_path / "batched.h5", "r") as file:
        assert file.attrs["batched"] == 10  # the largest batch: the trials of 12 ms


def test_many_copies_equal_serial(tmp_path):
    """71 copies: the products run on the copies' rows (``circuits.generative._row_products``
    from ``COLUMN_FORM_ROWS`` copies on), and equal the serial run."""
    path = scenario_file(tmp_path, "tanh", "instantaneous")
    count = {"protocol.conditions.3.count": 64}
    sim.run(path, tmp_path / "serial.h5", overrides=count)
    sim.run(path, tmp_path / "batched.h5", overrides={**count, "protocol.batch": 128})
    assert_same_run(tmp_path / "serial.h5", tmp_path / "batched.h5")
    with h5py.File(tmp_path / "batched.h5", "r") as file:
        assert file.attrs["batched"] == 71 >= COLUMN_FORM_ROWS  # the trials of 12 ms


@pytest.mark.parametrize(("batch", "float_type"), [(8, "float64"), (16, "float64"),
                                                   (16, "float32")])
def test_copies_as_lanes_equal_serial(tmp_path, monkeypatch, lane_kernel, batch, float_type):
    """16 copies of 12 ms trials (or two batches of 8): the dense products run in the compiled
    lane loop (``circuits.lane_products``, float64 in groups of 8 copies, float32 in one group
    of 16), and equal the serial run, which never calls it (float32: each in its own rounding,
    to ``TOLERANCE32``, the float32 batched runs' bound of tests/test_inputs.py)."""
    import circuits.lane_products

    seen = []

    class Counted:  # the compiled module, its calls counted
        @staticmethod
        def products_float64(rows, matrix, out):
            seen.append((len(rows), rows.dtype))
            lane_kernel.products_float64(rows, matrix, out)

        @staticmethod
        def products_float32(rows, matrix, out):
            seen.append((len(rows), rows.dtype))
            lane_kernel.products_float32(rows, matrix, out)

    monkeypatch.setattr(circuits.lane_products, "kernel", lambda: (Counted, ""))
    path = scenario_file(tmp_path, "tanh", "instantaneous")
    count = {"protocol.conditions.3.count": 9, "float": float_type}  # 4 + 3 + 9 trials of 12 ms
    sim.run(path, tmp_path / "serial.h5", overrides=count)
    assert not seen
    sim.run(path, tmp_path / "batched.h5", overrides={**count, "protocol.batch": batch})
    assert_same_run(tmp_path / "serial.h5", tmp_path / "batched.h5",
                    TOLERANCE if float_type == "float64" else TOLERANCE32)
    assert set(seen) == {(batch, np.dtype(float_type))}
    with h5py.File(tmp_path / "batched.h5", "r") as file:
        assert file.attrs["batched"] == batch


@pytest.mark.parametrize("buffer_bytes", [1, 3000])
def test_a_batch_that_writes_its_trials_in_parts_equals_serial(tmp_path, monkeypatch,
                                                               buffer_bytes):
    """A batch whose buffers cannot hold its trials' samples (a long protocol, a big network)
    writes each copy's samples in parts as they fill (1 byte: every sample alone), at the
    same places."""
    import sim.batch

    path = scenario_file(tmp_path, "tanh")
    sim.run(path, tmp_path / "serial.h5")
    monkeypatch.setattr(sim.batch, "BUFFER_BYTES", buffer_bytes)
    sim.run(path, tmp_path / "batched.h5", overrides={"protocol.batch": 4})
    assert_same_run(tmp_path / "serial.h5", tmp_path / "batched.h5")


def test_streams_read_copy_by_copy_equal_streams_read_at_once(tmp_path, monkeypatch):
    """A stream without ``rows`` (a mechanism's, say) is read copy by copy through the lanes,
    to the same file."""
    import dataclasses

    from sim.families.hierarchical.build import HierarchicalSimulation

    path = scenario_file(tmp_path, "tanh")
    sim.run(path, tmp_path / "serial.h5")
    streams = HierarchicalSimulation.streams
    monkeypatch.setattr(HierarchicalSimulation, "streams", lambda self: [
        dataclasses.replace(stream, rows=None) for stream in streams(self)])
    sim.run(path, tmp_path / "batched.h5", overrides={"protocol.batch": 4})
    assert_same_run(tmp_path / "serial.h5", tmp_path / "batched.h5")


def test_plan_groups_equal_durations_in_running_order():
    steps = [10, 10, 5, 10, 5, 10, 10, 5]
    assert plan(steps, 2) == [[0, 1], [2, 4], [3, 5], [6], [7]]
    assert plan(steps, 3) == [[0, 1, 3], [2, 4, 7], [5, 6]]
    assert plan(steps, 1) == [[i] for i in range(len(steps))]


REFUSED = {
    "learning": ("[model.learning]\ntau_weights_ms = 200.0\n", "",
                 "[model.learning] switches on weight_plasticity"),
    "no reset": ("", 'reset = "none"\n', "has reset = 'none'"),
    "synapses": ("", "", "model.coupling = 'synapses'"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_dependent_trials_refuse_to_batch_in_one_line(tmp_path, capsys, case):
    model_extra, protocol_extra, message = REFUSED[case]
    path = scenario_file(tmp_path, "linear", protocol="batch = 8\n" + protocol_extra)
    text = path.read_text().replace('reset = "beliefs"\n', "") if protocol_extra else \
        path.read_text()
    if case == "synapses":
        text = text.replace('coupling = "dense"', 'coupling = "synapses"')
    text = text.replace("[record]", model_extra + "\n[record]", 1)
    path.write_text(text)
    out = tmp_path / "out"
    assert main(["run", str(path), "-o", str(out / "r.h5"), "--no-plot"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"pcsim: error: {path}:"), err
    assert "protocol.batch: " in err and message in err, err
    assert not out.exists()


def test_the_discrete_family_refuses_to_batch(tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["run", "perception/creak", "-o", str(out / "r.h5"), "--no-plot",
                 "--set", "protocol.batch=4"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and "protocol.batch: the discrete family" in err, err
    assert not out.exists()


def test_a_diverging_batched_run_keeps_the_trials_done_before(tmp_path):
    """One condition's trials diverge: the batched file keeps, in running order, the trials
    done before the first unfinished one, equal to the serial file's first trials."""
    path = scenario_file(tmp_path, "linear")
    overrides = {"protocol.conditions.1.precision.input": 5000.0, "numerics.stability": "warn"}
    files = {}
    for name, batch in (("serial", 1), ("batched", 4)):
        files[name] = tmp_path / f"{name}.h5"
        with pytest.raises(sim.DivergenceError):
            sim.run(path, files[name], overrides={**overrides, "protocol.batch": batch})
    serial, batched = datasets(files["serial"]), datasets(files["batched"])
    done = len(batched["trials/index"])
    assert 0 < done <= len(serial["trials/index"])
    with h5py.File(files["batched"], "r") as file:
        assert file.attrs["status"] == "diverged"
        stopped_at = float(file.attrs["stopped_at"])
    assert stopped_at == pytest.approx(serial["trials/t_stop"][done - 1], abs=1e-12)
    samples = len(batched["time"])
    assert samples == np.count_nonzero(serial["time"] < stopped_at - 1e-9)
    for name, value in batched.items():
        reference = serial[name][:done] if name.startswith("trials/") else serial[name][:samples]
        if value.dtype.kind == "f":
            np.testing.assert_allclose(value, reference, rtol=TOLERANCE, atol=TOLERANCE,
                                       err_msg=name)
