"""Weights learned over trials (issue 9): the learned W spans the true W's column space, the
reconstruction error falls, weight decay has the fixed point of its closed form, learning off
(phases) leaves weights, priors and precisions bitwise as they were, snapshots and their size
preflight, and bad input refused in one line."""

from __future__ import annotations

import math
import tomllib

import numpy as np
import pytest
import scipy.linalg
from cli_output import error_line

import sim
from sim.cli import main
from sim.scenario import bundled_scenarios
from sim.scenario_writer import write_scenario


def bundled(name: str) -> dict:
    return tomllib.loads(bundled_scenarios()[name].read_text())


def true_weights(table: dict) -> np.ndarray:
    return np.array(table["protocol"]["conditions"][0]["stimulus"]["weights"])


@pytest.fixture(scope="module")
def weights_run(tmp_path_factory):
    path = tmp_path_factory.mktemp("weights") / "weights.h5"
    return sim.run("learning/weights", output=path)


# --- the experiment ---------------------------------------------------------------------------

def test_learned_weights_span_the_true_column_space(weights_run):
    W_true = true_weights(bundled("learning/weights"))
    learned = weights_run["levels/causes/weights_final"]
    angles = np.degrees(scipy.linalg.subspace_angles(learned, W_true))
    assert angles.max() < 10.0
    initial = weights_run["levels/causes/weights_initial"]
    assert np.degrees(scipy.linalg.subspace_angles(initial, W_true)).max() > 45.0
    # the learning curve's column is that angle, at every snapshot
    snapshots = weights_run.snapshots
    for row, weights in zip(snapshots["trial"], snapshots["levels/causes/weights"],
                            strict=True):
        expected = np.degrees(scipy.linalg.subspace_angles(weights, W_true)).max()
        assert weights_run.trials["weight_angle"][row] == pytest.approx(expected, abs=1e-9)


def test_the_reconstruction_error_falls(weights_run):
    trials = weights_run.trials
    train = np.flatnonzero(trials["condition"] == "train")
    error = trials["reconstruction_error"]
    assert error[train[:20]].mean() > 2 * error[train[-20:]].mean()


def test_the_reconstruction_error_is_input_against_the_prediction(weights_run):
    """In the test phase W is fixed at weights_final: (x - W mu)^2 from the recorded input and
    the final beliefs, in NumPy."""
    trials = weights_run.trials
    W = weights_run["levels/causes/weights_final"]
    inputs, time = weights_run.level("input")["input"], weights_run.time
    for row in np.flatnonzero(trials["condition"] == "test"):
        within = (time > trials["t_start"][row] - 1e-9) & (time < trials["t_stop"][row] - 1e-9)
        x = inputs[within][-1]
        mu = trials["final_belief/causes"][row]
        assert trials["reconstruction_error"][row] == pytest.approx(
            np.mean((x - W @ mu) ** 2), rel=1e-12)
        assert trials["learned"][row] == ""


def test_the_test_phase_freezes_the_weights(weights_run):
    snapshots, trials = weights_run.snapshots, weights_run.trials
    test = np.flatnonzero(trials["condition"] == "test")
    before = list(snapshots["trial"]).index(test[0] - 1)
    frozen = snapshots["levels/causes/weights"][before:]
    assert len(frozen) >= 2 and all(np.array_equal(w, frozen[0]) for w in frozen)
    assert np.array_equal(frozen[0], weights_run["levels/causes/weights_final"])
    assert np.all(trials["weight_angle"][test] == trials["weight_angle"][test[0]])


def test_linear_gaussian_samples_follow_the_model(tmp_path):
    """Each trial holds one x = W v + sigma n: over many trials the inputs' covariance is
    W W' + sigma^2 I (a 2-input world, so 400 trials pin it within a few percent)."""
    W = np.array([[1.0], [0.5]])
    table = {
        "name": "samples", "dt_ms": 0.5,
        "model": {"errors": "instantaneous", "tau_belief_ms": 2.0,
                  "levels": [{"name": "x", "size": 2}, {"name": "v", "size": 1, "weights": 1.0}]},
        "protocol": {"reset": "beliefs", "conditions": [{
            "name": "draw", "count": 400, "duration_ms": 0.5,
            "stimulus": {"kind": "linear_gaussian", "weights": W.tolist(),
                         "sample_noise_std": 0.3}}]},
        "record": {"every_ms": 0.5, "variables": []},
    }
    result = sim.run(write_scenario(tmp_path / "s.toml", table), output=tmp_path / "s.h5")
    x = result.level("x")["input"]
    assert len(x) == 400 and len(np.unique(x[:, 0])) == 400
    np.testing.assert_allclose(np.cov(x.T), W @ W.T + 0.09 * np.eye(2), atol=0.15)


