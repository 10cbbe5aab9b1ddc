"""F a stretch of samples at a time on the runtime device (``sim.sample_stretch``): the file a
run writes is the one it writes sampling F one sample at a time, every dataset and attribute
to the bit (``tests/golden.py``'s comparison), with stretches that end inside trials, at trial
ends, at a stop and at a checkpoint; and the stretch is in use where the test says so (the
family was asked for many samples at once), off where the family cannot (weights that learn at
every step). F's own values are checked against independent computations elsewhere
(``tests/test_free_energy*.py``)."""

from __future__ import annotations

import h5py
import pytest
from golden import compare
from test_no_silent_divergence import BLOW_UP, CALM, cubic

import sim
import sim.engine
import sim.sample_stretch
from sim.errors import DivergenceError
from sim.scenario_writer import write_scenario

SHORT_POSNER = {f"protocol.conditions.{at}.count": 1 for at in range(6)}


@pytest.fixture
def asked(monkeypatch) -> list[int]:
    """How many samples each call of the family for many at once was given."""
    from sim.families.hierarchical.build import HierarchicalSimulation

    sizes: list[int] = []
    original = HierarchicalSimulation.family_samples

    def spy(self, paths, recorded):
        found = original(self, paths, recorded)
        if found is not None and paths:
            sizes.append(len(found[paths[0]]))
        return found

    monkeypatch.setattr(HierarchicalSimulation, "family_samples", spy)
    return sizes


def both(tmp_path, monkeypatch, name: str, overrides: dict, **options) -> int:
    """Run ``name`` with F's stretches, then sampling one by one; ``compare``'s exit code."""
    for way in ("stretch", "one_by_one"):
        folder = tmp_path / way
        folder.mkdir()
        with monkeypatch.context() as patch:
            if way == "one_by_one":
                patch.setattr(sim.engine, "sample_in_stretches", lambda simulation: None)
            sim.run(name, output=folder / "run.h5", overrides=overrides, **options)
    return compare(tmp_path / "stretch", tmp_path / "one_by_one")


@pytest.mark.parametrize(("name", "overrides", "stretch"), [
    ("attention/posner", SHORT_POSNER, 7),  # stretches end inside trials, and at their ends
    ("attention/posner", SHORT_POSNER, sim.sample_stretch.STRETCH_SAMPLES),  # at trial ends
    ("perception/hierarchy", {"record.laplace": 3}, 64),  # the Laplace term every 3rd sample
])
def test_stretches_write_the_file_sampling_one_by_one_writes(tmp_path, monkeypatch, asked,
                                                              name, overrides, stretch):
    monkeypatch.setattr(sim.sample_stretch, "STRETCH_SAMPLES", stretch)
    assert both(tmp_path, monkeypatch, name, overrides) == 0
    assert max(asked) > 1 and max(asked) <= stretch  # in use, a stretch at most at once


def test_a_run_that_diverges_inside_a_stretch_writes_the_same_diverged_file(tmp_path,
                                                                           monkeypatch):
    """Bogacz's single cause with g(v) = v^3: a calm trial, then an input that drives the
    belief past ``rate_limit`` within a few steps; both ways stop there, the samples held are
    written with the stop (``Simulation.stopped``), and the files are equal."""
    scenario = write_scenario(tmp_path / "cubic.toml", cubic(
        [("calm", CALM, 100), ("blows up", BLOW_UP, 100)], every_ms=0.01))
    monkeypatch.setattr(sim.sample_stretch, "STRETCH_SAMPLES", 30)
    for way in ("stretch", "one_by_one"):
        (tmp_path / way).mkdir()
        with monkeypatch.context() as patch:
            if way == "one_by_one":
                patch.setattr(sim.engine, "sample_in_stretches", lambda simulation: None)
            with pytest.raises(DivergenceError):
                sim.run(str(scenario), output=tmp_path / way / "run.h5")
    assert compare(tmp_path / "stretch", tmp_path / "one_by_one") == 0
    with h5py.File(tmp_path / "stretch" / "run.h5", "r") as file:
        assert file.attrs["status"] == "diverged"
        assert 100 < len(file["free_energy"]) < 200  # the calm trial and part of the next


def test_weights_that_learn_at_every_step_sample_one_by_one(tmp_path, monkeypatch, asked):
    """learning/weights: F's weights change at every step, so each sample's F is computed
    with the weights then (the family refuses the samples at once before the run)."""
    assert both(tmp_path, monkeypatch, "learning/weights",
                {"protocol.conditions.0.count": 3, "protocol.conditions.1.count": 1}) == 0
    assert asked == []
