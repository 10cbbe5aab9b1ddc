"""Mismatch negativity (issue 9, experiment 4): the ERP readout (``sim.readouts.erp``), the
spaced and trains sequences (``sim.sequence``) and the two bundled oddball scenarios.

References: the ERP against the recorded error datasets summed in NumPy; the mismatch wave and
the per-kind means against NumPy means of the per-trial traces; the sequences against their
definitions (gaps, trains, runs) and, for the spaced order, against a brute-force enumeration
of every valid order (uniform); repetition suppression against the same scenario with prior
learning switched off (no suppression at all)."""

from __future__ import annotations

import copy
import itertools
import math
import subprocess
import sys
import tomllib

import numpy as np
import pytest

import sim
from sim import sequence
from sim.scenario import bundled_scenarios
from sim.scenario_writer import write_scenario

LEVELS = ("tone", "pitch")
FIRST_REPETITIONS = 5


def table(name: str) -> dict:
    return tomllib.loads(bundled_scenarios()[name].read_text())


@pytest.fixture(scope="module")
def fixed(tmp_path_factory):
    return sim.run("learning/oddball", output=tmp_path_factory.mktemp("fixed") / "fixed.h5")


@pytest.fixture(scope="module")
def roving(tmp_path_factory):
    return sim.run("learning/oddball_roving",
                   output=tmp_path_factory.mktemp("roving") / "roving.h5")


def runs(labels) -> list[np.ndarray]:
    """Index arrays of the runs of identical consecutive labels."""
    labels = list(labels)
    starts = [0] + [i for i in range(1, len(labels)) if labels[i] != labels[i - 1]]
    return [np.arange(a, b) for a, b in zip(starts, [*starts[1:], len(labels)], strict=True)]


# --- the oddball experiments --------------------------------------------------------------------

@pytest.mark.parametrize("level", LEVELS)
def test_fixed_oddball_standard_falls_over_its_first_repetitions(fixed, level):
    trials = fixed.trials
    peak, kind, repetition = (trials[f"erp_peak/{level}"], trials["kind"],
                              trials["repetition"])
    standard = kind == "standard"
    means = [peak[standard & (repetition == r)].mean() for r in range(1, FIRST_REPETITIONS + 1)]
    assert all(np.diff(means) < 0), means
    for run in runs(kind):  # and within every run of standards
        if kind[run[0]] == "standard":
            assert all(np.diff(peak[run[:FIRST_REPETITIONS]]) < 0), (run, peak[run])


@pytest.mark.parametrize("level", LEVELS)
def test_roving_response_falls_over_the_first_repetitions(roving, level):
    """Repetition 1 is the deviant (the new tone), 2.. its standards."""
    trials = roving.trials
    peak, kind, repetition = (trials[f"erp_peak/{level}"], trials["kind"],
                              trials["repetition"])
    counted = kind != "first"
    means = [peak[counted & (repetition == r)].mean() for r in range(1, FIRST_REPETITIONS + 1)]
    assert all(np.diff(means) < 0), means
    for run in runs(trials["condition"]):
        assert all(np.diff(peak[run[:FIRST_REPETITIONS]]) < 0), (run, peak[run])


@pytest.mark.parametrize("which", ["fixed", "roving"])
@pytest.mark.parametrize("level", LEVELS)
def test_a_deviant_peaks_at_least_1_5_times_the_last_standard(request, which, level):
    trials = request.getfixturevalue(which).trials
    peak, kind = trials[f"erp_peak/{level}"], trials["kind"]
    deviants = np.flatnonzero(kind == "deviant")
    assert len(deviants) >= 5
    assert all(kind[deviants - 1] == "standard")
    ratios = peak[deviants] / peak[deviants - 1]
    assert ratios.min() >= 1.5, ratios


def test_without_prior_learning_there_is_no_repetition_suppression(tmp_path):
    """The control: the same sequence with the prior fixed; every standard evokes the same
    response, whatever its repetition (so the fall above is the prior learning)."""
    data = table("learning/oddball")
    del data["model"]["learning"]
    data["protocol"]["trials"] = 20
    result = sim.run(write_scenario(tmp_path / "fixed_prior.toml", data),
                     output=tmp_path / "f.h5")
    trials = result.trials
    standard = trials["kind"] == "standard"
    assert set(trials["repetition"][standard]) >= {1, 2, 3}
    for level in LEVELS:
        peaks = trials[f"erp_peak/{level}"][standard]
        np.testing.assert_allclose(peaks, peaks[0], rtol=1e-12)


