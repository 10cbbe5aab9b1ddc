"""Act on Q (``[readouts.decision]``, sim/readouts/decision.py): the choice is the exact
posterior's most probable cause (discrete), a CAVI fixed point's per factor (mean-field), or
the sign of the final belief (a linear hierarchical model), and the decision time equals a
NumPy loop's stabilisation time on Q recorded every step, to within one step; under the
threshold rule (Posner's reaction time) the first step a loop over the recorded Q finds above
the threshold, and the largest unit then; perception/creak says it as its headline. Posner's
compiled decision times equal the runtime's bit for bit (tests/test_compiled_runs.py)."""

from __future__ import annotations

import contextlib
import io
import math
import tomllib
from pathlib import Path

import numpy as np
import pytest

import sim
from sim.cli import main
from sim.scenario import bundled_scenarios
from sim.scenario_writer import write_scenario

CREAK_DT_MS = 0.5
CREAK_TOLERANCE = 1e-4  # scenarios/perception/creak.toml
CHECK_ABOVE = 0.1


def cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def stabilised_ms(time_s: np.ndarray, q: np.ndarray, t_start_s: float, t_stop_s: float,
                  dt_ms: float, tolerance: float, onset_ms: float = 0.0) -> float:
    """The first in-trial time (ms, from the onset) from which max_k |dQ_k|/dt stays below
    ``tolerance`` to the trial's end, from Q recorded every step; NaN if none."""
    inside = np.flatnonzero((time_s >= t_start_s - 1e-12) & (time_s < t_stop_s - 1e-12))
    times_ms = (time_s[inside] - t_start_s) * 1e3
    decided = None
    for n in range(1, len(inside)):
        if times_ms[n] < onset_ms - 1e-9:
            continue
        rate = max(abs(q[inside[n], k] - q[inside[n - 1], k]) for k in range(q.shape[1])) / dt_ms
        if rate >= tolerance:
            decided = None
        elif decided is None:
            decided = times_ms[n]
    return math.nan if decided is None else decided - onset_ms


@pytest.fixture(scope="module")
def creak(tmp_path_factory) -> tuple[sim.Result, str]:
    """perception/creak, Q recorded every step; what ``pcsim run`` printed."""
    output = tmp_path_factory.mktemp("creak") / "creak.h5"
    code, out, _ = cli("run", "perception/creak", "-o", str(output), "--no-plot",
                       "--set", f"record.every_ms={CREAK_DT_MS}")
    assert code == 0
    return sim.load(output), out


def test_the_choice_is_the_exact_posteriors_most_probable_cause(creak):
    result, _ = creak
    trials, causes = result.trials, [str(c) for c in result.group_attrs["causes"]["names"]]
    exact = np.asarray(trials["exact_posterior"])[0]
    first, second = np.argsort(exact)[::-1][:2]
    assert str(trials["decision"][0]) == causes[first]
    assert str(trials["runner_up"][0]) == causes[second]
    assert bool(trials["check_runner_up"][0]) == (trials["runner_up_p"][0] > CHECK_ABOVE)
    # the probabilities are Q's at the decision time, as recorded then
    time_ms = (np.asarray(result.time) - trials["t_start"][0]) * 1e3
    at = int(np.argmin(np.abs(time_ms - trials["decision_time"][0])))
    q = np.asarray(result["causes/belief"])[at]
    assert trials["decision_p"][0] == pytest.approx(q[first], abs=1e-12)
    assert trials["runner_up_p"][0] == pytest.approx(q[second], abs=1e-12)


def test_the_decision_time_is_a_numpy_loops_stabilisation_time(creak):
    result, _ = creak
    trials = result.trials
    expected = stabilised_ms(np.asarray(result.time), np.asarray(result["causes/belief"]),
                             trials["t_start"][0], trials["t_stop"][0], CREAK_DT_MS,
                             CREAK_TOLERANCE)
    assert not math.isnan(expected) and expected > 700.0  # after the last observation
    assert abs(trials["decision_time"][0] - expected) <= CREAK_DT_MS + 1e-9


