"""``sim.compiled.known``: a warm build of a program already built skips Brian2's code
generation and ``device.build``, and only where nothing its sources come from changed.

- the same network again (new objects, new values: data files) runs the program built
  before (``Outcome.reused``), and its results equal those of a build of that network in a
  directory of its own (every recorded value, to the bit);
- each ingredient of the sources changed alone (a constant of the equations compiled in as a
  literal, a size, a clock's step, a schedule slot, the run's duration, a Brian2
  preference) is not reused: the program is generated (and what differs compiled), and the
  changed program is then reused in turn;
- a source changed on disk since the last make, a key record that is damaged, or a value
  the key does not know (a subgroup: its name is Brian2's): the program is built as always.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from brian2 import Network, NeuronGroup, StateMonitor, TimedArray, ms, prefs

from sim.compiled import known
from sim.compiled.device import standalone

pytestmark = pytest.mark.xdist_group("compiled_known")


def network(scale: float = 1.0, gain: float = 1.0, size: int = 2, dt_ms: float = 0.1,
            when: str = "start") -> tuple[Network, StateMonitor]:
    """Two neurons driven by a TimedArray (values: data); ``gain`` a literal of the code."""
    drive = TimedArray(np.array([0.0, 1.0, -1.0, 2.0]) * scale, dt=1 * ms, name="known_drive")
    group = NeuronGroup(size, "dv/dt = (gain * drive(t) - v) / tau : 1\ntau : second (constant)",
                        method="euler", namespace={"drive": drive, "gain": gain},
                        dt=dt_ms * ms, name="known_group")
    group.v = np.linspace(0.5, -0.5, size) * scale
    group.tau = np.linspace(5, 10, size) * ms
    monitor = StateMonitor(group, "v", record=True, when=when, name="known_samples")
    return Network(group, monitor, name="known_network"), monitor


def run(cache_root: Path, key: str = "known", duration_ms: float = 3.0, **settings):
    """The outcome and the recorded v of ``network(**settings)`` built in ``cache_root/key``."""
    with standalone(key, cache_root) as program:
        net, monitor = network(**settings)
        outcome = program.run(net, duration_ms * ms)
        recorded = np.array(monitor.v_)
    return outcome, recorded


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("known-cache")
    run(root)  # the first build
    return root


def test_the_same_network_reuses_its_program_with_the_results_of_a_build(cache_root):
    outcome, recorded = run(cache_root, scale=2.0)  # new values: data files only
    assert outcome.reused and outcome.compiled_files == 0
    built, expected = run(cache_root, key="known-fresh", scale=2.0)  # its own directory
    assert not built.reused
    assert recorded.shape == expected.shape == (2, 30)
    assert np.array_equal(recorded, expected)
    assert not np.array_equal(recorded, run(cache_root)[1])  # the values did change


@pytest.mark.parametrize("change", [
    {"gain": 1.5},  # a constant compiled in as a literal
    {"size": 3},
    {"dt_ms": 0.05},
    {"when": "end"},
    {"duration_ms": 4.0},
    "preference",
], ids=["literal", "size", "dt", "schedule", "duration", "preference"])
def test_each_ingredient_of_the_sources_is_in_the_key(cache_root, change):
    assert run(cache_root)[0].reused  # the base program, recorded last
    if change == "preference":
        saved = prefs["codegen.loop_invariant_optimisations"]
        prefs["codegen.loop_invariant_optimisations"] = not saved
        try:
            assert not run(cache_root)[0].reused
            assert run(cache_root)[0].reused  # the changed program, in turn
        finally:
            prefs["codegen.loop_invariant_optimisations"] = saved
    else:
        assert not run(cache_root, **change)[0].reused
        assert run(cache_root, **change)[0].reused
    assert not run(cache_root)[0].reused  # back to the base: built again (its key is not kept)


def test_a_source_changed_on_disk_or_a_damaged_record_is_built_again(cache_root):
    directory = cache_root / "known"
    assert run(cache_root)[0].reused
    main = directory / "main.cpp"
    main.write_text(main.read_text() + "\n// changed\n")
    outcome, recorded = run(cache_root)
    assert not outcome.reused and outcome.compiled_files >= 1  # the text is Brian2's again
    assert "// changed" not in main.read_text()
    (directory / known.KNOWN_FILE).write_text("{damaged")
    outcome, again = run(cache_root)
    assert not outcome.reused and np.array_equal(recorded, again)
    assert run(cache_root)[0].reused


def test_a_value_the_key_does_not_know_gives_no_key():
    with pytest.raises(known.UnkeyableError):
        known.describe(object())
    with pytest.raises(known.UnkeyableError):
        known.describe({"nested": [{"deeper": object()}]})
    with pytest.raises(known.UnkeyableError):  # a subgroup's made-up name (known.SUBGROUPS)
        known.describe({"target": NeuronGroup(2, "v : 1", name="known_subgrouped")[0:1]})
    # text that holds every digit; an array by its bytes
    assert known.describe(0.1) != known.describe(float(np.nextafter(0.1, 1.0)))
    assert known.describe(np.zeros(3)) != known.describe(np.array([0.0, 0.0, 1e-300]))
