"""The fast paths compute what the plain ones do: dense = Brian2 Synapses, sparse = dense,
float32 ~ float64, and streamed HDF5 recording = the states of a direct NumPy loop.
(Correctness only: speed is measured by ``pcsim bench``.)"""

from __future__ import annotations

import numpy as np
import pytest

import sim
import sim.io.writer
from sim.bench.cases import DT_MS, hierarchy_reference, hierarchy_table
from sim.bench.reference import run_hierarchy
from sim.scenario import load_scenario
from sim.scenario_writer import write_scenario

SIZES = [6, 4, 3]
STEPS = 400
LOCAL = {"sizes": [64, 16, 4], "shapes": [(8, 8), (4, 4), (2, 2)],
         "weights": {"kind": "local", "field": 3, "scale": 1.0}}


def run(tmp_path, name: str, table: dict, every_steps: int = 1) -> sim.Result:
    table["record"] = {"every_ms": every_steps * DT_MS}
    path = write_scenario(tmp_path / f"{name}.toml", table)
    return sim.run(path, output=tmp_path / f"{name}.h5")


def assert_same_run(a: sim.Result, b: sim.Result, tolerance: float,
                    variables=("belief", "error")) -> None:
    for name in a.level_names:
        for variable in variables:
            if variable in a.level(name):
                np.testing.assert_allclose(a.level(name)[variable], b.level(name)[variable],
                                           rtol=0, atol=tolerance, err_msg=f"{name} {variable}")


@pytest.mark.parametrize("learning", [False, True])
@pytest.mark.parametrize("errors", ["relaxing", "instantaneous"])
def test_dense_coupling_equals_synapses(tmp_path, errors, learning):
    runs = {
        kind: run(tmp_path, kind, hierarchy_table("eq", SIZES, STEPS, errors=errors,
                                                  learning=learning, coupling=kind))
        for kind in ("dense", "synapses")
    }
    dense, synapses = runs["dense"], runs["synapses"]
    assert len(dense.time) == STEPS
    assert_same_run(dense, synapses, 1e-9)
    if learning:
        for name in dense.level_names[1:]:
            group = f"levels/{name}/"
            final = dense[group + "weights_final"]
            assert np.max(np.abs(final - dense[group + "weights_initial"])) > 1e-4  # it learnt
            np.testing.assert_allclose(final, synapses[group + "weights_final"], atol=1e-9)


def test_sparse_coupling_equals_dense_with_learning(tmp_path):
    runs = {kind: run(tmp_path, kind, hierarchy_table("eq", SIZES, STEPS, learning=True,
                                                      coupling=kind))
            for kind in ("dense", "sparse")}
    assert_same_run(runs["dense"], runs["sparse"], 1e-9)
    for name in runs["dense"].level_names[1:]:
        path = f"levels/{name}/weights_final"
        np.testing.assert_allclose(runs["dense"][path], runs["sparse"][path], atol=1e-9)


def test_local_receptive_fields_sparse_equals_dense(tmp_path):
    runs = {kind: run(tmp_path, kind, hierarchy_table("local", LOCAL["sizes"], STEPS,
                                                      shapes=LOCAL["shapes"],
                                                      weights=LOCAL["weights"], coupling=kind))
            for kind in ("sparse", "dense")}
    assert_same_run(runs["sparse"], runs["dense"], 1e-9)
    np.testing.assert_allclose(runs["sparse"].free_energy, runs["dense"].free_energy, rtol=1e-9)
    # stored as CSR: 8x8 below, 4x4 here, 3x3 fields centred on rows/columns 1, 3, 5, 7 (the
    # last one loses its row 8): 11 x 11 connections
    weights = runs["dense"].weights("level1")
    assert weights.shape == (64, 16) and weights.nnz == 11 * 11
    assert weights[2 * 8 + 2, 1 * 4 + 1] != 0 and weights[0, 15] == 0