def test_creak_says_what_to_act_on_as_its_headline(creak):
    result, printed = creak
    trials = result.trials
    sentence = (f"{trials['decision'][0]} ({trials['decision_p'][0]:.2f}); check the "
                f"{trials['runner_up'][0]} ({trials['runner_up_p'][0]:.2f})")
    assert bool(trials["check_runner_up"][0])
    row = next(line for line in printed.splitlines() if line.strip().startswith("act on Q"))
    assert row.rstrip().endswith(sentence)
    code, shown, _ = cli("show", str(result.path))
    assert code == 0 and sentence in shown


def test_q_that_never_settles_has_no_decision_time_and_says_why(tmp_path):
    """Ended 10 ms after the meow (tau 20 ms): Q still moves by far more than 1e-6 per ms."""
    output = tmp_path / "short.h5"
    code, _, _ = cli("run", "perception/creak", "-o", str(output), "--no-plot",
                     "--set", "protocol.trials.0.duration_ms=710",
                     "--set", "readouts.decision.tolerance_per_ms=1e-6")
    assert code == 0
    result = sim.load(output)
    assert math.isnan(result.trials["decision_time"][0])
    assert "never stabilised" in result.dataset_attrs["trials/decision_time"]["nan_means"]
    final = np.asarray(result.trials["final_belief"])[0]  # the choice read at the end
    assert result.trials["decision_p"][0] == pytest.approx(final.max(), abs=1e-12)


LINEAR_DT_MS = 0.1
LINEAR_TOLERANCE = 1e-3


def linear(stimuli: list[float]) -> dict:
    """One input, two linear causes (N(0, 1) prior), a trial per stimulus (beliefs reset)."""
    return {
        "name": "linear_decision", "seed": 0, "dt_ms": LINEAR_DT_MS, "method": "euler",
        "model": {"tau_belief_ms": 1.0,
                  "levels": [{"name": "input", "size": 1, "precision": 1.0},
                             {"name": "cause", "size": 2, "weights": [[1.0, 0.5]]}],
                  "prior": {"mean": 0.0, "precision": 1.0}},
        "protocol": {"reset": "beliefs", "trials": [
            {"name": f"x={x:g}", "duration_ms": 40.0,
             "stimulus": {"kind": "constant", "value": x}} for x in stimuli]},
        "record": {"every_ms": LINEAR_DT_MS},
        "readouts": {"decision": {"tolerance_per_ms": LINEAR_TOLERANCE, "level": "cause"}},
    }


def test_the_hierarchical_choice_is_the_sign_of_the_final_belief(tmp_path):
    path = write_scenario(tmp_path / "linear.toml", linear([-1.0, 2.0, -0.5]))
    result = sim.run(path, output=tmp_path / "linear.h5")
    trials = result.trials
    final = np.asarray(trials["final_belief/cause"])[:, 0]
    assert np.all(final != 0)
    assert [str(c) for c in trials["decision"]] == ["positive" if v > 0 else "negative"
                                                    for v in final]
    belief = np.asarray(result["levels/cause/belief"])
    for k in range(len(final)):
        expected = stabilised_ms(np.asarray(result.time), belief, trials["t_start"][k],
                                 trials["t_stop"][k], LINEAR_DT_MS, LINEAR_TOLERANCE)
        assert not math.isnan(expected)
        assert abs(trials["decision_time"][k] - expected) <= LINEAR_DT_MS + 1e-9


def test_regions_of_a_belief_unit_are_the_scenarios(tmp_path):
    data = linear([-1.0, 2.0])
    data["readouts"]["decision"].update(unit=1, bounds=[-0.1, 0.1],
                                        labels=["left", "centre", "right"])
    result = sim.run(write_scenario(tmp_path / "regions.toml", data),
                     output=tmp_path / "regions.h5")
    trials = result.trials
    value = np.asarray(trials["decision_value"])
    assert [str(c) for c in trials["decision"]] == [
        "left" if v < -0.1 else "right" if v >= 0.1 else "centre" for v in value]
    time_ms, belief = np.asarray(result.time) * 1e3, np.asarray(result["levels/cause/belief"])
    for k, v in enumerate(value):  # unit 1's belief as recorded at the decision time
        at = int(np.argmin(np.abs(time_ms - (trials["t_start"][k] * 1e3
                                             + trials["decision_time"][k]))))
        assert v == pytest.approx(belief[at, 1], abs=1e-12)


