"""Continuous perception against independent references: grid posteriors, Gaussian conditioning,
closed-form marginals and Ernst-Banks cue weights."""

from __future__ import annotations

import tomllib

import numpy as np
import pytest

import sim
from sim.reference.gaussian import grid_posterior_mode, linear_gaussian_posterior
from sim.scenario import bundled_scenarios
from sim.scenario_writer import write_scenario

# --- Bogacz (2017) exercises 2 and 3 --------------------------------------------------------

V_P, SIGMA_P, SIGMA_U, U = 3.0, 1.0, 1.0, 2.0


def bogacz_log_joint(v: np.ndarray) -> np.ndarray:
    """ln p(v) + ln p(u | v) for the single-cause example, up to a constant."""
    return -((v - V_P) ** 2) / (2 * SIGMA_P) - (U - v**2) ** 2 / (2 * SIGMA_U)


@pytest.mark.parametrize("errors", ["relaxing", "instantaneous"])
def test_single_cause_converges_to_grid_posterior_mode(tmp_path, errors):
    result = sim.run(
        "perception/single_cause",
        output=tmp_path / "single.h5",
        overrides={"model.errors": errors, "protocol.trials.0.duration_ms": 30.0,
                   "record.every_ms": 0.1},
    )
    mode = grid_posterior_mode(bogacz_log_joint, -5.0, 5.0)
    phi = result.level("food_size")["belief"][:, 0]
    assert phi[0] == pytest.approx(V_P)  # beliefs start at the prior mean
    assert abs(phi[-1] - mode) < 1e-3
    # error nodes at their fixed points: eps_u = (u - phi^2)/Sigma_u, eps_p = (phi - v_p)/Sigma_p
    eps_u = result.level("light")["error"][-1, 0]
    eps_p = result.level("food_size")["error"][-1, 0]
    assert abs(eps_u - (U - phi[-1] ** 2) / SIGMA_U) < 1e-3
    assert abs(eps_p - (phi[-1] - V_P) / SIGMA_P) < 1e-3


# --- a random linear-Gaussian hierarchy ---------------------------------------------------

def linear_scenario(tmp_path, errors: str, seed: int = 3, duration_ms: float = 150.0):
    rng = np.random.default_rng(seed)
    sizes = [6, 5, 3, 2]
    weights = [rng.normal(0, 0.6, (sizes[i], sizes[i + 1])) for i in range(3)]
    precisions = [rng.uniform(0.5, 2.0, size) for size in sizes]
    prior_mean = rng.normal(0, 1, sizes[-1])
    x = rng.normal(0, 1, sizes[0])
    levels = [{"name": "input", "size": sizes[0], "precision": precisions[0]}]
    for i in range(1, 4):
        level = {"name": f"level{i}", "size": sizes[i], "weights": weights[i - 1]}
        if i < 3:
            level["precision"] = precisions[i]
        levels.append(level)
    data = {
        "name": "linear_gaussian",
        "seed": 1,
        "dt_ms": 0.02,
        "model": {
            "errors": errors,
            "tau_belief_ms": 1.0,
            "tau_error_ms": 0.1,
            "levels": levels,
            "prior": {"mean": prior_mean, "precision": precisions[3]},
        },
        "protocol": {"trials": [{"duration_ms": duration_ms,
                                 "stimulus": {"kind": "constant", "value": x}}]},
        "record": {"every_ms": 0.02},
    }
    path = write_scenario(tmp_path / f"linear_{errors}.toml", data)
    reference = linear_gaussian_posterior(weights, precisions, prior_mean, x)
    return path, reference


@pytest.mark.parametrize("errors", ["instantaneous", "relaxing"])
def test_linear_hierarchy_matches_gaussian_conditioning(tmp_path, errors):
    path, reference = linear_scenario(tmp_path, errors)
    result = sim.run(path, output=tmp_path / "linear.h5")
    for index, expected in enumerate(reference.means, start=1):
        final = result.trials[f"final_belief/level{index}"][0]
        np.testing.assert_allclose(final, expected, rtol=1e-4)
    assert abs(result.trials["final_free_energy"][0] - reference.surprise) < 1e-4


