"""Cython code with its arrays named by role (``circuits.shared_code``): groups and synapses
with equal equations share one extension, and each still reads and writes its own arrays.

The values are checked against closed forms (exponential decay; a spike's weight added to its
own target), so a code object that touched another's arrays would fail; that the bundled
scenarios' numbers are unchanged is checked by their goldens (``tests/test_cli.py``)."""

from __future__ import annotations

import numpy as np
import pytest
from brian2 import Network, NeuronGroup, Synapses, defaultclock, ms, prefs

from circuits.shared_code import SharedCythonCode, keeps_a_group_name, renamed
from sim.engine import configure_brian

STEPS = 40
DECAY = "dv/dt = -v / tau : 1\ntau : second (constant)"


def module(code_object, block: str = "run") -> str:
    """The name of the extension ``code_object``'s ``block`` runs (``_cython_magic_<hash>``)."""
    return code_object.compiled_code[block].__name__


@pytest.fixture
def target():
    """pcsim's Cython target, as every run configures it; Brian2's as it was after."""
    before = prefs.codegen.target
    configure_brian()
    yield prefs.codegen.target
    prefs.codegen.target = before


def decaying(name: str, start: float, tau_ms: float) -> NeuronGroup:
    group = NeuronGroup(3, DECAY, method="exact", name=name)
    group.v = start * np.arange(1, 4)
    group.tau = tau_ms * ms
    return group


def test_equal_equations_in_two_groups_share_an_extension_and_keep_their_values(target):
    assert target == SharedCythonCode.class_name
    first = decaying("shared_decay_first", 1.0, 5.0)
    second = decaying("shared_decay_other", -2.0, 8.0)
    Network(first, second).run(STEPS * defaultclock.dt)
    updaters = (first.state_updater.codeobj, second.state_updater.codeobj)
    assert all(isinstance(code, SharedCythonCode) for code in updaters)
    assert module(updaters[0]) == module(updaters[1])
    elapsed = STEPS * float(defaultclock.dt)
    for group, start, tau in ((first, 1.0, 5e-3), (second, -2.0, 8e-3)):
        np.testing.assert_allclose(group.v[:], start * np.arange(1, 4) * np.exp(-elapsed / tau),
                                   rtol=1e-12)


def test_brian2s_own_target_compiles_the_same_groups_twice():
    """The comparison that makes the test above able to fail: Brian2's names differ by group."""
    before = prefs.codegen.target
    configure_brian(target="cython")
    try:
        first = decaying("own_decay_first", 1.0, 5.0)
        second = decaying("own_decay_other", 1.0, 5.0)
        Network(first, second).run(STEPS * defaultclock.dt)
        assert (module(first.state_updater.codeobj)
                != module(second.state_updater.codeobj))
    finally:
        prefs.codegen.target = before


def test_equal_synapses_between_other_pools_share_and_deliver_to_their_own_targets(target):
    """Two sources fire at known steps into two targets through synapses with one rule
    (``on_pre: v_post += w``): each target's total is its own source's spikes times its own
    weights."""
    period = {"a": 4, "b": 7}
    sources, targets, links = {}, {}, {}
    for key in period:
        sources[key] = NeuronGroup(2, "period : integer (constant)",
                                   threshold="timestep(t, dt) % period == 0",
                                   name=f"shared_source_{key}")
        sources[key].period = period[key]
        targets[key] = NeuronGroup(2, "v : 1", name=f"shared_target_{key}")
        links[key] = Synapses(sources[key], targets[key], "w : 1", on_pre="v_post += w",
                              name=f"shared_link_{key}")
        links[key].connect(j="i")
        links[key].w = [1.5, -0.25] if key == "a" else [3.0, 0.5]
    Network(*sources.values(), *targets.values(), *links.values()).run(STEPS * defaultclock.dt)
    pathways = [links[key].pre.codeobj for key in period]
    assert module(pathways[0]) == module(pathways[1])
    for key in period:
        spikes = len(range(0, STEPS, period[key]))
        np.testing.assert_array_equal(targets[key].v[:], spikes * links[key].w[:])


def test_every_form_of_an_array_name_is_renamed_and_an_unknown_one_is_noticed():
    names = {"_array_pool_3_v": "_array__v", "_array_pool_3_v2": "_array__v2"}
    code = ("cdef double * _array_pool_3_v = <double *> _buf__array_pool_3_v.data\n"
            "n = _num_array_pool_3_v + _num_array_pool_3_v2\n"
            "d = _namespace['_dynamic_array_pool_3_v2']")
    text = renamed(code, names)
    assert text == ("cdef double * _array__v = <double *> _buf__array__v.data\n"
                    "n = _num_array__v + _num_array__v2\n"
                    "d = _namespace['_dynamic_array__v2']")
    assert not keeps_a_group_name(text, names)
    assert keeps_a_group_name(renamed(code + "\n_other_array_pool_3_v = 0", names), names)
