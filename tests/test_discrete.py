"""Discrete causes against independent references: Bayes by multiplying likelihoods in numpy,
the chain rule for -ln p(o), and the free energy written out from its definition."""

from __future__ import annotations

import copy
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
from cli_output import refusal
from hypothesis import given, settings
from hypothesis import strategies as st

import sim
from sim.reference import categorical
from sim.scenario import bundled_scenarios
from sim.scenario_writer import write_scenario

ROOT = Path(__file__).resolve().parents[1]


# --- independent references (probability space, no logs of sums) ----------------------------

def tempered(A: np.ndarray, gamma: float) -> np.ndarray:
    """A**gamma with each column renormalised over outcomes."""
    powered = A**gamma
    return powered / powered.sum(axis=0)


def bayes(D: np.ndarray, events: list) -> tuple[np.ndarray, float]:
    """Posterior and -ln p(o) for events (A, gamma, outcome index or probability vector)."""
    joint = np.array(D, dtype=float)
    for A, gamma, outcome in events:
        tilde = tempered(A, gamma)
        joint = joint * (tilde[outcome] if np.ndim(outcome) == 0 else np.asarray(outcome) @ tilde)
    return joint / joint.sum(), -np.log(joint.sum())


def free_energy(Q: np.ndarray, D: np.ndarray, events: list) -> float:
    """F(Q) = sum_k Q_k (ln Q_k - ln p(o, s=k)), written out."""
    joint = np.array(D, dtype=float)
    for A, gamma, outcome in events:
        tilde = tempered(A, gamma)
        joint = joint * (tilde[outcome] if np.ndim(outcome) == 0 else np.asarray(outcome) @ tilde)
    held = Q > 0
    return float(np.sum(Q[held] * (np.log(Q[held]) - np.log(joint[held]))))


# --- the reference module itself -------------------------------------------------------------

@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31), gamma=st.floats(0.05, 5.0))
def test_reference_equals_sequential_bayes_and_chain_rule(seed, gamma):
    rng = np.random.default_rng(seed)
    K = int(rng.integers(2, 9))
    D = rng.dirichlet(np.ones(K))
    modalities = [rng.dirichlet(np.ones(n), size=K).T for n in (2, 3, 5)]
    events = []
    for _ in range(int(rng.integers(1, 12))):
        A = modalities[int(rng.integers(3))]
        outcome = (rng.dirichlet(np.ones(A.shape[0])) if rng.random() < 0.3
                   else int(rng.integers(A.shape[0])))
        events.append((A, gamma, outcome))
    # sequential updating: each posterior is the prior of the next observation
    belief, surprise = D.copy(), 0.0
    for A, g, outcome in events:
        tilde = tempered(A, g)
        likelihood = tilde[outcome] if np.ndim(outcome) == 0 else outcome @ tilde
        evidence = belief @ likelihood  # p(o_t | o_<t)
        belief = belief * likelihood / evidence
        surprise -= np.log(evidence)
    posterior, reference_surprise = categorical.bayes(D, events)
    np.testing.assert_allclose(posterior, belief, rtol=1e-10, atol=1e-14)
    assert reference_surprise == pytest.approx(surprise, rel=1e-10)
    joint = categorical.log_joint(D, events)
    assert categorical.free_energy(posterior, joint) == pytest.approx(surprise, rel=1e-9)
    other = rng.dirichlet(np.ones(K))
    assert categorical.free_energy(other, joint) >= surprise - 1e-12
    assert categorical.free_energy(other, joint) == pytest.approx(
        free_energy(other, D, events), rel=1e-10)


# --- a random model through the circuit ------------------------------------------------------

DT_MS, TAU_MS, GAP_MS = 0.1, 1.0, 30.0


def random_problem(seed: int):
    rng = np.random.default_rng(seed)
    K = 7
    D = rng.dirichlet(np.full(K, 2.0))
    sizes = (2, 3, 4)
    A = [rng.dirichlet(np.ones(n), size=K).T for n in sizes]
    gamma = rng.uniform(0.3, 3.0, len(sizes))
    observations = []
    events = []  # (time_ms, A, gamma, outcome)
    for i in range(10):
        time_ms = 5.0 + GAP_MS * i
        m = int(rng.integers(len(sizes)))
        if i == 4:
            outcome = rng.dirichlet(np.ones(sizes[m]))  # an uncertain report
            value = outcome.tolist()
        else:
            outcome = int(rng.integers(sizes[m]))
            value = outcome
        observations.append({"time_ms": time_ms, f"m{m}": value})
        events.append((time_ms, A[m], gamma[m], outcome))
    data = {
        "name": f"random_discrete_{seed}",
        "seed": seed,
        "dt_ms": DT_MS,
        "model": {
            "kind": "discrete",
            "tau_belief_ms": TAU_MS,
            "causes": [f"c{k}" for k in range(K)],
            "prior": D,
            "modalities": [{"name": f"m{m}", "outcomes": [f"o{j}" for j in range(n)],
                            "likelihood": A[m]} for m, n in enumerate(sizes)],
        },
        "protocol": {"trials": [{
            "duration_ms": 5.0 + GAP_MS * 10,
            "precision": {f"m{m}": float(g) for m, g in enumerate(gamma)},
            "observations": observations,
        }]},
        "record": {"every_ms": DT_MS},
    }
    return data, D, events


