"""Top-down attention and Posner cueing: the context belief sets the gain of the cued channel
inside the error units' equations, a context is inferred from which channel is reliable, and
reaction times order valid < neutral < invalid with a validity effect that grows with the cue."""

from __future__ import annotations

import math
import tomllib

import numpy as np
import pytest

import sim
from sim.scenario import bundled_scenarios
from sim.scenario_writer import write_scenario

CONDITIONS = ("valid_left", "valid_right", "invalid_left", "invalid_right", "neutral_left",
              "neutral_right")


def posner(tmp_path, validity: float, name: str) -> sim.Result:
    """The bundled Posner scenario, two trials per condition, the cue at ``validity``."""
    cue = math.log(validity / (1 - validity))
    overrides = {}
    for index, condition in enumerate(CONDITIONS):
        overrides[f"protocol.conditions.{index}.count"] = 2
        side = 1.0 if condition.endswith("left") else -1.0
        sign = {"valid": 1.0, "invalid": -1.0, "neutral": 0.0}[condition.split("_")[0]]
        overrides[f"protocol.conditions.{index}.prior_mean"] = sign * side * cue
    return sim.run("attention/posner", output=tmp_path / f"{name}.h5", overrides=overrides)


def mean_rt(result: sim.Result, kind: str) -> float:
    trials = result.trials
    chosen = [i for i, c in enumerate(trials["condition"]) if str(c).startswith(kind)]
    assert all(trials["correct"][chosen])
    return float(np.mean(trials["decision_time"][chosen]))


def test_posner_valid_neutral_invalid_and_a_growing_validity_effect(tmp_path):
    effects = []
    for validity in (0.6, 0.7, 0.8):  # (from about 0.85 on, invalid targets are missed)
        result = posner(tmp_path, validity, f"v{validity}")
        valid, neutral, invalid = (mean_rt(result, k) for k in ("valid", "neutral", "invalid"))
        assert valid < neutral < invalid
        effects.append(invalid - valid)
        stored = dict(zip(result["decision/condition"], result["decision/mean_ms"],
                          strict=True))
        for condition in CONDITIONS:  # the per-condition means the result keeps
            rows = [i for i, c in enumerate(result.trials["condition"]) if c == condition]
            assert stored[condition] == pytest.approx(
                np.mean(result.trials["decision_time"][rows]))
    assert effects[0] < effects[1] < effects[2]


def test_a_target_whose_belief_never_crosses_is_a_miss(tmp_path):
    """At validity 0.95 the uncued side's gain is e^-2.94 = 0.05: the belief in an invalid
    target settles at 0.05 / (0.05 + 1), below the threshold 0.15."""
    result = posner(tmp_path, 0.95, "misses")
    trials = result.trials
    invalid = [i for i, c in enumerate(trials["condition"]) if str(c).startswith("invalid")]
    assert np.all(np.isnan(trials["decision_time"][invalid]))
    assert not np.any(trials["correct"][invalid])
    misses = dict(zip(result["decision/condition"], result["decision/misses"],
                      strict=True))
    assert misses["invalid_left"] == misses["invalid_right"] == 2
    assert misses["valid_left"] == misses["neutral_left"] == 0


def test_the_gain_is_the_configured_one_times_exp_of_the_context(tmp_path):
    result = posner(tmp_path, 0.8, "gain")
    context = result.level("context")["belief"][:, 0]
    precision = result.level("locations")["precision"]
    # Pi = 1 * exp([+1, -1] mu_context), with the context of the same sample
    np.testing.assert_allclose(precision[:, 0], np.exp(context), rtol=1e-12)
    np.testing.assert_allclose(precision[:, 1], np.exp(-context), rtol=1e-12)
    assert list(result.dataset_attrs["levels/locations/precision"]["contributions"]) == [
        "configured", "topdown_precision"]


def test_a_context_is_inferred_from_which_channel_is_reliable(tmp_path):
    """No cue (a weak flat-ish prior), a clean left channel and a noisy right one: the context
    moves towards attending left, where the errors are as small as a high precision expects."""
    path = bundled_scenarios()["attention/posner"]
    table = tomllib.loads(path.read_text())
    table["model"]["prior"]["precision"] = 0.05
    table["protocol"] = {"trials": [{
        "duration_ms": 400.0,
        "stimulus": {"kind": "constant", "value": [0.0, 0.0], "noise_std": [0.05, 1.5]}}]}
    del table["readouts"]
    result = sim.run(write_scenario(tmp_path / "infer.toml", table), output=tmp_path / "i.h5")
    context = result.level("context")["belief"][:, 0]
    assert context[-1] > 0.5  # attend left
    assert result.level("locations")["precision"][-1, 0] > 1.5


@pytest.mark.parametrize(("change", "expected"), [
    (lambda t: t["model"]["attention"].update(mapping=[[1.0, 2.0], [1.0, 2.0]]),
     r"attention\.mapping: expected C with 2 rows .* of 1 numbers"),
    (lambda t: t["model"]["attention"].update(context="where"),
     r"attention\.context: no belief level 'where'"),
    (lambda t: t["model"]["attention"].update(target="context"),
     r"attention\.target: no level 'context' with error units below the top"),
    (lambda t: t["readouts"]["decision"].update(level="sight"),
     r"readouts\.decision\.level: .*expected one of"),
    (lambda t: t["readouts"]["decision"].update(threshold=float("nan")),
     r"readouts\.decision\.threshold"),
    (lambda t: t["readouts"].update(latency={"level": "target"}), r"no readout 'latency'"),
])
def test_bad_attention_settings_are_refused(tmp_path, change, expected):
    table = tomllib.loads(bundled_scenarios()["attention/posner"].read_text())
    change(table)
    path = write_scenario(tmp_path / "bad.toml", table)
    with pytest.raises(sim.ScenarioError, match=expected):
        sim.run(path, output=tmp_path / "bad.h5")
    assert not (tmp_path / "bad.h5").exists()
