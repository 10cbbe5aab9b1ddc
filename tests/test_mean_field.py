"""Mean-field beliefs over several discrete factors, against independent computations: CAVI
fixed points, the exact joint posterior and its KL to Q, and F never rising under the
documented scheme (factors in turns, dt <= tau_belief)."""

from __future__ import annotations

import itertools
import re
import subprocess
import sys

import numpy as np
import pytest

import sim
from sim.reference import categorical
from sim.scenario_writer import write_scenario

TAU_MS = 1.0


def random_model(rng: np.random.Generator, sizes: tuple[int, ...], modalities: int,
                 outcomes: int = 3, concentration: float = 1.0) -> dict:
    factors = [{"name": f"f{i}", "causes": size, "prior": rng.dirichlet(np.ones(size)).tolist()}
               for i, size in enumerate(sizes)]
    tables = []
    for m in range(modalities):
        A = rng.dirichlet(np.full(outcomes, concentration), size=int(np.prod(sizes))).T
        tables.append({"name": f"m{m}", "outcomes": outcomes,
                       "likelihood": A.reshape(outcomes, *sizes).tolist()})
    return {"kind": "discrete", "tau_belief_ms": TAU_MS, "factors": factors,
            "modalities": tables}


def scenario(tmp_path, name: str, model: dict, observations: list[dict], dt_ms: float = 0.1,
             duration_ms: float = 100.0, **extra) -> str:
    table = {"name": name, "dt_ms": dt_ms, "model": model,
             "protocol": {"trials": [{"duration_ms": duration_ms, "reset": "beliefs",
                                      "observations": observations}]},
             **extra}
    return str(write_scenario(tmp_path / f"{name}.toml", table))


def exact_joint(model: dict, observations: list[dict]) -> np.ndarray:
    """ln p(o, s_1, ..., s_F), by brute force over the joint causes (no sim code)."""
    priors = [np.asarray(f["prior"]) for f in model["factors"]]
    shape = tuple(len(p) for p in priors)
    joint = np.zeros(shape)
    for index in itertools.product(*(range(n) for n in shape)):
        value = sum(np.log(p[k]) for p, k in zip(priors, index, strict=True))
        for obs in observations:
            for table in model["modalities"]:
                if table["name"] in obs:
                    A = np.asarray(table["likelihood"])
                    outcome = obs[table["name"]]
                    if isinstance(outcome, str):
                        outcome = table["outcomes"].index(outcome)
                    value += np.log(A[(outcome, *index)])
        joint[index] = value
    return joint


def kl_mean_field(beliefs: list[np.ndarray], log_joint: np.ndarray) -> float:
    """KL[prod_f Q_f || p(s | o)], written out here."""
    q = beliefs[0]
    for belief in beliefs[1:]:
        q = np.multiply.outer(q, belief)
    log_posterior = log_joint - np.logaddexp.reduce(log_joint.ravel())
    return float(np.sum(q * (np.log(q) - log_posterior)))


def final_beliefs(result, model: dict) -> list[np.ndarray]:
    return [result.trials[f"final_belief/{f['name']}"][-1] for f in model["factors"]]


@pytest.mark.parametrize(("sizes", "seed"), [((3, 4), 1), ((2, 3, 2), 2), ((4, 3), 3)])
def test_flow_ends_at_a_cavi_fixed_point_and_f_minus_surprise_is_the_kl(tmp_path, sizes,
                                                                        seed):
    rng = np.random.default_rng(seed)
    model = random_model(rng, sizes, modalities=2)
    observations = [{"time_ms": 0.0, "m0": int(rng.integers(3))},
                    {"time_ms": 10.0, "m1": int(rng.integers(3))},
                    {"time_ms": 20.0, "m0": int(rng.integers(3))}]
    path = scenario(tmp_path, f"cavi{seed}", model, observations, duration_ms=300.0)
    result = sim.run(path, output=tmp_path / "cavi.h5")
    beliefs = final_beliefs(result, model)
    log_joint = exact_joint(model, observations)
    # one CAVI sweep (a separate NumPy routine) from the flow's end point changes nothing
    swept = categorical.cavi_sweep(beliefs, log_joint)
    for before, after in zip(beliefs, swept, strict=True):
        assert np.max(np.abs(after - before)) < 1e-6
    surprise = -np.logaddexp.reduce(log_joint.ravel())
    trials = result.trials
    assert trials["surprise"][-1] == pytest.approx(surprise, abs=1e-9)
    kl = kl_mean_field(beliefs, log_joint)
    assert trials["final_free_energy"][-1] - surprise == pytest.approx(kl, abs=1e-6)
    assert trials["kl"][-1] == pytest.approx(kl, abs=1e-6)
    posterior = np.exp(log_joint - np.logaddexp.reduce(log_joint.ravel()))
    np.testing.assert_allclose(trials["exact_joint"][-1], posterior, atol=1e-12)
    for f, factor in enumerate(model["factors"]):
        marginal = posterior.sum(axis=tuple(a for a in range(len(sizes)) if a != f))
        np.testing.assert_allclose(trials[f"exact_marginal/{factor['name']}"][-1], marginal,
                                   atol=1e-12)
    # the recorded beliefs are the factors' Q, under factors/<name>/belief
    assert result[f"factors/{model['factors'][0]['name']}/belief"].shape[1] == sizes[0]