@pytest.fixture(scope="module", params=[11, 12])
def random_run(request, tmp_path_factory):
    data, D, events = random_problem(request.param)
    folder = tmp_path_factory.mktemp(f"discrete{request.param}")
    path = write_scenario(folder / "random.toml", data)
    return sim.run(path, output=folder / "random.h5"), D, events


def evidence_at(events: list, time_ms: float) -> list:
    return [(A, g, o) for t, A, g, o in events if t <= time_ms + 1e-9]


def test_settled_beliefs_are_the_bayes_posterior(random_run):
    result, D, events = random_run
    time_ms = result.time * 1e3
    Q = result["causes/belief"]
    for index, (t, *_) in enumerate(events):
        before_next = (events[index + 1][0] if index + 1 < len(events) else time_ms[-1] + DT_MS)
        last = np.searchsorted(time_ms, before_next - 1e-9) - 1  # the sample just before
        posterior, surprise = bayes(D, evidence_at(events, t))
        np.testing.assert_allclose(Q[last], posterior, rtol=0, atol=1e-6)
        assert result.free_energy[last] == pytest.approx(surprise, abs=1e-6)
    posterior, surprise = bayes(D, evidence_at(events, np.inf))
    np.testing.assert_allclose(result.trials["exact_posterior"][0], posterior, atol=1e-12)
    assert result.trials["surprise"][0] == pytest.approx(surprise, abs=1e-10)
    np.testing.assert_allclose(result.trials["final_belief"][0], posterior, atol=1e-6)


def test_free_energy_bounds_surprise_and_never_rises_between_observations(random_run):
    result, D, events = random_run
    time_ms = result.time * 1e3
    Q = result["causes/belief"]
    F = result.free_energy
    np.testing.assert_allclose(Q.sum(axis=1), 1.0, atol=1e-12)
    arrivals = np.array([t for t, *_ in events])
    for sample in range(0, len(time_ms), 7):
        evidence = evidence_at(events, time_ms[sample])
        _, surprise = bayes(D, evidence)
        assert F[sample] == pytest.approx(free_energy(Q[sample], D, evidence), abs=1e-9)
        assert result["surprise"][sample] == pytest.approx(surprise, abs=1e-9)
    surprises = np.array([bayes(D, evidence_at(events, t))[1] for t in time_ms])
    assert np.all(surprises - 1e-12 <= F)
    # between arrivals F only falls (dt/tau = 0.1 <= 1)
    segment = np.searchsorted(arrivals, time_ms + 1e-9)
    rises = np.diff(F)[segment[1:] == segment[:-1]]
    assert rises.max() <= 1e-12


# --- precision --------------------------------------------------------------------------------

def two_modality_data(gammas: list[dict], reset: str = "beliefs") -> tuple[dict, np.ndarray, list]:
    rng = np.random.default_rng(5)
    D = rng.dirichlet(np.ones(4))
    A = [rng.dirichlet(np.ones(3), size=4).T, rng.dirichlet(np.ones(2), size=4).T]
    observations = [{"time_ms": 1.0, "see": 2, "hear": "o1"}, {"time_ms": 3.0, "see": 0},
                    {"time_ms": 5.0, "hear": [0.3, 0.7]}]
    data = {
        "name": "gamma", "dt_ms": 0.1,
        "model": {"kind": "discrete", "tau_belief_ms": 1.0, "causes": 4, "prior": D,
                  "modalities": [{"name": "see", "outcomes": 3, "likelihood": A[0]},
                                 {"name": "hear", "outcomes": ["o0", "o1"], "likelihood": A[1],
                                  "precision": 2.0}]},
        "protocol": {"reset": reset, "trials": [
            {"duration_ms": 40.0, "observations": observations, **({"precision": g} if g else {})}
            for g in gammas]},
        "record": {"every_ms": 1.0},
    }
    outcomes = [(0, 2), (1, 1), (0, 0), (1, np.array([0.3, 0.7]))]
    return data, D, [(A[m], m, o) for m, o in outcomes]


