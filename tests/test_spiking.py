"""The spiking realisation (issue 25): its setting, refusals and what it records.

A short spiking run of perception/single_cause (20 neurons per unit, 300 ms at dt = 0.25 ms,
~3 s) is shared by the layout tests; the refusals run nothing. The agreement with the rate model
and the N-scaling of the fluctuation are in ``test_spiking_evidence.py``.
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from cli_output import error_line

import sim
from sim.cli import main

N = 20
SHORT = {"model.neurons": "spiking", "model.spiking.neurons_per_unit": N, "dt_ms": 0.25,
         "model.tau_belief_ms": 200.0, "model.tau_error_ms": 5.0,
         "protocol.trials.0.duration_ms": 300.0, "record.every_ms": 1.0}


@pytest.fixture(scope="module")
def spiking_run(tmp_path_factory):
    path = tmp_path_factory.mktemp("spiking") / "single_cause.h5"
    return sim.run("perception/single_cause", output=path, overrides=SHORT)


@pytest.mark.parametrize(("scenario", "sets", "field", "says"), [
    ("perception/single_cause", ["model.spiking.neurons_per_unit=0"],
     "model.spiking.neurons_per_unit", "expected a number >= 1"),
    ("perception/single_cause", ["model.spiking.max_rate_hz=5"], "model.spiking.max_rate_hz",
     "expected max_rate_hz > baseline_rate_hz"),
    ("perception/single_cause", ["model.spiking.max_rate_hz=60000"],
     "model.spiking.max_rate_hz", "expected at most 50000 Hz"),
    ("perception/single_cause", ["model.spiking.neuron_model=lif"],
     "model.spiking.neuron_model", "expected one of poisson"),
    ("perception/single_cause", ["numerics.device=standalone"], "numerics.device",
     "no compiled form yet"),
    ("perception/single_cause", ["model.spiking.neurons_per_unit=2000",
                                 "protocol.trials.0.duration_ms=200000"],
     "model.spiking.neurons_per_unit", "recorded spikes"),
    ("perception/single_cause", ["record.checkpoint_every=1"], "record.checkpoint_every",
     "cannot resume yet"),
    ("perception/single_cause", ["protocol.batch=2"], "protocol.batch", "one copy"),
    ("perception/single_cause", ["method=rk2"], "method", 'expected method = "euler"'),
    ("perception/single_cause", ["model.coupling=dense"], "model.coupling",
     "connect through their own synapses"),
    ("learning/prior", [], "model.neurons", "do not support the mechanism 'prior_learning'"),
    ("perception/creak", [], "model.neurons", "the discrete family has no spiking form"),
])
def test_what_cannot_spike_is_refused_in_one_line(tmp_path, capsys, scenario, sets, field,
                                                   says):
    output = tmp_path / "r.h5"
    args = ["--set", "model.neurons=spiking"]
    for item in sets:
        args += ["--set", item]
    assert main(["run", scenario, *args, "-o", str(output), "--no-plot"]) == 2
    line = error_line(capsys)
    assert f"{field}:" in line and says in line, line
    assert not output.exists()
    assert not list(tmp_path.iterdir())


def test_spiking_settings_need_spiking_neurons(tmp_path, capsys):
    assert main(["run", "perception/single_cause", "--set", "model.spiking.fan_in=3",
                 "-o", str(tmp_path / "r.h5"), "--no-plot"]) == 2
    assert "model.spiking: [model.spiking] is read only with neurons" in error_line(capsys)


def test_spikes_are_stored_per_population_in_the_agreed_layout(spiking_run):
    """/spikes/<level>/<population>: sorted float64 times in s and uint32 neurons within the
    population, with the attributes the NWB export reads (docs/results.md)."""
    with h5py.File(spiking_run.path) as file:
        assert file.attrs["neurons"] == "spiking"
        populations = {f"{level}/{name}" for level in file["spikes"]
                       for name in file["spikes"][level]}
        assert populations == {f"{level}/{role}_{sign}" for sign in ("positive", "negative")
                               for level, role in [("light", "error"), ("food_size", "error"),
                                                   ("food_size", "belief"),
                                                   ("food_size", "activation")]}
        for path in populations:
            group = file["spikes"][path]
            time, neuron = group["time"], group["neuron"]
            assert time.dtype == np.float64 and time.attrs["units"] == "s"
            assert neuron.dtype == np.uint32
            assert time.maxshape == (None,) and time.chunks is not None
            assert group.attrs["level"] == path.split("/")[0]
            assert group.attrs["sign"] in ("positive", "negative")
            assert group.attrs["neurons_per_unit"] == N and group.attrs["unit_count"] == 1
            assert group.attrs["neuron_model"] == "poisson"
            times = time[:]
            assert len(times) > 0 and np.all(np.diff(times) >= 0)
            assert times[0] >= 0 and times[-1] < 0.3
            assert neuron[:].max() < N


def test_rates_in_hz_match_the_spike_counts(spiking_run):
    """The recorded population rate (Hz per unit) averaged over the run equals the spike count
    divided by neurons and time, to the filter's edge effect and sampling."""
    spikes = spiking_run.spikes()
    duration = 0.3
    for path, trains in spikes.items():
        level, population = path.split("/")
        if population.startswith("activation"):
            continue  # no decoder: its spikes only
        stream = f"levels/{level}/rate_{population}"
        assert spiking_run.units(stream) == "Hz"
        counted = trains.count() / (N * duration)
        recorded = float(np.mean(spiking_run[stream][:, 0]))
        assert recorded == pytest.approx(counted, rel=0.1, abs=2.0), path


