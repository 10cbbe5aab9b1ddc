"""Figures fit for a paper, and figures that follow declarations.

- The figure lint (``sim.report.figure_lint``) finds nothing in any bundled scenario's figure
  nor in a sweep's: no two texts overlap, no legend covers data, every axis is labelled, no
  panel is empty or all zeros, no log axis reads "4x10^0". Each scenario's figure is drawn from
  the file of its run as a user runs it (``tests/bundled_runs.py``, shared with other modules).
- The lint itself finds each defect in a figure made to have it (a lint that finds nothing
  proves nothing).
- A mechanism defined only here declares the variable it records; the figure draws its panel,
  with the recorded values, and leaves out a variable declared ``plot = "none"``; no figure
  code names it.
- The same for the discrete family: a mechanism defined only here records ln Q of a factor,
  declared; the discrete figure draws its panel (the recorded values, a line per cause named
  in the legend) beside Q's stacked areas, and leaves out the one declared ``plot = "none"``.
- A level's ``units`` reach the datasets, the figure's labels and the scenario's parameters
  (the ERP figure's too: an ERP sums the level's errors, in their units); a malformed one is
  refused in one line.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pytest
from xdist_groups import BUNDLED

import sim
from circuits.mechanism import Mechanism, Stream, state_array
from circuits.variables import Variable
from sim import registry
from sim.errors import ScenarioError
from sim.io.reader import declared
from sim.report.figure_lint import lint
from sim.report.figures import draw
from sim.report.show import show_lines
from sim.scenario import bundled_scenarios
from sim.scenario_writer import write_scenario
from sim.sweeps.report import draw_sweep

# one xdist worker runs every module that reads the session's bundled runs (tests/bundled_runs.py)
pytestmark = pytest.mark.xdist_group(BUNDLED)


@pytest.fixture(scope="module")
def results(bundled):
    """Every bundled scenario as ``pcsim run`` ran it (the session's runs:
    ``tests/bundled_runs.py``), opened."""
    opened = {name: sim.load(bundled[name].output) for name in sorted(bundled_scenarios())}
    yield opened
    for result in opened.values():
        result.close()


@pytest.mark.parametrize("name", sorted(bundled_scenarios()))
def test_bundled_figure_passes_the_lint(results, name):
    figure = draw(results[name])
    try:
        assert lint(figure) == []
    finally:
        plt.close(figure)


@pytest.mark.parametrize("name", ["perception/creak", "perception/creak_where"])
def test_the_bars_legend_sits_in_the_first_bars_panel(bundled, name):
    """The legend of final Q against the exact posterior lies inside the first trial's bar
    panel (it sat above the panel's title, apart from the bars), and covers no bar (the
    lint: ``test_bundled_figure_passes_the_lint``)."""
    with sim.load(bundled[name].output) as result:
        figure = draw(result)
    try:
        renderer = figure.canvas.get_renderer()
        axis = next(axis for axis in figure.axes if axis.get_legend() is not None and
                    "exact posterior" in [t.get_text() for t in axis.get_legend().get_texts()])
        box, panel = axis.get_legend().get_window_extent(renderer), axis.get_window_extent(
            renderer)
        assert (panel.x0 - 1 <= box.x0 and box.x1 <= panel.x1 + 1 and panel.y0 - 1 <= box.y0
                and box.y1 <= panel.y1 + 1), (box, panel)
    finally:
        plt.close(figure)


def test_sweep_figure_passes_the_lint(tmp_path):
    swept = sim.sweep("perception/cue_integration", seeds=2, jobs=1, output=tmp_path / "fog",
                      vary={"protocol.trials.*.stimulus.noise_std": [0.0, 0.5]})
    figure = draw_sweep(swept.path)
    try:
        assert lint(figure) == []
        curve = figure.axes[1]
        names = [label.get_text() for label in curve.get_xticklabels()]
        assert names == ["clear", "fog 1", "fog 2", "fog 3", "fog 4", "fog 5"]  # not the
        assert "fog rolls in" in curve.get_xlabel()  # schedule, which is named as left out
    finally:
        plt.close(figure)


def test_the_noise_reference_follows_an_override(tmp_path):
    """The reference 1 / noise variance is drawn at the noise the run drew its input with: a
    ``--set`` of ``noise_std`` (an override, stored with the result) moves it from the file's
    4 and 0.25 to 1 / 1.0^2 and 1 / 0.25^2, on the precision's panel and, as ln, on the
    log-precision's."""
    noise = np.array([1.0, 0.25])
    result = sim.run("attention/unknown_noise", output=tmp_path / "noise.h5",
                     overrides={"protocol.trials.0.stimulus.noise_std": noise.tolist(),
                                "protocol.trials.0.duration_ms": 50.0})
    figure = draw(result)
    try:
        drawn = {axis.get_ylabel(): sorted(float(line.get_ydata()[0])
                                           for line in axis.get_lines()
                                           if line.get_linestyle() == ":")
                 for axis in figure.axes}
    finally:
        plt.close(figure)
    expected = np.sort(1.0 / noise ** 2)
    panels = {label: values for label, values in drawn.items() if values}
    assert len(panels) == 2, drawn
    for label, values in panels.items():
        want = np.log(expected) if "log-precision" in label else expected
        np.testing.assert_allclose(values, want, rtol=1e-12)


