"""``sim.compiled.known``: a warm build of a program already built skips Brian2's code
generation and ``device.build``, and only where nothing its sources come from changed.

- the same network again (new objects, new values: data files) runs the program built
  before (``Outcome.reused``), and its results equal those of a build of that network in a
  directory of its own (every recorded value, to the bit);
- each ingredient of the sources changed alone (a constant of the equations compiled in as a
  literal, a size, a clock's step, a schedule slot, the run's duration, a Brian2
  preference, the network's own schedule) is not reused: the program is generated (and
  what differs compiled), and the changed program is then reused in turn; code made
  before the run (a connect's condition or probability, a string setter) is in the key by
  its text, and other connections of the same count (data files) give the results of a
  build; a run with a namespace of its own is not reused (the key does not hold it);
- a source changed on disk since the last make, a key record that is damaged, or a value
  the key does not know (a subgroup: its name is Brian2's): the program is built as always.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from brian2 import Network, NeuronGroup, StateMonitor, Synapses, TimedArray, ms, prefs

from sim.compiled import known
from sim.compiled.device import standalone

pytestmark = pytest.mark.xdist_group("compiled_known")


def network(scale: float = 1.0, gain: float = 1.0, size: int = 2, dt_ms: float = 0.1,
            when: str = "start", schedule: list[str] | None = None
            ) -> tuple[Network, StateMonitor]:
    """Two neurons driven by a TimedArray (values: data); ``gain`` a literal of the code."""
    drive = TimedArray(np.array([0.0, 1.0, -1.0, 2.0]) * scale, dt=1 * ms, name="known_drive")
    group = NeuronGroup(size, "dv/dt = (gain * drive(t) - v) / tau : 1\ntau : second (constant)",
                        method="euler", namespace={"drive": drive, "gain": gain},
                        dt=dt_ms * ms, name="known_group")
    group.v = np.linspace(0.5, -0.5, size) * scale
    group.tau = np.linspace(5, 10, size) * ms
    monitor = StateMonitor(group, "v", record=True, when=when, name="known_samples")
    net = Network(group, monitor, name="known_network")
    if schedule is not None:  # the network's own order of the slots
        net.schedule = schedule
    return net, monitor


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
    {"schedule": ["groups", "start", "thresholds", "synapses", "resets", "end"]},
    "preference",
], ids=["literal", "size", "dt", "schedule", "duration", "network-schedule", "preference"])
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


def synapses_key(cache_root: Path, condition: str = "i != j", p: float = 1.0,
                 setter: str = "i * 0.5") -> str:
    """The key of a network whose synapses' connect and a string setter made code objects
    before the run (their text, not only their names, must be in the key)."""
    with standalone("known-synapses-key", cache_root):
        group = NeuronGroup(3, "v : 1", name="known_key_group")
        synapses = Synapses(group, group, "w : 1", name="known_key_synapses")
        synapses.connect(condition=condition, p=p)
        group.v = setter
        return known.program_key(Network(group, synapses, name="known_key_network"),
                                 0.0, 0.003)


@pytest.mark.parametrize("change", [{"condition": "i == j"}, {"p": 0.5},
                                    {"setter": "i * 0.7"}],
                         ids=["connect-condition", "connect-p", "string-setter"])
def test_code_made_before_the_run_is_in_the_key_by_its_text(tmp_path, change):
    assert synapses_key(tmp_path) == synapses_key(tmp_path)
    assert synapses_key(tmp_path, **change) != synapses_key(tmp_path)


def run_pairs(cache_root: Path, key: str, sources: list[int], targets: list[int]) -> tuple:
    """The outcome and recorded v of two neurons each summing ``w * v`` of the neurons it is
    connected from (``sources[k] -> targets[k]``: data files of a fixed count)."""
    with standalone(key, cache_root) as program:
        group = NeuronGroup(3, "dv/dt = (total - v) / (2 * ms) : 1\ntotal : 1",
                            method="euler", name="pairs_group")
        group.v = [1.0, -2.0, 3.0]
        synapses = Synapses(group, group, "w : 1\ntotal_post = w * v_pre : 1 (summed)",
                            name="pairs_synapses")
        synapses.connect(i=np.array(sources), j=np.array(targets))
        synapses.w = [0.5, 1.5]
        monitor = StateMonitor(group, "v", record=True, name="pairs_samples")
        outcome = program.run(Network(group, synapses, monitor, name="pairs_network"),
                              2 * ms)
        return outcome, np.array(monitor.v_)


def test_other_connections_of_the_same_count_give_the_results_of_a_build(cache_root):
    run_pairs(cache_root, "known-pairs", [0, 1], [1, 2])
    outcome, recorded = run_pairs(cache_root, "known-pairs", [2, 0], [0, 0])
    assert outcome.reused
    built, expected = run_pairs(cache_root, "known-pairs-fresh", [2, 0], [0, 0])
    assert not built.reused and np.array_equal(recorded, expected)
    assert not np.array_equal(recorded, run_pairs(cache_root, "known-pairs", [0, 1], [1, 2])[1])


def run_with_namespace(cache_root: Path, gain: float) -> tuple:
    """The outcome and recorded v of a group whose ``gain`` is found in the run's namespace
    (a literal of its code)."""
    with standalone("known-namespace", cache_root) as program:
        group = NeuronGroup(2, "dv/dt = (gain - v) / (5 * ms) : 1", method="euler",
                            name="namespace_group")
        monitor = StateMonitor(group, "v", record=True, name="namespace_samples")
        outcome = program.run(Network(group, monitor, name="namespace_network"), 1 * ms,
                              namespace={"gain": gain, "ms": ms})
        return outcome, np.array(monitor.v_)


def test_a_run_namespace_is_never_reused(cache_root):
    first = run_with_namespace(cache_root, 1.0)
    outcome, recorded = run_with_namespace(cache_root, 2.0)
    assert not outcome.reused and np.allclose(recorded, 2 * first[1])  # linear in gain
    assert not run_with_namespace(cache_root, 2.0)[0].reused
