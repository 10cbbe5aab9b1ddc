"""Foldiak's bars (``scenarios/learning/bars.toml``) and the sparse prior on the causes
(``circuits.sparse_prior``): the network learns one basis image per bar; the prior's flow is
the derivative of its energy; the circuit settles on the MAP that scipy finds; F with the prior
is what an independent computation gives; bad fields are one-line errors."""

from __future__ import annotations

import math
import subprocess
import sys
import tomllib

import numpy as np
import pytest
from cli_output import refusal
from scipy.integrate import quad
from scipy.optimize import linear_sum_assignment, minimize

import sim
from circuits.sparse_prior import SparsePrior
from sim.scenario import bundled_scenarios, load_scenario
from sim.scenario_writer import write_scenario
from sim.stability import analyse

SIZE = 8


def true_bars(size: int = SIZE) -> np.ndarray:
    """The 2 size bars as images (rows, flattened row-major): rows first, then columns."""
    bars = np.zeros((2 * size, size, size))
    for k in range(size):
        bars[k, k, :] = 1.0
        bars[size + k, :, k] = 1.0
    return bars.reshape(2 * size, -1)


def matched_bars(weights: np.ndarray, threshold: float = 0.8) -> tuple[int, np.ndarray]:
    """How many bars a column of W matches one-to-one (Hungarian assignment on the Pearson
    correlation), with correlation above ``threshold``; and the matched correlations."""
    bars = true_bars()
    centred_bars = bars - bars.mean(axis=1, keepdims=True)
    centred = weights - weights.mean(axis=0, keepdims=True)
    norms = np.linalg.norm(centred_bars, axis=1)[:, None] * np.linalg.norm(centred, axis=0)
    correlation = centred_bars @ centred / np.where(norms > 0, norms, np.inf)
    rows, columns = linear_sum_assignment(-correlation)
    found = correlation[rows, columns]
    return int(np.sum(found > threshold)), found


def test_the_network_learns_one_basis_image_per_bar(tmp_path):
    result = sim.run("learning/bars", output=tmp_path / "bars.h5")
    weights = np.asarray(result["levels/bars/weights_final"])
    assert weights.shape == (SIZE * SIZE, 24) and np.all(weights >= 0)
    count, found = matched_bars(weights)
    assert count >= 14, np.round(found, 2)
    before, _ = matched_bars(np.asarray(result["levels/bars/weights_initial"]))
    assert before == 0  # it learned them

    # what it saw: one image per trial (recorded at each trial's first step and middle), each
    # the OR of the rows and columns it shows in full, bars present with probability 1/8
    recorded = np.asarray(result.level("image")["input"]).reshape(-1, 2, SIZE, SIZE)
    assert np.array_equal(recorded[:, 0], recorded[:, 1])  # held for the trial
    images = recorded[:, 0]
    assert len(images) == len(result.trials["index"]) == 600
    rows, columns = images.all(axis=2), images.all(axis=1)
    assert np.array_equal(images, (rows[:, :, None] | columns[:, None, :]).astype(float))
    frequency = np.concatenate([rows, columns], axis=1).mean()
    assert abs(frequency - 0.125) < 4 * math.sqrt(0.125 * 0.875 / rows.size / 2)
    assert len({image.tobytes() for image in images}) > 100  # drawn anew per trial