# the lint finds what it is for ------------------------------------------------------------------
def test_the_lint_finds_each_defect():
    figure, (crowded, empty, zeros, bare) = plt.subplots(4, 1, figsize=(5, 8))
    x = np.linspace(0.0, 1.0, 50)
    crowded.plot(x, x, label="a line under its legend")
    crowded.legend(loc="center")  # over the line's middle
    crowded.set(xlabel="x", ylabel="y", title="one title")
    crowded.text(0.5, 1.02, "one title", transform=crowded.transAxes, ha="center")  # on it
    empty.set(xlabel="x", ylabel="nothing drawn")
    zeros.plot(x, np.full_like(x, 1e-30))
    zeros.set(xlabel="x", ylabel="a gap of rounding")
    bare.semilogy(x, 0.3 + 4 * x)
    found = lint(figure)
    plt.close(figure)
    kinds = [line.split(":")[0] for line in found]
    assert {"text overlaps text", "legend covers data", "empty panel", "all zeros",
            "axis without a label", "mantissa ticks"} <= set(kinds), found


def test_a_clean_figure_has_no_findings():
    figure, axis = plt.subplots(figsize=(5, 3))
    axis.plot([0, 1, 2], [1, 3, 2], label="data")
    axis.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    axis.set(xlabel="time (ms)", ylabel="belief", title="a clean figure")
    figure.tight_layout()
    assert lint(figure) == []
    plt.close(figure)


# a mechanism defined here gets its panel ----------------------------------------------------
SQUARED = Variable("belief_squared", "mu^2", "squared belief", "parameter", units="1")
HIDDEN = Variable("belief_hidden", "h", "a hidden copy", "parameter", units="1", plot="none")


class SwitchedOn(Mechanism):
    """A mechanism of a test, switched on by ``on = 1.0`` in its section."""

    def parse(self, fields):
        return fields.number("on", default=None)


class SquaredBelief(SwitchedOn):
    """Records mu^2 of the top level (declared to be drawn) and mu (declared not to be)."""

    name = "test_squared_belief"
    family = "hierarchical"
    section = "squared"

    def streams(self, settings, context):
        top, name = context.beliefs[-1], context.model.levels[-1].name
        values = state_array(top, "belief")
        return [Stream(f"levels/{name}/belief_squared", len(values), lambda: values ** 2,
                       declares=SQUARED),
                Stream(f"levels/{name}/belief_hidden", len(values), lambda: values.copy(),
                       declares=HIDDEN)]