def test_a_trials_prior_mean_is_the_one_f_uses(tmp_path):
    """A second trial with its own prior mean: beliefs and F at the fixed point are those of
    Gaussian conditioning under that prior (the recorded F once used the model's prior)."""
    path, _ = linear_scenario(tmp_path, "instantaneous")
    table = tomllib.loads(path.read_text())
    trial = table["protocol"]["trials"][0]
    shifted = [1.5, -2.0]
    table["protocol"]["trials"].append({**trial, "prior_mean": shifted, "reset": "beliefs"})
    path = write_scenario(tmp_path / "shifted.toml", table)
    result = sim.run(path, output=tmp_path / "shifted.h5")
    levels, model = table["model"]["levels"], table["model"]
    weights = [np.asarray(level["weights"], dtype=float) for level in levels[1:]]
    precisions = [np.asarray(level["precision"], dtype=float) for level in levels[:-1]]
    precisions.append(np.asarray(model["prior"]["precision"], dtype=float))
    reference = linear_gaussian_posterior(weights, precisions, np.asarray(shifted),
                                          np.asarray(trial["stimulus"]["value"]))
    for index, expected in enumerate(reference.means, start=1):
        np.testing.assert_allclose(result.trials[f"final_belief/level{index}"][1], expected,
                                   rtol=1e-4)
    assert abs(result.trials["final_free_energy"][1] - reference.surprise) < 1e-4


def test_free_energy_descends_with_instantaneous_errors(tmp_path):
    path, reference = linear_scenario(tmp_path, "instantaneous", seed=5, duration_ms=40.0)
    free_energy = sim.run(path, output=tmp_path / "f.h5").free_energy
    assert np.all(np.diff(free_energy) <= 1e-12 * np.abs(free_energy[1:]))
    assert free_energy[-1] >= reference.surprise - 1e-9  # F bounds the surprise


def test_relaxing_errors_end_lower_at_the_same_fixed_point(tmp_path):
    path, _ = linear_scenario(tmp_path, "relaxing", seed=5)
    relaxing = sim.run(path, output=tmp_path / "relaxing.h5")
    path, _ = linear_scenario(tmp_path, "instantaneous", seed=5)
    instantaneous = sim.run(path, output=tmp_path / "instantaneous.h5")
    assert relaxing.free_energy[-1] < relaxing.free_energy[0]
    for name in ("level1", "level2", "level3"):
        np.testing.assert_allclose(relaxing.level(name)["belief"][-1],
                                   instantaneous.level(name)["belief"][-1], rtol=1e-6)


# --- cue integration (Ernst & Banks 2002) --------------------------------------------------

def test_cue_integration_percept_is_precision_weighted_average(tmp_path):
    """The fog sweep: at every fog level the percept is w x_sight + (1 - w) x_hearing with
    w = Pi_sight / (Pi_sight + Pi_hearing), and w falls as the fog rises."""
    result = sim.run("perception/cue_integration", output=tmp_path / "cues.h5")
    scenario = tomllib.loads(bundled_scenarios()["perception/cue_integration"].read_text())
    trials = [t for t in scenario["protocol"]["trials"]
              if isinstance(t["precision"]["senses"], list)]  # the sweep (not the schedule)
    assert len(trials) >= 6  # clear and at least 5 fog levels
    weights = []
    for index, trial in enumerate(trials):
        sight, hearing = trial["stimulus"]["value"]
        pi_sight, pi_hearing = trial["precision"]["senses"]
        weight = pi_sight / (pi_sight + pi_hearing)
        weights.append(weight)
        expected = weight * sight + (1 - weight) * hearing
        assert result.trials["final_belief/position"][index, 0] == pytest.approx(expected,
                                                                                abs=1e-6)
        np.testing.assert_array_equal(result.trials["final_precision/senses"][index],
                                      [pi_sight, pi_hearing])
        assert result.trials["precision_share/senses"][index, 0] == pytest.approx(weight)
    assert np.all(np.diff(weights) < 0)
    # the fog rolling in within a trial: the percept before the change is the clear day's,
    # at the end the thick fog's (a precision schedule)
    scheduled = next(i for i, t in enumerate(scenario["protocol"]["trials"])
                     if isinstance(t["precision"]["senses"], dict))
    schedule = scenario["protocol"]["trials"][scheduled]["precision"]["senses"]
    start = result.trials["t_start"][scheduled] * 1e3
    change = start + schedule["times_ms"][1]
    time_ms, percept = result.time * 1e3, result.level("position")["belief"][:, 0]
    before = percept[np.searchsorted(time_ms, change) - 1]
    for (pi_sight, pi_hearing), value in zip(schedule["values"],
                                             (before, result.trials["final_belief/position"][
                                                 scheduled, 0]), strict=True):
        expected = (pi_sight * 1.0 + pi_hearing * 3.0) / (pi_sight + pi_hearing)
        assert value == pytest.approx(expected, abs=1e-3)