def test_each_trial_starts_from_the_learned_prior(fixed):
    """Beliefs reset to the prediction of the prior learned so far, not the configured one:
    the top belief at each trial's first sample is the learned prior mean there."""
    starts = np.searchsorted(fixed.time, fixed.trials["t_start"] - 1e-12)
    belief = fixed.level("pitch")["belief"][starts, 0]
    prior = fixed.level("pitch")["prior_mean"][starts, 0]
    np.testing.assert_allclose(belief, prior, rtol=0, atol=1e-12)
    assert prior[-1] > 0.9  # learned: the configured prior mean is 0


# --- the ERP readout ----------------------------------------------------------------------------

SMALL = {
    "name": "erp_small", "seed": 2, "dt_ms": 0.1,
    "model": {"tau_belief_ms": 4.0, "tau_error_ms": 1.0,
              "levels": [{"name": "input", "size": 3, "precision": [1.0, 2.0, 0.5]},
                         {"name": "cause", "size": 2,
                          "weights": [[1.0, -0.5], [0.3, 1.0], [-0.7, 0.2]]}],
              "prior": {"mean": [0.2, -0.1], "precision": 1.5}},
    "protocol": {"reset": "beliefs", "trials": [
        {"name": "a", "duration_ms": 6.0,
         "stimulus": {"kind": "constant", "value": [1.0, -2.0, 0.5], "noise_std": 0.3}},
        {"name": "b", "duration_ms": 3.0, "stimulus": {"kind": "constant", "value": 0.4}},
        {"name": "c", "duration_ms": 6.0,
         "stimulus": {"kind": "constant", "value": [-1.0, 0.5, 2.0]}}]},
    "record": {"every_ms": 0.5},
    "readouts": {"erp": {}},
}


@pytest.mark.parametrize("errors", ["relaxing", "instantaneous"])
@pytest.mark.parametrize("field", ["signed", "rectified"])
def test_the_erp_is_the_recorded_errors_summed_over_units(tmp_path, errors, field):
    data = copy.deepcopy(SMALL)
    data["model"]["errors"] = errors
    data["readouts"]["erp"] = {"field": field}
    result = sim.run(write_scenario(tmp_path / "small.toml", data), output=tmp_path / "s.h5")
    every_s = data["record"]["every_ms"] * 1e-3
    starts = np.searchsorted(result.time, result.trials["t_start"] - 1e-12)
    stops = np.searchsorted(result.time, result.trials["t_stop"] - 1e-12)
    longest = max(stops - starts)
    np.testing.assert_allclose(result["erp/time"], np.arange(longest) * every_s, rtol=1e-12)
    for level in ("input", "cause"):
        error = result.level(level)["error"]
        summed = (np.abs(error) if field == "rectified" else error).sum(axis=1)
        traces = result[f"erp/trials/{level}"]
        assert traces.shape == (3, longest)
        for row, (a, b) in enumerate(zip(starts, stops, strict=True)):
            np.testing.assert_allclose(traces[row, :b - a], summed[a:b], rtol=1e-12,
                                       atol=1e-15)
            assert np.isnan(traces[row, b - a:]).all()  # padding after a shorter trial
            magnitude = np.abs(summed[a:b])
            assert result.trials[f"erp_peak/{level}"][row] == pytest.approx(magnitude.max(),
                                                                            rel=1e-12)
            assert result.trials[f"erp_latency/{level}"][row] == pytest.approx(
                np.argmax(magnitude) * data["record"]["every_ms"])
    assert result.units("trials/erp_latency/input") == "ms"
    assert "erp/mismatch/input" not in result  # listed trials: no kinds


def test_the_peak_window_limits_where_the_peak_is_sought(tmp_path):
    data = copy.deepcopy(SMALL)
    data["readouts"]["erp"] = {"window_ms": [2.0, 4.0], "levels": ["cause"]}
    result = sim.run(write_scenario(tmp_path / "w.toml", data), output=tmp_path / "w.h5")
    traces, times_ms = result["erp/trials/cause"], result["erp/time"] * 1e3
    inside = (times_ms >= 2.0 - 1e-9) & (times_ms <= 4.0 + 1e-9)
    for row in range(3):
        values = np.abs(traces[row][inside])
        expected = np.nanmax(values) if np.isfinite(values).any() else math.nan
        assert result.trials["erp_peak/cause"][row] == pytest.approx(expected, rel=1e-12,
                                                                     nan_ok=True)
    assert "erp/trials/input" not in result and "erp_peak/input" not in result.trials


