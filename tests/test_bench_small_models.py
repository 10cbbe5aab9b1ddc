"""``pcsim bench``'s "small models" row in a short form: the reference loop
(``sim.bench.small_reference``, here in plain Python) ends every trial where pcsim does, and
the agreement check notices a reference fed another parameter (no timing is asserted)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import sim
from sim.bench import small_models, small_reference
from sim.scenario import load_scenario


@pytest.fixture(scope="module")
def short_cases(tmp_path_factory):
    return small_models.cases(tmp_path_factory.mktemp("small"), short=True)


@pytest.fixture(scope="module")
def short_results(tmp_path_factory, short_cases):
    """pcsim's run of each short case (runtime device), read as the row reads it."""
    folder = tmp_path_factory.mktemp("results")
    found = []
    for index, case in enumerate(short_cases):
        sim.run(case.scenario, output=folder / f"{index}.h5", overrides=case.overrides)
        scenario = load_scenario(case.scenario, case.overrides)
        found.append((scenario, small_models.read_result(folder / f"{index}.h5", scenario)))
    return found


def test_the_row_agrees_with_pcsim_on_short_protocols(tmp_path, short_cases):
    """Final beliefs of every trial and level, F at every sample and trial end, and Posner's
    reaction times (answers and misses) from pcsim's result equal the reference's."""
    record = small_models.measure(tmp_path, quick=True, small=short_cases,
                                  devices=("runtime",), loop=small_reference.protocol_loop,
                                  pcsim_repeats=1, reference_repeats=1)
    assert record.agrees is True
    posner, hierarchy = record.models
    for model in record.models:
        found = model.agreement["runtime"]
        assert found["max_abs_diff"] <= small_models.TOLERANCE
        assert found["free_energy_diff"] <= 1e-9
        assert model.pcsim_s["runtime"] > 0 and model.reference_s > 0
    assert posner.agreement["runtime"]["reaction_times_equal"] is True
    assert (posner.steps, posner.samples) == (6 * 1200, 6 * 120)
    assert (hierarchy.steps, hierarchy.samples) == (4 * 20, 4 * 20)  # every step by default
    text = "\n".join(record.lines())
    assert "posner" in text and "hierarchy 64-16-4" in text and "MISSED: " not in text
    row = json.loads(json.dumps(record.row()))
    assert row["within_tolerance"] is True
    assert row["models"][1]["target_ratio"] == small_models.HIERARCHY_RATIO


def nudge(model: small_reference.SmallModel, what: str) -> None:
    """Change one of the reference's numbers by a little."""
    if what == "prior precision":  # the top level's configured precision, every segment
        model.segment_precision[:, :, -model.sizes[-1]:] *= 1.01
    elif what == "schedule":  # the middle level's precision after its scheduled step only
        middle = slice(int(model.sizes[0]), int(model.sizes[:2].sum()))
        model.segment_precision[:, 1, middle] *= 1.01
    elif what == "attention":
        model.mapping *= 1.01
    elif what == "input noise":
        model.stimulus[:, 0] += 1e-3


@pytest.mark.parametrize(("index", "what"), [(0, "prior precision"), (0, "input noise"),
                                             (1, "schedule"), (1, "attention")])
def test_the_check_fails_when_the_reference_is_fed_another_parameter(short_results, index,
                                                                     what):
    scenario, result = short_results[index]
    model = small_models.from_scenario(scenario)
    same = small_models.agreement(small_reference.run(model), result, model)
    assert same["max_abs_diff"] <= small_models.TOLERANCE
    nudge(model, what)
    other = small_models.agreement(small_reference.run(model), result, model)
    assert other["max_abs_diff"] > 1e3 * small_models.TOLERANCE
    assert other["free_energy_diff"] > 1e3 * small_models.TOLERANCE


def test_a_row_whose_reference_differs_says_so(short_cases):
    from sim.bench.records import SmallModelRecord, SmallModelsRecord

    model = SmallModelRecord("hierarchy 64-16-4", "tanh", 80, 80, pcsim_s={"runtime": 1.0},
                             reference_s=0.5, target_ratio=3.0,
                             agreement={"runtime": {"max_abs_diff": 1e-6,
                                                    "free_energy_diff": 1e-6}})
    record = SmallModelsRecord(devices=["runtime", "standalone"], reference="plain Python",
                               models=[model])
    model.refused["standalone"] = "x.toml: numerics.device: ... cannot run this scenario"
    assert record.agrees is False and model.met("runtime") is False
    text = "\n".join(record.lines())
    assert "> 1e-09 MISSED" in text and "standalone refused: x.toml" in text
    assert np.isclose(model.ratio("runtime"), 2.0)


def test_without_numba_the_row_says_so_in_one_line(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "numba", None)  # import numba fails
    loop, why = small_reference.compiled_loop()
    from sim.bench.records import SmallModelsRecord

    assert loop is None and "Numba is not installed" in why and "\n" not in why
    head = SmallModelsRecord(devices=["runtime"], reference=why).lines()[0]
    assert head.endswith(f"no reference: {why}")