# --- weight decay -----------------------------------------------------------------------------

def tiny(decay: float | None, tau_weights_ms: float = 20.0, duration_ms: float = 1500.0,
         **learning) -> dict:
    """One input x = 1.5 (Pi_x = 2), one cause (prior N(0, 1)), w starting at 0.5."""
    rules: dict = {"tau_weights_ms": tau_weights_ms, **learning}
    if decay is not None:
        rules["weight_prior_variance"] = decay
    return {
        "name": "tiny", "dt_ms": 0.1,
        "model": {"errors": "instantaneous", "tau_belief_ms": 1.0, "learning": rules,
                  "levels": [{"name": "x", "size": 1, "precision": 2.0},
                             {"name": "v", "size": 1, "weights": 0.5}],
                  "prior": {"mean": 0.0, "precision": 1.0}},
        "protocol": {"trials": [{"duration_ms": duration_ms,
                                 "stimulus": {"kind": "constant", "value": 1.5}}]},
        "record": {"every_ms": 10.0},
    }


def test_weight_decay_reaches_its_closed_form_fixed_point(tmp_path):
    """At the joint fixed point mu = Pi_x w x / (Pi_x w^2 + Pi_p) and eps_x mu = w / sigma^2,
    so w^2 = (Pi_x |x| sigma sqrt(Pi_p) - Pi_p) / Pi_x."""
    pi_x, pi_p, x, variance = 2.0, 1.0, 1.5, 2.0
    expected = math.sqrt((pi_x * x * math.sqrt(variance * pi_p) - pi_p) / pi_x)
    result = sim.run(write_scenario(tmp_path / "d.toml", tiny(variance)), output=tmp_path / "d.h5")
    w = result["levels/v/weights_final"][0, 0]
    assert w == pytest.approx(expected, rel=1e-6)
    # without decay the same data push w on and on (no finite fixed point)
    free = sim.run(write_scenario(tmp_path / "f.toml", tiny(None)), output=tmp_path / "f.h5")
    assert free["levels/v/weights_final"][0, 0] > 1.5 * expected


def test_the_weights_prior_is_part_of_the_free_energy(tmp_path):
    """F with decay = F without (same state) + 1/2 w^2 / sigma^2: one step of learning with a
    huge tau leaves the states equal to 1e-6 of the difference."""
    slow = {"tau_weights_ms": 1e9, "duration_ms": 1.0}
    with_prior = sim.run(write_scenario(tmp_path / "a.toml", tiny(4.0, **slow)),
                         output=tmp_path / "a.h5")
    without = sim.run(write_scenario(tmp_path / "b.toml", tiny(None, **slow)),
                      output=tmp_path / "b.h5")
    w = with_prior["levels/v/weights_final"][0, 0]
    gap = with_prior.trials["final_free_energy"][0] - without.trials["final_free_energy"][0]
    assert gap == pytest.approx(0.5 * w**2 / 4.0, rel=1e-6)


# --- phases: learning off is bitwise ----------------------------------------------------------

def phased(coupling: str, learn: list) -> dict:
    """Two levels with every learning mechanism on, relaxing errors, one trial per entry of
    ``learn`` (a trial's ``learn`` field, or None for the default), snapshots after each."""
    trials = []
    for index, which in enumerate(learn):
        trial = {"duration_ms": 20.0, "stimulus": {"kind": "constant",
                                                  "value": [1.0 + index, -0.5, 0.3]}}
        if which is not None:
            trial["learn"] = which
        trials.append(trial)
    return {
        "name": "phases", "dt_ms": 0.1, "seed": 2,
        "model": {"coupling": coupling, "tau_belief_ms": 5.0, "tau_error_ms": 1.0,
                  "learning": {"tau_weights_ms": 50.0, "tau_precision_ms": 50.0,
                               "tau_prior_ms": 50.0, "weight_prior_variance": 4.0},
                  "levels": [{"name": "x", "size": 3, "precision": 1.5},
                             {"name": "v", "size": 2,
                              "weights": {"kind": "random", "scale": 1.0}}],
                  "prior": {"mean": 0.2, "precision": 1.0}},
        "protocol": {"reset": "beliefs", "trials": trials},
        "record": {"every_ms": 1.0, "snapshots_every": 1},
    }