def test_the_learning_is_a_plain_numpy_loop_of_its_flows(tmp_path):
    """30 trials, against the same learning written as a NumPy loop in the engine's order per
    step (``circuits.schedule``): errors eps = Pi (x - W mu); W += dt/tau_W eps mu', then
    W = max(W, 0); mu += dt/tau_mu (W' eps - rho'(mu)); images drawn from [seed, 6, trial]."""
    table = bars_table()
    table["protocol"]["conditions"][0]["count"] = 30
    result = sim.run(write_scenario(tmp_path / "short.toml", table), output=tmp_path / "s.h5")
    model, prior = table["model"], table["model"]["sparse_prior"]
    dt = table["dt_ms"]
    condition = table["protocol"]["conditions"][0]
    steps = round(condition["duration_ms"] / dt)
    probability = condition["stimulus"]["probability"]
    precision = model["levels"][0]["precision"]
    weights = np.array(result["levels/bars/weights_initial"], dtype=float)
    inputs = []
    for index in result.trials["index"]:  # in running order (generated trials are shuffled)
        present = np.random.default_rng([table["seed"], 6, int(index)]).random(2 * SIZE)
        present = present < probability
        x = (present[:SIZE, None] | present[None, SIZE:]).astype(float).ravel()
        inputs.append(x)
        mu = np.zeros(weights.shape[1])
        for _ in range(steps):
            eps = precision * (x - weights @ mu)
            weights += dt / model["learning"]["tau_weights_ms"] * np.outer(eps, mu)
            np.maximum(weights, 0.0, out=weights)
            mu += dt / model["tau_belief_ms"] * (
                weights.T @ eps - prior["strength"] * np.tanh(mu / prior["width"]))
    recorded = np.asarray(result.level("image")["input"])[::2]
    np.testing.assert_array_equal(recorded, np.array(inputs))
    np.testing.assert_allclose(result["levels/bars/weights_final"], weights, rtol=0,
                               atol=1e-12)
    assert np.abs(weights - result["levels/bars/weights_initial"]).max() > 0.1  # it learned


# --- the sparse prior itself --------------------------------------------------------------

def log_cosh_energy(mu, strength, width):
    return strength * width * (np.logaddexp(mu / width, -mu / width) - math.log(2))


def student_t_energy(mu, strength, width):
    return strength * np.log(1 + (mu / width) ** 2)


ENERGIES = {"log_cosh": log_cosh_energy, "student_t": student_t_energy}
PRIORS = [("log_cosh", 0.8, 0.3), ("log_cosh", 2.0, 0.05), ("student_t", 1.0, 0.5),
          ("student_t", 3.0, 2.0)]


@pytest.mark.parametrize(("kind", "strength", "width"), PRIORS)
def test_the_priors_flow_is_the_derivative_of_its_energy(kind, strength, width):
    prior = SparsePrior(kind, strength, width)
    mu = np.linspace(-3, 3, 61) + 0.013
    h = 1e-5
    energy = ENERGIES[kind]
    np.testing.assert_allclose(prior.energy(mu), energy(mu, strength, width), rtol=1e-12,
                               atol=1e-12)
    difference = (energy(mu + h, strength, width) - energy(mu - h, strength, width)) / (2 * h)
    np.testing.assert_allclose(prior.gradient(mu), difference, rtol=1e-6, atol=1e-8)
    second = (energy(mu + h, strength, width) - 2 * energy(mu, strength, width)
              + energy(mu - h, strength, width)) / h**2
    np.testing.assert_allclose(prior.curvature(mu), second, rtol=1e-4, atol=1e-4)
    assert prior.max_curvature == pytest.approx(np.max(prior.curvature(np.linspace(-3, 3,
                                                                                   60001))))
    normaliser, _ = quad(lambda m: math.exp(-energy(m, strength, width)), -np.inf, np.inf,
                         epsabs=0, epsrel=1e-11, limit=500)
    assert prior.log_normaliser == pytest.approx(math.log(normaliser), rel=1e-8, abs=1e-9)


WEIGHTS = np.array([[1.0, 0.5], [0.2, 1.0], [0.7, -0.3]])
PIXELS = np.array([2.0, 1.0, 1.5])
INPUT = np.array([1.2, -0.4, 0.8])
PRIOR_MEAN = np.array([0.1, -0.2])


def tiny(kind: str, strength: float, width: float, prior_precision: float) -> dict:
    """Three inputs, two causes (fixed weights), a constant input, one long trial."""
    return {
        "name": "tiny_sparse", "seed": 1, "dt_ms": 0.01, "method": "euler",
        "model": {"errors": "instantaneous", "tau_belief_ms": 1.0,
                  "sparse_prior": {"kind": kind, "strength": strength, "width": width},
                  "levels": [{"name": "input", "size": 3, "precision": PIXELS.tolist()},
                             {"name": "causes", "size": 2, "weights": WEIGHTS.tolist()}],
                  "prior": {"mean": PRIOR_MEAN.tolist(), "precision": prior_precision}},
        "protocol": {"trials": [{"duration_ms": 60.0,
                                 "stimulus": {"kind": "constant", "value": INPUT.tolist()}}]},
        "record": {"every_ms": 60.0},
    }


