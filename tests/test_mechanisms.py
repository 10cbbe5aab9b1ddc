"""Mechanisms join a model family through the registry alone: a toy defined only here (a
constant bias current on the beliefs) registers itself, adds its scenario field, its equation
piece and its Brian2 state, and moves the fixed point where the closed form says."""

from __future__ import annotations

import json

import numpy as np
import pytest

import sim
from circuits.equations import EquationError, gather
from circuits.mechanism import Mechanism, Piece, Population
from sim import registry
from sim.scenario_writer import write_scenario


class BiasCurrent(Mechanism):
    r"""A constant current b into every belief unit: tau dmu/dt = -dF/dmu + b, which is the
    flow of F - b' mu (a linear term of the energy); its fixed point solves dF/dmu = b."""

    name = "test_bias_current"
    family = "hierarchical"
    section = "bias"

    def parse(self, fields):
        return fields.number("current", default=None)

    def describe(self, current):
        return {"current": current}

    def pieces(self, current, population: Population):
        if population.role != "belief":
            return None
        return Piece(equations="bias_current : 1 (shared, constant)",
                     terms={"drive": "bias_current"})

    def build(self, current, context):
        for group in context.beliefs:
            group.bias_current = current
        return []


@pytest.fixture
def bias_mechanism():
    mechanism = registry.register_mechanism(BiasCurrent())
    yield mechanism
    registry.unregister_mechanism(mechanism.name)


def one_level(tmp_path, bias: float | None):
    """x = 2 seen through W = 0.5 (Pi_x = 4) under a N(1, 1/2) prior."""
    model = {
        "errors": "instantaneous", "tau_belief_ms": 1.0,
        "levels": [{"name": "x", "size": 1, "precision": 4.0},
                   {"name": "v", "size": 1, "weights": 0.5}],
        "prior": {"mean": 1.0, "precision": 2.0},
    }
    if bias is not None:
        model["bias"] = {"current": bias}
    table = {"name": "bias", "dt_ms": 0.01, "model": model,
             "protocol": {"trials": [{"duration_ms": 30.0,
                                      "stimulus": {"kind": "constant", "value": 2.0}}]}}
    return write_scenario(tmp_path / f"bias{bias}.toml", table)


@pytest.mark.parametrize("bias", [0.0, 0.7, -1.3])
def test_toy_mechanism_moves_the_fixed_point(tmp_path, bias_mechanism, bias):
    result = sim.run(one_level(tmp_path, bias), output=tmp_path / "bias.h5")
    # dF/dmu = W Pi_x (W mu - x) + Pi_v (mu - m) = b
    w, pi_x, x, pi_v, m = 0.5, 4.0, 2.0, 2.0, 1.0
    expected = (w * pi_x * x + pi_v * m + bias) / (w * pi_x * w + pi_v)
    assert result.level("v")["belief"][-1, 0] == pytest.approx(expected, abs=1e-9)
    assert result.parameters["model"]["bias"] == {"current": bias}


def test_a_mechanism_left_off_changes_nothing(tmp_path, bias_mechanism):
    with_toy = sim.run(one_level(tmp_path, None), output=tmp_path / "off.h5")
    registry.unregister_mechanism(bias_mechanism.name)
    without = sim.run(one_level(tmp_path, None), output=tmp_path / "none.h5")
    assert np.array_equal(with_toy.level("v")["belief"], without.level("v")["belief"])
    assert json.loads(str(with_toy["scenario/parameters"]))["model"]["bias"] == {"current": None}


def test_an_unknown_field_in_a_mechanism_section_is_refused(tmp_path, bias_mechanism):
    path = one_level(tmp_path, 0.5)
    path.write_text(path.read_text().replace("current = 0.5", "curent = 0.5"))
    with pytest.raises(sim.ScenarioError, match=r"model\.bias.*curent.*current"):
        sim.run(path, output=tmp_path / "typo.h5")


