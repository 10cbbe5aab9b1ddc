"""Evidence on the default hierarchy at its own size (issue 25, point 3):
``neurons/hierarchy_spiking`` (perception/hierarchy's 64-16-4 tanh model, weights, precisions
and noisy stimulus; time constants slowed for spikes, docs/spiking.md) against the rate model
of the same scenario, which the result stores. The test picks its own trial and integrator
filter, as the issue lets it: object A for 0.6 s, then object B for 1.4 s, the belief pools'
``tau_recurrent_ms`` 100 (bundled: 20), five seeds of the neurons.

Why (measured; docs/spiking.md has the numbers): at the bundled settings one seed's mean
over a 600 ms segment's last 20% spreads by up to ~0.3. That spread is the belief pools' own
spike noise, integrated by F's slowest modes (tau_mu / H_min = 570 ms): it wanders with
correlation times up to ~1 s, so a 120 ms window averages almost nothing, and a few seeds
cannot resolve the issue's 0.05. A longer recurrent filter cuts the slow wander (its variance
falls as tau_mu / (H tau_rec^2)) and moves the noise into a ~34 Hz ring of the fastest mode
(loop gain H_max tau_rec / tau_mu = 4), which a window averages out. The long second
segment lets the beliefs settle: the integrator approaches with tau_mu / H + tau_rec, a lag
that shows as a bias while a belief still moves.

- Every belief unit of both levels, over the trial's last 20% (400 ms) and averaged over the
  seeds, lies within the issue's max(0.05, 10% of the rate belief's change over the trial)
  of the rate model's final belief. The seeds' standard error (printed) is at most a third
  of that bound, so the seeds resolve it. Four disjoint sets of five seeds (21-25, 31-35,
  41-45, 51-55) all pass, the largest difference at 0.62 of its bound and the largest
  standard error at 0.26 of its; docs/spiking.md gives the numbers.
- The same against the exact posterior's mode, which the file does not store for this model:
  the test finds it from the stored weights and precisions, for object B's noise-free input
  (the rate model's final beliefs are within 0.033 of it). The four sets reach 0.60-0.76 of
  the bound.
- The stored rate run (``[readouts.rate_reference]``) is perception/hierarchy run as rates
  with the spiking scenario's step and time constants and the test's trial: equal to 1e-12.
- F computed from the decoded beliefs falls within each segment on average over the seeds
  (its mean over the segment's first 10% above that over its last 20%, by more than three
  standard errors over the seeds), and jumps at the switch.

Five spiking runs without stored spikes (~6-7 s of CPU each) and one rate run: ~35 s.
"""

from __future__ import annotations

import numpy as np
import pytest

import sim

NAME = "neurons/hierarchy_spiking"
# the neurons' randomness; the stimulus (its noise too) stays the scenario's
SEEDS = (21, 22, 23, 24, 25)
SWITCH_S, END_S = 0.6, 2.0  # object A for 0.6 s, then object B for 1.4 s
SEGMENTS = {"object A": (0.0, SWITCH_S), "object B": (SWITCH_S, END_S)}
TAU_RECURRENT_MS = 100.0
SETTINGS = {"protocol.trials.0.duration_ms": END_S * 1e3,
            "protocol.trials.0.stimulus.times_ms": [0, SWITCH_S * 1e3],
            "model.spiking.tau_recurrent_ms": TAU_RECURRENT_MS,
            "model.spiking.record_spikes": False}
LEVELS = ("features", "objects")
TAIL = 0.2  # the issue's window: each trial's last 20%
RESOLVED = 3.0  # the seeds' standard error must be at most the bound / RESOLVED
OBJECT_B = (0.0, 0.0, -1.5, 0.0)  # the scenario's second cause, and its stimulus noise
NOISE_STD = 0.3


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> list:
    folder = tmp_path_factory.mktemp("hierarchy_spiking")
    found = [sim.run(NAME, output=folder / f"{seed}.h5",
                     overrides={**SETTINGS, "model.spiking.seed": seed})
             for seed in SEEDS]
    yield found
    for result in found:
        result.close()


def window(result, start: float, stop: float) -> np.ndarray:
    time = np.asarray(result["time"])
    return (time >= start - 1e-9) & (time < stop - 1e-9)


def decoded_tails(runs: list, level: str) -> np.ndarray:
    """Each seed's decoded belief over the trial's last 20% (the issue's window): seeds x units."""
    tail = window(runs[0], (1 - TAIL) * END_S, END_S)
    return np.array([np.asarray(result[f"levels/{level}/belief"])[tail].mean(axis=0)
                     for result in runs])


def issue_bound(result, level: str) -> np.ndarray:
    """max(0.05, 10% of the rate belief's change over the trial), per unit."""
    rate = np.asarray(result[f"rate_reference/levels/{level}/belief"])
    return np.maximum(0.05, 0.1 * np.abs(rate_final(result, level) - rate[0]))


