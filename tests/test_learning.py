"""Learning as slow inference: the prior mean learns from its own prediction error
(``circuits.prior_learning``), step by step as its flow says, and over a stream of trials it
moves to the stream's mean."""

from __future__ import annotations

import tomllib

import numpy as np
import pytest

import sim
from sim.scenario import bundled_scenarios
from sim.scenario_writer import write_scenario


def test_the_prior_moves_to_the_streams_mean(tmp_path):
    result = sim.run("learning/prior", output=tmp_path / "prior.h5")
    stream = result.level("sample")["input"][:, 0]
    learned = result["levels/estimate/prior_mean_final"][0]
    assert learned == pytest.approx(stream.mean(), rel=0.05)
    assert result.level("estimate")["prior_mean"][0, 0] == 0.0  # it started at the old prior


def test_each_step_of_the_prior_is_its_flow(tmp_path):
    """Recorded every step: m(t + dt) - m(t) = dt / tau_m * eps_L(t), eps_L the top error."""
    table = tomllib.loads(bundled_scenarios()["learning/prior"].read_text())
    table["protocol"]["conditions"][0]["count"] = 2
    table["record"] = {"every_ms": table["dt_ms"]}
    result = sim.run(write_scenario(tmp_path / "steps.toml", table), output=tmp_path / "s.h5")
    prior = result.level("estimate")["prior_mean"][:, 0]
    error = result.level("estimate")["error"][:, 0]
    rate = table["dt_ms"] / table["model"]["learning"]["tau_prior_ms"]
    within = np.ones(len(prior) - 1, dtype=bool)  # not across a trial's start (errors reset)
    starts = np.searchsorted(result.time, result.trials["t_start"][1:] - 1e-12)
    within[starts - 1] = False
    np.testing.assert_allclose(np.diff(prior)[within], rate * error[:-1][within], rtol=1e-9,
                               atol=1e-15)
    assert prior[-1] - prior[0] > 0.05  # and it did move


@pytest.mark.parametrize("tau", [-1.0, 0.0, float("inf")])
def test_a_bad_prior_time_constant_is_refused(tmp_path, tau):
    table = tomllib.loads(bundled_scenarios()["learning/prior"].read_text())
    table["model"]["learning"]["tau_prior_ms"] = tau
    with pytest.raises(sim.ScenarioError, match=r"learning\.tau_prior_ms"):
        sim.run(write_scenario(tmp_path / "bad.toml", table), output=tmp_path / "bad.h5")
    assert not (tmp_path / "bad.h5").exists()
