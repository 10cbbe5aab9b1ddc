"""Posner with spikes (issue 25, points 2 and 3): attention/posner as spiking populations, with
its top-down precision through spikes (``circuits.spiking.topdown``), against the same scenario
as rate units.

Both run at dt = 0.25 ms (the scenario's 0.1 ms makes 2.5x the steps; a Poisson neuron at
1000 Hz then fires in 0.25 of the steps, below the 0.5 allowed) with COUNT trials per
condition (12 in all, 300 ms each); the spiking runs at N = 800 neurons per unit, three seeds
of the neurons' randomness (the stimulus and its noise are the scenario's, the same in every
run). The claims:

- Posner's order, valid < neutral < invalid in mean decision time, holds with spikes (the
  decision readout reads the decoded beliefs);
- the decoded beliefs over each trial's last 20%, averaged over the seeds and the trials of
  its condition, are within max(0.05, 10% of the rate belief's change over the trial) of the
  rate model's over the same window;
- the error neurons' gain is the precision the context sets through spikes: at the stimulated
  location the decoded error is the decoded precision times (input - decoded belief) within
  10% (measured 1.049 +- 0.023 valid, 1.001 +- 0.009 neutral, 1.014 +- 0.013 invalid; the
  shot noise of the neurons' s_lambda predicts a Jensen factor of 1.020, 1.003, 1.020,
  ``circuits.spiking.topdown``).

Cost, measured when written (2-core machine at a load of ~6): 34 s of CPU, 80 s wall for the
module (~12 s of CPU per spiking run, ~4 s for the rate run); the first run on a machine also
generates the precision-error neurons' code.
"""

from __future__ import annotations

import numpy as np
import pytest

import sim
from circuits.spiking.settings import SpikingSettings

SEEDS = (1, 2, 3)
COUNT = 2  # trials per condition
NEURONS = 800
COMMON = {"dt_ms": 0.25, **{f"protocol.conditions.{index}.count": COUNT for index in range(6)}}
KINDS = ("valid", "neutral", "invalid")
BELIEFS = ("target", "context")


@pytest.fixture(scope="module")
def rate(tmp_path_factory):
    return sim.run("attention/posner", output=tmp_path_factory.mktemp("rate") / "r.h5",
                   overrides=COMMON)


@pytest.fixture(scope="module")
def spiking(tmp_path_factory) -> list:
    folder = tmp_path_factory.mktemp("spiking")
    return [sim.run("attention/posner", output=folder / f"{seed}.h5",
                    overrides={**COMMON, "model.neurons": "spiking",
                               "model.spiking.neurons_per_unit": NEURONS,
                               "model.spiking.seed": seed, "model.spiking.record_spikes": False})
            for seed in SEEDS]


def windows(result, path: str, start: float = 0.0) -> list[np.ndarray]:
    """``path``'s samples in each trial, from ``start`` (a fraction of the trial) to its end."""
    time = np.asarray(result["time"][:])
    values = np.asarray(result[path][:])
    return [values[(time >= a + start * (z - a)) & (time < z)]
            for a, z in zip(np.asarray(result.trials["t_start"]),
                            np.asarray(result.trials["t_stop"]), strict=True)]


def conditions(result) -> np.ndarray:
    return np.asarray(result.trials["condition"]).astype(str)


def test_posners_order_holds_with_spikes(rate, spiking):
    """Mean decision time over the seeds and trials of each kind: valid < neutral < invalid,
    every trial decided."""
    kinds = np.array([name.split("_")[0] for name in conditions(rate)])
    times = np.array([np.asarray(result.trials["decision_time"], dtype=float)
                      for result in spiking])
    assert not np.isnan(times).any(), times
    means = {kind: times[:, kinds == kind].mean() for kind in KINDS}
    rate_times = np.asarray(rate.trials["decision_time"], dtype=float)
    print("mean RT (ms), spiking:", {k: round(v, 2) for k, v in means.items()}, "rate:",
          {kind: round(rate_times[kinds == kind].mean(), 2) for kind in KINDS})
    assert means["valid"] < means["neutral"] < means["invalid"], means