@pytest.mark.parametrize("which", ["fixed", "roving"])
def test_the_mismatch_wave_is_the_difference_of_the_kind_means(request, which):
    result = request.getfixturevalue(which)
    kind = result.trials["kind"]
    for level in LEVELS:
        traces = result[f"erp/trials/{level}"]
        means = {k: traces[kind == k].mean(axis=0) for k in set(kind)}
        for k, mean in means.items():
            np.testing.assert_allclose(result[f"erp/{k}/{level}"], mean, rtol=1e-12,
                                       atol=1e-15)
            assert result.dataset_attrs[f"erp/{k}/{level}"]["count"] == (kind == k).sum()
        np.testing.assert_allclose(result[f"erp/mismatch/{level}"],
                                   means["deviant"] - means["standard"], rtol=1e-12,
                                   atol=1e-15)
        assert np.max(np.abs(result[f"erp/mismatch/{level}"])) > 0.1


# --- the sequences --------------------------------------------------------------------------------

def test_the_fixed_oddball_has_its_structure(fixed):
    trials = fixed.trials
    condition, kind, repetition = trials["condition"], trials["kind"], trials["repetition"]
    data = table("learning/oddball")
    gap = data["protocol"]["conditions"][1]["min_gap"]
    assert len(condition) == data["protocol"]["trials"]
    assert (condition == "deviant").sum() == 9 and (condition == "standard").sum() == 51
    np.testing.assert_array_equal(kind, condition)  # the rare condition is the deviant
    np.testing.assert_array_equal(repetition, sequence.repetitions(list(condition)))
    for index in np.flatnonzero(condition == "deviant"):
        assert index >= gap and all(condition[index - gap:index] == "standard")
    assert fixed.parameters["protocol"]["sequence"] == "spaced"


def test_the_roving_oddball_has_its_structure(roving):
    trials = roving.trials
    condition, kind, repetition = trials["condition"], trials["kind"], trials["repetition"]
    data = table("learning/oddball_roving")
    shortest, longest = data["protocol"]["trains"]
    assert len(condition) == data["protocol"]["trials"]
    trains = runs(condition)
    assert len(trains) >= 5
    for number, train in enumerate(trains):
        assert shortest <= len(train) <= longest or (number == len(trains) - 1
                                                    and len(train) <= longest)
        np.testing.assert_array_equal(repetition[train], np.arange(1, len(train) + 1))
        assert kind[train[0]] == ("first" if number == 0 else "deviant")
        assert all(kind[train[1:]] == "standard")  # the deviant became the standard
    described = roving.parameters["protocol"]
    assert described["sequence"] == "trains" and described["trains"] == [shortest, longest]
    for item in described["conditions"]:
        assert item["count"] == (condition == item["name"]).sum()


def test_the_spaced_order_is_uniform_over_every_valid_order():
    """2 rare trials (gap 2) among 6 frequent ones: every arrangement of rare and frequent
    positions that keeps the gaps (enumerated by brute force) is drawn equally often."""
    labels, gaps = [0] * 6 + [1] * 2, [None, 2]
    valid = []
    for places in itertools.combinations(range(8), 2):
        pattern = ["f"] * 8
        for place in places:
            pattern[place] = "r"
        text = "".join(pattern)
        if all(text[:i].split("r")[-1].count("f") >= 2 for i in places):
            valid.append(text)
    rng = np.random.default_rng(0)
    draws = 30000
    counts = dict.fromkeys(valid, 0)
    for _ in range(draws):
        order = sequence.spaced_order(labels, gaps, rng)
        text = "".join("r" if labels[i] else "f" for i in order)
        assert sorted(order) == list(range(8))
        counts[text] += 1  # KeyError: an order that breaks a gap
    expected = draws / len(valid)
    spread = 5 * math.sqrt(expected)
    assert all(abs(count - expected) < spread for count in counts.values()), counts


# --- bad input ------------------------------------------------------------------------------------

def refused(tmp_path, data) -> str:
    """The one-line error a bad scenario gets from ``sim.run``; no file written."""
    output = tmp_path / "bad.h5"
    with pytest.raises(sim.ScenarioError) as caught:
        sim.run(write_scenario(tmp_path / "bad.toml", data), output=output)
    assert "\n" not in str(caught.value)
    assert not output.exists()
    return str(caught.value)


