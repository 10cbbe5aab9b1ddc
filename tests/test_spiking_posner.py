"""Posner with spikes (issue 25, points 2 and 3): attention/posner as spiking populations, with
its top-down precision through spikes (``circuits.spiking.topdown``), against the same scenario
as rate units.

Both run at dt = 0.25 ms (the scenario's 0.1 ms makes 2.5x the steps; a Poisson neuron at
1000 Hz then fires in 0.25 of the steps, below the 0.5 allowed) with one trial per condition
(6 in all, 300 ms each, the target from 100 ms); the spiking runs at N = 800 neurons per unit,
ten seeds of the neurons' randomness (the stimulus and its noise are the scenario's, the same
in every run). The claims:

- Posner's order, valid < neutral < invalid in mean decision time, holds with spikes (the
  decision readout reads the decoded beliefs);
- the issue's letter, per trial and per belief unit (both target units, the context): the
  decoded belief over the trial's last 20%, averaged over the seeds, is within max(0.05, 10%
  of the rate belief's change over the trial) of the rate model's final belief; the seeds'
  standard error (printed) is at most a third of that bound, so the seeds resolve it;
- the error neurons' gain is the precision the context sets through spikes: at the stimulated
  location the decoded error is the decoded precision times (input - decoded belief) within
  10% (measured 0.989 +- 0.010 valid, 1.038 +- 0.008 neutral, 1.020 +- 0.010 invalid; the
  shot noise of the neurons' s_lambda predicts a Jensen factor of 1.020, 1.003, 1.020,
  ``circuits.spiking.topdown``).

What limits the agreement per trial (measured at N = 800): the target level's spike noise. One
seed's window mean scatters by ~0.03 (0.02-0.04 by seed set) on an invalid trial's stimulated
target unit (its precision 1/4 makes it a slow integrator, tau_belief / H = 40 ms, of its own
pool's noise; single seeds ranged 0.13-0.27 around the rate model's 0.20), ~0.01-0.03 elsewhere
and on the context; the seeds' rms scatter over the target units is 0.031, 0.024, 0.014 at N =
400, 800, 1600 (~N^-1/2; context 0.033, 0.022, 0.015), so more seeds and more neurons buy the
same at equal CPU. Three seeds left standard errors of up to 0.6 of the bound and differences
of up to 0.86 of it; six, 0.4 and 0.6; ten, 0.23 and 0.59. Neither the rate reference nor lag
limits it: the rate model's final belief lies within 0.021 of its own last-20% mean (the
stimulus noise, 0.1 per step through tau_belief = 50 ms, moves a single sample little; 0.002 on
the context), so the letter (final belief) and the window mean differ by under half the bound;
and the decoded beliefs' mean over trials and seeds less the rate model's window mean is
-0.002..+0.007 (the slowest, invalid, target is within 3% of its change by the window's start;
the synaptic filter's ~10-20 ms delay then moves it by < 0.005). Four disjoint sets (1-10,
11-20, 21-30, 31-40) reach at most 0.59 of the bound on the target (0.19, 0.59, 0.39, 0.22) and
0.23 on the context, standard errors at most 0.23 of it; over all 40 seeds an invalid trial's
stimulated unit averages 0.206 against the rate model's 0.197.

Cost, measured when written (2-core machine at a load of ~6): 40 s of CPU, 105 s wall for the
module (~3.5 s of CPU per spiking run, ~4 s for the rate run); the first run on a machine also
generates the precision-error neurons' code.
"""

from __future__ import annotations

import numpy as np
import pytest
from xdist_groups import POSNER_SPIKING

import sim
from circuits.spiking.settings import SpikingSettings

pytestmark = pytest.mark.xdist_group(POSNER_SPIKING)  # its code: tests/xdist_groups.py

SEEDS = tuple(range(1, 11))
COUNT = 1  # trials per condition
NEURONS = 800
COMMON = {"dt_ms": 0.25, **{f"protocol.conditions.{index}.count": COUNT for index in range(6)}}
KINDS = ("valid", "neutral", "invalid")
BELIEFS = ("target", "context")
TAIL = 0.8  # the window starts at 80% of each trial
RESOLVED = 3.0  # the seeds' standard error must be at most the bound / RESOLVED


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
def test_decoded_beliefs_reach_the_rate_models_final_belief(rate, spiking, level):
    """Per trial and unit (the issue's letter): the decoded belief's mean over the trial's
    last 20%, averaged over the seeds, within max(0.05, 10% of the rate belief's change over
    the trial) of the rate model's final belief, with the seeds' standard error at most
    1 / RESOLVED of that bound."""
    path = f"levels/{level}/belief"
    rate_whole = windows(rate, path)
    final = np.array([w[-1] for w in rate_whole])
    tolerance = np.maximum(0.05, 0.1 * np.array([np.abs(w[-1] - w[0]) for w in rate_whole]))
    tails = np.array([[np.mean(w, axis=0) for w in windows(result, path, TAIL)]
                      for result in spiking])  # seeds x trials x units
    found = tails.mean(axis=0)
    error = tails.std(axis=0, ddof=1) / np.sqrt(len(SEEDS))
    for index, name in enumerate(conditions(rate)):
        print(f"{name:14s} {level}: spiking {np.round(found[index], 3)} +- "
              f"{np.round(error[index], 3)}, rate final {np.round(final[index], 3)}, "
              f"tolerance {np.round(tolerance[index], 3)}")
    print(f"{level}: largest |difference| / bound {np.max(np.abs(found - final) / tolerance):.2f}, "
          f"largest standard error / bound {np.max(error / tolerance):.2f}")
    assert np.all(error <= tolerance / RESOLVED), (error, tolerance)
    assert np.all(np.abs(found - final) <= tolerance), (found, final, tolerance)


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
            error, precision, signal = (windows(result, f"levels/locations/{name}", TAIL)
                                        for name in ("error", "precision", "input"))
            belief, context = (windows(result, f"levels/{name}/belief", TAIL)
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