def rate_final(result, level: str) -> np.ndarray:
    return np.asarray(result[f"rate_reference/trials/final_belief/{level}"])[0]


def check_resolved_within(decoded: np.ndarray, reference: np.ndarray, bound: np.ndarray,
                          what: str) -> None:
    """The seeds' mean within ``bound`` of ``reference``, with a standard error at most
    bound / RESOLVED (printed)."""
    mean = decoded.mean(axis=0)
    error = decoded.std(axis=0, ddof=1) / np.sqrt(len(decoded))
    print(f"{what}: decoded - reference {np.round(mean - reference, 3)}, standard error "
          f"{np.round(error, 3)}, bound {np.round(bound, 3)}")
    assert np.all(error <= bound / RESOLVED), (what, error, bound)
    assert np.all(np.abs(mean - reference) <= bound), (what, mean - reference, bound)


def test_decoded_beliefs_over_the_last_fifth_settle_on_the_rate_models_final_beliefs(runs):
    """Issue 25, point 3: every belief unit's decoded value over the trial's last 20%,
    averaged over the seeds, within max(0.05, 10% of the rate belief's change over the trial)
    of the rate model's final belief; the seeds' standard error at most a third of that bound,
    so that the seeds resolve it (a draw of seeds cannot pass by luck)."""
    for level in LEVELS:
        check_resolved_within(decoded_tails(runs, level), rate_final(runs[0], level),
                              issue_bound(runs[0], level), f"{level} against the rate model")


def generated_input(result, cause: np.ndarray) -> np.ndarray:
    """The noise-free input a top cause generates: x = W_1 tanh(W_2 tanh(cause))."""
    weights = [np.asarray(result[f"levels/{level}/weights_initial"]) for level in LEVELS]
    return weights[0] @ np.tanh(weights[1] @ np.tanh(cause))


def posterior_mode(result, x: np.ndarray, start: np.ndarray) -> np.ndarray:
    """The mode of p(mu | x) in the 64-16-4 model, written here from the stored weights and
    precisions (prior mean 0): it minimises F = 1/2 sum_l Pi_l |e_l|^2 with e_0 = x - W_1
    tanh(mu_1), e_1 = mu_1 - W_2 tanh(mu_2), e_2 = mu_2; BFGS from ``start``."""
    from scipy.optimize import minimize

    w1, w2 = (np.asarray(result[f"levels/{level}/weights_initial"]) for level in LEVELS)
    p0, p1, p2 = (np.asarray(result[f"levels/{level}/precision"])[-1]
                  for level in ("input", *LEVELS))
    split = w1.shape[1]

    def energy_and_gradient(mu: np.ndarray) -> tuple[float, np.ndarray]:
        mu1, mu2 = mu[:split], mu[split:]
        e0, e1 = x - w1 @ np.tanh(mu1), mu1 - w2 @ np.tanh(mu2)
        energy = 0.5 * (p0 @ e0**2 + p1 @ e1**2 + p2 @ mu2**2)
        gradient = np.concatenate([p1 * e1 - (1 - np.tanh(mu1) ** 2) * (w1.T @ (p0 * e0)),
                                   p2 * mu2 - (1 - np.tanh(mu2) ** 2) * (w2.T @ (p1 * e1))])
        return energy, gradient

    found = minimize(energy_and_gradient, start, jac=True, method="BFGS",
                     options={"gtol": 1e-10})
    assert np.linalg.norm(energy_and_gradient(found.x)[1]) < 1e-6, found.message
    return found.x


def test_decoded_beliefs_over_the_last_fifth_settle_on_the_posterior_mode(runs):
    """The issue's check against the exact posterior's mode. The file stores none for this
    model (the reference readout needs a linear model or at most two belief units, and a
    noise-free input), so the test finds it: the mode for object B's noise-free input, from
    the stored weights and precisions. That input is the trial's second half, up to its
    noise (the recorded input's mean over it, within five standard errors of 0.3 / sqrt(n))."""
    result = runs[0]
    x = generated_input(result, np.array(OBJECT_B))
    second = window(result, SWITCH_S, END_S)
    recorded = np.asarray(result["levels/input/input"])[second]
    assert np.all(np.abs(recorded.mean(axis=0) - x) < 5 * NOISE_STD / np.sqrt(len(recorded)))
    start = [rate_final(result, level) for level in LEVELS]
    mode = np.split(posterior_mode(result, x, np.concatenate(start)), [start[0].size])
    for level, level_mode in zip(LEVELS, mode, strict=True):
        check_resolved_within(decoded_tails(runs, level), level_mode, issue_bound(result, level),
                              f"{level} against the posterior mode")


