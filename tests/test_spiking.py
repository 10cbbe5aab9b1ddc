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
from xdist_groups import POSNER_SPIKING

import sim
from circuits.spiking.settings import SpikingSettings
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


# attention/posner as spikes, two 150 ms trials (a valid and an invalid cue), ~3 s
POSNER = {"model.neurons": "spiking", "model.spiking.neurons_per_unit": N, "dt_ms": 0.25,
          **{f"protocol.conditions.{index}.count": int(index in (0, 2)) for index in range(6)},
          **{f"protocol.conditions.{index}.duration_ms": 150.0 for index in (0, 2)}}


@pytest.fixture(scope="module")
def spiking_posner(tmp_path_factory):
    return sim.run("attention/posner", output=tmp_path_factory.mktemp("posner") / "p.h5",
                   overrides=POSNER)


def late(result, after_s: float) -> np.ndarray:
    """The samples at least ``after_s`` after their trial's start."""
    time = np.asarray(result.time[:])
    starts = np.asarray(result.trials["t_start"])
    return time - starts[np.searchsorted(starts, time, side="right") - 1] >= after_s


@pytest.mark.xdist_group(POSNER_SPIKING)
def test_rates_filtered_from_spikes_are_the_decoders(spiking_posner):
    """``SpikeTrains.rate`` (how the figure draws a population without a decoder) filters the
    stored spikes as Brian2's decoders filter them: for every decoded population of posner its
    rate, mean over units, equals the recorded one from 10 tau_s after each trial's reset
    (where the decoders restart at their mean; e^-10 of that step remains: 0.014 Hz of 300 Hz;
    measured here at most 0.006 Hz)."""
    time = np.asarray(spiking_posner.time[:])
    tau_s = SpikingSettings().tau_synapse_ms * 1e-3
    after = late(spiking_posner, 10 * tau_s)
    assert after.sum() == 100  # the last 50 ms of each trial
    compared = 0
    for path, trains in spiking_posner.spikes().items():
        level, population = path.split("/")
        stream = f"levels/{level}/rate_{population}"
        if stream not in spiking_posner:
            continue
        recorded = np.asarray(spiking_posner[stream][:]).mean(axis=1)
        filtered = trains.rate(time, spiking_posner.dt)
        np.testing.assert_allclose(filtered[after], recorded[after], rtol=0, atol=0.014)
        assert recorded[after].mean() > 5.0  # firing, at least at the baseline
        compared += 1
    assert compared == 10  # errors of 3 levels, beliefs of 2, both signs


@pytest.mark.xdist_group(POSNER_SPIKING)
def test_the_figure_draws_the_precision_error_neurons(spiking_posner):
    """The precision-error pools (``precision_error``, on posner's locations) are drawn in the
    locations' raster, one mark per spike (2 units: all shown), and their rates, filtered from
    their spikes, in the rates panel, each labelled; the figure lint finds nothing."""
    import matplotlib.pyplot as plt

    from sim.report.figure_lint import lint
    from sim.report.figures import draw

    figure = draw(spiking_posner)
    try:
        assert lint(figure) == []
        spikes = spiking_posner.spikes(["precision_error_positive", "precision_error_negative"])
        assert sorted(spikes) == ["locations/precision_error_negative",
                                  "locations/precision_error_positive"]
        raster = next(axis for axis in figure.axes if axis.get_ylabel() == "locations\nneuron")
        marks = {c.get_label(): len(c.get_offsets()) for c in raster.collections}
        lines = {line.get_label(): line.get_ydata() for axis in figure.axes
                 for line in axis.get_lines()}
        time = np.asarray(spiking_posner.time[:])
        for path, trains in spikes.items():
            population = path.split("/")[1]
            assert marks[population] == trains.count() > 0
            drawn = lines[f"locations {population} (from spikes)"]
            np.testing.assert_array_equal(drawn, trains.rate(time, spiking_posner.dt))
    finally:
        plt.close(figure)


@pytest.mark.xdist_group(POSNER_SPIKING)
def test_the_decoded_precision_is_the_contexts_from_each_trials_first_sample(spiking_posner):
    """The decoded precision at the locations is Pi_configured exp(C mu_context) (C = [[1],
    [-1]], Pi_configured = 1) at every sample, each trial's first included: the decoder
    recomposes it before the recorder samples, so no value is set at a trial's start (the
    first trial starts at the context's 0, the second after the first left it near 1.4)."""
    precision = np.asarray(spiking_posner["levels/locations/precision"][:])
    context = np.asarray(spiking_posner["levels/context/belief"][:, 0])
    np.testing.assert_allclose(precision, np.exp(np.outer(context, [1.0, -1.0])), rtol=1e-12)
    first = np.searchsorted(np.asarray(spiking_posner.time[:]),
                            np.asarray(spiking_posner.trials["t_start"]))
    ending = np.asarray(spiking_posner["levels/locations/precision"][first[1] - 1])
    assert abs(np.log(ending[0])) > 0.5  # the previous trial's was not kept at the reset


def test_a_sweep_runs_the_rate_reference_once_per_rate_model(tmp_path):
    """A sweep of single_cause as spikes with ``[readouts.rate_reference]`` over two spiking
    seeds (which the rate model does not see) and two tau_belief (which it does): two rate
    runs, not four (each rate run's ``created_utc`` on the points' ``/rate_reference``, and
    the folder's kept runs), the points of one tau_belief storing the same numbers, equal to a
    run of one of them outside a sweep (which runs its own), those of the other tau_belief
    others."""
    short = {**{key: value for key, value in SHORT.items() if key != "model.tau_belief_ms"},
             "protocol.trials.0.duration_ms": 50.0, "readouts.rate_reference": {}}
    vary = {"model.tau_belief_ms": [200.0, 100.0], "model.spiking.seed": [1, 2]}
    sweep = sim.sweep("perception/single_cause", vary=vary, jobs=1, overrides=short,
                      output=tmp_path / "sweep")
    index = sweep.index
    assert index.counts() == {"done": 4}
    points = {tuple(index.values(row).values()): sweep.folder / name
              for row, name in enumerate(index.files)}
    assert sorted(points) == [(100.0, 1), (100.0, 2), (200.0, 1), (200.0, 2)]
    assert len(list((tmp_path / "sweep").glob("rate-reference-*.h5"))) == 2

    def reference(path) -> tuple[str, dict[str, np.ndarray]]:
        with h5py.File(path) as file:
            group = file["rate_reference"]
            arrays: dict[str, np.ndarray] = {}
            group.visititems(lambda name, node: arrays.update({name: node[()]})
                             if isinstance(node, h5py.Dataset) else None)
            return str(group.attrs["created_utc"]), arrays

    made = {key: reference(path) for key, path in points.items()}
    assert len({made[key][0] for key in points}) == 2  # rate runs
    assert made[200.0, 1][0] == made[200.0, 2][0] != made[100.0, 1][0] == made[100.0, 2][0]
    alone = sim.run("perception/single_cause", output=tmp_path / "alone.h5",
                    overrides={**short, "model.tau_belief_ms": 200.0, "model.spiking.seed": 2})
    _, own = reference(alone.path)
    assert sorted(own) == sorted(made[200.0, 1][1]) == sorted(made[100.0, 1][1])
    assert len(own) == 4  # F and the belief trace, the trial table's two columns
    for name, values in own.items():
        np.testing.assert_array_equal(made[200.0, 1][1][name], values)
        np.testing.assert_array_equal(made[200.0, 2][1][name], values)
    assert not np.array_equal(made[100.0, 1][1]["levels/food_size/belief"],
                              own["levels/food_size/belief"])


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