def test_float32_within_1e_4_of_float64(tmp_path):
    runs = {kind: run(tmp_path, kind, hierarchy_table("fp", [64, 16, 4], STEPS,
                                                      learning=True, float_type=kind))
            for kind in ("float64", "float32")}
    assert runs["float32"].parameters["float"] == "float32"
    assert_same_run(runs["float64"], runs["float32"], 1e-4)
    assert np.max(np.abs(runs["float64"].level("level1")["belief"]
                         - runs["float32"].level("level1")["belief"])) > 0  # really float32


@pytest.mark.parametrize("errors", ["relaxing", "instantaneous"])
def test_streamed_recording_equals_direct_numpy_loop(tmp_path, monkeypatch, errors):
    monkeypatch.setattr(sim.io.writer, "CHUNK_SAMPLES", 7)  # many flushes, a partial last one
    every, steps = 3, 200
    table = hierarchy_table("stream", SIZES, steps, errors=errors)
    result = run(tmp_path, "stream", table, every_steps=every)
    samples: list = []
    run_hierarchy(hierarchy_reference(load_scenario(tmp_path / "stream.toml")), steps,
                  record_every=every, samples=samples)
    assert len(result.time) == len(samples) == -(-steps // every)
    np.testing.assert_allclose(result.time, np.arange(len(samples)) * every * DT_MS * 1e-3,
                               rtol=1e-12)
    for index, name in enumerate(result.level_names):
        recorded = result.level(name)["input" if index == 0 else "belief"]
        expected = np.array([sample[index] for sample in samples])
        np.testing.assert_allclose(recorded, expected, rtol=0, atol=1e-12, err_msg=name)


def test_local_weights_need_grids(tmp_path):
    table = hierarchy_table("local", LOCAL["sizes"], 10, weights=LOCAL["weights"])
    path = write_scenario(tmp_path / "no_shape.toml", table)
    with pytest.raises(sim.ScenarioError, match="local weights need a 2-D `shape`"):
        load_scenario(path)
    table = hierarchy_table("local", LOCAL["sizes"], 10, shapes=[(8, 8), (4, 5), (2, 2)],
                            weights=LOCAL["weights"])
    with pytest.raises(sim.ScenarioError, match=r"shape: \[4, 5\] has 20 units, but size = 16"):
        load_scenario(write_scenario(tmp_path / "bad_shape.toml", table))


def test_bench_references_do_the_same_work(tmp_path):
    """``pcsim bench`` rows: the NumPy references end where pcsim ends (dense, discrete, and
    the bars' learning over 10 trials)."""
    from sim.bench import cases, measure

    chosen = {case.name: case for case in cases.cases()}
    for name, steps in (("dense small", 300), ("discrete K=6", 300), ("discrete 2 factors", 300),
                        ("bars (many short trials)", 500)):
        record = measure.measure(chosen[name], steps, repeats=1, workdir=tmp_path, cold=False,
                                 threads=0)
        assert record.max_abs_diff < cases.TOLERANCE, name
        assert record.pcsim_steps_per_s > 0 and record.reference_steps_per_s > 0
        assert record.startup_warm_s > 0 and record.peak_rss_mb > 0


def test_bench_times_the_report_commands(tmp_path):
    """``pcsim bench``'s report rows: plot and show run on the bundled result, and their
    records and table rows carry both times."""
    from sim.bench import cases, output, report_commands

    result = report_commands.report_result(tmp_path / "report")
    records = report_commands.measure_commands(cases.command_cases(), result, repeats=1)
    assert [r.name for r in records] == ["pcsim plot", "pcsim show"]
    for record in records:
        assert not record.note, record.note
        assert record.seconds > 0 and record.baseline_s > 0
        row = record.row()
        assert row["difference_s"] == record.seconds - record.baseline_s
        assert row["target_met"] in (True, False)
    assert result.with_suffix(".png").stat().st_size > 0  # plot drew the figure
    lines = output.command_lines(records, cases.REPORT_SCENARIO, 1)
    assert lines[3].startswith("pcsim plot") and lines[4].startswith("pcsim show")


@pytest.mark.parametrize("errors", ["relaxing", "instantaneous"])
def test_inferred_precision_equals_a_direct_numpy_loop(tmp_path, errors):
    """Precision units (``circuits.precision_inferred``) against the bench's NumPy loop of the
    same equations (written from docs/attention.md, not from the circuit)."""
    table = hierarchy_table("inferred", SIZES, STEPS, errors=errors, inferred=True)
    result = run(tmp_path, "inferred", table, every_steps=STEPS)
    beliefs, _ = run_hierarchy(hierarchy_reference(load_scenario(tmp_path / "inferred.toml")),
                               STEPS)
    for index, expected in enumerate(beliefs, start=1):
        np.testing.assert_allclose(result.trials[f"final_belief/level{index}"][-1], expected,
                                   rtol=0, atol=1e-12)


@pytest.mark.parametrize("copies", [1, 3, 70])  # one vector; the column form; the row form
@pytest.mark.parametrize("site", ["before", "after"])
def test_products_of_every_form_equal_one_product_per_copy(copies, site):
    """The batched products (``rows=True``: (B, n) stacks, run as one BLAS product in the form
    that is faster for B) equal the product of each copy alone, and the aligned weights are
    the given ones, on a cache-line boundary."""
    from circuits.coupling import ALIGNMENT, aligned
    from circuits.generative import GenerativeMap
    from circuits.nonlinearity import parse_nonlinearity

    rng = np.random.default_rng(11)
    given = rng.standard_normal((40, 30))
    weights = aligned(given, np.float64)
    assert weights.ctypes.data % ALIGNMENT == 0 and weights.flags.c_contiguous
    np.testing.assert_array_equal(weights, given)
    gmap = GenerativeMap(weights, parse_nonlinearity("tanh"), site)
    beliefs = rng.standard_normal((copies, 30))
    errors = rng.standard_normal((copies, 40))
    predicted = gmap.predict(beliefs, out=np.empty((copies, 40)), rows=True)
    pulled = gmap.pull_back(beliefs, errors, out=np.empty((copies, 30)), rows=True,
                            transposed=aligned(weights.T, np.float64))
    for copy in range(copies):
        np.testing.assert_allclose(predicted[copy], gmap.predict(beliefs[copy]), rtol=0,
                                   atol=1e-13)
        np.testing.assert_allclose(pulled[copy], gmap.pull_back(beliefs[copy], errors[copy]),
                                   rtol=0, atol=1e-13)


@pytest.mark.parametrize("name, from_value", [("tanh", True), ("exp(mu/4)", True),
                                              ("relu_smooth", False), ("mu**2", False),
                                              ("identity", False)])
def test_the_derivative_taken_from_the_kept_activation_is_f_prime(name, from_value):
    """Where f' is a function of f's value (tanh: 1 - f^2), the coupling takes it from the
    f(mu) it computed for the prediction: that equals a central difference of f, and the
    prediction and pull-back given the kept f(mu) equal those computed from mu alone."""
    from circuits.generative import GenerativeMap
    from circuits.nonlinearity import parse_nonlinearity

    f = parse_nonlinearity(name)
    assert (f.df_of_f is not None) == from_value
    mu = np.linspace(-2.0, 2.0, 41)
    if from_value:
        step = 1e-5
        np.testing.assert_allclose(f.df_of_f(f.f(mu)), (f.f(mu + step) - f.f(mu - step))
                                   / (2 * step), rtol=1e-8, atol=1e-9)
    rng = np.random.default_rng(5)
    gmap = GenerativeMap(rng.standard_normal((20, 41)), f, "before")
    errors = rng.standard_normal(20)
    activation = f.f(mu)  # what the coupling keeps in the belief units (circuits.coupling)
    np.testing.assert_allclose(gmap.predict(mu, activation=activation), gmap.predict(mu),
                               rtol=0, atol=1e-14)
    np.testing.assert_allclose(gmap.pull_back(mu, errors, activation=activation),
                               gmap.pull_back(mu, errors), rtol=0, atol=1e-14)
