"""The hierarchical family's exact reference and the variational gap, through ``sim.run``.

Every stored number is checked against a computation written here, independently of the
readout (``sim/readouts/reference_posterior.py``): Gaussian conditioning from the model's
residual matrix (not its energy Hessian), scipy's adaptive quadrature (not a grid, not
Gauss-Hermite) for the nonlinear posteriors and for E_Q[energy], and the analytic modes and
curvatures of Bogacz's u = v^2.
"""

from __future__ import annotations

import tomllib

import numpy as np
import pytest
from scipy import integrate

import sim
from sim.readouts.reference_posterior import READOUT
from sim.reference.gaussian import linear_gaussian_posterior
from sim.scenario import bundled_scenarios, load_scenario
from sim.scenario_writer import write_scenario

LN_2PI = np.log(2 * np.pi)
GAP_COLUMNS = ("surprise", "gaussian_free_energy", "kl", "laplace_error")


# --- linear-Gaussian: conditioning in the information form, built from the residuals --------

def residual_form(weights, precisions, prior_mean, x):
    """The negative log joint as 1/2 |D^(1/2) (A z + a)|^2 + const over z = (mu_1..mu_L):
    residual l is mu_l - W_{l+1} mu_{l+1} (x - W_1 mu_1 at l = 0, mu_L - m at the top)."""
    sizes = [len(x)] + [w.shape[1] for w in weights]
    offsets = np.concatenate([[0], np.cumsum(sizes[1:])])
    rows = []
    constant = []
    for level in range(len(sizes)):
        block = np.zeros((sizes[level], offsets[-1]))
        if level > 0:
            block[:, offsets[level - 1]:offsets[level]] = np.eye(sizes[level])
        if level < len(weights):
            block[:, offsets[level]:offsets[level + 1]] -= weights[level]
        rows.append(block)
        constant.append(x if level == 0 else
                        -np.asarray(prior_mean) if level == len(sizes) - 1 else
                        np.zeros(sizes[level]))
    D = np.concatenate([np.broadcast_to(p, (s,)) for p, s in zip(precisions, sizes,
                                                                  strict=True)])
    return np.vstack(rows), np.concatenate(constant), D


def conditioned(weights, precisions, prior_mean, x):
    """Posterior mean, covariance and -ln p(x) (with p's improper flat parts left as 1)."""
    A, a, D = residual_form(weights, precisions, prior_mean, x)
    P = A.T @ (D[:, None] * A)
    covariance = np.linalg.inv(P)
    mean = -covariance @ (A.T @ (D * a))
    r = A @ mean + a
    proper = D > 0
    energy = 0.5 * r @ (D * r) + 0.5 * np.sum(LN_2PI - np.log(D[proper]))
    surprise = energy + 0.5 * np.linalg.slogdet(P)[1] - 0.5 * len(mean) * LN_2PI
    return mean, covariance, surprise, (A, a, D)


def random_linear(tmp_path, seed: int, flat: bool):
    rng = np.random.default_rng(seed)
    sizes = [5, 4, 3, 2]
    weights = [rng.normal(0, 0.7, (sizes[i], sizes[i + 1])) for i in range(3)]
    precisions = [rng.uniform(0.5, 2.0, size) for size in sizes]
    if flat:
        precisions[3] = np.zeros(sizes[3])
    prior_mean = rng.normal(0, 1, sizes[3])
    inputs = [rng.normal(0, 1, sizes[0]) for _ in range(3)]
    override = rng.uniform(0.5, 2.0, sizes[1])
    levels = [{"name": "input", "size": sizes[0], "precision": precisions[0]}]
    for i in range(1, 4):
        level = {"name": f"level{i}", "size": sizes[i], "weights": weights[i - 1]}
        if i < 3:
            level["precision"] = precisions[i]
        levels.append(level)
    trials = [
        {"name": "plain", "duration_ms": 120.0,
         "stimulus": {"kind": "constant", "value": inputs[0]}},
        {"name": "scheduled", "duration_ms": 120.0,  # level1's precision steps at 30 ms
         "precision": {"level1": {"times_ms": [0, 30], "values": [precisions[1], override]}},
         "stimulus": {"kind": "constant", "value": inputs[1]}},
        {"name": "noisy", "duration_ms": 2.0,
         "stimulus": {"kind": "constant", "value": inputs[2], "noise_std": 0.1}},
    ]
    data = {"name": "linear_gap", "seed": 1, "dt_ms": 0.02,
            "model": {"errors": "instantaneous", "tau_belief_ms": 1.0, "levels": levels,
                      "prior": {"mean": prior_mean, "precision": precisions[3]}},
            "protocol": {"reset": "beliefs", "trials": trials},
            "record": {"every_ms": 1.0}}
    path = write_scenario(tmp_path / f"linear_{seed}.toml", data)
    in_force = [precisions, [precisions[0], override, *precisions[2:]]]  # at the trials' ends
    return path, weights, in_force, prior_mean, inputs