LEARNED = {"weights": ["levels/v/weights"],
           "precision": ["levels/x/precision", "levels/v/precision"],
           "prior": ["levels/v/prior_mean"]}


@pytest.mark.parametrize("coupling", ["dense", "synapses"])
def test_learning_off_leaves_every_parameter_bitwise(tmp_path, coupling):
    """Trial 1 learns nothing, trial 2 only the weights, trial 3 only prior and precision:
    what a trial does not learn is, bitwise, what the trial before left."""
    table = phased(coupling, [None, False, ["weights"], ["prior", "precision"]])
    result = sim.run(write_scenario(tmp_path / "p.toml", table), output=tmp_path / "p.h5")
    snaps = result.snapshots
    assert list(snaps["trial"]) == [0, 1, 2, 3]
    learns = [set(LEARNED), set(), {"weights"}, {"prior", "precision"}]
    for trial in (1, 2, 3):
        for parameter, paths in LEARNED.items():
            for path in paths:
                before, after = snaps[path][trial - 1], snaps[path][trial]
                if parameter in learns[trial]:
                    assert not np.array_equal(before, after), (trial, path)
                else:
                    assert before.tobytes() == after.tobytes(), (trial, path)
    assert list(result.trials["learned"]) == ["weights,precision,prior", "", "weights",
                                              "precision,prior"]


def test_a_trial_that_learns_is_the_same_with_phases_or_without(tmp_path):
    """The switch is 1 in a learning trial: the first trial of a phased run equals the same
    trial run alone, where no switch exists."""
    alone = sim.run(write_scenario(tmp_path / "a.toml", phased("dense", [None])),
                    output=tmp_path / "a.h5")
    both = sim.run(write_scenario(tmp_path / "b.toml", phased("dense", [None, False])),
                   output=tmp_path / "b.h5")
    for paths in LEARNED.values():
        for path in paths:
            np.testing.assert_array_equal(alone.snapshots[path][0], both.snapshots[path][0])


# --- snapshots --------------------------------------------------------------------------------

def test_snapshots_every_n_trials_and_the_last(tmp_path):
    table = phased("dense", [None] * 5)
    table["record"]["snapshots_every"] = 2
    result = sim.run(write_scenario(tmp_path / "s.toml", table), output=tmp_path / "s.h5")
    assert list(result.snapshots["trial"]) == [1, 3, 4]
    assert result.snapshots["levels/v/weights"].shape == (3, 3, 2)
    np.testing.assert_array_equal(result.snapshots["levels/v/weights"][-1],
                                  result["levels/v/weights_final"])


def test_snapshots_over_their_limit_are_refused(tmp_path, capsys):
    table = phased("dense", [None] * 5)
    table["record"]["snapshots_limit_mb"] = 1e-4  # 100 bytes; 5 snapshots of 14 numbers > it
    path = write_scenario(tmp_path / "big.toml", table)
    output = tmp_path / "big.h5"
    assert main(["run", str(path), "-o", str(output), "--no-plot"]) == 2
    line = error_line(capsys)
    assert "record.snapshots_every" in line and "snapshots_limit_mb" in line
    assert not output.exists() and not list(tmp_path.glob("*.h5"))
    table["record"]["snapshots_limit_mb"] = 1e-3  # 5 x 14 x 8 bytes = 560 bytes fit
    assert sim.run(write_scenario(path, table), output=output).attrs["status"] == "complete"


# --- bad input --------------------------------------------------------------------------------

BAD = [
    ("tau_weights_ms", -1.0, "learning.tau_weights_ms"),
    ("tau_weights_ms", 0.0, "learning.tau_weights_ms"),
    ("tau_weights_ms", float("inf"), "learning.tau_weights_ms"),
    ("tau_weights_ms", float("nan"), "learning.tau_weights_ms"),
    ("weight_prior_variance", -2.0, "learning.weight_prior_variance"),
    ("weight_prior_variance", 0.0, "learning.weight_prior_variance"),
    ("weight_prior_variance", float("inf"), "learning.weight_prior_variance"),
    ("tau_precision_ms", -5.0, "learning.tau_precision_ms"),
    ("tau_precision_ms", 0.0, "learning.tau_precision_ms"),
    ("tau_precision_ms", float("nan"), "learning.tau_precision_ms"),
]