@pytest.fixture
def squared_mechanism():
    mechanism = registry.register_mechanism(SquaredBelief())
    yield mechanism
    registry.unregister_mechanism(mechanism.name)


def two_levels(tmp_path, **level):
    table = {"name": "squared", "dt_ms": 0.1,
             "model": {"errors": "instantaneous", "tau_belief_ms": 2.0,
                       "levels": [{"name": "x", "size": 1, "precision": 4.0, **level},
                                  {"name": "v", "size": 1, "weights": 1.0, **level}],
                       "prior": {"mean": 0.0, "precision": 1.0}},
             "protocol": {"trials": [{"duration_ms": 20.0,
                                      "stimulus": {"kind": "constant", "value": 2.0}}]}}
    return table


def test_a_mechanism_defined_in_a_test_gets_its_panel(tmp_path, squared_mechanism):
    table = two_levels(tmp_path)
    table["model"]["squared"] = {"on": 1.0}
    result = sim.run(write_scenario(tmp_path / "squared.toml", table),
                     output=tmp_path / "squared.h5")
    recorded = np.asarray(result["levels/v/belief_squared"])[:, 0]
    belief = np.asarray(result["levels/v/belief"])[:, 0]
    np.testing.assert_allclose(recorded, belief ** 2, rtol=0, atol=1e-15)
    figure = draw(result)
    try:
        labels = [axis.get_ylabel() for axis in figure.axes]
        panel = next(axis for axis in figure.axes if "squared belief mu^2" in axis.get_ylabel())
        drawn = max((line.get_ydata() for line in panel.lines), key=len)
        np.testing.assert_array_equal(drawn, recorded[:len(drawn)])
        assert not any("hidden" in label for label in labels), labels
        assert lint(figure) == []
    finally:
        plt.close(figure)


# a discrete mechanism defined here gets its panel -------------------------------------------
LOG_BELIEF = Variable("log_belief", "ln Q", "log belief", "state", units="nat")


class LogBelief(SwitchedOn):
    """Records ln Q of the (one) factor, from its belief units' potential v: ln Q = v - ln
    sum_k e^{v_k} (declared to be drawn), and Q (declared not to be)."""

    name = "test_log_belief"
    family = "discrete"
    section = "log_belief"

    def streams(self, settings, context):
        potential = state_array(context.beliefs[0], "v")

        def log_belief():
            top = potential.max()
            return potential - top - np.log(np.sum(np.exp(potential - top)))

        return [Stream("causes/log_belief", len(potential), log_belief, units="nat",
                       declares=LOG_BELIEF),
                Stream("causes/belief_hidden", len(potential),
                       lambda: np.exp(log_belief()), declares=HIDDEN)]


@pytest.fixture
def log_belief_mechanism():
    mechanism = registry.register_mechanism(LogBelief())
    yield mechanism
    registry.unregister_mechanism(mechanism.name)


