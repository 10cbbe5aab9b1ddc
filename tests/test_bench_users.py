"""``pcsim bench``'s cases as users run them and its peers' table: the references do the same
work as pcsim (no timing is asserted: speed is measured by ``pcsim bench`` itself)."""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest

from sim.bench import peers, recorded
from sim.bench.cases import Case, hierarchy_table
from sim.bench.cores import can_pin
from sim.bench.discrete import discrete_table


def tiny_recorded(steps: int, laplace=None) -> dict:
    table = hierarchy_table("tiny recorded", [12, 8, 4], steps)
    table["record"] = {"every_ms": 0.3}  # every 3rd step, every variable
    if laplace is not None:
        table["record"]["laplace"] = laplace
    return table


@pytest.mark.parametrize("laplace", [None, 2])  # auto (every sample at 24 beliefs), every 2nd
def test_recorded_reference_keeps_the_samples_pcsim_keeps(tmp_path, laplace):
    """Inputs, beliefs, errors, precisions, the energy and F (NaN where the Laplace term is not
    computed) of the reference's own code equal pcsim's recorded datasets."""
    case = Case("tiny recorded", [12, 8, 4], "12-8-4", 40, 40, 1.3,
                lambda n: tiny_recorded(n, laplace), whole_run=recorded.hierarchy_whole_run)
    record = recorded.measure_recorded(case, 40, repeats=1, workdir=tmp_path)
    assert record.max_abs_diff < recorded.TOLERANCE
    assert record.ratio > 0 and record.whole_ratio > 0
    assert set(record.extra) >= {"pcsim_whole_s", "reference_whole_s"}


def test_recorded_reference_computes_f_itself(tmp_path):
    """The reference's F at a sample is E + 1/2 ln|H| - N/2 ln 2 pi from its dense Hessian;
    checked against a finite-difference Hessian of its own energy."""
    from sim.bench.cases import hierarchy_reference
    from sim.bench.reference import run_hierarchy
    from sim.scenario import load_scenario
    from sim.scenario_writer import write_scenario

    scenario = load_scenario(write_scenario(tmp_path / "f.toml", tiny_recorded(9)))
    model = hierarchy_reference(scenario)
    samples = recorded.HierarchySamples(model, 3, 1)
    run_hierarchy(model, 9, record_every=3, on_sample=samples)
    last = [samples.states[level][2] for level in range(3)]

    def energy(beliefs):
        probe = recorded.HierarchySamples(model, 1, 0)
        probe([last[0], beliefs[:8], beliefs[8:]], [np.zeros(n) for n in (12, 8, 4)])
        return probe.energy[0]

    flat, h = np.concatenate(last[1:]), 1e-4
    hessian = np.empty((12, 12))
    for i in range(12):
        for j in range(12):
            a, b = np.eye(12)[i] * h, np.eye(12)[j] * h  # central differences
            hessian[i, j] = (energy(flat + a + b) - energy(flat + a - b) - energy(flat - a + b)
                             + energy(flat - a - b)) / (4 * h**2)
    expected = samples.energy[2] + 0.5 * np.linalg.slogdet(hessian)[1] - 6 * np.log(2 * np.pi)
    assert samples.free_energy[2] == pytest.approx(expected, abs=1e-6)


def test_discrete_recorded_reference_keeps_the_samples(tmp_path):
    def table(steps):
        found = discrete_table("tiny discrete recorded", 6, steps)
        found["record"] = {"every_ms": found["dt_ms"]}
        return found

    case = Case("tiny discrete", [6], "K=6", 120, 120, 1.5, table,
                whole_run=recorded.discrete_whole_run)
    record = recorded.measure_recorded(case, 120, repeats=1, workdir=tmp_path)
    assert record.max_abs_diff < recorded.TOLERANCE