# --- the Laplace term: the Hessian of the energy against finite differences ----------------

@pytest.mark.parametrize("site", ["before", "after"])
@pytest.mark.parametrize("sparse", [False, True])
def test_energy_hessian_matches_finite_differences(site, sparse):
    import scipy.sparse

    from circuits.generative import GenerativeMap
    from circuits.nonlinearity import parse_nonlinearity
    from sim.families.hierarchical.free_energy import energy, energy_hessian, prediction_errors
    from sim.families.hierarchical.model import HierarchicalModel, Level

    rng = np.random.default_rng(7)
    sizes = [7, 5, 3]
    levels = [Level("input", 7, rng.uniform(0.5, 2.0, 7), None, None, None)]
    for index in (1, 2):
        weights = rng.normal(size=(sizes[index - 1], sizes[index]))
        weights[np.abs(weights) < 0.5] = 0.0
        gmap = GenerativeMap(scipy.sparse.csr_matrix(weights) if sparse else weights,
                             parse_nonlinearity("tanh"), site)
        levels.append(Level(f"level{index}", sizes[index], rng.uniform(0.5, 2.0, sizes[index]),
                            gmap, None, None))
    model = HierarchicalModel(levels, np.zeros(3), "instantaneous", 10.0, 2.0, "auto")
    sensory = rng.normal(size=7)
    beliefs = [rng.normal(size=5), rng.normal(size=3)]
    precisions = [level.precision for level in levels]
    hessian = energy_hessian(model, beliefs, prediction_errors(model, sensory, beliefs),
                             precisions)
    hessian = hessian.toarray() if scipy.sparse.issparse(hessian) else hessian

    def energy_at(stacked: np.ndarray) -> float:
        split = [stacked[:5], stacked[5:]]
        return energy(prediction_errors(model, sensory, split), precisions)

    centre, h = np.concatenate(beliefs), 1e-4
    steps = np.eye(len(centre)) * h
    numeric = np.array([[(energy_at(centre + a + b) - energy_at(centre + a - b)
                          - energy_at(centre - a + b) + energy_at(centre - a - b)) / (4 * h * h)
                         for b in steps] for a in steps])
    np.testing.assert_allclose(hessian, numeric, atol=1e-5)


# --- the slow-speed prior (Weiss, Simoncelli & Adelson 2002) -------------------------------

def test_motion_prior_percept_is_the_posterior_mean_and_falls_with_contrast(tmp_path):
    result = sim.run("perception/motion_prior", output=tmp_path / "motion.h5")
    scenario = tomllib.loads(bundled_scenarios()["perception/motion_prior"].read_text())
    prior = scenario["model"]["prior"]
    perceived = result.trials["final_belief/speed"][:, 0]
    for index, trial in enumerate(scenario["protocol"]["trials"]):
        contrast = float(trial["name"].split()[1].rstrip("%")) / 100
        precision = (contrast / 0.2) ** 2  # the documented contrast -> precision mapping
        assert trial["precision"]["measured"] == pytest.approx(precision)
        speed = trial["stimulus"]["value"]
        expected = ((precision * speed + prior["precision"] * prior["mean"])
                    / (precision + prior["precision"]))
        assert perceived[index] == pytest.approx(expected, rel=1e-3)
        assert perceived[index] < speed  # the illusion: slower than it is
    assert np.all(np.diff(perceived) > 0)  # trials by rising contrast: faster percepts


