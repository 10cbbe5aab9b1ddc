"""F of many recorded samples at once (``sampled_free_energy``) against F as a run computes it
sample by sample (``free_energy`` with a ``GramCache``, the run's own recording in
``free_energy`` / ``energy``): states from short real runs (Posner's linear model with top-down
precision, a 3-belief-level tanh hierarchy with both sites, float32, a sparse prior's
curvature and energy) and random states (full precision matrices, a singular complement).

The reference call carries a ``GramCache`` as the run's does: without it ``free_energy`` forms
J' Pi J in another order, and at an ill-conditioned sample (perception/hierarchy at 139 ms,
cond(H) ~ 6e5) its ln|det H| moves by 1e-11 from the run's own recording."""

from __future__ import annotations

import numpy as np
import pytest

import sim
from circuits.generative import GenerativeMap
from circuits.nonlinearity import parse_nonlinearity
from sim.families.hierarchical import free_energy_samples
from sim.families.hierarchical.free_energy import FreeEnergy, GramCache, free_energy
from sim.families.hierarchical.free_energy_samples import sampled_free_energy
from sim.families.hierarchical.model import HierarchicalModel, Level
from sim.scenario import load_scenario
from sim.scenario_writer import write_scenario

TOLERANCE = 1e-12  # nat, absolute: a compiled device's bound on every dumped dataset


def recorded(result: sim.Result, scenario) -> tuple:
    """A hierarchical run's samples as ``sampled_free_energy`` takes them: input, beliefs and
    precisions from the result, each sample's prior mean from its trial's settings (by the
    trial table's times; ``scenario.trials`` is in run order)."""
    model = scenario.model
    names = [level.name for level in model.levels]
    sensory = np.asarray(result[f"levels/{names[0]}/input"])
    beliefs = [np.asarray(result[f"levels/{name}/belief"]) for name in names[1:]]
    precisions = [np.asarray(result[f"levels/{name}/precision"]) for name in names]
    time = np.asarray(result.time)
    rows = np.searchsorted(result.trials["t_start"], time + (time[1] - time[0]) / 4,
                           side="right") - 1
    prior_mean = np.array([np.broadcast_to(model.in_force(scenario.trials[row].settings)
                                           .prior_mean, model.levels[-1].size)
                           for row in rows])
    return sensory, beliefs, precisions, prior_mean


def one_by_one(model, sensory, beliefs, precisions, prior_mean, curvature=None,
               cache: bool = True) -> list[FreeEnergy]:
    """``free_energy`` sample by sample, as a run calls it (with a ``GramCache``)."""
    kept = GramCache(16) if cache else None
    return [free_energy(model, sensory[s], [belief[s] for belief in beliefs],
                        [precision[s] for precision in precisions], laplace=True,
                        prior_mean=prior_mean[s], cache=kept,
                        curvature={level: diagonal[s] for level, diagonal
                                   in (curvature or {}).items()})
            for s in range(len(sensory))]


def assert_close(found: np.ndarray, expected: np.ndarray) -> None:
    np.testing.assert_array_equal(np.isnan(found), np.isnan(expected))
    np.testing.assert_allclose(found, expected, rtol=0, atol=TOLERANCE, equal_nan=True)


def run_bundled(tmp_path, name: str, overrides: dict) -> tuple:
    result = sim.run(name, output=tmp_path / "run.h5", overrides=overrides)
    return result, load_scenario(name, overrides)


def test_posner_samples_equal_the_run_and_the_per_sample_function(tmp_path):
    """Linear maps, precisions moved by the context at every sample (top-down precision), a
    prior mean per trial, the Laplace term every 2nd sample (NaN between, as recorded)."""
    overrides = {**{f"protocol.conditions.{i}.count": 1 for i in range(6)},
                 **{f"protocol.conditions.{i}.duration_ms": 150.0 for i in range(6)},
                 "record.laplace": 2}
    result, scenario = run_bundled(tmp_path, "attention/posner", overrides)
    states = recorded(result, scenario)
    count = len(states[0])
    assert count == 900 and np.ptp(states[2][0], axis=0).min() > 0  # precisions move
    due = np.arange(count) % 2 == 0
    energy, total = sampled_free_energy(scenario.model, *states, laplace=due)
    assert_close(total, np.asarray(result.free_energy))
    assert_close(energy, np.asarray(result["energy"]))
    energy, total = sampled_free_energy(scenario.model, *states)
    for cache in (True, False):  # a linear model: J' Pi J is W' Pi W either way
        expected = one_by_one(scenario.model, *states, cache=cache)
        assert_close(total, np.array([found.total for found in expected]))
        assert_close(energy, np.array([found.energy for found in expected]))


