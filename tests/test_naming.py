"""Brian2 objects are named by a level's index, not its name (``circuits.naming``): scenarios
whose levels are named differently run the same generated code, so a cold cache compiles it
once, for the rate model and for its spiking realisation (``circuits.spiking``); users still see
the level names (the guard's messages: tests/test_no_silent_divergence.py and
tests/test_compiled_runs.py)."""

from __future__ import annotations

import pytest

import sim

SHORT = {"protocol.trials.0.duration_ms": 0.5}


@pytest.fixture
def generated(monkeypatch) -> list[str]:
    """The code of every Cython extension Brian2 asks for while the test runs."""
    from brian2.codegen.runtime.cython_rt.extension_manager import CythonExtensionManager

    asked: list[str] = []
    original = CythonExtensionManager.create_extension

    def create_extension(self, code, *args, **kwargs):
        asked.append(code)
        return original(self, code, *args, **kwargs)

    monkeypatch.setattr(CythonExtensionManager, "create_extension", create_extension)
    return asked


def test_levels_named_otherwise_run_the_same_compiled_code(tmp_path, generated):
    first = sim.run("perception/single_cause", tmp_path / "first.h5", overrides=SHORT)
    before = set(generated)
    renamed = sim.run("perception/single_cause", tmp_path / "renamed.h5", overrides={
        **SHORT, "model.levels.0.name": "brightness", "model.levels.1.name": "size"})
    assert before  # the runtime device compiled the state updates (Cython)
    assert set(generated) == before  # nothing new for the new names
    assert "levels/size/belief" in renamed and "levels/food_size/belief" in first


def test_spiking_levels_named_otherwise_run_the_same_compiled_code(tmp_path, generated):
    spiking = {**SHORT, "model.neurons": "spiking", "model.spiking.neurons_per_unit": 2}
    first = sim.run("perception/single_cause", tmp_path / "first.h5", overrides=spiking)
    before = set(generated)
    renamed = sim.run("perception/single_cause", tmp_path / "renamed.h5", overrides={
        **spiking, "model.levels.0.name": "brightness", "model.levels.1.name": "size"})
    assert before  # the pools, synapses, decoders and spike monitors (Cython)
    assert set(generated) == before  # nothing new for the new names
    assert "levels/size/belief" in renamed and "levels/food_size/belief" in first
    assert set(renamed.spikes()) == {f"{level}/{population}_{sign}" for level, population in (
        ("brightness", "error"), ("size", "error"), ("size", "belief"), ("size", "activation"))
        for sign in ("positive", "negative")}


@pytest.mark.parametrize(("brian2_name", "shown_name"), [
    ("belief_1", "belief_hidden"), ("error_0_precision", "error_input_precision"),
    ("generative_belief_2", "generative_belief_top"), ("covariance_1_lateral",
                                                      "covariance_hidden_lateral"),
    ("discrete_pool_update_1", "discrete_pool_update_hidden"),
    ("networkoperation_3", "networkoperation_3"),  # Brian2's own numbering: not a level
    ("erp_sum_1", "erp_sum_1"), ("belief_7", "belief_7"),  # no level 7
    ("error_neurons_0_to_belief_neurons_1_s_up",
     "error_neurons_input_to_belief_neurons_hidden_s_up"),
    ("spikes_precision_error_neurons_1", "spikes_precision_error_neurons_hidden"),
    ("decode_activation_neurons_2", "decode_activation_neurons_top")])
def test_only_names_made_from_a_level_index_show_the_level(brian2_name, shown_name):
    from circuits.naming import shown

    assert shown(brian2_name, ["input", "hidden", "top"]) == shown_name