def test_the_stored_rate_run_is_the_default_hierarchy_as_rates(runs, tmp_path):
    """perception/hierarchy as rates, with the spiking scenario's step and time constants and
    the test's trial: every belief and F as the stored rate run."""
    rate = sim.run("perception/hierarchy", output=tmp_path / "rate.h5", overrides={
        "dt_ms": 0.5, "model.tau_belief_ms": 1000.0, "model.tau_error_ms": 2.5,
        "protocol.trials.0.duration_ms": END_S * 1e3,
        "protocol.trials.0.stimulus.times_ms": [0, SWITCH_S * 1e3]})
    stored = runs[0]
    for path in ("free_energy", "levels/features/belief", "levels/objects/belief"):
        np.testing.assert_allclose(np.asarray(stored[f"rate_reference/{path}"]),
                                   np.asarray(rate[path]), rtol=0, atol=1e-12, err_msg=path)


def test_free_energy_of_the_decoded_beliefs_falls_in_each_segment_and_jumps_at_the_switch(runs):
    f = np.array([np.asarray(result["free_energy"]) for result in runs])  # seeds x samples
    reference = np.asarray(runs[0]["rate_reference/free_energy"])
    for segment, (start, stop) in SEGMENTS.items():
        early = f[:, window(runs[0], start, start + 0.1 * (stop - start))].mean(axis=1)
        late = f[:, window(runs[0], start + 0.8 * (stop - start), stop)].mean(axis=1)
        drop = early - late
        error = drop.std(ddof=1) / np.sqrt(len(drop))
        rate_drop = (reference[window(runs[0], start, start + 0.1 * (stop - start))].mean()
                     - reference[window(runs[0], start + 0.8 * (stop - start), stop)].mean())
        print(f"{segment}: F falls by {drop.mean():.2f} +- {error:.2f} (rate model "
              f"{rate_drop:.2f})")
        assert drop.mean() > 3 * error and drop.mean() > 0, (segment, drop)
    before = f[:, window(runs[0], SWITCH_S - 0.05, SWITCH_S)].mean(axis=1)
    after = f[:, window(runs[0], SWITCH_S, SWITCH_S + 0.02)].mean(axis=1)
    print(f"F 50 ms before the switch {before.mean():.2f}, 20 ms after {after.mean():.2f}")
    assert np.all(after > before), (before, after)


def test_the_figure_draws_the_decoded_beliefs_over_the_stored_rate_run(runs):
    """Each belief level's panel has, per unit shown, the decoded trace and the stored rate
    run's (``rate_reference``), read from the file; the rates panel gives each level's
    population a colour of its own; the trial is named above the first panel."""
    import matplotlib.pyplot as plt

    from sim.report.figures import draw

    result = runs[0]
    figure = draw(result)
    lines = [line.get_ydata() for axis in figure.axes for line in axis.get_lines()]
    rates = next(axis for axis in figure.axes if axis.get_ylabel().startswith("rate (Hz)"))
    colours = [tuple(line.get_color()) for line in rates.get_lines()]
    named = [text.get_text() for text in figure.axes[0].texts]
    plt.close(figure)
    # the input's 2 error pools, the features' and objects' 4 (belief, error; both signs)
    assert len(colours) == 10 and len(set(colours)) == len(colours)
    assert named == [str(np.ravel(result.trials["name"])[0])]
    for level in ("features", "objects"):
        for path in (f"levels/{level}/belief", f"rate_reference/levels/{level}/belief"):
            for unit in range(4):
                trace = np.asarray(result[path][:, unit])
                assert any(len(line) == len(trace) and np.array_equal(line, trace)
                           for line in lines), (path, unit)


def test_a_rate_reference_needs_spiking_neurons(tmp_path, capsys):
    """``[readouts.rate_reference]`` on a rate scenario: one line, exit 2, nothing written."""
    from cli_output import error_line

    from sim.cli import main

    output = tmp_path / "r.h5"
    assert main(["run", "perception/single_cause", "--set", "readouts.rate_reference={}",
                 "-o", str(output), "--no-plot"]) == 2
    line = error_line(capsys)
    assert "readouts.rate_reference:" in line and 'model.neurons = "spiking"' in line, line
    assert not output.exists()


def test_the_rate_run_is_copied_whole_with_what_the_spiking_run_records(tmp_path):
    """With only beliefs recorded the rate run copies its beliefs (no F trace, which it did not
    record), each with every attribute of the rate run's own dataset (units and declarations),
    and the spiking run's file is complete."""
    result = sim.run(NAME, output=tmp_path / "short.h5", overrides={
        "protocol.trials.0.duration_ms": 100.0,
        "protocol.trials.0.stimulus.times_ms": [0, 50],
        "record.variables": ["belief"], "model.spiking.record_spikes": False})
    with result:
        assert "rate_reference/free_energy" not in result
        for level in ("features", "objects"):
            copied = f"rate_reference/levels/{level}/belief"
            assert result[copied].shape == result[f"levels/{level}/belief"].shape
            assert result.dataset_attrs[copied] == result.dataset_attrs[f"levels/{level}/belief"]
