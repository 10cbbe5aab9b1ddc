"""Generated protocols (``[[protocol.conditions]]``, sim/protocol.py), through ``sim.run`` and
the CLI: counts and probabilities expand into the right trials, in a seeded order, each with
its condition's settings; the result lists them; bad input is one line and exit code 2."""

from __future__ import annotations

import collections
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import sim
from sim.cli import main
from sim.scenario import load_scenario

DT_MS = 0.5

HIERARCHY = """
name = "conditions"
seed = 3
dt_ms = 0.5

[model]
tau_belief_ms = 5.0
tau_error_ms = 1.0

[[model.levels]]
name = "input"
size = 2
precision = 4.0

[[model.levels]]
name = "cause"
size = 2
weights = { kind = "identity" }

[record]
variables = ["belief", "precision", "free_energy"]
"""

# two trial types with different constant stimuli (and precisions, durations, noise)
LEFT_RIGHT = """
[protocol]
reset = "beliefs"
{protocol}

[[protocol.conditions]]
name = "left"
{left}
duration_ms = 5.0
stimulus = {{ kind = "constant", value = [1.0, 0.0] }}

[[protocol.conditions]]
name = "right"
{right}
duration_ms = 3.0
stimulus = {{ kind = "constant", value = [0.0, 2.0] }}
precision = {{ input = 2.5 }}
"""

DISCRETE = """
name = "sounds"
seed = 1
dt_ms = 0.5

[model]
kind = "discrete"
tau_belief_ms = 2.0
causes = ["cat", "pipes"]
prior = [0.4, 0.6]

[[model.modalities]]
name = "sound"
outcomes = ["meow", "clank"]
likelihood = [[0.9, 0.2],
              [0.1, 0.8]]

[protocol]
reset = "beliefs"

[[protocol.conditions]]
name = "meow"
count = 3
duration_ms = 40.0
observations = [{ time_ms = 1.0, sound = "meow" }]

[[protocol.conditions]]
name = "dim_clank"
count = 2
duration_ms = 40.0
precision = { sound = 0.5 }
observations = [{ time_ms = 1.0, sound = "clank" }]
"""


def scenario_file(folder: Path, text: str, name: str = "scenario.toml") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def left_right(protocol: str = "", left: str = "count = 3", right: str = "count = 2") -> str:
    return HIERARCHY + LEFT_RIGHT.format(protocol=protocol, left=left, right=right)


def parameters(result: sim.Result) -> dict:
    return json.loads(result["scenario/parameters"])


def split(probabilities: list[float], total: int) -> list[int]:
    """Largest remainder (Hamilton), written here independently: floors of N p, then one more
    each to the largest remainders, the earlier condition first on a tie."""
    quotas = [total * p for p in probabilities]
    counts = [math.floor(q + 1e-12) for q in quotas]
    remainders = [q - c for q, c in zip(quotas, counts, strict=True)]
    for i in sorted(range(len(quotas)), key=lambda i: (-round(remainders[i], 9), i))[
            : total - sum(counts)]:
        counts[i] += 1
    return counts


# --- expansion ------------------------------------------------------------------------------

def test_counts_expand_exactly_and_the_result_lists_the_trials(tmp_path):
    path = scenario_file(tmp_path, left_right())
    with sim.run(path, output=tmp_path / "r.h5") as result:
        trials = result.trials
        conditions = list(trials["condition"])
        names = list(trials["name"])
        assert collections.Counter(conditions) == {"left": 3, "right": 2}
        assert sorted(names) == ["left_0", "left_1", "left_2", "right_0", "right_1"]
        assert all(name.rsplit("_", 1)[0] == c for name, c in zip(names, conditions,
                                                                     strict=True))
        # index: the place in the expanded list (condition by condition); rows run shuffled
        assert sorted(trials["index"]) == list(range(5))
        expanded = ["left_0", "left_1", "left_2", "right_0", "right_1"]
        assert [expanded[i] for i in trials["index"]] == names

        listed = parameters(result)
        assert [t["name"] for t in listed["trials"]] == names
        assert [t["condition"] for t in listed["trials"]] == conditions
        assert [t["duration_ms"] for t in listed["trials"]] == [
            5.0 if c == "left" else 3.0 for c in conditions]
        protocol = listed["protocol"]
        assert protocol["shuffle"] is True
        assert protocol["order"] == list(trials["index"])
        assert protocol["conditions"] == [{"name": "left", "count": 3},
                                          {"name": "right", "count": 2}]
        assert result.attrs["duration"] == pytest.approx((3 * 5.0 + 2 * 3.0) * 1e-3)


