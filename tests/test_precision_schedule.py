"""Scheduled precision within a trial: the gain steps at the scheduled time, the preflight
checks every precision a schedule reaches, and bad schedules are refused."""

from __future__ import annotations

import numpy as np
import pytest

import sim
from sim.scenario_writer import write_scenario

DT_MS = 0.1


def cued(tmp_path, schedule: dict, name: str = "cued", dt_ms: float = DT_MS,
         duration_ms: float = 20.0):
    """Two input channels seen by one cause; channel 0's precision follows ``schedule``."""
    table = {
        "name": name, "dt_ms": dt_ms,
        "model": {"errors": "instantaneous", "tau_belief_ms": 5.0,
                  "levels": [{"name": "senses", "size": 2, "precision": 1.0},
                             {"name": "cause", "size": 1, "weights": [[1.0], [1.0]]}],
                  "prior": {"mean": 0.0, "precision": 1.0}},
        "protocol": {"trials": [{"duration_ms": duration_ms,
                                 "stimulus": {"kind": "constant", "value": [1.0, 3.0]},
                                 "precision": {"senses": schedule}}]},
    }
    return write_scenario(tmp_path / f"{name}.toml", table)


def test_a_precision_step_changes_the_gain_from_its_step_on(tmp_path):
    path = cued(tmp_path, {"times_ms": [0.0, 10.0], "values": [[1.0, 1.0], [4.0, 1.0]]})
    result = sim.run(path, output=tmp_path / "cued.h5")
    time_ms = result.time * 1e3
    senses = result.level("senses")
    step = int(np.searchsorted(time_ms, 10.0 - 1e-9))
    np.testing.assert_array_equal(senses["precision"][:step, 0], 1.0)
    np.testing.assert_array_equal(senses["precision"][step:, 0], 4.0)
    np.testing.assert_array_equal(senses["precision"][:, 1], 1.0)
    # instantaneous errors: eps = Pi (x - mu) with the precision in force at that sample
    belief = result.level("cause")["belief"][:, 0]
    gain = senses["error"][:, 0] / (senses["input"][:, 0] - belief)
    np.testing.assert_allclose(gain[:step], 1.0, rtol=1e-12)
    np.testing.assert_allclose(gain[step:], 4.0, rtol=1e-12)
    # the belief then settles on the new precision-weighted average (prior N(0, 1) included)
    assert belief[-1] == pytest.approx((4.0 * 1.0 + 1.0 * 3.0) / (4.0 + 1.0 + 1.0), abs=1e-3)
    assert result.parameters["trials"][0]["precision"]["senses"]["times_ms"] == [0.0, 10.0]


def test_schedule_times_between_steps_act_from_the_next_step(tmp_path):
    """A time that is not a multiple of dt takes effect at the first step at or after it (as a
    stimulus's breakpoint), never before it is due and never dropped; two times within one
    step leave the later value in force. Reference: the schedule read at each sample's time
    by ``numpy.searchsorted`` (the value of the last time at or before it)."""
    times = [0.0, 2.5, 5.04, 5.06, 7.05]
    gains = [1.0, 2.0, 3.0, 4.0, 5.0]
    path = cued(tmp_path, {"times_ms": times, "values": [[g, 1.0] for g in gains]},
                duration_ms=10.0)
    result = sim.run(path, output=tmp_path / "between.h5")
    senses = result.level("senses")
    sample_ms = np.arange(len(result.time)) * DT_MS  # a sample at every step (the default)
    expected = np.array(gains)[np.searchsorted(times, sample_ms, side="right") - 1]
    np.testing.assert_array_equal(senses["precision"][:, 0], expected)
    assert senses["precision"][-1, 0] == 5.0  # 7.05 ms acts from 7.1 ms on
    belief = result.level("cause")["belief"][:, 0]
    gain = senses["error"][:, 0] / (senses["input"][:, 0] - belief)
    np.testing.assert_allclose(gain, expected, rtol=1e-12)