@pytest.mark.parametrize("level", BELIEFS)
def test_decoded_beliefs_settle_on_the_rate_models(rate, spiking, level):
    """Per condition: the mean over seeds and trials of the decoded belief's last 20% within
    max(0.05, 10% of the rate belief's change over the trial) of the rate model's mean over
    the same window (the stimulus's noise moves a single sample of either)."""
    path = f"levels/{level}/belief"
    names = conditions(rate)
    rate_whole = windows(rate, path)
    rate_tail = np.array([np.mean(w, axis=0) for w in windows(rate, path, 0.8)])
    tails = np.array([[np.mean(w, axis=0) for w in windows(result, path, 0.8)]
                      for result in spiking])
    for name in dict.fromkeys(names):
        trials = names == name
        change = np.array([np.abs(w[-1] - w[0]) for w in rate_whole])[trials].mean(axis=0)
        tolerance = np.maximum(0.05, 0.1 * change)
        found, expected = tails[:, trials].mean(axis=(0, 1)), rate_tail[trials].mean(axis=0)
        print(f"{name:14s} {level}: spiking {np.round(found, 3)}, rate {np.round(expected, 3)}, "
              f"tolerance {np.round(tolerance, 3)}")
        assert np.all(np.abs(found - expected) <= tolerance), (name, found, expected, tolerance)


def test_the_context_sets_the_error_neurons_gain_through_spikes(spiking):
    """The decoded precision at the locations is Pi_configured exp(C mu_context) at the decoded
    context (the rate model's formula; C = [[1], [-1]], Pi_configured = 1), and at the
    stimulated location the error neurons' decoded output over each trial's last 20% is that
    precision times (input - decoded belief) within 10% (averaged over the seeds and the
    trials of each kind). A gain the context did not reach would be off by Pi_configured / Pi:
    a factor 4 (valid) or 1/4 (invalid). The neurons' own s_lambda is a noisy K-sample, so
    their mean gain is Pi e^{v/2} (Jensen): shot noise alone gives v = (r_+ + r_-) /
    (2 K g^2 tau_s), 1.020 at the cue's |mu| = 1.39, printed beside the measured ratio."""
    defaults = SpikingSettings()
    r0, g = defaults.baseline_rate_hz, defaults.rate_per_unit_hz
    k, tau_s = defaults.fan_in, defaults.tau_synapse_ms * 1e-3
    for kind in KINDS:
        ratios, jensen = [], []
        for result in spiking:
            names = conditions(result)
            error, precision, signal = (windows(result, f"levels/locations/{name}", 0.8)
                                        for name in ("error", "precision", "input"))
            belief, context = (windows(result, f"levels/{name}/belief", 0.8)
                               for name in BELIEFS)
            for index, name in enumerate(names):
                if not name.startswith(kind):
                    continue
                gain = np.exp(np.outer(context[index][:, 0], [1.0, -1.0]))
                np.testing.assert_allclose(precision[index], gain, rtol=1e-9)
                unit = 0 if name.endswith("left") else 1
                expected = precision[index] * (signal[index] - belief[index])
                ratios.append(error[index][:, unit].mean() / expected[:, unit].mean())
                variance = (2 * r0 + g * np.abs(context[index][:, 0])) / (2 * k * g**2 * tau_s)
                jensen.append(np.exp(variance / 2).mean())
        print(f"{kind}: decoded error / (Pi (input - belief)) {np.mean(ratios):.3f} "
              f"+- {np.std(ratios, ddof=1) / np.sqrt(len(ratios)):.3f}, shot-noise e^(v/2) "
              f"{np.mean(jensen):.3f}")
        assert np.mean(ratios) == pytest.approx(1.0, rel=0.1), (kind, ratios)
