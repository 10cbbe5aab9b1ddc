"""Evidence that the spiking realisation computes what the rate model computes (issue 25,
point 3): perception/single_cause (u = 2 observed through g(v) = v^2, prior N(3, 1), exact
posterior mode 1.5675), and perception/cue_integration's fog levels against Ernst & Banks
(~10 s). The hierarchy's evidence is ``tests/test_spiking_hierarchy.py``'s, at its own size
(64-16-4: every belief unit of both levels, five seeds, against the rate model and the
posterior's mode); a test of the top level of a 16-8-4 shrink (three seeds, ~110 s of CPU in
the suite) said less than it and was retired (its numbers: docs/spiking.md).

The scenario's own time constants (1 ms) are far below a synaptic filter, so both models run
with tau_belief = 200 ms, tau_error = 5 ms (the fixed point, the posterior mode, does not
depend on them) at dt = 0.25 ms, for 1.2 s, at N = 50, 200 and 800 neurons per unit and three
seeds of the neurons' randomness (the stimulus has no noise): 9 runs, 6 s on two idle cores
(84 s at a load of 9). Measured when written: the fluctuation's std 0.290, 0.143, 0.080 at
N = 50, 200, 800, slope of log std against log N -0.465 +- 0.028 (predicted -1/2,
``circuits.spiking``; 2 s runs gave -0.53 +- 0.02); the tests print the means.
"""

from __future__ import annotations

import numpy as np
import pytest

import sim

SIZES = (50, 200, 800)
SEEDS = (11, 12, 13)
DURATION_MS = 1200.0
SETTLED = 0.25  # the first quarter is the descent from the prior mean: left out of the spread
BLOCK = 50  # samples (ms) per block for the spread's standard error (>> correlation ~20 ms)
COMMON = {"dt_ms": 0.25, "model.tau_belief_ms": 200.0, "model.tau_error_ms": 5.0,
          "protocol.trials.0.duration_ms": DURATION_MS, "record.every_ms": 1.0}
BELIEF = "levels/food_size/belief"


@pytest.fixture(scope="module")
def rate(tmp_path_factory):
    return sim.run("perception/single_cause", output=tmp_path_factory.mktemp("rate") / "r.h5",
                   overrides=COMMON)


@pytest.fixture(scope="module")
def beliefs(tmp_path_factory) -> dict[int, np.ndarray]:
    """Decoded belief traces (seeds x samples) per N."""
    folder = tmp_path_factory.mktemp("spiking")
    found = {}
    for n in SIZES:
        traces = []
        for seed in SEEDS:
            result = sim.run("perception/single_cause", output=folder / f"{n}_{seed}.h5",
                             overrides={**COMMON, "model.neurons": "spiking",
                                        "model.spiking.neurons_per_unit": n,
                                        "model.spiking.seed": seed,
                                        "model.spiking.record_spikes": False})
            traces.append(np.asarray(result[BELIEF][:, 0]))
        found[n] = np.array(traces)
    return found


@pytest.mark.parametrize("n", [200, 800])
def test_decoded_belief_settles_on_the_rate_models(rate, beliefs, n):
    """Mean over seeds of each run's last 20% within max(0.05, 10% of the rate belief's change
    over the trial) of the rate model's final belief, and of the exact posterior's mode."""
    rate_belief = np.asarray(rate[BELIEF][:, 0])
    final = rate_belief[-1]
    tolerance = max(0.05, 0.1 * abs(final - rate_belief[0]))
    traces = beliefs[n]
    tail = traces[:, int(0.8 * traces.shape[1]):].mean(axis=1)
    print(f"N = {n}: last 20% {np.round(tail, 4)}, mean {tail.mean():.4f}; rate model "
          f"{final:.4f}, tolerance {tolerance:.3f}")
    assert tail.mean() == pytest.approx(final, abs=tolerance), (tail, final, tolerance)
    mode = float(np.ravel(rate.trials["reference_mode/food_size"])[0])
    assert tail.mean() == pytest.approx(mode, abs=tolerance)