def test_decoded_quantities_keep_the_rate_models_names(spiking_run):
    """Beliefs and errors under the rate model's datasets, the trial table's final belief the
    last decoded sample's neighbourhood, and F computed from them."""
    belief = np.asarray(spiking_run["levels/food_size/belief"][:, 0])
    assert belief[0] == pytest.approx(3.0)  # starts at the prior mean, as the rate model
    assert 0.5 < belief[-50:].mean() < 3.0  # moved down towards the mode (1.57)
    assert "levels/light/error" in spiking_run and "free_energy" in spiking_run
    assert np.isfinite(spiking_run.trials["final_free_energy"]).all()
    assert spiking_run.parameters["model"]["neurons"] == "spiking"
    assert spiking_run.parameters["model"]["spiking"]["neurons_per_unit"] == N


def test_pcsim_plot_draws_every_spike_of_the_shown_units(spiking_run, tmp_path):
    """The figure's rasters hold one mark per spike of each population shown (single_cause has
    one unit per level, all of whose neurons are shown), and ``pcsim plot`` writes it."""
    import matplotlib.pyplot as plt

    from sim.report.figures import draw

    figure = draw(spiking_run)
    marks = {collection.get_label(): len(collection.get_offsets())
             for axis in figure.axes for collection in axis.collections}
    plt.close(figure)
    spikes = spiking_run.spikes()
    for population in ("belief_positive", "belief_negative"):
        assert marks[population] == spikes[f"food_size/{population}"].count()
    assert main(["plot", str(spiking_run.path), "-o", str(tmp_path / "f.png")]) == 0
    assert (tmp_path / "f.png").stat().st_size > 0


def test_auto_runs_a_long_spiking_scenario_on_the_runtime_device():
    """``auto`` compiles a rate model of 20,000 steps or more (posner, single_cause at 40,000
    steps); the same scenario with spiking neurons stays on the runtime device."""
    from sim.compiled.choice import choose
    from sim.scenario import load_scenario

    long = {"numerics.device": "auto", "dt_ms": 0.25, "record.every_ms": 1.0,
            "protocol.trials.0.duration_ms": 10000.0}
    if choose(load_scenario("perception/single_cause", overrides=long), False) != "standalone":
        pytest.skip("no C++ compiler: auto compiles nothing here")
    spiking = load_scenario("perception/single_cause",
                            overrides={**long, "model.neurons": "spiking"})
    assert choose(spiking, False) == "runtime"