def test_a_bad_erp_setting_from_the_command_line(tmp_path):
    data = table("learning/oddball")
    data["readouts"]["erp"] = {"levels": ["timbre"]}
    path = write_scenario(tmp_path / "bad.toml", data)
    output = tmp_path / "bad.h5"
    done = subprocess.run([sys.executable, "-m", "sim.cli", "run", str(path), "-o",
                           str(output)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pcsim: error: "), done.stderr
    assert "readouts.erp.levels: no level 'timbre'" in lines[0]
    assert not output.exists() and not output.with_suffix(".png").exists()


@pytest.mark.parametrize("settings, message", [
    ({"levels": ["tone", "timbre"]}, "readouts.erp.levels: no level 'timbre'"),
    ({"levels": []}, "readouts.erp.levels: expected a non-empty list"),
    ({"levels": "tone"}, "readouts.erp.levels: expected a non-empty list"),
    ({"levels": ["tone", "tone"]}, "readouts.erp.levels: a level is named twice"),
    ({"window_ms": [50.0, 10.0]}, "readouts.erp.window_ms: got [50.0, 10.0], expected"),
    ({"window_ms": [-1.0, 10.0]}, "readouts.erp.window_ms"),
    ({"window_ms": 10.0}, "readouts.erp.window_ms"),
    ({"field": "squared"}, "readouts.erp.field: got 'squared', expected one of"),
    ({"every_ms": 1.0}, "readouts.erp.every_ms: unknown field"),
])
def test_bad_erp_settings_are_one_line_errors(tmp_path, settings, message):
    data = table("learning/oddball")
    data["readouts"]["erp"] = settings
    assert message in refused(tmp_path, data)


def change_protocol(data: dict, change) -> dict:
    change(data["protocol"])
    return data


@pytest.mark.parametrize("name, change, message", [
    ("learning/oddball", lambda p: p["conditions"][1].update(min_gap=6),
     "protocol.conditions: the rare trials need 54 frequent trials"),
    ("learning/oddball", lambda p: p["conditions"][1].update(min_gap=0),
     "protocol.conditions[1].min_gap: expected a number >= 1"),
    ("learning/oddball", lambda p: p["conditions"][0].update(min_gap=1),
     "protocol.conditions: every condition gives min_gap"),
    ("learning/oddball", lambda p: p.update(shuffle=True),
     "protocol.shuffle: a spaced sequence draws its own order"),
    ("learning/oddball", lambda p: p.update(trains=[2, 3]),
     "protocol.trains: condition 'deviant' gives min_gap"),
    ("learning/oddball_roving", lambda p: p.update(trains=[4, 2]),
     "protocol.trains: got [4, 2], expected [a, b]"),
    ("learning/oddball_roving", lambda p: p.update(trains=[0, 2]), "protocol.trains"),
    ("learning/oddball_roving", lambda p: p.update(trains=5), "protocol.trains"),
    ("learning/oddball_roving",
     lambda p: p["conditions"].__setitem__(slice(1, None), []),
     "protocol.trains: expected at least two conditions"),
])
def test_bad_sequences_are_one_line_errors(tmp_path, name, change, message):
    data = change_protocol(table(name), change)
    if name == "learning/oddball_roving" and len(data["protocol"]["conditions"]) == 1:
        data["protocol"]["conditions"][0]["probability"] = 1.0
    assert message in refused(tmp_path, data)


def test_trains_need_probabilities_and_conditions(tmp_path):
    data = table("learning/oddball_roving")
    for condition in data["protocol"]["conditions"]:
        del condition["probability"]
        condition["count"] = 10
    del data["protocol"]["trials"]
    with pytest.raises(sim.ScenarioError, match=r"protocol\.trains: trains draw each train's "
                                                r"condition by probability"):
        sim.run(write_scenario(tmp_path / "counts.toml", data), output=tmp_path / "c.h5")
    listed = copy.deepcopy(SMALL)
    listed["protocol"]["trains"] = [2, 3]
    with pytest.raises(sim.ScenarioError, match=r"protocol\.trains: trains are drawn from"):
        sim.run(write_scenario(tmp_path / "listed.toml", listed), output=tmp_path / "l.h5")
    assert not list(tmp_path.glob("*.h5"))