@pytest.mark.parametrize(("seed", "flat"), [(3, False), (7, True)])
def test_linear_reference_is_gaussian_conditioning(tmp_path, seed, flat):
    path, weights, in_force, prior_mean, inputs = random_linear(tmp_path, seed, flat)
    trials = sim.run(path, output=tmp_path / "linear.h5").trials
    for row in (0, 1):
        mean, covariance, surprise, (A, a, D) = conditioned(weights, in_force[row],
                                                             prior_mean, inputs[row])
        stored = np.concatenate([trials[f"reference_mean/level{i}"][row] for i in (1, 2, 3)])
        np.testing.assert_allclose(stored, mean, rtol=0, atol=1e-6)
        np.testing.assert_allclose(trials["reference_covariance"][row], covariance, atol=1e-6)
        np.testing.assert_allclose(trials["reference_mode/level2"][row], mean[4:7], atol=1e-6)
        assert abs(trials["surprise"][row] - surprise) < 1e-6
        if not flat:  # the moment form (joint covariance of x and the causes) agrees
            moments = linear_gaussian_posterior(weights, in_force[row], prior_mean,
                                                inputs[row])
            assert abs(moments.surprise - surprise) < 1e-9
        # the test's own F[Q] for Q = N(m, H^-1): E(m) + 1/2 tr(H S) - H[Q], H = A'DA
        m = np.concatenate([trials[f"final_belief/level{i}"][row] for i in (1, 2, 3)])
        r = A @ m + a
        P = A.T @ (D[:, None] * A)
        S = np.linalg.inv(P)
        energy_m = 0.5 * r @ (D * r) + 0.5 * np.sum(LN_2PI - np.log(D[D > 0]))
        entropy = 0.5 * np.linalg.slogdet(2 * np.pi * np.e * S)[1]
        own_kl = energy_m + 0.5 * np.trace(P @ S) - entropy - surprise
        np.testing.assert_allclose(trials["laplace_covariance"][row], S, atol=1e-9)
        assert abs(trials["kl"][row] - own_kl) < 1e-6
        # at the fixed point Q is the posterior: no gap, and the Laplace F is the surprise
        assert 0.0 <= trials["kl"][row] < 1e-9
        assert abs(trials["laplace_error"][row]) < 1e-9
        assert trials["laplace_error"][row] == pytest.approx(
            trials["final_free_energy"][row] - trials["surprise"][row], abs=1e-12)
    for key in (*GAP_COLUMNS, "reference_mean/level1", "reference_covariance"):
        assert np.all(np.isnan(trials[key][2])), key  # the noisy trial has no reference


# --- Bogacz's u = v^2, prior N(0, 1), on a grid ------------------------------------------------

def bogacz_energy(v, u):
    """E(v) = -ln p(u, v): prior N(0, 1), u ~ N(v^2, 1)."""
    return 0.5 * v**2 + 0.5 * (u - v**2) ** 2 + LN_2PI


def quad(function, low, high):
    return integrate.quad(function, low, high, epsabs=1e-13, epsrel=1e-12, limit=400)[0]


@pytest.fixture(scope="module")
def laplace_gap(tmp_path_factory):
    path = tmp_path_factory.mktemp("gap") / "gap.h5"
    result = sim.run("perception/laplace_gap", output=path)
    scenario = tomllib.loads(result.scenario_source)
    observations = [float(t["stimulus"]["value"]) for t in scenario["protocol"]["trials"]]
    return result.trials, observations


