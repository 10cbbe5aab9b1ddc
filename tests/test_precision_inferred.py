"""Inferred precision against its documented flow: the fixed point computed from the recorded
errors, 1 / noise variance under a weak prior, the prior's pull, F with the prior's terms, the
reset with the beliefs, and refused settings."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import brentq

import sim
from sim.scenario_writer import write_scenario

NOISE_STD = (0.5, 2.0)  # the two channels' noise: variances 0.25 and 4


def channels(tmp_path, prior_precision: float, name: str = "channels", trials: int = 1,
             **inference) -> sim.Result:
    """One cause seen through two channels of unknown noise; precision inferred on both."""
    table = {
        "name": name, "seed": 3, "dt_ms": 0.1,
        "model": {"errors": "instantaneous", "tau_belief_ms": 20.0,
                  "levels": [{"name": "senses", "size": 2, "precision": 1.0},
                             {"name": "cause", "size": 1, "weights": [[1.0], [1.0]]}],
                  "prior": {"mean": 0.0, "precision": 0.01},
                  "precision_inference": {"tau_ms": 50.0, "prior_precision": prior_precision,
                                          **inference}},
        "protocol": {"reset": "beliefs", "trials": [
            {"duration_ms": 1500.0,
             "stimulus": {"kind": "constant", "value": [1.0, 1.0],
                          "noise_std": list(NOISE_STD)}}] * trials},
        "record": {"every_ms": 0.1},  # every step: e^2 averaged as the flow sees it
    }
    path = write_scenario(tmp_path / f"{name}.toml", table)
    return sim.run(path, output=tmp_path / f"{name}.h5")


def settled(values: np.ndarray) -> np.ndarray:
    """Mean over the second half of the run (the flow has settled; noise averages out)."""
    return values[len(values) // 2:].mean(axis=0)


@pytest.mark.parametrize("prior_precision", [0.01, 0.1])
def test_precision_settles_on_the_fixed_point_of_its_flow(tmp_path, prior_precision):
    result = channels(tmp_path, prior_precision)
    senses = result.level("senses")
    belief = result.level("cause")["belief"][:, 0]
    errors = senses["input"] - belief[:, None]  # e = x - W mu, W = [1, 1]'
    mean_square = settled(errors**2)
    precision = settled(senses["precision"])
    for unit in range(2):
        # 1/2 (1 - e^lambda <e^2>) = p lambda (Pi_configured = 1, lambda_0 = 0), solved here
        fixed = brentq(lambda lam, m=mean_square[unit]: 0.5 * (1 - math.exp(lam) * m)
                       - prior_precision * lam, -30.0, 30.0)
        assert precision[unit] == pytest.approx(math.exp(fixed), rel=0.05)
    if prior_precision <= 0.01:  # a weak prior: precision = 1 / noise variance
        np.testing.assert_allclose(precision, 1 / np.square(NOISE_STD), rtol=0.15)
    else:  # the prior pulls the precise channel towards exp(lambda_0) = 1 (by ~23%)
        assert precision[0] < 0.85 / NOISE_STD[0] ** 2
    np.testing.assert_allclose(senses["precision"], np.exp(senses["log_precision"]),
                               rtol=1e-12)
    assert list(result.dataset_attrs["levels/senses/precision"]["contributions"]) == [
        "configured", "inferred_precision"]


def test_free_energy_includes_the_log_precision_prior(tmp_path):
    p = 0.1
    result = channels(tmp_path, p)
    senses, cause = result.level("senses"), result.level("cause")
    e_senses = senses["input"] - cause["belief"]
    e_cause = cause["belief"] - 0.0
    precision, log_precision = senses["precision"], senses["log_precision"]
    energy = (0.5 * np.sum(precision * e_senses**2, axis=1) - 0.5 * np.sum(log_precision, axis=1)
              + math.log(2 * math.pi)  # two sensory units
              + 0.5 * 0.01 * e_cause[:, 0] ** 2 - 0.5 * math.log(0.01) + 0.5 * math.log(2 * math.pi)
              + np.sum(0.5 * p * log_precision**2, axis=1) + 2 * 0.5 * (math.log(2 * math.pi)
                                                                        - math.log(p)))
    np.testing.assert_allclose(result["energy"], energy, rtol=1e-9)


def test_log_precision_resets_with_the_beliefs(tmp_path):
    result = channels(tmp_path, 0.1, trials=2, prior_mean=0.5)
    log_precision = result.level("senses")["log_precision"]
    second = int(np.searchsorted(result.time, result.trials["t_start"][1] - 1e-12))
    np.testing.assert_allclose(log_precision[0], 0.5)
    np.testing.assert_allclose(log_precision[second], 0.5)
    assert np.all(log_precision[second - 1] != 0.5)


@pytest.mark.parametrize(("inference", "expected"), [
    ({"tau_ms": 50.0, "levels": ["sight"]}, r"precision_inference\.levels: no level 'sight'"),
    ({"tau_ms": 50.0, "levels": ["cause"]}, r"no level 'cause' with error units below"),
    ({"tau_ms": 50.0, "levels": ["sense"]}, r"no level 'sense' .*\(did you mean 'senses'\?\)"),
    ({"tau_ms": 50.0, "levels": ["senses", "senses"]}, r"a level is named twice \('senses'\)"),
    ({"tau_ms": 50.0, "levels": "senses"}, r"expected a non-empty list of level names, got"),
    ({"tau_ms": 50.0, "levels": []}, r"expected a non-empty list of level names, got"),
    ({"prior_precision": 1.0}, r"precision_inference\.tau_ms: is required"),
    ({"tau_ms": 50.0, "prior_precision": -1.0}, r"prior_precision: .*positive"),
    ({"tau_ms": -5.0}, r"tau_ms: .*positive"),
    ({"tau_ms": 50.0, "level": ["senses"]}, r"unknown field \(did you mean 'levels'\?\)"),
])
def test_bad_settings_are_refused(tmp_path, inference, expected):
    table = {
        "name": "bad", "dt_ms": 0.1,
        "model": {"levels": [{"name": "senses", "size": 2, "precision": 1.0},
                             {"name": "cause", "size": 1, "weights": [[1.0], [1.0]]}],
                  "precision_inference": inference},
        "protocol": {"trials": [{"duration_ms": 1.0,
                                 "stimulus": {"kind": "constant", "value": 1.0}}]},
    }
    with pytest.raises(sim.ScenarioError, match=expected):
        sim.run(write_scenario(tmp_path / "bad.toml", table), output=tmp_path / "bad.h5")
    assert not (tmp_path / "bad.h5").exists()


def test_learned_and_inferred_precision_together_share_the_work(tmp_path):
    """Both on one noisy channel (variance 0.25): the joint fixed point of
    tau dPi_c/dt = (1 - Pi e^2)/(2 Pi_c) and of the lambda flow is <Pi e^2> = 1 with lambda at
    its prior mean (0): the slow configured part takes over the reliability (from 1 towards
    1/sigma^2 = 4, less the spread of the fast lambda: Pi_c <exp(lambda)> sigma^2 = 1)."""
    table = {
        "name": "both", "seed": 2, "dt_ms": 0.1,
        "model": {"errors": "instantaneous", "tau_belief_ms": 1e9,  # the belief held at 0
                  "levels": [{"name": "senses", "size": 1, "precision": 1.0},
                             {"name": "cause", "size": 1, "weights": 1.0,
                              "initial_belief": 0.0}],
                  "learning": {"tau_precision_ms": 10.0},  # Pi_c relaxes in ~0.3 s
                  "precision_inference": {"tau_ms": 10.0, "prior_precision": 1.0}},
        "protocol": {"trials": [{"duration_ms": 4000.0,
                                 "stimulus": {"kind": "constant", "value": 0.0,
                                              "noise_std": 0.5}}]},
        "record": {"every_ms": 0.1},
    }
    result = sim.run(write_scenario(tmp_path / "both.toml", table), output=tmp_path / "b.h5")
    senses = result.level("senses")
    last = len(result.time) * 4 // 5
    log_precision = senses["log_precision"][last:, 0]
    precision = senses["precision"][last:, 0]
    error = senses["input"][last:, 0]  # e = x - W mu with mu held at 0
    assert abs(log_precision.mean()) < 0.1
    assert np.mean(precision * error**2) == pytest.approx(1.0, rel=0.05)
    configured = precision / np.exp(log_precision)
    assert configured.mean() > 3.0  # learned from 1
    assert configured.mean() * np.mean(np.exp(log_precision)) * 0.25 == pytest.approx(
        1.0, rel=0.05)
    assert list(result.dataset_attrs["levels/senses/precision"]["contributions"]) == [
        "configured", "learned_precision", "inferred_precision"]