def test_a_missing_peer_is_a_note_and_pcsim_agrees_with_the_numpy_loop(tmp_path):
    lines: list[str] = []
    rows = peers.measure_peers(tmp_path, steps=30, repeats=1, precisions=("float64",),
                               progress=lines.append, sizes=[12, 8, 4],
                               peers=(("NoSuchPeer", "sim.bench.peers_no_such_peer", "nope"),))
    missing = next(row for row in rows if row.system == "NoSuchPeer")
    assert missing.note.startswith("not installed") and 'pip install ".[peers]"' in missing.note
    assert any(line.startswith("NoSuchPeer: not installed") for line in lines)
    pcsim = next(row for row in rows if row.system == "pcsim")
    assert pcsim.max_abs_diff["float64"] < peers.TOLERANCE64
    table = peers.table_lines(rows, 30)
    assert any(line.startswith("NoSuchPeer") and "not installed" in line for line in table)


@pytest.mark.parametrize(("batch", "float64", "float32", "missed"), [
    (1, 0.99, 0.95, ["PCX float64"]), (1, 1.0, 0.9, []),  # batch 1: >= 1.0 and >= 0.9 of PCX
    (1, 1.2, 0.89, ["PCX float32"]),
    # batched: ahead (> 1) of PCX and of ngc-learn, here at 1.25x PCX's rates
    (16, 1.3, 1.26, []), (16, 1.01, 1.3, ["ngc-learn float64"]),
    (16, 1.3, 0.99, ["PCX float32", "ngc-learn float32"]),
])
def test_the_peers_targets_are_read_from_pcsim_over_the_peers(batch, float64, float32, missed):
    def row(system: str, float64: float, float32: float) -> peers.Row:
        return peers.Row(system, {"float64": 2000 * float64, "float32": 3000 * float32},
                         numpy_rates={"float64": 1000.0, "float32": 1000.0},
                         max_abs_diff={"float64": 0.0, "float32": 0.0})

    rows = [row("pcsim", float64, float32), row("PCX 0.6.3", 1.0, 1.0),
            row("ngc-learn 3.2.1", 1.25, 1.25)]
    lines = [line for line in peers.table_lines(rows, 30, batch) if line.startswith("pcsim / ")]
    found = [line.split(" / ")[1].split(":")[0].replace(" in ", " ") for line in lines]
    assert found == (["PCX float64", "PCX float32"] if batch == 1 else
                     ["PCX float64", "PCX float32", "ngc-learn float64", "ngc-learn float32"])
    assert [name for name, line in zip(found, lines, strict=True)
            if line.endswith("MISSED)")] == missed


def test_the_compiled_row_is_checked_against_the_targets_on_its_own_lines():
    """Each pcsim row that ran gets its own target lines (pcsim compiled: ``[numerics] device
    = "standalone"``); a compiled row with a note (not run) gets none."""
    def row(system: str, rate: float, note: str = "") -> peers.Row:
        return peers.Row(system, {"float64": rate, "float32": rate},
                         numpy_rates={"float64": 1.0, "float32": 1.0},
                         max_abs_diff={"float64": 0.0, "float32": 0.0}, note=note)

    rows = [row("pcsim", 800.0), row(peers.COMPILED, 950.0), row("PCX 0.6.3", 1000.0)]
    lines = peers.target_lines(rows)
    assert lines == ["pcsim / PCX in float64: 0.80 (target >= 1, MISSED)",
                     "pcsim / PCX in float32: 0.80 (target >= 0.9, MISSED)",
                     "pcsim compiled / PCX in float64: 0.95 (target >= 1, MISSED)",
                     "pcsim compiled / PCX in float32: 0.95 (target >= 0.9)"]
    rows[1].note = "not run"
    assert all(line.startswith("pcsim / ") for line in peers.target_lines(rows))


@pytest.mark.parametrize("name, module, package", peers.PEERS)
def test_each_installed_peer_does_the_same_work(tmp_path, name, module, package):
    if importlib.util.find_spec(package) is None:
        pytest.skip(f"{package} not installed")
    rows = peers.measure_peers(tmp_path, steps=30, repeats=1, precisions=("float64", "float32"),
                               progress=lambda line: None, sizes=[12, 8, 4],
                               peers=((name, module, package),))
    assert not peers.agrees(rows), peers.agrees(rows)
    assert all(row.max_abs_diff for row in rows)