def test_learned_precision_is_a_registered_mechanism(tmp_path):
    """The learned precision flow is the mechanism's piece: Pi -> 1 / e^2 for a fixed error."""
    table = {
        "name": "learned", "dt_ms": 0.1,
        "model": {"errors": "instantaneous", "tau_belief_ms": 1e9,  # beliefs held still
                  "levels": [{"name": "x", "size": 1, "precision": 1.0},
                             {"name": "v", "size": 1, "weights": 1.0, "initial_belief": 0.0}],
                  "prior": {"mean": 0.0, "precision": 1.0},
                  "learning": {"tau_precision_ms": 0.5}},
        "protocol": {"trials": [{"duration_ms": 200.0,
                                 "stimulus": {"kind": "constant", "value": 0.5}}]},
    }
    result = sim.run(write_scenario(tmp_path / "learned.toml", table),
                     output=tmp_path / "learned.h5")
    precision = result.level("x")["precision"][:, 0]
    error = 0.5 - result.level("v")["belief"][-1, 0]  # e = x - W mu, mu barely moving
    assert abs(error - 0.5) < 1e-3
    assert precision[-1] == pytest.approx(1 / error**2, rel=1e-4)
    names = list(registry.mechanism("learned_precision").describe(0.5))
    assert names == ["tau_precision_ms"]
    with sim.load(result.path) as reread:
        assert list(reread.dataset_attrs["levels/x/precision"]["contributions"]) == [
            "configured", "learned_precision"]


def test_gathering_equations():
    template = "dbelief/dt = ({drive}) / tau : 1\nprecision : 1\ntau : second"
    base = gather(template, {"drive": "a - b"}, [])
    assert base.splitlines()[0] == "dbelief/dt = (a - b) / tau : 1"
    text = gather(template, {"drive": "a - b"},
                  [("one", Piece("c : 1", terms={"drive": "c"})),
                   ("two", Piece(integrates={"precision": "dprecision/dt = -precision/tau : 1"}))])
    assert "dbelief/dt = (a - b + c) / tau : 1" in text
    assert "dprecision/dt = -precision/tau : 1" in text and "\nprecision : 1" not in text
    assert text.rstrip().endswith("c : 1")
    with pytest.raises(EquationError, match="two and one both integrate 'precision'"):
        gather(template, {"drive": "a"},
               [("one", Piece(integrates={"precision": "dprecision/dt = 0 : 1"})),
                ("two", Piece(integrates={"precision": "dprecision/dt = 1 : 1"}))])
    with pytest.raises(EquationError, match="'gain' is not a parameter"):
        gather(template, {"drive": "a"}, [("one", Piece(integrates={"gain": "dgain/dt = 0 : 1"}))])
    with pytest.raises(EquationError, match="'belief' is not a parameter"):
        gather(template, {"drive": "a"},
               [("one", Piece(integrates={"belief": "dbelief/dt = 0 : 1"}))])
    with pytest.raises(EquationError, match="no sum 'input'"):
        gather(template, {"drive": "a"}, [("one", Piece(terms={"input": "x"}))])



def test_runtime_guard_stops_runaway_learning(tmp_path):
    """Weights learning beyond their step bound (allowed by ``stability = "warn"``) diverge;
    the runtime guard stops the run and keeps it marked diverged."""
    table = {
        "name": "runaway", "dt_ms": 0.1,
        "model": {"errors": "instantaneous", "tau_belief_ms": 1e9,  # beliefs held still
                  "levels": [{"name": "x", "size": 1, "precision": 1.0},
                             {"name": "v", "size": 1, "weights": 1.0, "initial_belief": 1.0}],
                  "prior": {"mean": 1.0, "precision": 1.0},
                  "learning": {"tau_weights_ms": 0.01}},  # 5x beyond the weights' bound
        "protocol": {"trials": [{"duration_ms": 10.0,
                                 "stimulus": {"kind": "constant", "value": 2.0}}]},
        "record": {"variables": ["belief"]},
        "numerics": {"stability": "warn"},
    }
    path = write_scenario(tmp_path / "runaway.toml", table)
    with pytest.warns(sim.NumericalWarning, match="tau_weights"), \
            pytest.raises(sim.DivergenceError, match="diverged at t = "):
        sim.run(path, output=tmp_path / "runaway.h5")
    with sim.load(tmp_path / "runaway.h5", allow_incomplete=True) as result:
        assert result.attrs["status"] == "diverged"
