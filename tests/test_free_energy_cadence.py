"""How often the recorded F carries its Laplace term: every sample, every k-th, at trial ends
only, or "auto" by the number of beliefs; the energy at every sample; no silent approximation
(NaN where the Laplace term was not computed)."""

from __future__ import annotations

import numpy as np
import pytest

import sim
from sim.bench.cases import hierarchy_table
from sim.scenario_writer import write_scenario

STEPS = 20


def run(tmp_path, sizes: list[int], laplace=None, name: str = "cadence") -> sim.Result:
    table = hierarchy_table(name, sizes, STEPS)
    table["record"] = {"every_ms": table["dt_ms"]}
    if laplace is not None:
        table["record"]["laplace"] = laplace
    path = write_scenario(tmp_path / f"{name}.toml", table)
    return sim.run(path, output=tmp_path / f"{name}.h5")


def test_every_kth_sample_carries_the_laplace_term(tmp_path):
    every = run(tmp_path, [12, 8, 4], "every", "every")
    third = run(tmp_path, [12, 8, 4], 3, "third")
    due = np.arange(len(every.time)) % 3 == 0
    np.testing.assert_array_equal(third.free_energy[due], every.free_energy[due])
    assert np.all(np.isnan(third.free_energy[~due]))
    np.testing.assert_array_equal(third["energy"], every["energy"])
    assert third.dataset_attrs["free_energy"]["laplace_every"] == 3
    assert third.trials["final_free_energy"][0] == every.trials["final_free_energy"][0]


def test_trial_end_only_and_auto_by_size(tmp_path):
    ends = run(tmp_path, [12, 8, 4], "trial_end", "ends")
    assert np.all(np.isnan(ends.free_energy)) and np.all(np.isfinite(ends["energy"]))
    assert np.isfinite(ends.trials["final_free_energy"][0])
    small = run(tmp_path, [12, 8, 4], None, "small")  # 12 beliefs: every sample
    assert small.dataset_attrs["free_energy"]["laplace_every"] == 1
    assert np.all(np.isfinite(small.free_energy))
    # 300-200-100 recorded every step: Laplace 300*200^2 + 200*100^2 + 300^3/3 multiply-adds
    # against 0.15 x (2 (300*200 + 200*100) + 1e5) per step (+ 1e5 each): every 49th sample
    large = run(tmp_path, [300, 200, 100], None, "large")
    laplace = 300 * 200**2 + 200 * 100**2 + 300**3 / 3 + 1e5
    step = 2 * (300 * 200 + 200 * 100) + 1e5
    every = int(np.ceil(laplace / (0.15 * step)))
    assert large.dataset_attrs["free_energy"]["laplace_every"] == every
    due = np.arange(len(large.time)) % every == 0
    assert np.all(np.isfinite(large.free_energy[due]))
    assert np.all(np.isnan(large.free_energy[~due]))


@pytest.mark.parametrize("laplace", [0, -1, 2.5, "sometimes", True])
def test_a_bad_cadence_is_refused(tmp_path, laplace):
    with pytest.raises(sim.ScenarioError, match=r"record\.laplace: got .*expected one of"):
        run(tmp_path, [6, 4, 2], laplace)