def total_energy(mu, kind, strength, width, prior_precision):
    """E(mu) written out, with every normaliser: Gaussian likelihood, Gaussian prior (if
    proper), the sparse prior with its normaliser from numerical integration."""
    error = INPUT - WEIGHTS @ mu
    value = 0.5 * np.sum(PIXELS * error**2) + 0.5 * np.sum(np.log(2 * np.pi / PIXELS))
    if prior_precision > 0:
        value += 0.5 * prior_precision * np.sum((mu - PRIOR_MEAN) ** 2)
        value += mu.size * 0.5 * math.log(2 * np.pi / prior_precision)
    normaliser, _ = quad(lambda m: math.exp(-ENERGIES[kind](m, strength, width)), -np.inf,
                         np.inf, epsabs=0, epsrel=1e-11, limit=500)
    return value + np.sum(ENERGIES[kind](mu, strength, width)) + mu.size * math.log(normaliser)


def laplace_free_energy(energy, mode: np.ndarray) -> float:
    """E(mu) + 1/2 ln|H| - N/2 ln 2 pi at ``mode``, H by finite differences of ``energy``."""
    h, n = 1e-4, len(mode)
    hessian = np.empty((n, n))
    for i in range(n):
        for j in range(n):
            di, dj = np.eye(n)[i] * h, np.eye(n)[j] * h
            hessian[i, j] = (energy(mode + di + dj) - energy(mode + di - dj)
                             - energy(mode - di + dj) + energy(mode - di - dj)) / (4 * h**2)
    return energy(mode) + 0.5 * np.linalg.slogdet(hessian)[1] - 0.5 * n * math.log(2 * np.pi)


@pytest.mark.parametrize(("kind", "strength", "width", "prior_precision"),
                         [("log_cosh", 0.8, 0.3, 0.0), ("student_t", 1.0, 0.5, 0.5)])
def test_the_circuit_settles_on_the_map_and_f_is_the_laplace_free_energy(
        tmp_path, kind, strength, width, prior_precision):
    table = tiny(kind, strength, width, prior_precision)
    result = sim.run(write_scenario(tmp_path / "tiny.toml", table), output=tmp_path / "t.h5")
    settled = np.asarray(result.trials["final_belief/causes"][0])

    def energy(mu):
        return total_energy(mu, kind, strength, width, prior_precision)

    # the circuit starts at the prior mean; so does the optimiser (the same basin)
    found = minimize(energy, PRIOR_MEAN, method="BFGS", options={"gtol": 1e-10})
    np.testing.assert_allclose(settled, found.x, atol=1e-6)
    assert np.abs(settled).max() > 0.1 and np.abs(settled - PRIOR_MEAN).max() > 0.1
    assert result.trials["final_free_energy"][0] == pytest.approx(
        laplace_free_energy(energy, settled), abs=2e-6)


def test_a_sparse_prior_on_a_hidden_level(tmp_path):
    """Three levels; the prior on the middle one, whose own error (from the top) stays in F."""
    hidden_precision, top_weights, top_mean = np.array([1.5, 0.8]), np.array([[0.6], [-0.4]]), 0.3
    table = tiny("log_cosh", 0.8, 0.3, 1.0)
    model = table["model"]
    model["sparse_prior"]["level"] = "causes"
    model["levels"][1]["precision"] = hidden_precision.tolist()
    model["levels"].append({"name": "top", "size": 1, "weights": top_weights.tolist()})
    model["prior"] = {"mean": top_mean, "precision": 1.0}
    result = sim.run(write_scenario(tmp_path / "three.toml", table), output=tmp_path / "t.h5")
    settled = np.concatenate([result.trials["final_belief/causes"][0],
                              result.trials["final_belief/top"][0]])

    def energy(mu):
        causes, top = mu[:2], mu[2:]
        value = total_energy(causes, "log_cosh", 0.8, 0.3, 0.0)  # likelihood + sparse prior
        value += 0.5 * np.sum(hidden_precision * (causes - top_weights @ top) ** 2)
        value += 0.5 * np.sum(np.log(2 * np.pi / hidden_precision))
        return value + 0.5 * (top[0] - top_mean) ** 2 + 0.5 * math.log(2 * np.pi)

    start = np.concatenate([top_weights[:, 0] * top_mean, [top_mean]])  # the top-down start
    found = minimize(energy, start, method="BFGS", options={"gtol": 1e-10})
    np.testing.assert_allclose(settled, found.x, atol=1e-6)
    assert result.trials["final_free_energy"][0] == pytest.approx(
        laplace_free_energy(energy, settled), abs=2e-6)