@pytest.mark.parametrize(("probabilities", "total"), [
    ([0.8, 0.2], 50),        # Posner-like 80/20
    ([0.5, 0.3, 0.2], 7),    # 3.5, 2.1, 1.4 -> 4, 2, 1
    ([0.45, 0.45, 0.1], 3),  # a tie between the first two: the earlier one gets it
    ([0.25, 0.25, 0.25, 0.25], 10),
    ([0.7, 0.3, 0.0], 10),
    ([0.1, 0.2, 0.3, 0.4], 1),
])
def test_probabilities_split_the_total_by_largest_remainder(tmp_path, probabilities, total):
    blocks = "\n".join(
        f"[[protocol.conditions]]\nname = \"c{i}\"\nprobability = {p}\nduration_ms = 1.0\n"
        f"stimulus = {{ kind = \"constant\", value = {i} }}\n"
        for i, p in enumerate(probabilities))
    text = HIERARCHY + f"[protocol]\ntrials = {total}\n\n" + blocks
    scenario = load_scenario(scenario_file(tmp_path, text))
    expected = split(probabilities, total)
    assert sum(expected) == total
    found = collections.Counter(t.condition for t in scenario.trials)
    assert [found[f"c{i}"] for i in range(len(probabilities))] == expected
    assert scenario.resolved()["protocol"]["conditions"] == [
        {"name": f"c{i}", "count": n, "probability": p}
        for i, (n, p) in enumerate(zip(expected, probabilities, strict=True))]


def test_probabilities_through_a_run(tmp_path):
    path = scenario_file(tmp_path, left_right("trials = 9", "probability = 0.6",
                                              "probability = 0.4"))
    with sim.run(path, output=tmp_path / "r.h5") as result:
        counts = collections.Counter(result.trials["condition"])
        assert [counts["left"], counts["right"]] == split([0.6, 0.4], 9) == [5, 4]
        assert parameters(result)["protocol"]["trials"] == 9
        assert len(parameters(result)["trials"]) == 9


def order(folder: Path, seed: int, protocol: str = "") -> list[int]:
    text = left_right(protocol, "count = 6", "count = 6").replace("seed = 3", f"seed = {seed}")
    return [t.index for t in load_scenario(scenario_file(folder, text)).trials]


def test_the_order_is_a_seeded_permutation(tmp_path):
    first = order(tmp_path, 3)
    assert sorted(first) == list(range(12)) and first != sorted(first)
    assert order(tmp_path, 3) == first
    assert order(tmp_path, 4) != first
    # its own stream of the scenario's seed, [seed, 5]
    assert first == np.random.default_rng([3, 5]).permutation(12).tolist()
    # [protocol] seed takes the scenario seed's place in that stream
    assert order(tmp_path, 3, "seed = 11") == order(tmp_path, 4, "seed = 11")
    assert order(tmp_path, 3, "seed = 11") == np.random.default_rng([11, 5]).permutation(
        12).tolist()
    # shuffle = false: condition by condition, as declared
    assert order(tmp_path, 3, "shuffle = false") == list(range(12))


def test_the_shuffle_of_listed_trials_is_unchanged(tmp_path):
    listed = "\n".join(f"[[protocol.trials]]\nduration_ms = 1.0\nstimulus = {{ kind = "
                       f"\"constant\", value = {i} }}\n" for i in range(8))
    text = HIERARCHY + "[protocol]\nshuffle = true\n\n" + listed
    scenario = load_scenario(scenario_file(tmp_path, text))
    assert [t.index for t in scenario.trials] == np.random.default_rng([3, 4]).permutation(
        8).tolist()
    assert all(t.condition is None for t in scenario.trials)
    assert "conditions" not in scenario.resolved()["protocol"]


