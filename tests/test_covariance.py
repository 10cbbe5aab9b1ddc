"""Learned covariance (``circuits.covariance``): an error unit with an inhibitory interneuron
whose weights Sigma learn the covariance of the errors (Bogacz 2017, section 5).

References, each computed here apart from pcsim: Bogacz's own per-trial loop for exercise 5
(NumPy, on the inputs the run drew), the sample covariance of the drawn inputs, the closed-form
fixed point eps = Sigma^-1 (x - g), the Euler stability bound of the (eps, e) loop in closed
form, and F with a full precision matrix from a dense NumPy computation.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib

import numpy as np
import pytest
import scipy.linalg
import scipy.sparse

import sim
from circuits.covariance_bound import loop_step_bound
from circuits.generative import GenerativeMap
from circuits.nonlinearity import parse_nonlinearity
from sim.families.hierarchical.free_energy import free_energy
from sim.families.hierarchical.model import HierarchicalModel, Level
from sim.families.hierarchical.stability import gauss_newton_lambda_max
from sim.scenario import bundled_scenarios
from sim.scenario_writer import write_scenario

LN_2PI = np.log(2 * np.pi)


def variance_table() -> dict:
    return tomllib.loads(bundled_scenarios()["learning/variance"].read_text())


def trial_inputs(result) -> np.ndarray:
    """Each trial's input (held for the trial), read at the trial's first sample."""
    starts = np.searchsorted(result.time, np.asarray(result.trials["t_start"]) - 1e-12)
    return np.asarray(result.level("input")["input"])[starts]


def bogacz_exercise_5(deviations: np.ndarray, alpha: float = 0.01, steps: int = 2000,
                      h: float = 0.01) -> np.ndarray:
    """Bogacz's exercise 5 as he solves it: per trial, Euler over 20 time units of
    d eps/dt = phi - g - e, de/dt = Sigma eps - e from 0, then Sigma += alpha (eps e - 1)."""
    sigma, out = 1.0, []
    for deviation in deviations:
        eps = e = 0.0
        for _ in range(steps):
            eps, e = eps + h * (deviation - e), e + h * (sigma * eps - e)
        sigma += alpha * (eps * e - 1)
        out.append(sigma)
    return np.array(out)


# --- exercise 5 -------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [6, 9])
def test_exercise_5_sigma_converges_near_the_variance(tmp_path, seed):
    result = sim.run("learning/variance", output=tmp_path / "v.h5", seed=seed)
    sigma = result["levels/input/covariance"][:, 0, 0]
    assert sigma.shape == (1000,)
    late = sigma[499:].mean()  # trials 500..1000
    assert late == pytest.approx(2.0, abs=0.2)
    # the same data through Bogacz's own per-trial loop: the continuous flow learns the same
    # Sigma within 3% (it averages eps e over each trial's transient: ~1-2% above)
    deviations = trial_inputs(result)[:, 0] - 5.0
    reference = bogacz_exercise_5(deviations)
    assert late == pytest.approx(reference[499:].mean(), rel=0.03)


# --- the full covariance of a 2-unit level ------------------------------------------------------

def correlated_table(tau_ms: float | None = 5000.0, trials: int = 1000,
                     initial=1.0, covariance=((1.0, 0.5), (0.5, 1.0))) -> dict:
    """Two inputs whose per-trial draws have correlation 0.5, predicted by a held belief
    (g = (1, -1), its tau 1e15 ms); 20 tau_error per trial (100 steps), alpha = trial / tau =
    0.01."""
    section = {"levels": ["input"], "initial": initial}
    if tau_ms is not None:
        section["tau_ms"] = tau_ms
    return {
        "name": "correlated", "seed": 3, "dt_ms": 0.5, "method": "euler",
        "model": {"tau_error_ms": 2.5, "tau_belief_ms": 1e15, "covariance": section,
                  "levels": [{"name": "input", "size": 2},
                             {"name": "estimate", "size": 2,
                              "weights": {"kind": "identity"}}],
                  "prior": {"mean": [1.0, -1.0]}},
        "protocol": {"reset": "beliefs", "conditions": [{
            "name": "x", "count": trials, "duration_ms": 50.0,
            "stimulus": {"kind": "constant", "value": [1.0, -1.0],
                         "trial_covariance": [list(row) for row in covariance]}}]},
        "record": {"every_ms": 50.0},
    }


def test_a_two_unit_level_learns_the_full_covariance(tmp_path):
    table = correlated_table()
    result = sim.run(write_scenario(tmp_path / "c.toml", table), output=tmp_path / "c.h5")
    sigma = result["levels/input/covariance"]
    assert sigma.shape == (1000, 2, 2)
    deviations = trial_inputs(result) - np.array([1.0, -1.0])
    sample = deviations.T @ deviations / len(deviations)  # about the prediction g
    assert sample[0, 1] / np.sqrt(sample[0, 0] * sample[1, 1]) == pytest.approx(0.5, abs=0.1)
    learned = sigma[499:].mean(axis=0)
    assert np.linalg.norm(learned - sample) / np.linalg.norm(sample) < 0.10
    assert abs(learned[0, 1]) > 0.3  # the correlation was learned, not only the variances


# --- the fixed point ---------------------------------------------------------------------------

def test_the_error_unit_settles_at_sigma_inverse_times_the_error(tmp_path):
    """Sigma held (no tau_ms) at a correlated matrix: after 100 tau_error the error units are
    Sigma^-1 (x - g), the closed form, and the recorded precision is diag(Sigma^-1)."""
    held = [[2.0, 0.8], [0.8, 1.0]]
    table = correlated_table(tau_ms=None, trials=1, initial=held)
    condition = table["protocol"]["conditions"][0]
    condition["duration_ms"] = 250.0
    condition["stimulus"] = {"kind": "constant", "value": [2.5, 0.0]}
    result = sim.run(write_scenario(tmp_path / "f.toml", table), output=tmp_path / "f.h5")
    error = result.level("input")["error"][-1]
    prediction = result.level("estimate")["belief"][-1]  # g = mu (held: tau_belief = 1e15 ms)
    assert prediction == pytest.approx([1.0, -1.0], abs=1e-12)
    expected = np.linalg.solve(np.array(held), np.array([2.5, 0.0]) - prediction)
    np.testing.assert_allclose(error, expected, rtol=1e-9)
    np.testing.assert_allclose(result.trials["final_precision/input"][0],
                               np.diag(np.linalg.inv(held)), rtol=1e-12)
    assert np.array_equal(result["levels/input/covariance"][0], np.array(held))


# --- F with a full precision matrix --------------------------------------------------------------

def spd(rng, n: int) -> np.ndarray:
    root = rng.normal(size=(n, n))
    return root @ root.T + n * np.eye(n)


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("nonlinearity", ["identity", "tanh"])
def test_free_energy_with_full_precision_matrices_is_the_dense_one(nonlinearity, sparse):
    """x (3) <- W1 f(mu1) (2) <- W2 f(mu2) (2) <- m, with full precision matrices on the input
    and on the middle level: F from the blocks equals E + 1/2 ln|H| - N/2 ln 2 pi computed
    densely, H by central differences of E (and exactly, J' Pi J + ..., for linear g)."""
    rng = np.random.default_rng(0)
    w1, w2 = rng.normal(size=(3, 2)), rng.normal(size=(2, 2))
    f = parse_nonlinearity(nonlinearity)
    wrap = scipy.sparse.csr_matrix if sparse else np.asarray
    pi_x, pi_1, pi_2 = spd(rng, 3), spd(rng, 2), np.array([0.7, 1.3])
    model = HierarchicalModel([Level("x", 3, np.ones(3)),
                               Level("mu1", 2, np.ones(2), GenerativeMap(wrap(w1), f)),
                               Level("mu2", 2, pi_2, GenerativeMap(wrap(w2), f))],
                              prior_mean=np.array([0.2, -0.4]))
    x, mu = rng.normal(size=3), rng.normal(size=4)
    found = free_energy(model, x, [mu[:2], mu[2:]], [pi_x, pi_1, pi_2])

    fn = np.tanh if nonlinearity == "tanh" else (lambda v: v)

    def energy_at(v):
        errors = (x - w1 @ fn(v[:2]), v[:2] - w2 @ fn(v[2:]), v[2:] - model.prior_mean)
        return (0.5 * errors[0] @ pi_x @ errors[0] + 0.5 * errors[1] @ pi_1 @ errors[1]
                + 0.5 * np.sum(pi_2 * errors[2]**2))

    normalising = 0.5 * (-np.log(np.linalg.det(pi_x)) - np.log(np.linalg.det(pi_1))
                         - np.sum(np.log(pi_2)) + 7 * LN_2PI)
    step = 1e-4  # the Hessian by central differences of the energy
    eye = np.eye(4) * step
    hessian = np.array([[(energy_at(mu + eye[i] + eye[j]) - energy_at(mu + eye[i] - eye[j])
                          - energy_at(mu - eye[i] + eye[j]) + energy_at(mu - eye[i] - eye[j]))
                         / (4 * step**2) for j in range(4)] for i in range(4)])
    assert found.energy == pytest.approx(energy_at(mu) + normalising, rel=1e-12)
    laplace = 0.5 * np.linalg.slogdet(hessian)[1] - 2 * LN_2PI
    assert found.laplace == pytest.approx(laplace, abs=1e-6)
    if nonlinearity == "identity":  # exact: H = D' Pi D, D the stacked error Jacobian
        d = np.zeros((7, 4))
        d[0:3, 0:2] = -w1
        d[3:5, 0:2], d[3:5, 2:4] = np.eye(2), -w2
        d[5:7, 2:4] = np.eye(2)
        pi = scipy.linalg.block_diag(pi_x, pi_1, np.diag(pi_2))
        exact = 0.5 * np.linalg.slogdet(d.T @ pi @ d)[1] - 2 * LN_2PI
        assert found.laplace == pytest.approx(exact, rel=1e-12)


def test_the_recorded_free_energy_uses_the_learned_matrix(tmp_path):
    """At each trial's end, F in the trial table is the dense F with Pi = Sigma^-1 of the
    Sigma recorded then (beliefs held at g, so only the input level's term changes)."""
    table = correlated_table(trials=5)
    result = sim.run(write_scenario(tmp_path / "F.toml", table), output=tmp_path / "F.h5")
    sigmas = result["levels/input/covariance"]
    beliefs = result.trials["final_belief/estimate"]
    inputs = trial_inputs(result)
    for sigma, mu, x, found in zip(sigmas, beliefs, inputs, result.trials["final_free_energy"],
                                   strict=True):
        pi = np.linalg.inv(sigma)
        pi = (pi + pi.T) / 2
        e_x, e_m = x - mu, mu - np.array([1.0, -1.0])
        energy = (0.5 * e_x @ pi @ e_x - 0.5 * np.linalg.slogdet(pi)[1] + LN_2PI
                  + 0.5 * e_m @ e_m + LN_2PI)
        laplace = 0.5 * np.linalg.slogdet(pi + np.eye(2))[1] - LN_2PI
        assert found == pytest.approx(energy + laplace, rel=1e-9)


# --- learning off -------------------------------------------------------------------------------

def test_learning_switched_off_leaves_sigma_bitwise_unchanged(tmp_path):
    """A train phase of 4 trials, then a test phase with ``learn = false`` (sim.learning): Sigma
    learns in the first and keeps every bit in the second."""
    table = correlated_table(trials=4)
    train = table["protocol"]["conditions"][0]
    test = {**train, "name": "test", "count": 8, "learn": False}
    table["protocol"] = {"reset": "beliefs", "shuffle": False, "conditions": [train, test]}
    result = sim.run(write_scenario(tmp_path / "p.toml", table), output=tmp_path / "p.h5")
    sigma = result["levels/input/covariance"]
    assert not np.array_equal(sigma[0], sigma[3])  # it learned while on
    for later in sigma[4:]:  # and not one bit changed after
        assert np.array_equal(later, sigma[3])


def test_without_a_time_constant_sigma_is_held_bitwise(tmp_path):
    table = correlated_table(tau_ms=None, trials=6, initial=[[1.5, 0.3], [0.3, 0.8]])
    result = sim.run(write_scenario(tmp_path / "h.toml", table), output=tmp_path / "h.h5")
    sigma = result["levels/input/covariance"]
    assert all(np.array_equal(s, np.array([[1.5, 0.3], [0.3, 0.8]])) for s in sigma)


def test_sigma_starts_at_the_levels_configured_variance(tmp_path):
    """Without ``initial``, Sigma starts at 1 / the level's precision on the diagonal."""
    table = correlated_table(tau_ms=None, trials=1)
    del table["model"]["covariance"]["initial"]
    table["model"]["levels"][0]["precision"] = [4.0, 0.5]
    result = sim.run(write_scenario(tmp_path / "d.toml", table), output=tmp_path / "d.h5")
    assert np.array_equal(result["levels/input/covariance"][0], np.diag([0.25, 2.0]))


# --- stability ----------------------------------------------------------------------------------

@pytest.mark.parametrize("sigma", [0.1, 0.2, 0.3, 0.5, 2.0, 7.0])
def test_the_loop_bound_is_the_closed_form_for_euler(sigma):
    """Euler on (eps, e): eigenvalues of [[1, -h], [h sigma, 1 - h]] inside the unit circle iff
    h sigma < 1 (complex pair, sigma > 1/4), else h < 4 / (1 + sqrt(1 - 4 sigma))."""
    closed = 1 / sigma if sigma > 0.25 else 4 / (1 + np.sqrt(1 - 4 * sigma))
    assert loop_step_bound(sigma, "euler") == pytest.approx(closed, rel=1e-9)


def test_the_network_bound_takes_the_full_matrix():
    """lambda_max of D' Pi D with a full Pi on the input level, against a dense eigensolve."""
    rng = np.random.default_rng(1)
    weights = rng.normal(size=(3, 2))
    pi_x, pi_m = spd(rng, 3), np.array([0.5, 2.0])
    found = gauss_newton_lambda_max([GenerativeMap(weights, parse_nonlinearity("identity"))],
                                    [np.zeros(2)], [pi_x, pi_m])
    expected = np.linalg.eigvalsh(weights.T @ pi_x @ weights + np.diag(pi_m))[-1]
    assert found == pytest.approx(expected, rel=1e-12)


def test_a_step_beyond_the_loop_bound_is_refused(tmp_path):
    table = correlated_table(trials=1, initial=[[6.0, 0.0], [0.0, 1.0]])  # dt/tau = 0.2
    with pytest.raises(sim.ScenarioError, match=r"dt_ms.*error-interneuron loop"):
        sim.run(write_scenario(tmp_path / "s.toml", table), output=tmp_path / "s.h5")
    assert not (tmp_path / "s.h5").exists()


# --- bad input ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("change", "field"), [
    ({"tau_ms": -1.0}, "covariance.tau_ms"),
    ({"tau_ms": 0.0}, "covariance.tau_ms"),
    ({"tau_ms": float("inf")}, "covariance.tau_ms"),
    ({"tau_ms": float("nan")}, "covariance.tau_ms"),
    ({"levels": ["nowhere"]}, "covariance.levels"),
    ({"levels": ["estimate"]}, "covariance.levels"),  # the top: its precision is the prior's
    ({"levels": []}, "covariance.levels"),
    ({"levels": ["input", "input"]}, "covariance.levels: a level is named twice"),
    ({"initial": -1.0}, "covariance.initial"),
    ({"initial": [[1.0, 2.0], [2.0, 1.0]]}, "covariance.initial"),  # not positive definite
    ({"initial": [[1.0, 0.1], [0.0, 1.0]]}, "covariance.initial"),  # not symmetric
    ({"initial": [[1.0]]}, "covariance.initial"),  # not the level's size
    ({"initial": []}, "covariance.initial"),
])
def test_bad_covariance_settings_are_refused(tmp_path, change, field):
    table = correlated_table(trials=1)
    table["model"]["covariance"].update(change)
    with pytest.raises(sim.ScenarioError, match=field.replace(".", r"\.")):
        sim.run(write_scenario(tmp_path / "bad.toml", table), output=tmp_path / "bad.h5")
    assert not (tmp_path / "bad.h5").exists()