@pytest.mark.parametrize(("key", "value", "field"), BAD)
def test_a_bad_learning_rate_is_refused(tmp_path, capsys, key, value, field):
    table = tiny(1.0)
    table["model"]["learning"][key] = value
    path = write_scenario(tmp_path / "bad.toml", table)
    assert main(["run", str(path), "-o", str(tmp_path / "bad.h5"), "--no-plot"]) == 2
    assert field in error_line(capsys)
    assert not list(tmp_path.glob("*.h5"))


def test_decay_with_no_weights_to_decay_is_refused(tmp_path, capsys):
    table = tiny(1.0)
    del table["model"]["learning"]["tau_weights_ms"]
    path = write_scenario(tmp_path / "bad.toml", table)
    assert main(["run", str(path), "-o", str(tmp_path / "bad.h5"), "--no-plot"]) == 2
    line = error_line(capsys)
    assert "learning.weight_prior_variance" in line and "tau_weights_ms" in line
    assert not list(tmp_path.glob("*.h5"))


@pytest.mark.parametrize(("learn", "expected"), [
    (["weigths"], "'weigths' is not learned in this scenario"),
    (["prior"], "'prior' is not learned in this scenario"),  # not switched on here
    ("weights", "expected true, false or a list"),
    ([1], "expected true, false or a list"),
])
def test_a_phase_naming_an_unknown_parameter_is_refused(tmp_path, capsys, learn, expected):
    table = tiny(1.0)
    table["protocol"]["trials"][0]["learn"] = learn
    path = write_scenario(tmp_path / "bad.toml", table)
    assert main(["run", str(path), "-o", str(tmp_path / "bad.h5"), "--no-plot"]) == 2
    line = error_line(capsys)
    assert "protocol.trials[0].learn" in line and expected in line
    assert not list(tmp_path.glob("*.h5"))


@pytest.mark.parametrize("every", [0, -1, 1.5, "all"])
def test_a_bad_snapshot_interval_is_refused(tmp_path, capsys, every):
    table = tiny(1.0)
    table["record"]["snapshots_every"] = every
    path = write_scenario(tmp_path / "bad.toml", table)
    assert main(["run", str(path), "-o", str(tmp_path / "bad.h5"), "--no-plot"]) == 2
    assert "record.snapshots_every" in error_line(capsys)
    assert not list(tmp_path.glob("*.h5"))


def test_snapshots_of_nothing_learned_are_refused(tmp_path, capsys):
    table = tiny(None)
    del table["model"]["learning"]
    table["record"]["snapshots_every"] = 1
    path = write_scenario(tmp_path / "bad.toml", table)
    assert main(["run", str(path), "-o", str(tmp_path / "bad.h5"), "--no-plot"]) == 2
    assert "record.snapshots_every: nothing is learned" in error_line(capsys)


# --- across trials: against a NumPy loop ------------------------------------------------------

def test_weights_and_precisions_carry_over_while_beliefs_reset(tmp_path):
    """Four trials that reset the beliefs (errors to 0) while the weights and every precision
    learn each step: pcsim's final states equal those of a plain NumPy loop of the same scheme
    (``sim.bench.learning``), which carries W and Pi from trial to trial and restarts mu."""
    import h5py

    from sim.bench.learning import LearningFamily, learning_table
    from sim.scenario import load_scenario

    path = write_scenario(tmp_path / "l.toml", learning_table("carry", 800, [6, 3], trials=4))
    scenario = load_scenario(path)
    sim.run(path, output=tmp_path / "l.h5")
    expected = LearningFamily.reference(scenario, 800)()
    with h5py.File(tmp_path / "l.h5", "r") as file:
        found = LearningFamily.states(file, scenario)
        initial = file["levels/level1/weights_initial"][()]
    assert set(found) == set(expected)
    for key, value in expected.items():
        np.testing.assert_allclose(found[key], value, rtol=0, atol=1e-12, err_msg=key)
    assert np.abs(found["weights/level1"] - initial).max() > 1e-3  # they did learn