def test_grid_reference_matches_quadrature(laplace_gap):
    trials, observations = laplace_gap
    for row, u in enumerate(observations):
        shift = np.min(bogacz_energy(np.linspace(-8, 8, 1601), u))  # exp(shift - E) <~ 1

        def weight(v, u=u, shift=shift):
            return np.exp(shift - bogacz_energy(v, u))

        z = quad(weight, -8, 8)
        mean = quad(lambda v, w=weight: v * w(v), -8, 8) / z
        variance = quad(lambda v, w=weight, mean=mean: (v - mean) ** 2 * w(v), -8, 8) / z
        assert abs(trials["surprise"][row] - (shift - np.log(z))) < 1e-6
        assert abs(trials["reference_mean/food_size"][row, 0] - mean) < 1e-6
        assert abs(trials["reference_variance/food_size"][row, 0] - variance) < 1e-6
        # dE/dv = v (1 - 2u + 2v^2): the modes are 0 (u <= 1/2) or +-sqrt(u - 1/2); of the
        # two equal ones, the reference reports the one the belief went to (positive)
        mode = np.sqrt(u - 0.5) if u > 0.5 else 0.0
        assert abs(trials["reference_mode/food_size"][row, 0] - mode) < 1e-6
        m = trials["final_belief/food_size"][row, 0]
        assert abs(m - mode) < 1e-6  # the circuit settled on it
        # Q's variance is 1/E''(m), E'' = 1 - 2u + 6 m^2
        assert trials["laplace_variance/food_size"][row, 0] == pytest.approx(
            1.0 / (1.0 - 2.0 * u + 6.0 * m**2), rel=1e-9)
        # the stored density is exp(-E)/p(u) on the stored grid
        grid, density = trials["reference_grid"][row, 0], trials["reference_density"][row]
        np.testing.assert_allclose(density, weight(grid) / z, rtol=1e-6, atol=1e-12)


def test_gaussian_q_free_energy_and_kl_match_quadrature(laplace_gap):
    trials, observations = laplace_gap
    for row, u in enumerate(observations):
        m = trials["final_belief/food_size"][row, 0]
        s2 = 1.0 / (1.0 - 2.0 * u + 6.0 * m**2)
        sd = np.sqrt(s2)
        expected = quad(lambda v, m=m, s2=s2, u=u: np.exp(-(v - m) ** 2 / (2 * s2))
                        / np.sqrt(2 * np.pi * s2) * bogacz_energy(v, u),
                        m - 30 * sd, m + 30 * sd)
        entropy = 0.5 * np.log(2 * np.pi * np.e * s2)
        shift = np.min(bogacz_energy(np.linspace(-8, 8, 1601), u))
        log_evidence = np.log(quad(lambda v, u=u, shift=shift:
                                   np.exp(shift - bogacz_energy(v, u)), -8, 8)) - shift
        own = expected - entropy + log_evidence
        assert trials["kl"][row] >= 0.0
        assert abs(trials["kl"][row] - own) < 1e-6
        assert abs(trials["gaussian_free_energy"][row] - (expected - entropy)) < 1e-6
        laplace = bogacz_energy(m, u) + 0.5 * np.log(1.0 / s2) - 0.5 * LN_2PI
        assert abs(trials["final_free_energy"][row] - laplace) < 1e-9
        assert abs(trials["laplace_error"][row] - (laplace + log_evidence)) < 1e-6


def test_laplace_free_energy_falls_below_the_surprise_at_u_zero(laplace_gap):
    trials, observations = laplace_gap
    row = observations.index(0.0)
    # F_L = E(0) + 1/2 ln 1 - 1/2 ln 2pi = 1/2 ln 2pi, while -ln p(0) = 1.2789 nat
    assert trials["final_free_energy"][row] == pytest.approx(0.5 * LN_2PI, abs=1e-9)
    assert trials["laplace_error"][row] == pytest.approx(-0.36, abs=0.005)
    assert trials["kl"][row] > 1.0  # Q = N(0, 1) against a posterior of variance 0.37
    # and above it once the posterior has two modes
    assert trials["laplace_error"][observations.index(4.0)] > 0.0
    assert np.all(trials["kl"] >= 0.0)


# --- two belief units, a nonlinearity: the 2-D grid ---------------------------------------

TWO = {"x": 0.9, "pi0": 2.0, "pi1": 1.5, "w1": 1.5, "w2": 0.8, "m": 0.5, "pi2": 1.0}


def two_unit_energy(v1, v2):
    """x ~ N(w1 tanh(v1), 1/pi0), v1 ~ N(w2 v2, 1/pi1), v2 ~ N(m, 1/pi2)."""
    t = TWO
    return (0.5 * t["pi0"] * (t["x"] - t["w1"] * np.tanh(v1)) ** 2
            + 0.5 * t["pi1"] * (v1 - t["w2"] * v2) ** 2 + 0.5 * t["pi2"] * (v2 - t["m"]) ** 2
            + 1.5 * LN_2PI - 0.5 * np.log(t["pi0"] * t["pi1"] * t["pi2"]))