def three_level_table(name: str, float_type: str = "float64") -> dict:
    """12 inputs, three belief levels of 6, 4 and 2 with tanh before and after the weights;
    the input level's precision steps within a trial, the second trial has its own prior."""
    rng = np.random.default_rng(11)
    levels = [{"name": "input", "size": 12, "precision": 2.0}]
    for index, (size, apply) in enumerate([(6, "before"), (4, "after"), (2, "before")]):
        level = {"name": f"level{index + 1}", "size": size, "nonlinearity": "tanh",
                 "apply": apply, "weights": {"kind": "random", "scale": 1.0}}
        if index < 2:
            level["precision"] = rng.uniform(0.5, 2.0, size).tolist()
        levels.append(level)
    return {
        "name": name, "seed": 5, "dt_ms": 0.1, "float": float_type,
        "model": {"errors": "relaxing", "tau_belief_ms": 5.0, "tau_error_ms": 1.0,
                  "levels": levels, "prior": {"mean": [0.3, -0.2], "precision": 1.0}},
        "protocol": {"reset": "none", "trials": [
            {"duration_ms": 40.0, "stimulus": {"kind": "ramp", "start": -1.0, "stop": 1.0},
             "precision": {"input": {"times_ms": [0, 20], "values": [2.0, 0.5]}}},
            {"duration_ms": 40.0, "prior_mean": [-0.5, 0.8],
             "stimulus": {"kind": "constant", "value": 0.7, "noise_std": 0.2}}]},
        "record": {"every_ms": 0.5},
    }


@pytest.mark.parametrize("float_type", ["float64", "float32"])
def test_three_belief_levels_equal_the_run(tmp_path, float_type):
    """tanh before and after the weights, 3 belief levels, a precision schedule, two priors;
    float32: the states and the weights as the float32 build holds them (it narrows the
    model's weights), so the arithmetic is the run's."""
    path = write_scenario(tmp_path / "three.toml", three_level_table("three", float_type))
    result, scenario = run_bundled(tmp_path, path, {})
    states = recorded(result, scenario)
    model = scenario.model
    if float_type == "float32":
        for level in model.belief_levels:
            level.generative.weights = level.generative.weights.astype(np.float32)
        states = (states[0].astype(np.float32), [b.astype(np.float32) for b in states[1]],
                  [p.astype(np.float32) for p in states[2]], states[3].astype(np.float32))
    assert len(model.belief_levels) == 3 and len(states[0]) == 160
    energy, total = sampled_free_energy(model, *states)
    assert_close(total, np.asarray(result.free_energy))
    assert_close(energy, np.asarray(result["energy"]))
    expected = one_by_one(model, *states)
    assert_close(total, np.array([found.total for found in expected]))


def test_hierarchy_samples_equal_the_run(tmp_path):
    """perception/hierarchy (64-16-4, tanh): 20 beliefs, precisions constant (one W' Pi W)."""
    overrides = {"protocol.trials.0.duration_ms": 150.0}
    result, scenario = run_bundled(tmp_path, "perception/hierarchy", overrides)
    states = recorded(result, scenario)
    energy, total = sampled_free_energy(scenario.model, *states)
    assert_close(total, np.asarray(result.free_energy))
    assert_close(energy, np.asarray(result["energy"]))
    assert_close(total, np.array([found.total
                                  for found in one_by_one(scenario.model, *states)]))


def test_a_mechanisms_curvature_and_energy(tmp_path):
    """learning/bars with its learning off: a sparse prior adds its curvature rho''(mu) to the
    Hessian and its energy to both; the causes' Gaussian prior is flat (precision 0)."""
    overrides = {"protocol.conditions.0.count": 12, "protocol.conditions.0.learn": []}
    result, scenario = run_bundled(tmp_path, "learning/bars", overrides)
    sensory, beliefs, precisions, prior_mean = recorded(result, scenario)
    prior = scenario.model.mechanisms["sparse_prior"]
    top = len(scenario.model.levels) - 1
    assert np.all(precisions[top] == 0)
    causes = beliefs[-1]
    extra = np.sum(prior.energy(causes), axis=1) + causes.shape[1] * prior.log_normaliser
    energy, total = sampled_free_energy(scenario.model, sensory, beliefs, precisions,
                                        prior_mean, curvature={top: prior.curvature(causes)},
                                        extra_energy=extra)
    assert_close(total, np.asarray(result.free_energy))
    assert_close(energy, np.asarray(result["energy"]))


def random_model(rng: np.random.Generator) -> HierarchicalModel:
    """Input 7, beliefs 5 (tanh before W), 4 (softplus after W), 3 (mu**2 before W)."""
    sizes = [7, 5, 4, 3]
    maps = [("tanh", "before"), ("relu_smooth", "after"), ("mu**2", "before")]
    levels = [Level("input", 7, np.full(7, 2.0))]
    for index, (name, site) in enumerate(maps, start=1):
        weights = rng.normal(0.0, 1.0 / np.sqrt(sizes[index]), (sizes[index - 1], sizes[index]))
        levels.append(Level(f"level{index}", sizes[index], np.ones(sizes[index]),
                            GenerativeMap(weights, parse_nonlinearity(name), site)))
    return HierarchicalModel(levels, np.zeros(3))