@pytest.mark.parametrize("model_change", [{"errors": "instantaneous"},
                                          {"learning": {"tau_precision_ms": 100.0}}])
def test_circuits_it_cannot_join_are_refused(tmp_path, model_change):
    table = correlated_table(trials=1)
    table["model"].update(model_change)
    with pytest.raises(sim.ScenarioError, match=r"covariance\.levels"):
        sim.run(write_scenario(tmp_path / "bad.toml", table), output=tmp_path / "bad.h5")


def test_a_trial_cannot_set_the_precision_of_a_covariance_level(tmp_path):
    table = correlated_table(trials=1)
    table["protocol"]["conditions"][0]["precision"] = {"input": 2.0}
    with pytest.raises(sim.ScenarioError, match=r"precision\.input.*covariance"):
        sim.run(write_scenario(tmp_path / "bad.toml", table), output=tmp_path / "bad.h5")


@pytest.mark.parametrize("drawn", [-2.0, [[1.0, 2.0], [2.0, 1.0]], [[1.0, 0.5], [0.4, 1.0]]])
def test_a_bad_trial_covariance_is_refused(tmp_path, drawn):
    table = correlated_table(trials=1)
    table["protocol"]["conditions"][0]["stimulus"]["trial_covariance"] = drawn
    with pytest.raises(sim.ScenarioError, match=r"trial_covariance"):
        sim.run(write_scenario(tmp_path / "bad.toml", table), output=tmp_path / "bad.h5")


