"""neurons/mismatch: signed prediction-error neurons in a visuomotor mismatch (issue 25).

The bundled scenario's spiking run (~3 s) and the same scenario as rate units (its TOML less
``model.neurons``, ``[model.spiking]``, ``[readouts]`` and ``[report]``; ~1 s) are shared by
the tests. The independent computations: the rate model's settled error eps at each trial's
end, itself checked against the closed form eps = Pi_u Pi_p / (Pi_u + Pi_p) (u - m), gives
each pool's rate r0 + g [+-eps]+; spikes counted here from ``/spikes`` give the readout's.
"""

from __future__ import annotations

import math
import tomllib

import numpy as np
import pytest
from cli_output import error_line

import sim
from sim.cli import main
from sim.scenario import bundled_scenarios
from sim.scenario_writer import write_scenario

NAME = "neurons/mismatch"
SIGNS = {"positive": 1.0, "negative": -1.0}


@pytest.fixture(scope="module")
def source() -> dict:
    return tomllib.loads(bundled_scenarios()[NAME].read_text())


@pytest.fixture(scope="module")
def spiking_run(tmp_path_factory):
    return sim.run(NAME, output=tmp_path_factory.mktemp("mismatch") / "spiking.h5")


@pytest.fixture(scope="module")
def rate_error(tmp_path_factory, source) -> np.ndarray:
    """The rate model's input error at each trial's end (settled: tau_mu / H = 30 ms)."""
    data = {key: value for key, value in source.items() if key not in ("readouts", "report")}
    data["model"] = {key: value for key, value in source["model"].items()
                     if key not in ("neurons", "spiking")}
    folder = tmp_path_factory.mktemp("mismatch_rate")
    result = sim.run(write_scenario(folder / "rate.toml", data), output=folder / "rate.h5")
    assert result.attrs.get("neurons", "rate") == "rate"
    error = np.asarray(result["levels/visual_flow/error"][:, 0])
    ends = np.searchsorted(np.asarray(result["time"]), np.asarray(result["trials/t_stop"]),
                           side="left") - 1
    return error[ends]


def settings(source: dict) -> dict:
    spiking = source["model"]["spiking"]
    start, stop = source["readouts"]["spike_rates"]["window_ms"]
    prior, levels = source["model"]["prior"], source["model"]["levels"]
    return {"n": spiking["neurons_per_unit"], "g": spiking["rate_per_unit_hz"],
            "r0": spiking.get("baseline_rate_hz", 10.0), "window_s": (stop - start) * 1e-3,
            "start_s": start * 1e-3, "pi_u": levels[0]["precision"],
            "pi_p": prior["precision"], "m": prior["mean"],
            "tau_c_s": (source["model"]["tau_belief_ms"] / (levels[0]["precision"]
                                                             + prior["precision"])
                        + spiking["tau_recurrent_ms"]) * 1e-3,
            "inputs": [trial["stimulus"]["value"] for trial in source["protocol"]["trials"]]}


def test_the_rate_models_error_is_the_closed_form(source, rate_error):
    """eps = Pi_u (u - mu*), mu* = (Pi_u u + Pi_p m) / (Pi_u + Pi_p): 0, -1.6, +1.6."""
    s = settings(source)
    closed = [s["pi_u"] * s["pi_p"] / (s["pi_u"] + s["pi_p"]) * (u - s["m"])
              for u in s["inputs"]]
    np.testing.assert_allclose(rate_error, closed, rtol=0, atol=1e-6)


def test_the_readout_counts_the_stored_spikes_in_its_window(spiking_run, source):
    """trials/rate_<population>/<level> = the spikes of /spikes in [start, stop) of each trial
    over N x (stop - start), counted here."""
    s = settings(source)
    starts = np.asarray(spiking_run["trials/t_start"])
    half = 0.5 * source["dt_ms"] * 1e-3
    for path, trains in spiking_run.spikes().items():
        level, population = path.split("/")
        rates = np.asarray(spiking_run[f"trials/rate_{population}/{level}"][:, 0])
        for trial, start in enumerate(starts):
            opened = start + s["start_s"] - half
            count = np.count_nonzero((trains.time >= opened)
                                     & (trains.time < opened + s["window_s"]))
            assert rates[trial] == pytest.approx(count / (s["n"] * s["window_s"]), rel=1e-12)


def poisson_sd(rate_hz: float, s: dict) -> float:
    """The standard deviation of a pool's counted rate given its rate (Poisson count)."""
    return math.sqrt(rate_hz / (s["n"] * s["window_s"]))


def test_negative_error_neurons_fire_for_a_shortfall_positive_ones_for_an_excess(spiking_run,
                                                                                   source):
    """halt (input 0 < prediction): negative pool above the baseline r0 by more than 4 Poisson
    sd, the positive one at or below r0 + 4 sd; excess (input 2): the reverse."""
    s = settings(source)
    names = list(spiking_run.trials["name"])
    above = s["r0"] + 4 * poisson_sd(s["r0"], s)
    for trial, firing, quiet in (("halt", "negative", "positive"),
                                 ("excess", "positive", "negative")):
        k = names.index(trial)
        assert spiking_run[f"trials/rate_error_{firing}/visual_flow"][k, 0] > above, trial
        assert spiking_run[f"trials/rate_error_{quiet}/visual_flow"][k, 0] <= above, trial


def test_rates_are_the_closed_form_of_the_rate_models_error(spiking_run, source, rate_error):
    """Each pool's counted rate in a mismatch = r0 + g [+-eps]+ (eps the rate model's), within
    4 sd of two independent parts: the pool's Poisson count, sqrt(r / (N T)), and the shared
    wander of the prediction it reads, g Pi_u x the standard error of the decoded belief's
    mean over the window, sd(mu) sqrt(2 tau_c / T) with tau_c = tau_mu / H + tau_rec the
    integrator's correlation time (counts only for the pool whose rectifier passes it)."""
    s = settings(source)
    names = list(spiking_run.trials["name"])
    time = np.asarray(spiking_run["time"])
    belief = np.asarray(spiking_run["levels/running/belief"][:, 0])
    for trial in ("halt", "excess"):
        k = names.index(trial)
        start = float(spiking_run["trials/t_start"][k]) + s["start_s"]
        window = belief[(time >= start) & (time < start + s["window_s"])]
        wander = (s["g"] * s["pi_u"] * window.std()
                  * math.sqrt(min(1.0, 2 * s["tau_c_s"] / s["window_s"])))
        for sign, polarity in SIGNS.items():
            drive = max(polarity * rate_error[k], 0.0)
            expected = s["r0"] + s["g"] * drive
            sd = math.hypot(poisson_sd(expected, s), wander if drive > 0 else 0.0)
            found = spiking_run[f"trials/rate_error_{sign}/visual_flow"][k, 0]
            assert abs(found - expected) <= 4 * sd, (trial, sign, found, expected, sd)


def test_spike_rates_needs_spiking_neurons(tmp_path, capsys):
    data = tomllib.loads(bundled_scenarios()["perception/single_cause"].read_text())
    data["readouts"] = {"spike_rates": {"window_ms": [0.0, 10.0]}}
    path = write_scenario(tmp_path / "rates.toml", data)
    output = tmp_path / "r.h5"
    assert main(["run", str(path), "-o", str(output), "--no-plot"]) == 2
    line = error_line(capsys)
    assert "readouts.spike_rates:" in line and 'model.neurons = "spiking"' in line, line
    assert not output.exists()