@pytest.mark.parametrize("site", ["before", "after"])
@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("nonlinearity", ["identity", "tanh"])
def test_fast_laplace_term_equals_the_dense_slogdet(site, sparse, nonlinearity):
    """The block recursion and the cached W' Pi W give the F of the whole Hessian's slogdet
    (1e-9), also when the weights change between calls (the cache notices)."""
    import scipy.sparse

    from circuits.generative import GenerativeMap
    from circuits.nonlinearity import parse_nonlinearity
    from sim.families.hierarchical.free_energy import (
        LN_2PI,
        GramCache,
        energy,
        energy_hessian,
        free_energy,
        prediction_errors,
    )
    from sim.families.hierarchical.model import HierarchicalModel, Level

    rng = np.random.default_rng(11)
    sizes = [9, 6, 4, 3]
    levels = [Level("input", sizes[0], rng.uniform(0.5, 2.0, sizes[0]), None, None, None)]
    for index in range(1, 4):
        weights = rng.normal(size=(sizes[index - 1], sizes[index]))
        weights[np.abs(weights) < 0.4] = 0.0
        gmap = GenerativeMap(scipy.sparse.csr_matrix(weights) if sparse else weights,
                             parse_nonlinearity(nonlinearity), site)
        levels.append(Level(f"level{index}", sizes[index],
                            rng.uniform(0.5, 2.0, sizes[index]), gmap, None, None))
    model = HierarchicalModel(levels, np.zeros(3), "instantaneous", 10.0, 2.0, "auto")
    cache = GramCache()
    for _ in range(2):  # the second call reuses the cache, then the weights change
        sensory = rng.normal(size=sizes[0])
        beliefs = [rng.normal(size=n) for n in sizes[1:]]
        precisions = [level.precision for level in levels]
        errors = prediction_errors(model, sensory, beliefs)
        hessian = energy_hessian(model, beliefs, errors, precisions)
        dense = hessian.toarray() if scipy.sparse.issparse(hessian) else hessian
        expected = (energy(errors, precisions) + 0.5 * np.linalg.slogdet(dense)[1]
                    - 0.5 * len(dense) * LN_2PI)
        for _ in range(2):
            found = free_energy(model, sensory, beliefs, precisions, cache=cache)
            assert found.total == pytest.approx(expected, abs=1e-9)
        if not sparse:
            levels[1].generative.weights *= 1.1  # in place, as plasticity does


@pytest.mark.parametrize("sizes", [[7, 4, 3], [3, 7, 4], [3, 4, 7], [5], [2, 6]])
@pytest.mark.parametrize("definite", [True, False])
def test_block_elimination_gives_the_dense_log_determinant(sizes, definite):
    """ln|det H| by elimination from both ends towards the largest block equals the whole
    matrix's slogdet (1e-9), wherever the largest block sits, for positive definite and
    indefinite H; a singular H gives None (the caller then uses the whole matrix)."""
    from sim.families.hierarchical.log_det import block_log_abs_det

    rng = np.random.default_rng(sum(sizes) + definite)
    edges = np.concatenate([[0], np.cumsum(sizes)])
    coupling = np.zeros((edges[-1], edges[-1]))
    for block in range(len(sizes) - 1):  # only neighbouring levels are coupled
        rows, columns = slice(*edges[block:block + 2]), slice(*edges[block + 1:block + 3])
        coupling[rows, columns] = rng.normal(size=(sizes[block], sizes[block + 1]))
    symmetric = np.diag(rng.normal(size=edges[-1])) + coupling + coupling.T
    shift = (1.0 - np.linalg.eigvalsh(symmetric).min()) if definite else 0.0
    hessian = symmetric + shift * np.eye(edges[-1])
    assert (np.linalg.eigvalsh(hessian).min() > 0) == definite
    blocks = [slice(*edges[block:block + 2]) for block in range(len(sizes))]
    diagonal = [hessian[block, block] for block in blocks]
    upper = [hessian[blocks[b], blocks[b + 1]] for b in range(len(sizes) - 1)]
    assert block_log_abs_det(diagonal, upper) == pytest.approx(
        np.linalg.slogdet(hessian)[1], abs=1e-9)
    diagonal[-1] = diagonal[-1].copy()
    diagonal[-1][:, 0] = diagonal[-1][0, :] = 0.0  # a unit with no curvature and no coupling
    upper = [u.copy() for u in upper]
    if upper:
        upper[-1][:, 0] = 0.0
    assert block_log_abs_det(diagonal, upper) is None


def test_energy_follows_precisions_changed_in_place():
    """E's normalising term is kept per precision vector (by value): a vector changed in place,
    as precision learning does, gives the new E; a unit set to zero (flat) drops out."""
    from sim.families.hierarchical.free_energy import LN_2PI, energy

    rng = np.random.default_rng(5)
    errors = [rng.normal(size=5), rng.normal(size=3)]
    precisions = [rng.uniform(0.5, 2.0, 5), np.array(2.0)]  # per unit; one for the level

    def by_formula() -> float:
        total = 0.0
        for error, precision in zip(errors, precisions, strict=True):
            precision = np.broadcast_to(precision, error.shape)
            proper = precision > 0
            total += 0.5 * np.sum(precision * error**2)
            total += 0.5 * np.sum(LN_2PI - np.log(precision[proper]))
        return total

    assert energy(errors, precisions) == pytest.approx(by_formula(), abs=1e-12)
    precisions[0][2] *= 3.0
    precisions[0][1] = 0.0
    assert energy(errors, precisions) == pytest.approx(by_formula(), abs=1e-12)