def test_a_discrete_mechanism_defined_in_a_test_gets_its_panel(tmp_path, log_belief_mechanism):
    causes = ["wind", "cat", "intruder"]
    table = {"name": "log_belief", "dt_ms": 0.5,
             "model": {"kind": "discrete", "tau_belief_ms": 5.0, "causes": causes,
                       "prior": [0.5, 0.3, 0.2], "log_belief": {"on": 1.0},
                       "modalities": [{"name": "sound", "outcomes": ["creak", "thump"],
                                       "likelihood": [[0.8, 0.3, 0.4], [0.2, 0.7, 0.6]]}]},
             "protocol": {"trials": [{"name": "night", "duration_ms": 40.0, "observations": [
                 {"time_ms": 10.0, "sound": "thump"}]}]}}
    result = sim.run(write_scenario(tmp_path / "log_belief.toml", table),
                     output=tmp_path / "log_belief.h5")
    recorded = np.asarray(result["causes/log_belief"])
    np.testing.assert_allclose(np.exp(recorded), np.asarray(result["causes/belief"]),
                               rtol=0, atol=1e-12)  # the family's own Q, recorded beside it
    figure = draw(result)
    try:
        labels = [axis.get_ylabel() for axis in figure.axes]
        panel = next(axis for axis in figure.axes if "log belief ln Q" in axis.get_ylabel())
        assert "(nat)" in panel.get_ylabel()
        drawn = [line.get_ydata() for line in panel.lines if len(line.get_ydata()) > 2]
        assert len(drawn) == len(causes)  # the rest: the observation's and trials' marks
        for cause, values in enumerate(drawn):
            np.testing.assert_array_equal(values, recorded[:, cause])
        assert [text.get_text() for text in panel.get_legend().get_texts()] == causes
        assert any("belief Q over causes" in label for label in labels), labels
        assert not any("hidden" in label for label in labels), labels
        assert lint(figure) == []
    finally:
        plt.close(figure)


# a level's units --------------------------------------------------------------------------------
def test_a_level_in_deg_per_s(tmp_path):
    table = two_levels(tmp_path, units="deg/s")
    result = sim.run(write_scenario(tmp_path / "speed.toml", table), output=tmp_path / "s.h5")
    assert result.units("levels/v/belief") == "deg/s"
    assert result.units("levels/x/input") == "deg/s"
    assert result.units("levels/x/error") == "1/(deg/s)"
    assert result.units("levels/x/precision") == "1/(deg/s)^2"
    assert result.parameters["model"]["levels"][1]["units"] == "deg/s"
    figure = draw(result)
    try:
        assert any("(deg/s)" in axis.get_ylabel() for axis in figure.axes)
        assert not any("dimensionless" in axis.get_ylabel() for axis in figure.axes)
    finally:
        plt.close(figure)


@pytest.mark.parametrize("field, what", [("signed", "signed sum of error eps"),
                                         ("rectified", "rectified sum of error |eps|")])
def test_an_erp_is_in_its_errors_units(tmp_path, field, what):
    """The ERP of a level in mV sums its errors, in 1/mV. The readout declares its traces as
    every recorded variable is declared (label, symbol, role, units), and the ERP figure and
    ``pcsim show`` say what the file declares; the errors are not recorded, so nothing else
    in the file could tell them."""
    table = two_levels(tmp_path, units="mV")
    table["readouts"] = {"erp": {"field": field}}
    table["record"] = {"variables": ["belief"]}
    result = sim.run(write_scenario(tmp_path / "erp.toml", table), output=tmp_path / "erp.h5")
    assert "levels/x/error" not in result
    assert result.units("erp/trials/x") == "1/mV" and result.units("erp/trials/v") == "1/mV"
    assert declared(result, "erp/trials/x", "role") == "error"
    assert result.units("trials/erp_peak/x") == "1/mV"  # the peaks too, their latencies in ms
    assert result.units("trials/erp_latency/x") == "ms"
    figure = draw(result)
    try:
        labels = [axis.get_ylabel() for axis in figure.axes]
        assert f"ERP x\n({what}) (1/mV)" in labels, labels
        assert "peak |ERP| x (1/mV)" in labels, labels
    finally:
        plt.close(figure)
    shown = [line for line in show_lines(result) if line.strip().startswith("/erp/trials/x ")]
    assert len(shown) == 1 and "1/mV" in shown[0] and shown[0].endswith(f"({what})"), shown


@pytest.mark.parametrize("units", ["", "deg/s\nmore", 3, "x" * 40])
def test_a_malformed_unit_is_refused(tmp_path, units):
    table = two_levels(tmp_path)
    table["model"]["levels"][1]["units"] = units
    path = write_scenario(tmp_path / "bad.toml", table)
    with pytest.raises(ScenarioError, match=r"units"):
        sim.run(path, output=tmp_path / "bad.h5")