def test_precision_is_bayes_with_tempered_likelihoods(tmp_path):
    gammas = [{"see": 0.25}, {"see": 3.0, "hear": 0.5}, {}]
    data, D, events = two_modality_data(gammas)
    result = sim.run(write_scenario(tmp_path / "gamma.toml", data), output=tmp_path / "g.h5")
    final = result.trials["final_belief"]
    for trial, given_gamma in enumerate(gammas):
        gamma = {"see": 1.0, "hear": 2.0} | given_gamma  # unnamed modalities: the model's value
        names = ("see", "hear")
        posterior, surprise = bayes(D, [(A, gamma[names[m]], o) for A, m, o in events])
        np.testing.assert_allclose(final[trial], posterior, atol=1e-6)
        assert result.trials["final_free_energy"][trial] == pytest.approx(surprise, abs=1e-6)
        assert result.trials["precision/see"][trial] == gamma["see"]
    untempered, _ = bayes(D, [(A, 1.0, o) for A, _, o in events])
    assert np.abs(final[0] - untempered).max() > 1e-2  # precision did change the percept


def test_evidence_carries_over_without_reset(tmp_path):
    data, D, events = two_modality_data([{"see": 0.5}, {"hear": 0.2}], reset="none")
    result = sim.run(write_scenario(tmp_path / "carry.toml", data), output=tmp_path / "c.h5")
    first = [(A, 0.5 if m == 0 else 2.0, o) for A, m, o in events]
    second = [(A, 1.0 if m == 0 else 0.2, o) for A, m, o in events]
    posterior, _ = bayes(D, first + second)
    np.testing.assert_allclose(result.trials["final_belief"][1], posterior, atol=1e-6)
    np.testing.assert_allclose(result.trials["exact_posterior"][1], posterior, atol=1e-12)


# --- bundled scenarios ----------------------------------------------------------------------

def scenario_problem(path: Path, trial: int) -> tuple[np.ndarray, list]:
    data = tomllib.loads(path.read_text())
    model = data["model"]
    D = np.array(model["prior"])
    modalities = {m["name"]: (np.array(m["likelihood"]), m["outcomes"])
                  for m in model["modalities"]}
    spec = data["protocol"]["trials"][trial]
    events = []
    for obs in spec["observations"]:
        for name, value in obs.items():
            if name != "time_ms":
                A, outcomes = modalities[name]
                gamma = spec.get("precision", {}).get(name, 1.0)
                events.append((A, gamma, outcomes.index(value)))
    return D, events


def test_creak_settles_on_bayes_and_plots(tmp_path):
    path = bundled_scenarios()["perception/creak"]
    result = sim.run(path, output=tmp_path / "creak.h5")
    D, events = scenario_problem(path, 0)
    posterior, surprise = bayes(D, events)
    names = list(result.group_attrs["causes"]["names"])
    assert names[:2] == ["wind", "house settling"] and len(names) == 6
    np.testing.assert_allclose(result["causes/belief"][-1], posterior, atol=1e-4)
    assert result.free_energy[-1] == pytest.approx(surprise, abs=1e-4)
    Q = result["causes/belief"]
    assert np.argmax(Q[0]) != np.argmax(Q[-1])  # the belief moved
    from sim.report.figures import plot

    assert plot(result, tmp_path / "creak.png").stat().st_size > 10_000


def test_half_asleep_holds_a_percept_the_ideal_observer_would_not(tmp_path):
    path = bundled_scenarios()["perception/creak_half_asleep"]
    result = sim.run(path, output=tmp_path / "half.h5")
    awake, asleep = result.trials["final_belief"]
    D, events = scenario_problem(path, 1)
    ideal, _ = bayes(D, [(A, 1.0, o) for A, _, o in events])  # the true precision
    np.testing.assert_allclose(asleep, bayes(D, events)[0], atol=1e-4)
    percept = int(np.argmax(asleep))
    assert percept != int(np.argmax(awake))
    assert ideal[percept] < 0.05 and asleep[percept] > 0.2


# --- bad input -------------------------------------------------------------------------------

def base_data() -> dict:
    return {
        "name": "bad", "dt_ms": 0.1,
        "model": {"kind": "discrete", "tau_belief_ms": 1.0, "causes": ["a", "b", "c"],
                  "prior": [0.5, 0.3, 0.2],
                  "modalities": [{"name": "sound", "outcomes": ["x", "y"],
                                  "likelihood": [[0.9, 0.5, 0.2], [0.1, 0.5, 0.8]]}]},
        "protocol": {"trials": [{"duration_ms": 5.0,
                                 "observations": [{"time_ms": 1.0, "sound": "x"}]}]},
    }