def test_a_unique_fixed_point_is_where_cavi_converges(tmp_path):
    """Weakly coupled factors (a flat likelihood): one fixed point, so the flow and CAVI run to
    convergence from the prior agree."""
    rng = np.random.default_rng(11)
    model = random_model(rng, (3, 3), modalities=1, concentration=20.0)
    observations = [{"time_ms": 0.0, "m0": 1}, {"time_ms": 0.0, "m0": 2}]
    result = sim.run(scenario(tmp_path, "unique", model, observations, duration_ms=200.0),
                     output=tmp_path / "unique.h5")
    log_joint = exact_joint(model, observations)
    beliefs = [np.asarray(f["prior"]) for f in model["factors"]]
    for _ in range(500):
        beliefs = categorical.cavi_sweep(beliefs, log_joint)
    for flow, cavi in zip(final_beliefs(result, model), beliefs, strict=True):
        np.testing.assert_allclose(flow, cavi, atol=1e-6)


def test_independent_factors_have_no_gap(tmp_path):
    """Each modality sees one factor only: the posterior factorises, Q is exact, KL = 0."""
    a_first = np.array([[0.7, 0.2, 0.1], [0.3, 0.8, 0.9]])  # 2 outcomes x 3 causes of f0
    a_second = np.array([[0.6, 0.1], [0.4, 0.9]])  # 2 outcomes x 2 causes of f1
    model = {
        "kind": "discrete", "tau_belief_ms": TAU_MS,
        "factors": [{"name": "f0", "causes": 3, "prior": [0.5, 0.3, 0.2]},
                    {"name": "f1", "causes": 2, "prior": [0.4, 0.6]}],
        "modalities": [
            {"name": "see", "outcomes": 2,
             "likelihood": np.repeat(a_first[:, :, None], 2, axis=2).tolist()},
            {"name": "hear", "outcomes": 2,
             "likelihood": np.repeat(a_second[:, None, :], 3, axis=1).tolist()},
        ],
    }
    observations = [{"time_ms": 0.0, "see": 0, "hear": 1}]
    result = sim.run(scenario(tmp_path, "independent", model, observations),
                     output=tmp_path / "independent.h5")
    assert abs(result.trials["kl"][-1]) < 1e-9
    log_joint = exact_joint(model, observations)
    assert kl_mean_field(final_beliefs(result, model), log_joint) < 1e-9


def coupled_model(contrast: float) -> dict:
    """Two binary factors; the outcome says whether they agree, with log-likelihood contrast
    ``contrast`` (ln p(agree | same) - ln p(agree | different))."""
    same = 1.0 / (1.0 + np.exp(-contrast / 2))
    different = 1.0 - same
    agree = [[same, different], [different, same]]
    return {"kind": "discrete", "tau_belief_ms": TAU_MS,
            "factors": [{"name": "left", "causes": ["a", "b"], "prior": [0.6, 0.4]},
                        {"name": "right", "causes": ["a", "b"], "prior": [0.3, 0.7]}],
            "modalities": [{"name": "agree", "outcomes": ["yes", "no"],
                            "likelihood": [agree, (1 - np.asarray(agree)).tolist()]}]}