@pytest.mark.parametrize(("kind", "strength", "width", "stiffest"),
                         [("log_cosh", 0.8, 0.3, 0.8 / 0.3), ("student_t", 1.0, 0.5, 8.0)])
def test_the_preflight_adds_the_priors_curvature_to_the_belief_flow(
        tmp_path, kind, strength, width, stiffest):
    """lambda_max(W' Pi W) + max rho'' (at mu = 0): a dt that the likelihood alone allows is
    refused once the prior's curvature counts."""
    coupling = np.linalg.eigvalsh(WEIGHTS.T @ (PIXELS[:, None] * WEIGHTS))[-1]
    table = tiny(kind, strength, width, 0.0)
    path = write_scenario(tmp_path / "tiny.toml", table)
    found = analyse(load_scenario(path))
    assert found.lambda_max == pytest.approx(coupling + stiffest, rel=1e-9)
    assert "curvature of a prior on the beliefs" in found.detail
    table["dt_ms"] = 2.02 / (coupling + stiffest)  # the coupling alone allows it
    table["protocol"]["trials"][0]["duration_ms"] = table["dt_ms"] * 10
    table["record"]["every_ms"] = table["dt_ms"] * 10
    with pytest.raises(sim.ScenarioError, match=r"dt_ms.*beyond the Euler stability bound"):
        sim.run(write_scenario(tmp_path / "fast.toml", table), output=tmp_path / "f.h5")
    assert not (tmp_path / "f.h5").exists()


# --- bad input ----------------------------------------------------------------------------

def bars_table() -> dict:
    return tomllib.loads(bundled_scenarios()["learning/bars"].read_text())


def with_(path: str, value):
    def change(table: dict) -> dict:
        *keys, last = path.split(".")
        node = table
        for key in keys:
            node = node[int(key)] if key.isdigit() else node[key]
        if value is None:
            del node[last]
        else:
            node[last] = value
        return table
    return change


BAD = {
    "unknown prior": (with_("model.sparse_prior.kind", "laplace"), "sparse_prior.kind"),
    "zero strength": (with_("model.sparse_prior.strength", 0.0), "sparse_prior.strength"),
    "infinite width": (with_("model.sparse_prior.width", float("inf")), "sparse_prior.width"),
    "improper student-t": (lambda t: with_("model.sparse_prior.strength", 0.5)(
        with_("model.sparse_prior.kind", "student_t")(t)), "improper"),
    "prior on the input": (with_("model.sparse_prior.level", "image"), "no belief level"),
    "negative initial weights": (with_("model.levels.1.weights", {"kind": "random"}),
                                 "negative weights"),
    "nothing learns": (with_("model.learning.tau_weights_ms", None), "tau_weights_ms"),
    "synapses coupling": (with_("model.coupling", "synapses"), "NumPy couplings"),
    "bars of the wrong size": (with_("protocol.conditions.0.stimulus.size", 7), "stimulus.size"),
    "probability above 1": (with_("protocol.conditions.0.stimulus.probability", 1.5),
                            "stimulus.probability"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_fields_are_one_line_errors(tmp_path, case):
    change, message = BAD[case]
    text = refusal(tmp_path, change(bars_table()))
    assert message in text, text


def test_the_command_line_exits_2_with_one_line(tmp_path):
    path = write_scenario(tmp_path / "bad.toml",
                          with_("model.sparse_prior.kind", "laplace")(bars_table()))
    done = subprocess.run([sys.executable, "-m", "sim.cli", "run", str(path), "-o",
                           str(tmp_path / "bad.h5")], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "sparse_prior.kind" in lines[0], done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "bad.h5").exists()