def mutate(path: str, value):
    def apply(data: dict) -> dict:
        data = copy.deepcopy(data)
        node = data
        keys = path.split(".")
        for key in keys[:-1]:
            node = node[int(key)] if key.isdigit() else node[key]
        node[int(keys[-1]) if keys[-1].isdigit() else keys[-1]] = value
        return data

    return apply


BAD = {
    "column not summing to 1": (mutate("model.modalities.0.likelihood.1", [0.1, 0.4, 0.8]),
                                "column 1 (b) sums to 0.9"),
    "zero prior": (mutate("model.prior", [0.8, 0.2, 0.0]), "prior D entry 2 is 0.0"),
    "negative prior": (mutate("model.prior", [1.2, -0.4, 0.2]), "entry 1 is -0.4"),
    "prior not summing to 1": (mutate("model.prior", [0.5, 0.3, 0.3]), "sums to 1.1"),
    "zero likelihood": (mutate("model.modalities.0.likelihood",
                               [[1.0, 0.5, 0.2], [0.0, 0.5, 0.8]]), "p(y | a) is 0.0"),
    "outcome index out of range": (mutate("protocol.trials.0.observations.0.sound", 2),
                                   "outcome index 2 is out of range"),
    "unknown outcome name": (mutate("protocol.trials.0.observations.0.sound", "z"),
                             "unknown outcome 'z'"),
    "soft outcome not a distribution": (
        mutate("protocol.trials.0.observations.0.sound", [0.5, 0.6]), "outcome sums to 1.1"),
    "prior size disagrees with causes": (mutate("model.prior", [0.5, 0.5]),
                                         "expected a list of 3 probabilities"),
    "likelihood rows disagree with outcomes": (
        mutate("model.modalities.0.outcomes", ["x", "y", "w"]), "expected 3 rows of 3 numbers"),
    "likelihood columns disagree with causes": (
        mutate("model.modalities.0.likelihood", [[0.9, 0.1], [0.1, 0.9]]),
        "expected 2 rows of 3 numbers"),
    "causes disagree with the prior": (
        mutate("model.causes", ["a", "b", "c", "d"]), "expected a list of 4 probabilities"),
    "repeated cause": (mutate("model.causes", ["a", "b", "a"]), "'a' appears twice"),
    "unknown modality in precision": (
        mutate("protocol.trials.0.precision", {"sight": 2.0}), "no modality 'sight'"),
    "observation after the trial": (
        mutate("protocol.trials.0.observations.0.time_ms", 5.0), "not before the trial's end"),
    "observation without outcome": (
        mutate("protocol.trials.0.observations", [{"time_ms": 1.0}]), "at least one modality"),
    "step beyond the stability bound": (mutate("dt_ms", 2.5),
                                        "dt_ms: 2.5 ms is beyond the Euler stability bound"),
    "exponential Euler takes the same step": (
        lambda data: {**mutate("dt_ms", 2.5)(data), "method": "exponential_euler"},
        "dt_ms: 2.5 ms is beyond the Euler stability bound"),
}


def test_step_between_tau_and_twice_tau_warns_overshoots_and_converges(tmp_path):
    """h = dt/tau in (1, 2): stable, but Q overshoots the posterior (F can rise): a warning."""
    data = mutate("dt_ms", 1.5)(base_data())
    data["protocol"]["trials"][0]["duration_ms"] = 30.0
    path = write_scenario(tmp_path / "coarse.toml", data)
    with pytest.warns(sim.NumericalWarning, match="uses 75% of the Euler stability bound"):
        result = sim.run(path, output=tmp_path / "coarse.h5")
    exact = result.trials["exact_posterior"][0]
    np.testing.assert_allclose(result.trials["final_belief"][0], exact, atol=1e-6)
    # after the observation (t = 1 ms) Q_a - p(a|o) changes sign on every step: 1 - h = -0.5
    settling = result["causes/belief"][result.time > 1.2e-3][:6, 0] - exact[0]
    assert np.all(settling[:-1] * settling[1:] < 0)


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_a_clear_scenario_error(tmp_path, case):
    change, message = BAD[case]
    assert message in refusal(tmp_path, change(base_data()))


@pytest.mark.parametrize("case", ["column not summing to 1", "outcome index out of range"])
def test_cli_reports_bad_input_in_one_line(tmp_path, case):
    change, message = BAD[case]
    path = write_scenario(tmp_path / "bad.toml", change(base_data()))
    done = subprocess.run([sys.executable, "-m", "sim.cli", "run", str(path), "-o",
                           str(tmp_path / "bad.h5")], capture_output=True, text=True, cwd=ROOT,
                          timeout=120)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in done.stderr