@pytest.mark.parametrize("contrast", [8.0, 16.0])
@pytest.mark.parametrize("h", [0.5, 1.0])
def test_free_energy_never_rises_with_factors_in_turns(tmp_path, contrast, h):
    model = coupled_model(contrast)
    observations = [{"time_ms": 0.0, "agree": "yes"}, {"time_ms": 10.0, "agree": "yes"}]
    path = scenario(tmp_path, "coupled", model, observations, dt_ms=h * TAU_MS,
                    duration_ms=40.0)
    result = sim.run(path, output=tmp_path / "coupled.h5")
    free_energy, time_ms = result.free_energy, result.time * 1e3
    for start, stop in ((0.0, 10.0), (10.0, 40.0)):  # between observations
        inside = (time_ms >= start) & (time_ms < stop)
        rises = np.diff(free_energy[inside])
        assert np.all(rises <= 1e-12 * np.abs(free_energy[inside][1:]).clip(1)), rises.max()
    assert result.attrs["free_energy_rises"] == 0


def test_the_same_step_taken_by_both_factors_at_once_would_raise_f():
    """Why turns: from the priors, both factors stepping together towards their targets given
    the other's old belief (Jacobi) raise F for strongly coupled factors (here by 1.1 nat at
    h = 0.8 and 1.9 nat at h = 1), where the same steps in turns lower it."""
    model = coupled_model(16.0)
    beliefs = [np.asarray(f["prior"], dtype=float) for f in model["factors"]]
    log_joint = exact_joint(model, [{"time_ms": 0.0, "agree": "yes"}])
    before = categorical.mean_field_free_energy(beliefs, log_joint)
    for h in (0.8, 1.0):
        together = []
        for f, belief in enumerate(beliefs):
            expected = np.tensordot(log_joint, beliefs[1 - f], axes=([1 - f], [0]))
            target = np.exp(expected - expected.max())
            step = belief ** (1 - h) * (target / target.sum()) ** h
            together.append(step / step.sum())
        assert categorical.mean_field_free_energy(together, log_joint) > before
    in_turns = categorical.cavi_sweep(beliefs, log_joint)  # h = 1, in turns
    assert categorical.mean_field_free_energy(in_turns, log_joint) < before


def test_preflight_bounds_the_mean_field_step(tmp_path):
    model = coupled_model(16.0)
    observations = [{"time_ms": 0.0, "agree": "yes"}]
    unstable = scenario(tmp_path, "unstable", model, observations, dt_ms=2.0 * TAU_MS,
                        duration_ms=20.0)
    with pytest.raises(sim.ScenarioError, match=r"dt_ms: .*stability bound"):
        sim.run(unstable, output=tmp_path / "unstable.h5")
    assert not (tmp_path / "unstable.h5").exists()
    overshoot = scenario(tmp_path, "overshoot", model, observations, dt_ms=1.5 * TAU_MS,
                         duration_ms=30.0)
    with pytest.warns(sim.NumericalWarning):
        sim.run(overshoot, output=tmp_path / "overshoot.h5")


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sim.cli", *args], capture_output=True,
                          text=True, timeout=300)


@pytest.mark.parametrize(("change", "expected"), [
    (lambda m: m["modalities"][0].update(likelihood=m["modalities"][0]["likelihood"][0]),
     r"likelihood: .*expected a list of 2"),
    (lambda m: m["modalities"][0]["likelihood"][0][0].__setitem__(0, 0.9),
     r"likelihood: column \[0, 0\] \(a, a\) sums to"),
    (lambda m: m.update(max_joint_states=3), r"factors: .*over max_joint_states = 3"),
    (lambda m: m.update(causes=["x", "y"]), r"causes: give the causes and prior of each"),
])
def test_bad_joint_models_are_refused(tmp_path, change, expected):
    model = coupled_model(4.0)
    change(model)
    path = scenario(tmp_path, "bad", model, [{"time_ms": 0.0, "agree": "yes"}])
    output = tmp_path / "bad.h5"
    ran = cli("run", path, "-o", str(output))
    assert ran.returncode == 2
    lines = ran.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pcsim: error: "), ran.stderr
    assert re.search(expected, lines[0]), lines[0]
    assert not output.exists() and not output.with_suffix(".png").exists()