def test_each_trial_runs_with_its_conditions_settings(tmp_path):
    path = scenario_file(tmp_path, left_right())
    with sim.run(path, output=tmp_path / "r.h5") as result:
        time = result.time
        stimulus = result["levels/input/input"]
        precision = result["levels/input/precision"]
        trials = result.trials
        for row, condition in enumerate(trials["condition"]):
            during = (time >= trials["t_start"][row]) & (time < trials["t_stop"][row] - 1e-9)
            value, gain, steps = (([1.0, 0.0], 4.0, 10) if condition == "left" else
                                  ([0.0, 2.0], 2.5, 6))
            assert during.sum() == steps
            np.testing.assert_array_equal(stimulus[during], np.tile(value, (steps, 1)))
            np.testing.assert_array_equal(precision[during], np.full((steps, 2), gain))
            # the belief moves towards this condition's stimulus (reset at each trial)
            belief = trials["final_belief/cause"][row]
            assert np.argmax(belief) == np.argmax(value) and belief.min() == pytest.approx(0.0)


def test_trials_of_one_condition_draw_independent_noise(tmp_path):
    text = left_right("", "count = 2", "count = 1").replace(
        'value = [1.0, 0.0] }', 'value = [1.0, 0.0], noise_std = 0.5 }')
    path = scenario_file(tmp_path, text)
    inputs = []
    for run in range(2):
        with sim.run(path, output=tmp_path / f"r{run}.h5") as result:
            trials, time = result.trials, result.time
            rows = {name: row for row, name in enumerate(trials["name"])}
            inputs.append({
                name: result["levels/input/input"][
                    (time >= trials["t_start"][row]) & (time < trials["t_stop"][row] - 1e-9)]
                for name, row in rows.items()})
    left_0, left_1 = inputs[0]["left_0"], inputs[0]["left_1"]
    assert left_0.shape == left_1.shape == (10, 2)
    assert not np.allclose(left_0, left_1)  # one condition, two noise streams
    for name in inputs[0]:  # and the same again for the same seed
        np.testing.assert_array_equal(inputs[0][name], inputs[1][name])


def test_discrete_conditions_take_their_own_observations_and_precision(tmp_path):
    path = scenario_file(tmp_path, DISCRETE)
    prior = np.array([0.4, 0.6])
    likelihood = np.array([[0.9, 0.2], [0.1, 0.8]])

    def posterior(outcome: int, gamma: float) -> np.ndarray:
        tempered = likelihood**gamma / (likelihood**gamma).sum(axis=0)
        p = prior * tempered[outcome]
        return p / p.sum()

    with sim.run(path, output=tmp_path / "r.h5") as result:
        trials = result.trials
        assert collections.Counter(trials["condition"]) == {"meow": 3, "dim_clank": 2}
        for row, condition in enumerate(trials["condition"]):
            exact = posterior(0, 1.0) if condition == "meow" else posterior(1, 0.5)
            np.testing.assert_allclose(trials["exact_posterior"][row], exact, atol=1e-9)
            np.testing.assert_allclose(trials["final_belief"][row], exact, atol=1e-3)
        assert [t["condition"] for t in parameters(result)["trials"]] == list(
            trials["condition"])


# --- what pcsim run and pcsim show print ------------------------------------------------------

