"""Disorders as aberrant precision (issue 8, experiments 4 and 5): the percept against the ideal
observer, through ``sim.run``. Every reference is computed here in plain NumPy from the
scenario's own numbers (Bayes by multiplying probabilities; the Gaussian posterior mean in
closed form), not through the readout's code."""

from __future__ import annotations

import copy
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

import sim
from sim.scenario import bundled_scenarios
from sim.scenario_writer import write_scenario

ROOT = Path(__file__).resolve().parents[1]
HEALTHY = 1e-6  # |bias| of the healthy baseline


def scenario_data(name: str) -> dict:
    return tomllib.loads(bundled_scenarios()[name].read_text())


def tempered(A: np.ndarray, gamma: float) -> np.ndarray:
    powered = A**gamma
    return powered / powered.sum(axis=0)


def bayes(prior: np.ndarray, events: list[tuple[np.ndarray, float, int]]) -> np.ndarray:
    """p(s | o) proportional to prior * prod Ã[o] (probability space, no logs)."""
    joint = np.array(prior, dtype=float)
    for A, gamma, outcome in events:
        joint = joint * tempered(A, gamma)[outcome]
    return joint / joint.sum()


def discrete_references(data: dict) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per trial: the brain's posterior (its beta and gammas) and the ideal observer's (D and
    the configured gammas)."""
    model = data["model"]
    D = np.array(model["prior"])
    modalities = {m["name"]: (np.array(m["likelihood"]), m["outcomes"], m.get("precision", 1.0))
                  for m in model["modalities"]}
    brains, ideals = [], []
    for trial in data["protocol"]["trials"]:
        gammas = {name: trial.get("precision", {}).get(name, world)
                  for name, (_, _, world) in modalities.items()}
        brain_events, world_events = [], []
        for observation in trial["observations"]:
            for name, (A, outcomes, world) in modalities.items():
                if name in observation:
                    outcome = outcomes.index(observation[name])
                    brain_events.append((A, gammas[name], outcome))
                    world_events.append((A, world, outcome))
        beta = trial.get("prior_precision", 1.0)
        brains.append(bayes(D**beta / np.sum(D**beta), brain_events))
        ideals.append(bayes(D, world_events))
    return brains, ideals


def check_discrete(result, data: dict, cause: str) -> np.ndarray:
    """The table against the references; returns the bias on ``cause`` per trial."""
    brains, ideals = discrete_references(data)
    index = data["model"]["causes"].index(cause)
    np.testing.assert_allclose(result.trials["ideal_posterior"], np.array(ideals), atol=1e-12)
    np.testing.assert_allclose(result.trials["final_belief"], np.array(brains), atol=1e-6)
    np.testing.assert_allclose(result.trials["exact_posterior"], np.array(brains), atol=1e-12)
    assert np.all(np.abs(result.trials["kl"]) < 1e-6)  # F settles on the tempered surprise
    bias = np.array(brains) - np.array(ideals)
    np.testing.assert_allclose(result.trials["bias"], bias, atol=1e-6)
    return np.asarray(result.trials["bias"])[:, index]


def test_anxiety_over_believes_the_threat_more_as_the_prior_is_held_more_precisely(tmp_path):
    data = scenario_data("disorders/anxiety")
    result = sim.run("disorders/anxiety", output=tmp_path / "anxiety.h5")
    betas = [trial.get("prior_precision", 1.0) for trial in data["protocol"]["trials"]]
    assert betas[0] == 1.0 and len(betas) >= 4 and np.all(np.diff(betas) > 0)
    np.testing.assert_array_equal(result.trials["prior_precision"], betas)
    bias = check_discrete(result, data, "intruder")
    assert np.max(np.abs(result.trials["bias"][0])) < HEALTHY
    assert np.all(bias[1:] > 0.01) and np.all(np.diff(bias) > 0)


def test_psychosis_perceives_the_absent_expected_tone_more_as_the_senses_lose_precision(
        tmp_path):
    data = scenario_data("disorders/psychosis")
    result = sim.run("disorders/psychosis", output=tmp_path / "psychosis.h5")
    gammas = [trial.get("precision", {}).get("hearing", 1.0)
              for trial in data["protocol"]["trials"]]
    bias = check_discrete(result, data, "tone")
    assert np.max(np.abs(result.trials["bias"][0])) < HEALTHY
    falling = [i for i, g in enumerate(gammas) if g <= 1.0]  # healthy, then down-weighted
    assert len(falling) >= 4 and np.all(np.diff(np.array(gammas)[falling]) < 0)
    assert np.all(bias[falling[1:]] > 0.01) and np.all(np.diff(bias[falling]) > 0)
    # the hallucination analogue: the absent tone is believed in more than not (gamma 0.25)
    assert result.trials["final_belief"][gammas.index(0.25)][0] > 0.5
    # the reverse control: senses too precise, the cue's prior under-used
    control = gammas.index(3.0)
    assert bias[control] < -0.1


def test_anxiety_continuous_over_reads_the_threat_level(tmp_path):
    data = scenario_data("disorders/anxiety_continuous")
    result = sim.run("disorders/anxiety_continuous", output=tmp_path / "continuous.h5")
    world_mean = data["model"]["prior"]["mean"]
    world_prior = data["model"]["prior"]["precision"]
    sense = data["model"]["levels"][0]["precision"]
    trials = data["protocol"]["trials"]
    x = np.array([trial["stimulus"]["value"] for trial in trials])
    means = np.array([trial.get("prior_mean", world_mean) for trial in trials])
    pis = np.array([trial.get("prior_precision", world_prior) for trial in trials])
    ideal = (sense * x + world_prior * world_mean) / (sense + world_prior)
    percept = (sense * x + pis * means) / (sense + pis)
    np.testing.assert_allclose(result.trials["ideal_mean/threat"][:, 0], ideal, atol=1e-12)
    np.testing.assert_allclose(result.trials["final_belief/threat"][:, 0], percept, atol=1e-6)
    bias = np.asarray(result.trials["bias/threat"])[:, 0]
    np.testing.assert_allclose(bias, percept - ideal, atol=1e-6)
    assert abs(bias[0]) < HEALTHY
    anxious = [i for i, t in enumerate(trials) if t.get("prior_mean", world_mean) > world_mean]
    assert len(anxious) >= 3 and np.all(np.diff(pis[anxious]) > 0)
    assert np.all(bias[anxious] > 0.01) and np.all(np.diff(bias[[0, *anxious]]) > 0)
    calm = [i for i, t in enumerate(trials) if "prior_mean" not in t and "prior_precision" in t]
    assert calm and np.all(bias[calm] < 0)  # precision alone pulls towards the prior's mean


def small_psychosis() -> dict:
    data = scenario_data("disorders/psychosis")
    for trial in data["protocol"]["trials"]:
        trial["duration_ms"] = 450.0
    return data


def test_the_ideal_observer_is_opt_in(tmp_path):
    data = small_psychosis()
    del data["readouts"]
    result = sim.run(write_scenario(tmp_path / "plain.toml", data), output=tmp_path / "p.h5")
    assert not any(key.startswith(("trials/bias", "trials/ideal", "trials/prior_precision"))
                   for key in result.datasets)


def test_a_trial_without_prior_precision_puts_the_prior_back_in_force(tmp_path):
    data = small_psychosis()
    trials = data["protocol"]["trials"][:2]
    trials[0]["prior_precision"] = 4.0
    trials[1].pop("precision")
    data["protocol"]["trials"] = trials
    result = sim.run(write_scenario(tmp_path / "back.toml", data), output=tmp_path / "b.h5")
    A = np.array(data["model"]["modalities"][0]["likelihood"])
    D = np.array(data["model"]["prior"])
    np.testing.assert_allclose(result.trials["final_belief"][0],
                               bayes(D**4 / np.sum(D**4), [(A, 1.0, 1)]), atol=1e-6)
    np.testing.assert_allclose(result.trials["final_belief"][1], bayes(D, [(A, 1.0, 1)]),
                               atol=1e-6)


def set_prior_precision(value):
    def change(data: dict) -> dict:
        data["protocol"]["trials"][1]["prior_precision"] = value
        return data
    return change


def set_world(value):
    def change(data: dict) -> dict:
        data["readouts"]["ideal_observer"]["world"] = value
        return data
    return change


def mean_field(data: dict) -> dict:
    model = data["model"]
    model["factors"] = [{"name": "sound", "causes": model.pop("causes"),
                         "prior": model.pop("prior")},
                        {"name": "room", "causes": ["here", "there"], "prior": [0.5, 0.5]}]
    A = np.array(model["modalities"][0]["likelihood"])
    model["modalities"][0]["likelihood"] = np.repeat(A[:, :, None], 2, axis=2).tolist()
    for trial in data["protocol"]["trials"]:
        trial.pop("precision", None)
    data["protocol"]["trials"][1]["prior_precision"] = 2.0
    return data


BAD = {
    "negative prior precision": (set_prior_precision(-1.0), "prior_precision"),
    "zero prior precision": (set_prior_precision(0.0), "prior_precision"),
    "NaN prior precision": (set_prior_precision(float("nan")), "prior_precision"),
    "infinite prior precision": (set_prior_precision(float("inf")), "prior_precision"),
    "huge prior precision": (set_prior_precision(1e9), "prior_precision"),
    "prior precision as text": (set_prior_precision("high"), "prior_precision"),
    "unknown world": (set_world("brain"), "readouts.ideal_observer.world"),
    "prior precision of several factors": (mean_field, "single-factor"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_line_exit_2_and_no_file(tmp_path, case):
    change, message = BAD[case]
    path = write_scenario(tmp_path / "bad.toml", change(copy.deepcopy(small_psychosis())))
    output = tmp_path / "bad.h5"
    done = subprocess.run([sys.executable, "-m", "sim.cli", "run", str(path), "-o",
                           str(output)], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in done.stderr
    assert not output.exists() and not output.with_suffix(".png").exists()


def test_several_factors_compare_each_marginal(tmp_path):
    """creak_where (two factors, mean-field Q) with the opt-in: without overrides the ideal
    observer is the exact posterior, and the bias is the mean-field gap in each marginal."""
    data = scenario_data("perception/creak_where")
    data["readouts"] = {"ideal_observer": {}}  # world = "model", the default
    result = sim.run(write_scenario(tmp_path / "where.toml", data), output=tmp_path / "w.h5")
    for factor in data["model"]["factors"]:
        name = factor["name"]
        ideal = result.trials[f"ideal_marginal/{name}"]
        np.testing.assert_allclose(ideal, result.trials[f"exact_marginal/{name}"], atol=1e-12)
        np.testing.assert_allclose(result.trials[f"bias/{name}"],
                                   result.trials[f"final_belief/{name}"] - ideal, atol=1e-12)