def test_preflight_checks_the_largest_precision_a_schedule_reaches(tmp_path):
    # lambda_max = Pi_0 + Pi_1 + Pi_prior; dt/tau * lambda < 2 needs lambda < 100 at dt = 0.1
    safe = {"times_ms": [0.0], "values": [[1.0, 1.0]]}
    sim.run(cued(tmp_path, safe, "safe"), output=tmp_path / "safe.h5")
    late = {"times_ms": [0.0, 15.0], "values": [[1.0, 1.0], [200.0, 1.0]]}
    with pytest.raises(sim.ScenarioError, match=r"dt_ms: .*at 15 ms"):
        sim.run(cued(tmp_path, late, "late"), output=tmp_path / "late.h5")
    assert not (tmp_path / "late.h5").exists()


@pytest.mark.parametrize(("schedule", "expected"), [
    ({"times_ms": [0.0, 30.0], "values": [1.0, 2.0]}, r"times_ms: expected increasing times"),
    ({"times_ms": [5.0], "values": [1.0]}, r"times_ms: expected increasing times from 0"),
    ({"times_ms": [0.0, 5.0], "values": [1.0]}, r"values: expected a list of 2 precisions"),
    ({"times_ms": [0.0, 5.0], "values": [1.0, -2.0]}, r"values\[1\]: .*positive"),
    ({"times_ms": [0.0], "values": [[1.0, 2.0, 3.0]]}, r"values\[0\]: expected a number or a "
                                                         r"list of 2"),
    ({"times_ms": [0.0], "values": [1.0], "shape": "step"}, r"unknown field"),
])
def test_bad_schedules_are_refused(tmp_path, schedule, expected):
    with pytest.raises(sim.ScenarioError, match=expected):
        sim.run(cued(tmp_path, schedule, "bad"), output=tmp_path / "bad.h5")
    assert not (tmp_path / "bad.h5").exists()


def test_a_schedule_for_an_unknown_level_is_refused(tmp_path):
    path = cued(tmp_path, {"times_ms": [0.0], "values": [1.0]})
    path.write_text(path.read_text().replace("[protocol.trials.precision.senses]",
                                             "[protocol.trials.precision.sight]"))
    with pytest.raises(sim.ScenarioError, match="no level 'sight'"):
        sim.run(path, output=tmp_path / "unknown.h5")


def test_a_modality_precision_schedule_weights_each_observation_by_its_time(tmp_path):
    """Discrete: gamma steps from 1 to 3 at 20 ms; an observation at 5 ms counts with 1, one at
    30 ms with 3 (Bayes with A^gamma, renormalised, computed here)."""
    likelihood = np.array([[0.7, 0.2], [0.3, 0.8]])
    table = {
        "name": "scheduled_gamma", "dt_ms": 0.5,
        "model": {"kind": "discrete", "causes": ["a", "b"], "tau_belief_ms": 2.0,
                  "modalities": [{"name": "see", "outcomes": ["x", "y"],
                                  "likelihood": likelihood.tolist()}]},
        "protocol": {"trials": [{
            "duration_ms": 80.0,
            "precision": {"see": {"times_ms": [0.0, 20.0], "values": [1.0, 3.0]}},
            "observations": [{"time_ms": 5.0, "see": "x"}, {"time_ms": 30.0, "see": "y"}]}]},
    }
    result = sim.run(write_scenario(tmp_path / "gamma.toml", table), output=tmp_path / "g.h5")
    np.testing.assert_array_equal(result["observations/see/precision"], [1.0, 3.0])
    tempered = likelihood**3 / (likelihood**3).sum(axis=0)
    joint = 0.5 * likelihood[0] * tempered[1]
    np.testing.assert_allclose(result.trials["exact_posterior"][0], joint / joint.sum(),
                               rtol=1e-12)
    np.testing.assert_allclose(result.trials["final_belief"][0], joint / joint.sum(),
                               atol=1e-6)