def test_batched_peers_table_runs_pcsim_batched_or_says_why(tmp_path):
    """At batch B pcsim runs B identical trials as one batched network where the scenario
    field exists, and says why not where it does not; either way nothing differs silently."""
    rows = peers.measure_peers(tmp_path, steps=20, repeats=1, precisions=("float64",),
                               progress=lambda line: None, sizes=[12, 8, 4], batch=3, peers=())
    (pcsim,) = rows
    assert not list(tmp_path.glob("*compiled*"))  # no compiled row asked: no scenario for it
    if pcsim.note:
        assert pcsim.note.startswith("not run at batch 3:") and "protocol.batch" in pcsim.note
    else:
        assert pcsim.max_abs_diff["float64"] < peers.TOLERANCE64


@pytest.mark.parametrize("cores, avx512, environ, expected", [
    (["Haswell"], True, {}, "OPENBLAS_CORETYPE=SkylakeX"),
    (["Haswell"], True, {"OPENBLAS_CORETYPE": "Haswell"},
     "OPENBLAS_CORETYPE=Haswell is set in this environment"),
    (["SkylakeX"], True, {"OPENBLAS_CORETYPE": "SkylakeX"}, None),
    (["SkylakeX"], True, {}, None),
    (["Haswell"], False, {}, None),
    ([], True, {}, None),
])
def test_the_bench_says_when_openblas_leaves_avx512_unused(monkeypatch, cores, avx512, environ,
                                                           expected):
    """A CPU with AVX-512 running OpenBLAS's 256-bit kernels gets one line: naming the setting
    that selects the 512-bit ones, or, where the environment forces the kernels
    (OPENBLAS_CORETYPE), saying so; nothing else does."""
    from sim.bench import blas

    monkeypatch.setattr(blas, "blas_cores", lambda: cores)
    monkeypatch.setattr(blas, "cpu_has_avx512", lambda: avx512)
    note = blas.kernel_note(environ)
    assert (note is None) if expected is None else (expected in note and cores[0] in note)


def test_batched_protocol_case_runs_both_ways_and_they_agree(tmp_path, monkeypatch):
    """The bench's batched-protocol case (small sizes here): the serial and the batched runs
    of the same shuffled protocol end every trial with the same beliefs (1e-10), and the line
    it prints names the speed-up against its target."""
    from sim.bench import batched

    monkeypatch.setattr(batched, "SIZES", [12, 8, 4])
    monkeypatch.setattr(batched, "TRIALS", {True: 8, False: 8})
    monkeypatch.setattr(batched, "TRIAL_MS", {True: 2.0, False: 2.0})
    monkeypatch.setattr(batched, "BATCHES", {True: (4,), False: (4,)})
    monkeypatch.setattr(batched, "RECORDINGS", {True: (None, 0.5), False: (None,)})
    default, sparse = batched.measure(tmp_path, quick=True, repeats=1)
    assert "recording every 0.5 ms" in sparse.lines()[0] and sparse.max_abs_diff <= 1e-10
    record = default
    assert record.max_abs_diff <= batched.TOLERANCE
    assert len(record.serial_s) == 1 and list(record.batched_s) == [4]
    line = record.lines()[0]
    assert line.startswith("batched protocol (12-8-4, 8 trials of 2 ms") and "target x2" in line
    assert record.row()["speedups"][4] == pytest.approx(record.speedup(4))


@pytest.mark.skipif(not can_pin(), reason="Linux only")
def test_the_peers_run_on_as_many_cores_as_blas_has_threads():
    """``on_cores(1)``: every thread of the process, and one started inside, may run on one
    core only; afterwards each thread has the process's cores back."""
    import threading

    from sim.bench.cores import on_cores

    allowed = os.sched_getaffinity(0)
    seen = {}
    worker = threading.Thread(target=lambda: threading.Event().wait(5), daemon=True)
    worker.start()  # before the block: pinned too
    with on_cores(1) as cores:
        started = threading.Thread(target=lambda: seen.update(inside=os.sched_getaffinity(0)))
        started.start()
        started.join()
        assert cores == [min(allowed)] and os.sched_getaffinity(0) == set(cores)
        assert seen["inside"] == set(cores)
        assert os.sched_getaffinity(worker.native_id) == set(cores)
    assert os.sched_getaffinity(0) == allowed
    assert os.sched_getaffinity(worker.native_id) == allowed