def test_long_protocols_are_summarised(tmp_path, capsys):
    path = scenario_file(tmp_path, left_right("", "count = 20", "count = 5"))
    output = tmp_path / "r.h5"
    assert main(["run", str(path), "-o", str(output), "--no-plot"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "headlines:" and printed[-1] == f"wrote {output}"
    assert [line.split()[:4] for line in printed[2:-1]] == [  # F, then the top belief
        ["F", "left", "(mean", "of"], ["F", "right", "(mean", "of"],
        ["top", "belief", "left", "(mean"], ["top", "belief", "right", "(mean"]]
    assert "left (mean of 20)" in printed[2] and "right (mean of 5)" in printed[3]
    assert main(["show", str(output)]) == 0
    shown = capsys.readouterr().out
    assert "  25 trials in 2 conditions: left 20, right 5\n" in shown
    assert "trial 0 " not in shown and "/trials/condition" in shown

    # 25 listed trials: the first and last three; no condition column
    listed = "\n".join(f"[[protocol.trials]]\nname = \"t{i}\"\nduration_ms = 1.0\nstimulus = "
                       f"{{ kind = \"constant\", value = {i % 3} }}\n" for i in range(25))
    path = scenario_file(tmp_path, HIERARCHY + "[protocol]\n" + listed, "listed.toml")
    output = tmp_path / "listed.h5"
    assert main(["run", str(path), "-o", str(output), "--no-plot"]) == 0
    printed = [line.split()[1:4] for line in capsys.readouterr().out.splitlines()
               if line.startswith("  F ")]  # the headline F's rows: the first and last three
    assert printed == [
        ["trial", "0", "t0"], ["trial", "1", "t1"], ["trial", "2", "t2"],
        ["trial", "22", "t22"], ["trial", "23", "t23"], ["trial", "24", "t24"]]
    assert main(["show", str(output)]) == 0
    shown = [line for line in capsys.readouterr().out.splitlines()
             if line.startswith(("  trial ", "  ..."))]
    assert [line.split(":")[0] for line in shown] == [
        "  trial 0 t0", "  trial 1 t1", "  trial 2 t2", "  ... 19 more trials",
        "  trial 22 t22", "  trial 23 t23", "  trial 24 t24"]
    with sim.load(output) as result:
        assert "condition" not in result.trials
        assert all("condition" not in t for t in parameters(result)["trials"])


# --- bad input: one line naming file:line and field, exit code 2, no file -----------------------

TOTAL = "trials = 4"
BAD = {  # scenario text, (the line's text, which occurrence), field, message
    "negative count": (left_right(left="count = -1"), ("count = -1", 0),
                       "protocol.conditions[0].count", "expected a number >= 0, got -1"),
    "count not an integer": (left_right(left="count = 2.5"), ("count = 2.5", 0),
                             "protocol.conditions[0].count", "expected an integer, got 2.5"),
    "count as a string": (left_right(left='count = "3"'), ('count = "3"', 0),
                          "protocol.conditions[0].count", "expected an integer"),
    "probability above 1": (left_right(TOTAL, "probability = 1.5", "probability = 0.5"),
                            ("probability = 1.5", 0), "protocol.conditions[0].probability",
                            "expected a number <= 1.0, got 1.5"),
    "probability below 0": (left_right(TOTAL, "probability = 1.0", "probability = -0.1"),
                            ("probability = -0.1", 0), "protocol.conditions[1].probability",
                            "expected a number >= 0.0, got -0.1"),
    "probabilities not summing to 1": (
        left_right(TOTAL, "probability = 0.5", "probability = 0.3"), ("probability = 0.3", 0),
        "protocol.conditions[1].probability", "probabilities sum to 0.8, expected 1"),
    "count and probability": (
        left_right(TOTAL, "count = 2\nprobability = 0.5", "probability = 0.5"),
        ("probability = 0.5", 0), "protocol.conditions[0].probability",
        "a count or a probability, not both"),
    "neither count nor probability": (left_right(left=""), ("[[protocol.conditions]]", 0),
                                      "protocol.conditions[0].count", "missing"),
    "probability without trials": (left_right("", "probability = 0.5", "probability = 0.5"),
                                   ("probability = 0.5", 0),
                                   "protocol.conditions[0].probability",
                                   "expected [protocol] trials = N"),
    "counts mixed with probabilities": (left_right(TOTAL, "count = 2", "probability = 0.5"),
                                        ("probability = 0.5", 0),
                                        "protocol.conditions[1].probability",
                                        "protocol.conditions[0] gives a count"),
    "a total with counts": (left_right(TOTAL), (TOTAL, 0), "protocol.trials",
                            "these give counts"),
    "trials and conditions": (left_right() + "\n[[protocol.trials]]\nduration_ms = 1.0\n"
                              "stimulus = { kind = \"constant\", value = 0 }\n",
                              ("[[protocol.conditions]]", 0), "protocol.conditions[0]",
                              "not both"),
    "a total without conditions": (HIERARCHY + "[protocol]\n" + TOTAL + "\n", (TOTAL, 0),
                                   "protocol.trials", "there are none"),
    "unknown field in a condition": (left_right(left="count = 2\nstimuls = 3"),
                                     ("stimuls = 3", 0), "protocol.conditions[0].stimuls",
                                     "unknown field"),
    "a bad trial field in a condition": (
        left_right(left='count = 2\nreset = "sometimes"'), ('reset = "sometimes"', 0),
        "protocol.conditions[0].reset", "expected one of none, beliefs"),
    "duplicate condition names": (left_right().replace('name = "right"', 'name = "left"'),
                                  ('name = "left"', 1), "protocol.conditions[1].name",
                                  "names an earlier condition too"),
    "too many trials": (left_right(left="count = 600000", right="count = 600000"),
                        ("count = 600000", 1), "protocol.conditions[1].count",
                        "more than 1000000 trials"),
    "count above the limit": (left_right(left="count = 10000000"), ("count = 10000000", 0),
                              "protocol.conditions[0].count", "<= 1000000"),
    "no trials at all": (left_right(left="count = 0", right="count = 0"), ("count = 0", 1),
                         "protocol.conditions[1].count", "no trials"),
    "negative protocol seed": (left_right("seed = -2"), ("seed = -2", 0), "protocol.seed",
                               "expected a number >= 0"),
}


def line_of(text: str, marker: str, occurrence: int = 0) -> int:
    """The line (from 1) holding exactly ``marker``, its ``occurrence``-th one."""
    found = [n for n, line in enumerate(text.splitlines(), start=1) if line.strip() == marker]
    return found[occurrence]


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_conditions_are_one_line_naming_file_line_and_field(tmp_path, capsys, case):
    text, (marker, occurrence), field, message = BAD[case]
    path = scenario_file(tmp_path, text)
    out = tmp_path / "out"
    assert main(["run", str(path), "-o", str(out / "r.h5")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    line = line_of(text, marker, occurrence)
    assert err.startswith(f"pcsim: error: {path}:{line}: {field}: "), err
    assert message in err, err
    assert not out.exists()


def test_bad_count_through_the_real_entry_point(tmp_path):
    path = scenario_file(tmp_path, left_right(left="count = -3"))
    ran = subprocess.run([sys.executable, "-m", "sim.cli", "run", str(path), "-o",
                          str(tmp_path / "out" / "r.h5")], capture_output=True, text=True,
                         timeout=300)
    assert ran.returncode == 2
    assert ran.stderr.strip().splitlines() == [
        f"pcsim: error: {path}:{line_of(path.read_text(), 'count = -3')}: "
        "protocol.conditions[0].count: expected a number >= 0, got -3"]
    assert not (tmp_path / "out").exists()


# --- serial trials in one Brian2 run (sim.trial_sequence) -----------------------------------
def sequence_table(trials: list[dict]) -> dict:
    return {
        "name": "sequence", "dt_ms": 0.1,
        "model": {"errors": "relaxing", "tau_belief_ms": 5.0, "tau_error_ms": 1.0,
                  "levels": [{"name": "senses", "size": 2, "precision": 1.0},
                             {"name": "cause", "size": 1, "weights": [[1.0], [0.5]]}],
                  "prior": {"mean": 0.0, "precision": 1.0}},
        "protocol": {"reset": "beliefs", "trials": trials},
    }


QUIET = {"duration_ms": 3.0, "stimulus": {"kind": "constant", "value": [1.0, 2.0]}}
BUSY = {"duration_ms": 4.0, "stimulus": {"kind": "ramp", "start": [0.0, 1.0],
                                         "stop": [2.0, -1.0]},
        "precision": {"senses": {"times_ms": [0.0, 1.5], "values": [[1.0, 1.0], [3.0, 0.5]]}}}


def test_a_trial_in_a_serial_protocol_runs_as_it_does_alone(tmp_path, monkeypatch):
    """The trials of a serial protocol share one Network.run; a trial whose input varies and
    whose precision is scheduled, after one with neither, runs step for step as it does alone
    (beliefs reset): what a trial switches on at its start is switched between two steps."""
    from brian2 import Network

    from sim.scenario_writer import write_scenario

    runs = collections.Counter()
    original = Network.run

    def counted(self, *args, **kwargs):
        runs["runs"] += 1
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Network, "run", counted)
    both = sim.run(write_scenario(tmp_path / "both.toml", sequence_table([QUIET, BUSY])),
                   output=tmp_path / "both.h5")
    assert runs["runs"] == 1
    alone = sim.run(write_scenario(tmp_path / "alone.toml", sequence_table([BUSY])),
                    output=tmp_path / "alone.h5")
    assert runs["runs"] == 2
    start_both = int(np.searchsorted(both.time, both.trials["t_start"][1] - 1e-12))
    start_alone = 0
    for level in ("senses", "cause"):
        for variable in ("belief", "error", "precision", "input"):
            if variable not in both.level(level):
                continue
            np.testing.assert_allclose(both.level(level)[variable][start_both:],
                                       alone.level(level)[variable][start_alone:],
                                       rtol=0, atol=1e-12, err_msg=f"{level} {variable}")
    np.testing.assert_allclose(both.trials["final_belief/cause"][1],
                               alone.trials["final_belief/cause"][0], rtol=0, atol=1e-12)
