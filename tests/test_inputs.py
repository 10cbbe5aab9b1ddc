"""The input a run delivers is its trials' stimuli, step by step, through ``sim.run``: at step s
(time s dt from the trial's start) the input level holds x(s dt) plus the trial's noise, the
s-th draw of its stream ``[seed, 2, trial]`` times ``noise_std``.

The reference computes x with ``numpy.interp`` (lines) and a lookup of the last breakpoint at
or before t (steps), and draws each trial's noise in one call, independently of how the run
computes segments and refills its blocks; the run's blocks are made a few steps long so that
trials cross many of their ends. Serial and batched runs, float64 and float32.
"""

from __future__ import annotations

import numpy as np
import pytest

import sim
import sim.families.hierarchical.inputs as inputs
from sim.scenario_writer import write_scenario

SEED, DT_MS, DURATION_MS = 5, 0.25, 12.0
STIMULI = {  # condition: (kind, breakpoints' times, values, noise_std)
    "schedule": ("schedule", [0, 3.37, 7.1, 10.0],
                 [[0, 1, 2], [1.5, -1, 0.25], [-2, 0.5, 1], [0.3, 0.3, -0.7]], [0.2, 0.0, 1.5]),
    "steps": ("steps", [0, 2.6, 2.7, 9.0], [[1, 2, 3], [4, 5, 6], [-1, -2, -3], [0.5, 0, -0.5]],
              0.0),
    "ramp": ("ramp", [0, DURATION_MS], [[0, 1, -1], [2, -3, 1]], 0.4),
    "constant": ("constant", [0], [[0.5, -0.5, 2.0]], 0.0),
}


def scenario(float_type: str, batch: int) -> dict:
    def stimulus(kind, times, values, noise_std) -> dict:
        found = ({"start": values[0], "stop": values[1]} if kind == "ramp" else
                 {"value": values[0]} if kind == "constant" else
                 {"times_ms": times, "values": values})
        return {"kind": kind, **found, "noise_std": noise_std}

    return {
        "name": "inputs", "seed": SEED, "dt_ms": DT_MS, "float": float_type,
        "model": {"tau_belief_ms": 5.0, "tau_error_ms": 1.0,
                  "levels": [{"name": "input", "size": 3, "precision": 2.0},
                             {"name": "cause", "size": 2,
                              "weights": {"kind": "random", "scale": 0.7}}]},
        "record": {"every_ms": DT_MS, "variables": ["belief", "error"]},
        "protocol": {"reset": "beliefs", "batch": batch, "conditions": [
            {"name": name, "count": 2 if name in ("schedule", "steps") else 1,
             "duration_ms": DURATION_MS, "stimulus": stimulus(*settings)}
            for name, settings in STIMULI.items()]},
    }


def expected_input(condition: str, trial: int, steps: int) -> np.ndarray:
    """x(s dt) + noise for s = 0..steps-1, computed here."""
    t_ms = np.arange(steps) * DT_MS
    kind, times, values, noise_std = STIMULI[condition]
    times, values = np.array(times, float), np.array(values, float)
    if kind in ("schedule", "ramp"):
        x = np.stack([np.interp(t_ms, times, values[:, unit])
                      for unit in range(values.shape[1])], axis=1)
    else:
        x = values[[np.flatnonzero(times <= t).max() for t in t_ms]]
    noise = np.random.default_rng([SEED, 2, trial]).standard_normal((steps, 3))
    return x + noise * np.asarray(noise_std)


@pytest.mark.parametrize(("batch", "float_type"), [(1, "float64"), (4, "float64"),
                                                   (4, "float32")])
def test_each_step_delivers_the_stimulus_and_its_noise(tmp_path, monkeypatch, batch,
                                                       float_type):
    monkeypatch.setattr(inputs, "FRACTION_BLOCK", 5)  # refills within segments and across
    monkeypatch.setattr(inputs, "NOISE_BLOCKS_BYTES", 3 * 8 * 7)  # 7 steps of one lane
    path = write_scenario(tmp_path / "inputs.toml", scenario(float_type, batch))
    tolerance = 1e-12 if float_type == "float64" else 1e-6
    with sim.run(path, output=tmp_path / "run.h5") as result:
        time, delivered, trials = result.time, result["levels/input/input"], result.trials
        steps = round(DURATION_MS / DT_MS)
        assert len(trials["condition"]) == 6
        for row, condition in enumerate(trials["condition"]):
            during = (time >= trials["t_start"][row] - 1e-9) & (time < trials["t_stop"][row]
                                                                  - 1e-9)
            assert during.sum() == steps
            expected = expected_input(str(condition), int(trials["index"][row]), steps)
            np.testing.assert_allclose(delivered[during], expected, rtol=tolerance,
                                       atol=tolerance, err_msg=f"{condition}, trial {row}")