@pytest.mark.parametrize("field, value, expected", [
    ("tolerance_per_ms", 0, "readouts.decision.tolerance_per_ms"),
    ("labels", ["a", "b", "c"], "readouts.decision.labels"),
    ("bounds", [1.0, 0.0], "readouts.decision.bounds"),
    ("level", "nowhere", "readouts.decision.level"),
    ("rule", "sometimes", "readouts.decision.rule"),
    ("choose", "best", "readouts.decision.choose"),
    ("target", 0, "readouts.decision.target"),  # only with choose = "largest"
    ("threshold", 0.5, "readouts.decision.threshold: the threshold rule's field"),
    ("rule", "threshold", 'readouts.decision.tolerance_per_ms: the stable rule\'s field; with '
                          'rule = "threshold" expected threshold'),
])
def test_bad_settings_are_one_line_errors(tmp_path, field, value, expected):
    data = linear([1.0])
    data["readouts"]["decision"][field] = value
    path = write_scenario(tmp_path / "bad.toml", data)
    code, _, err = cli("run", str(path), "-o", str(tmp_path / "bad.h5"), "--no-plot")
    assert code == 2 and expected in err and len(err.strip().splitlines()) == 1, err
    assert not Path(tmp_path / "bad.h5").exists()


def test_a_discrete_decision_needs_check_above(tmp_path):
    code, _, err = cli("run", "perception/creak", "-o", str(tmp_path / "x.h5"), "--no-plot",
                       "--set", "readouts.decision.check_above=1.5")
    assert code == 2 and "readouts.decision.check_above" in err, err


# --- the threshold rule (Posner's reaction time), a mean-field Q ----------------------------

def first_crossing(time_s: np.ndarray, q: np.ndarray, t_start_s: float, t_stop_s: float,
                   threshold: float, onset_ms: float = 0.0) -> tuple[float, int | None]:
    """The first in-trial time (ms, from the onset) at which some entry of Q, recorded every
    step, exceeds ``threshold``, and the recorded row then (NaN, None: none does)."""
    inside = np.flatnonzero((time_s >= t_start_s - 1e-12) & (time_s < t_stop_s - 1e-12))
    for row in inside:
        time_ms = (time_s[row] - t_start_s) * 1e3
        if time_ms >= onset_ms - 1e-9 and any(value > threshold for value in q[row]):
            return time_ms - onset_ms, int(row)
    return math.nan, None


def test_the_threshold_rule_decides_when_q_first_crosses(creak, tmp_path):
    """Creak under the threshold rule (0.5): the first step at which a cause is more probable
    than not, as a loop over Q recorded every step finds it; the choice is that cause, the
    pipes, though the cat wins by the end."""
    table = tomllib.loads(bundled_scenarios()["perception/creak"].read_text())
    table["readouts"]["decision"] = {"rule": "threshold", "threshold": 0.5,
                                     "check_above": CHECK_ABOVE}
    table["record"]["every_ms"] = CREAK_DT_MS
    result = sim.run(write_scenario(tmp_path / "threshold.toml", table),
                     output=tmp_path / "threshold.h5")
    trials, causes = result.trials, [str(c) for c in result.group_attrs["causes"]["names"]]
    q = np.asarray(result["causes/belief"])
    expected, row = first_crossing(np.asarray(result.time), q, trials["t_start"][0],
                                   trials["t_stop"][0], 0.5)
    assert row is not None
    assert trials["decision_time"][0] == pytest.approx(expected, abs=1e-9)
    assert str(trials["decision"][0]) == causes[int(np.argmax(q[row]))] == "pipes"
    assert trials["decision_p"][0] == q[row].max()  # Q as recorded at that step, bitwise
    assert str(creak[0].trials["decision"][0]) == "cat"  # the stable rule's choice