def test_a_bad_rate_on_the_command_line_is_one_line_with_exit_code_2(tmp_path):
    out = tmp_path / "x.h5"
    done = subprocess.run(
        [sys.executable, "-m", "sim.cli", "run", "learning/variance", "--set",
         "model.covariance.tau_ms=0", "-o", str(out)], capture_output=True, text=True)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1
    assert "model.covariance.tau_ms" in done.stderr and "Traceback" not in done.stderr
    assert not out.exists()


def test_snapshots_hold_sigma_at_the_trials_they_name(tmp_path):
    """``[record] snapshots_every = 3``: each snapshot of Sigma is the covariance the level
    recorded at the end of the trial the snapshot names (and the last trial is kept)."""
    table = correlated_table(trials=8)
    table["record"]["snapshots_every"] = 3
    result = sim.run(write_scenario(tmp_path / "s.toml", table), output=tmp_path / "s.h5")
    per_trial = np.asarray(result["levels/input/covariance"])
    snapshots = result.snapshots
    trials = np.asarray(snapshots["trial"])
    assert trials.tolist() == [2, 5, 7]
    np.testing.assert_array_equal(np.asarray(snapshots["levels/input/covariance"]),
                                  per_trial[trials])


def test_the_learning_curve_measures_sigma_against_the_inputs_covariance(tmp_path):
    """``covariance_error`` per trial = ||Sigma - C||_F / ||C||_F, from the Sigma the level
    recorded at that trial's end and the scenario's trial_covariance C; it falls as Sigma
    learns C from a start at the identity."""
    covariance = np.array([[1.0, 0.5], [0.5, 1.0]])
    table = correlated_table(trials=60, tau_ms=500.0, initial=[[2.0, 0.0], [0.0, 2.0]])
    result = sim.run(write_scenario(tmp_path / "e.toml", table), output=tmp_path / "e.h5")
    sigma = np.asarray(result["levels/input/covariance"])
    expected = [np.linalg.norm(s - covariance) / np.linalg.norm(covariance) for s in sigma]
    found = np.asarray(result.trials["covariance_error"])
    np.testing.assert_allclose(found, expected, rtol=1e-12)
    assert found[-10:].mean() < 0.5 * found[0]