def test_two_unit_grid_matches_adaptive_quadrature(tmp_path):
    t = TWO
    data = {"name": "two_units", "seed": 0, "dt_ms": 0.01,
            "model": {"errors": "instantaneous", "tau_belief_ms": 1.0, "levels": [
                {"name": "input", "size": 1, "precision": t["pi0"]},
                {"name": "near", "size": 1, "precision": t["pi1"], "weights": t["w1"],
                 "nonlinearity": "tanh"},
                {"name": "far", "size": 1, "weights": t["w2"]}],
                "prior": {"mean": t["m"], "precision": t["pi2"]}},
            "protocol": {"trials": [{"duration_ms": 30.0,
                                     "stimulus": {"kind": "constant", "value": t["x"]}}]},
            "record": {"every_ms": 1.0}}
    trials = sim.run(write_scenario(tmp_path / "two.toml", data),
                     output=tmp_path / "two.h5").trials
    shift = two_unit_energy(0.5, 0.5)

    def moments(v1):  # p(x, v) e^shift times 1, v1, v2, v1^2, v1 v2, v2^2, integrated over v2
        def integrand(v2):
            weight = np.exp(shift - two_unit_energy(v1, v2))
            return weight * np.array([1.0, v1, v2, v1 * v1, v1 * v2, v2 * v2])
        return integrate.quad_vec(integrand, -9, 9, epsabs=1e-14, epsrel=1e-12)[0]

    raw = integrate.quad_vec(moments, -9, 9, epsabs=1e-14, epsrel=1e-12)[0]
    z = raw[0]
    mean = raw[1:3] / z
    c11, c12, c22 = raw[3:] / z - [mean[0] ** 2, mean[0] * mean[1], mean[1] ** 2]
    assert abs(trials["surprise"][0] - (shift - np.log(z))) < 1e-6
    stored = [trials["reference_mean/near"][0, 0], trials["reference_mean/far"][0, 0]]
    np.testing.assert_allclose(stored, mean, atol=1e-6)
    np.testing.assert_allclose(trials["reference_covariance"][0], [[c11, c12], [c12, c22]],
                               atol=1e-6)
    # F[Q] of the stored Laplace Q by the same adaptive quadrature, in Q's own coordinates
    m = np.array([trials["final_belief/near"][0, 0], trials["final_belief/far"][0, 0]])
    S = trials["laplace_covariance"][0]
    L = np.linalg.cholesky(S)

    def under_q(a, b):
        v = m + L @ np.array([a, b])
        return np.exp(-0.5 * (a * a + b * b)) / (2 * np.pi) * two_unit_energy(*v)

    expected = integrate.dblquad(lambda b, a: under_q(a, b), -12, 12, -12, 12,
                                 epsabs=1e-13, epsrel=1e-11)[0]
    own = expected - 0.5 * np.linalg.slogdet(2 * np.pi * np.e * S)[1] - (shift - np.log(z))
    assert trials["kl"][0] >= 0.0
    assert abs(trials["kl"][0] - own) < 1e-6
    assert trials["reference_density"].shape == (1, 101, 101)


# --- where there is no reference ---------------------------------------------------------

def test_improper_posterior_gives_nan_and_ordinary_scenarios_no_columns(tmp_path):
    # x = 2 tanh(v) under a flat prior: the likelihood stays ~constant as v -> +inf
    data = {"name": "improper", "seed": 0, "dt_ms": 0.05,
            "model": {"errors": "instantaneous", "tau_belief_ms": 1.0, "levels": [
                {"name": "input", "size": 1, "precision": 1.0},
                {"name": "cause", "size": 1, "weights": 2.0, "nonlinearity": "tanh"}],
                "prior": {"mean": 0.0, "precision": 0.0}},
            "protocol": {"trials": [{"duration_ms": 5.0,
                                     "stimulus": {"kind": "constant", "value": 1.0}}]},
            "record": {"every_ms": 1.0}}
    trials = sim.run(write_scenario(tmp_path / "improper.toml", data),
                     output=tmp_path / "improper.h5").trials
    for key in (*GAP_COLUMNS, "reference_mean/cause", "reference_density"):
        assert np.all(np.isnan(trials[key])), key
    assert np.isfinite(trials["final_free_energy"][0])

    bundled = bundled_scenarios()
    assert not READOUT.enabled(load_scenario(bundled["perception/hierarchy"]))  # noisy, N=20
    assert READOUT.enabled(load_scenario(bundled["perception/single_cause"]))
    learning = load_scenario(bundled["perception/cue_integration"],
                             overrides={"model.learning": {"tau_weights_ms": 100.0}})
    assert not READOUT.enabled(learning)  # weights change while running