def test_a_hierarchical_threshold_picks_the_largest_unit_and_scores_it(tmp_path):
    """The linear model (two causes of one input, weights 1 and 0.5) under the threshold rule
    with the largest unit chosen and unit 0 the target: the first unit to cross and its time
    are a loop's over the beliefs recorded every step; a negative input is a miss (NaN, not
    correct); ``/decision`` holds the means of the correct trials per trial name."""
    data = linear([1.0, 2.0, -1.0])
    data["readouts"]["decision"] = {"rule": "threshold", "threshold": 0.3, "onset_ms": 1.0,
                                    "level": "cause", "choose": "largest",
                                    "labels": ["strong", "weak"], "target": 0}
    result = sim.run(write_scenario(tmp_path / "rt.toml", data), output=tmp_path / "rt.h5")
    trials, belief = result.trials, np.asarray(result["levels/cause/belief"])
    for k in range(3):
        expected, row = first_crossing(np.asarray(result.time), belief, trials["t_start"][k],
                                       trials["t_stop"][k], 0.3, onset_ms=1.0)
        if row is None:
            assert math.isnan(trials["decision_time"][k]) and not trials["correct"][k]
            continue
        assert abs(trials["decision_time"][k] - expected) <= LINEAR_DT_MS + 1e-9
        unit = int(np.argmax(belief[row]))
        assert (trials["decision_unit"][k], str(trials["decision"][k])) == (unit, "strong")
        assert bool(trials["correct"][k]) == (unit == 0)
    assert np.isnan(trials["decision_time"]).tolist() == [False, False, True]
    assert [str(c) for c in result["decision/condition"]] == ["x=1", "x=2", "x=-1"]
    np.testing.assert_array_equal(result["decision/mean_ms"][:2], trials["decision_time"][:2])
    assert np.isnan(result["decision/mean_ms"][2])
    assert result["decision/misses"].tolist() == [0, 0, 1]
    assert result["decision/count"].tolist() == [1, 1, 1]


def test_the_stable_rule_has_no_compiled_form_and_says_so(tmp_path):
    path = write_scenario(tmp_path / "stable.toml", linear([1.0]))
    code, _, err = cli("run", str(path), "-o", str(tmp_path / "stable.h5"), "--no-plot",
                       "--set", 'numerics.device="standalone"')
    assert code == 2 and "Traceback" not in err, err
    assert "the readout 'decision' has no compiled form" in err.strip().splitlines()[-1]
    assert not (tmp_path / "stable.h5").exists()


def test_a_mean_field_q_chooses_per_factor_at_the_cavi_fixed_point(tmp_path):
    """Two weakly coupled factors (one fixed point): each factor's choice is the most
    probable cause of CAVI run to convergence (NumPy, sim.reference), its probability Q_f
    as recorded at the decision time, and the decision time Q's as a whole, as a loop over
    both factors' Q recorded every step finds it."""
    from test_mean_field import exact_joint, random_model, scenario

    from sim.reference import categorical

    model = random_model(np.random.default_rng(11), (3, 3), modalities=1, concentration=20.0)
    observations = [{"time_ms": 0.0, "m0": 1}, {"time_ms": 0.0, "m0": 2}]
    path = scenario(tmp_path, "factors", model, observations, duration_ms=60.0,
                    record={"every_ms": 0.1},
                    readouts={"decision": {"tolerance_per_ms": 1e-4, "check_above": 0.3}})
    result = sim.run(path, output=tmp_path / "factors.h5")
    trials = result.trials
    beliefs = [np.asarray(f["prior"]) for f in model["factors"]]
    for _ in range(500):
        beliefs = categorical.cavi_sweep(beliefs, exact_joint(model, observations))
    q = np.concatenate([np.asarray(result[f"factors/{f['name']}/belief"])
                        for f in model["factors"]], axis=1)
    expected = stabilised_ms(np.asarray(result.time), q, trials["t_start"][0],
                             trials["t_stop"][0], 0.1, 1e-4)
    assert not math.isnan(expected)
    assert abs(trials["decision_time"][0] - expected) <= 0.1 + 1e-9
    at = int(np.argmin(np.abs(np.asarray(result.time) * 1e3 - trials["decision_time"][0])))
    texts = []
    for factor, cavi in zip(model["factors"], beliefs, strict=True):
        name = factor["name"]
        causes = [str(c) for c in result.group_attrs[f"factors/{name}"]["names"]]
        first, second = np.argsort(cavi)[::-1][:2]
        assert cavi[first] - cavi[second] > 0.01  # no near tie
        assert str(trials[f"decision/{name}"][0]) == causes[first]
        assert str(trials[f"runner_up/{name}"][0]) == causes[second]
        recorded = np.asarray(result[f"factors/{name}/belief"])[at]
        assert trials[f"decision_p/{name}"][0] == pytest.approx(recorded[first], abs=1e-12)
        assert bool(trials[f"check_runner_up/{name}"][0]) == (recorded[second] > 0.3)
        texts.append(f"{name}: {causes[first]} ({recorded[first]:.2f})")
    for text in texts:
        assert text in str(trials["decision_text"][0])