def random_states(rng: np.random.Generator, model: HierarchicalModel, count: int) -> tuple:
    """Random states; precisions held over runs of samples (as trials hold them), one level
    with a full (symmetric positive definite) precision matrix per sample."""
    sizes = [level.size for level in model.levels]
    sensory = rng.normal(size=(count, sizes[0]))
    beliefs = [rng.normal(0.0, 0.7, (count, size)) for size in sizes[1:]]
    runs = -(-count // 4)
    held = np.repeat(np.arange(runs), 4)[:count]
    precisions = [rng.uniform(0.3, 3.0, (runs, size))[held] for size in sizes]
    factors = rng.normal(size=(count, sizes[1], sizes[1]))
    precisions[1] = factors @ np.swapaxes(factors, 1, 2) / sizes[1] + 0.5 * np.eye(sizes[1])
    prior_mean = rng.normal(size=(count, sizes[-1]))
    curvature = {2: rng.uniform(-0.2, 1.0, (count, sizes[2]))}
    return sensory, beliefs, precisions, prior_mean, curvature


def test_random_states_of_three_tanh_levels_and_a_full_precision():
    rng = np.random.default_rng(23)
    model = random_model(rng)
    sensory, beliefs, precisions, prior_mean, curvature = random_states(rng, model, 200)
    extra = rng.normal(size=200)
    due = rng.random(200) < 0.7
    energy, total = sampled_free_energy(model, sensory, beliefs, precisions, prior_mean,
                                        laplace=due, curvature=curvature, extra_energy=extra)
    for cache in (True, False):
        expected = one_by_one(model, sensory, beliefs, precisions, prior_mean, curvature,
                              cache)
        assert_close(energy, np.array([found.energy for found in expected]) + extra)
        assert_close(total, np.where(due, [found.total for found in expected], np.nan) + extra)
    _, everything = sampled_free_energy(model, sensory, beliefs, precisions, prior_mean,
                                        curvature=curvature, extra_energy=extra)
    assert_close(everything[due], total[due])
    energy_only, none = sampled_free_energy(model, sensory, beliefs, precisions, prior_mean,
                                            laplace=False)
    assert np.all(np.isnan(none))
    assert_close(energy_only, energy - extra)


def test_beyond_the_stacked_size_it_takes_the_per_sample_path(monkeypatch):
    rng = np.random.default_rng(5)
    model = random_model(rng)
    sensory, beliefs, precisions, prior_mean, curvature = random_states(rng, model, 30)
    stacked = sampled_free_energy(model, sensory, beliefs, precisions, prior_mean,
                                  curvature=curvature)
    monkeypatch.setattr(free_energy_samples, "STACKED_BELIEFS", model.n_beliefs - 1)
    one_each = sampled_free_energy(model, sensory, beliefs, precisions, prior_mean,
                                   curvature=curvature)
    for found, expected in zip(stacked, one_each, strict=True):
        assert_close(found, expected)


def test_a_singular_complement_takes_the_whole_hessian(monkeypatch):
    """Two one-unit linear levels, W = 1, Pi = 1: the upper block's curvature -2 makes it
    exactly 0 (singular: block elimination cannot start there), while H = [[D, -1], [-1, 0]]
    has ln|det H| = 0; ``free_energy`` falls back to the whole matrix, and so does this, for
    that sample alone."""
    identity = parse_nonlinearity("identity")
    model = HierarchicalModel([
        Level("input", 1, np.ones(1)),
        Level("low", 1, np.ones(1), GenerativeMap(np.ones((1, 1)), identity)),
        Level("top", 1, np.ones(1), GenerativeMap(np.ones((1, 1)), identity))],
        np.zeros(1))
    rng = np.random.default_rng(2)
    states = (rng.normal(size=(3, 1)), [rng.normal(size=(3, 1)), rng.normal(size=(3, 1))],
              [np.ones((3, 1))] * 3, np.zeros((3, 1)))
    curvature = {2: np.array([[0.0], [-2.0], [0.5]])}
    one_sample = []
    monkeypatch.setattr(free_energy_samples, "free_energy",
                        lambda *args, **kwargs: one_sample.append(args[1]) or free_energy(
                            *args, **kwargs))
    _, total = sampled_free_energy(model, *states, curvature=curvature)
    np.testing.assert_array_equal(one_sample, [states[0][1]])
    expected = one_by_one(model, *states, curvature=curvature)
    assert_close(total, np.array([found.total for found in expected]))
    assert expected[1].laplace == pytest.approx(-np.log(2 * np.pi), abs=1e-15)