def spread(traces: np.ndarray) -> tuple[float, float]:
    """Std of the settled samples around their mean (over time and seeds), and the standard
    error of its log from the variance of BLOCK-sample blocks (independent for blocks much
    longer than the fluctuation's correlation time)."""
    settled = traces[:, int(SETTLED * traces.shape[1]):]
    usable = settled.shape[1] // BLOCK * BLOCK
    deviations = settled[:, :usable] - settled.mean()
    block_variances = (deviations**2).reshape(-1, BLOCK).mean(axis=1)
    variance = block_variances.mean()
    error = block_variances.std(ddof=1) / np.sqrt(len(block_variances))
    return float(np.sqrt(variance)), float(error / (2 * variance))


def test_fluctuation_shrinks_as_one_over_root_n(beliefs):
    """Rate-coded populations: std ~ N^-1/2. The weighted least-squares slope of log std
    against log N over three sizes is within 0.15 of -1/2 with a standard error below 0.05."""
    stds, errors = zip(*(spread(beliefs[n]) for n in SIZES), strict=True)
    x, y = np.log(SIZES), np.log(stds)
    weights = 1.0 / np.square(errors)
    centre = np.sum(weights * x) / np.sum(weights)
    slope = np.sum(weights * (x - centre) * y) / np.sum(weights * (x - centre) ** 2)
    slope_error = 1.0 / np.sqrt(np.sum(weights * (x - centre) ** 2))
    stated = f"std {np.round(stds, 4)} at N = {SIZES}: slope {slope:.3f} +- {slope_error:.3f}"
    print(stated)
    assert slope_error < 0.05, stated
    assert abs(slope + 0.5) < 0.15, stated


# perception/cue_integration's six fixed fog levels, 1.5 s each (the seventh, whose fog rolls
# in within the trial, is left at its own length and not compared), N = 200 and the belief
# integrators' recurrent filter at 100 ms: ~10 s in all
CUES = {"dt_ms": 0.25, "model.tau_belief_ms": 200.0, "model.tau_error_ms": 5.0,
        "record.every_ms": 1.0, **{f"protocol.trials.{i}.duration_ms": 1500.0 for i in range(6)}}
CUES_SPIKING = {"model.neurons": "spiking", "model.spiking.neurons_per_unit": 200,
                "model.spiking.tau_recurrent_ms": 100.0, "model.spiking.record_spikes": False}
SIGHT = 4.0 * 0.5 ** np.arange(6)  # sight's precision per fog level; hearing's is 1


def trial_tails(result, trials: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per trial: the belief's mean over its last 20%, its first and its last sample."""
    belief = np.asarray(result["levels/position/belief"][:, 0])
    time = np.asarray(result["time"][:])
    starts, stops = np.ravel(result.trials["t_start"]), np.ravel(result.trials["t_stop"])
    within = [(time >= start) & (time < stop) for start, stop in zip(starts, stops, strict=True)]
    tails = [belief[mask & (time >= start + 0.8 * (stop - start))].mean()
             for mask, start, stop in zip(within, starts, stops, strict=True)]
    return (np.array(tails[:trials]), np.array([belief[mask][0] for mask in within[:trials]]),
            np.array([belief[mask][-1] for mask in within[:trials]]))


def test_cue_integration_every_fog_level(tmp_path):
    """Each fog level's decoded percept, last 20% averaged over three seeds, within
    max(0.05, 10% of the rate belief's change) of the rate model's final belief and of
    Ernst & Banks' precision-weighted average (Pi_s 1 + Pi_h 3) / (Pi_s + Pi_h). Measured
    when written (seeds 1-3): 1.416, 1.677, 2.032, 2.362, 2.631, 2.794 against 1.400, 1.667,
    2.000, 2.333, 2.600, 2.778."""
    rate = sim.run("perception/cue_integration", output=tmp_path / "rate.h5", overrides=CUES)
    _, first, final = trial_tails(rate, 6)
    tolerance = np.maximum(0.05, 0.1 * np.abs(final - first))
    found = np.mean([trial_tails(sim.run(
        "perception/cue_integration", output=tmp_path / f"{seed}.h5",
        overrides={**CUES, **CUES_SPIKING, "model.spiking.seed": seed}), 6)[0]
        for seed in SEEDS], axis=0)
    ernst_banks = (SIGHT * 1.0 + 1.0 * 3.0) / (SIGHT + 1.0)
    print(f"cue integration: spiking {np.round(found, 3)}, rate {np.round(final, 3)}")
    assert np.all(np.abs(found - final) <= tolerance), (found, final, tolerance)
    assert np.all(np.abs(found - ernst_banks) <= tolerance), (found, ernst_banks, tolerance)