# --- every step is checked: a one-step event between samples and across a block's edge -------

FLIP_DT_MS = 0.5  # tau_belief = dt: one Euler step takes Q to the posterior (h = 1)
CUE_RELIABILITY = 0.9  # p(cue A | cause a) = p(cue B | cause b)


def flip(tmp_path, name: str, cues: list[tuple[int, str]], steps: int, decision: dict
         ) -> sim.Result:
    """Two equally likely causes; a reliable cue ("A" or "B") at each given step. With
    tau_belief = dt, Q is the exact posterior from the step after a cue on, and does not move
    otherwise. Recorded every 1 ms: every second step."""
    table = {"name": name, "seed": 0, "dt_ms": FLIP_DT_MS, "method": "euler",
             "model": {"kind": "discrete", "tau_belief_ms": FLIP_DT_MS, "causes": ["a", "b"],
                       "prior": [0.5, 0.5],
                       "modalities": [{"name": "cue", "outcomes": ["A", "B"], "likelihood": [
                           [CUE_RELIABILITY, 1 - CUE_RELIABILITY],
                           [1 - CUE_RELIABILITY, CUE_RELIABILITY]]}]},
             "protocol": {"trials": [{"name": "flip", "duration_ms": steps * FLIP_DT_MS,
                                      "observations": [{"time_ms": step * FLIP_DT_MS, "cue": cue}
                                                       for step, cue in cues]}]},
             "record": {"every_ms": 1.0},
             "readouts": {"decision": {"check_above": 0.5, **decision}}}
    return sim.run(write_scenario(tmp_path / f"{name}.toml", table),
                   output=tmp_path / f"{name}.h5")


# h = dt/tau_belief = 1 is half the Euler bound: the preflight warns, as it should
@pytest.mark.filterwarnings("ignore::sim.errors.NumericalWarning")
def test_a_crossing_that_lasts_one_unrecorded_step_is_decided_at_that_step(tmp_path):
    """Cue A at step 300 and cue B at step 301: Q(a) is 0.9 (Bayes) at step 301 alone, a
    step between two recorded samples, and 0.5 from step 302 on. The threshold rule (0.7)
    decides at step 301 with Q then; a watch that skipped a step, or read the recording,
    would find no crossing at all."""
    result = flip(tmp_path, "one_step", [(300, "A"), (301, "B")], 400,
                  {"rule": "threshold", "threshold": 0.7})
    trials = result.trials
    assert trials["decision_time"][0] == pytest.approx(301 * FLIP_DT_MS, abs=1e-9)
    assert str(trials["decision"][0]) == "a"
    assert trials["decision_p"][0] == pytest.approx(CUE_RELIABILITY, abs=1e-12)
    recorded = np.asarray(result["causes/belief"])[:, 0]
    assert recorded.max() < 0.7  # never seen by the 1 ms recording


@pytest.mark.filterwarnings("ignore::sim.errors.NumericalWarning")
def test_q_that_moves_once_at_a_blocks_edge_is_stable_from_the_step_after(tmp_path):
    """Cue A at the last step of the watch's first block of steps: Q moves once, from 0.5 to
    0.9, at the next block's first step, and is still before and after. The stable rule
    decides at the step after the move, whether the move falls inside a block or on its edge
    (a watch that lost Q's last step between two blocks would decide at the trial's second
    step)."""
    from sim.readouts.decision_watch import block_steps

    block = block_steps(2)  # Q over the two causes
    for cue_step in (block - 1, block // 2):
        result = flip(tmp_path, f"edge{cue_step}", [(cue_step, "A")], block + 40,
                      {"tolerance_per_ms": 1e-3})
        trials = result.trials
        assert trials["decision_time"][0] == pytest.approx((cue_step + 2) * FLIP_DT_MS,
                                                           abs=1e-9)
        assert trials["decision_p"][0] == pytest.approx(CUE_RELIABILITY, abs=1e-12)
