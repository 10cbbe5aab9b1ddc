"""A spiking population's spikes as ``circuits.spiking.spike_record`` records them: on Cython,
with pcsim's monitor template (pointers, no typed memoryviews), every spike of the monitored
neurons in order, with its time and each neuron's count, against the spikes a clock rule
fires by construction; on NumPy's target, Brian2's own monitor. That a pcsim run's spikes are
unchanged is checked on the bundled spiking scenarios (``tests/test_cli.py``'s goldens)."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
from brian2 import Network, NeuronGroup, defaultclock
from brian_target import numpy_target

from circuits.spiking.spike_record import SpikeRecordCode, spike_monitor
from sim.engine import configure_brian

NEURONS, PERIOD, STEPS = 40, 7, 60


def clock_rule_network(name: str):
    """Neuron i fires at the steps s with (s + i) % PERIOD == 0: no randomness, so the spikes
    are known before the run."""
    return NeuronGroup(NEURONS, "", threshold=f"(timestep(t, dt) + i) % {PERIOD} == 0",
                       name=f"{name}_pool")


def expected(first: int, stop: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices (from ``first``), step numbers and counts of the neurons [first, stop)."""
    indices, steps = [], []
    for step in range(STEPS):
        for neuron in range(first, stop):
            if (step + neuron) % PERIOD == 0:
                indices.append(neuron - first)
                steps.append(step)
    counts = np.bincount(indices, minlength=stop - first)
    return np.array(indices), np.array(steps), counts


@pytest.mark.parametrize("target", ["cython", "numpy"])
def test_every_spike_in_order_with_its_time_and_count(target):
    configure_brian()
    dt = defaultclock.dt
    with numpy_target() if target == "numpy" else contextlib.nullcontext():
        group = clock_rule_network(f"record_{target}")
        whole = spike_monitor(group, f"spikes_whole_{target}")
        part = spike_monitor(group[10:30], f"spikes_part_{target}")
        Network(group, whole, part).run(STEPS * dt)
        mine = SpikeRecordCode if target == "cython" else None
        assert whole.codeobj_class is mine and part.codeobj_class is mine
        if target == "cython":
            code = str(whole.codeobj.code)
            assert "PyArray_DATA" in code and "[:]" not in code  # pointers, no memoryview
    for monitor, (first, stop) in ((whole, (0, NEURONS)), (part, (10, 30))):
        indices, steps, counts = expected(first, stop)
        assert monitor.num_spikes == len(indices) > 100
        np.testing.assert_array_equal(monitor.i[:], indices)
        np.testing.assert_array_equal(np.round(monitor.t[:] / dt).astype(int), steps)
        np.testing.assert_array_equal(monitor.count[:], counts)


def test_the_template_is_found_from_the_package():
    """The derived templater reads pcsim's ``spikemonitor`` from the installed package and
    Brian2's for every other template."""
    templater = SpikeRecordCode.templater
    assert "PyArray_DATA" in templater.spikemonitor.template_source
    assert templater.stateupdate.template_source == \
        SpikeRecordCode.__mro__[1].templater.stateupdate.template_source


def test_another_device_gets_brian2s_own_monitor(tmp_path):
    """A standalone device would compile a code object class as given: there the monitor is
    Brian2's own (built in pcsim's standalone block, not run)."""
    from sim.compiled.device import standalone

    with standalone("spike-record", cache_root=tmp_path):
        group = NeuronGroup(3, "", threshold="i == 0", name="standalone_pool")
        assert spike_monitor(group, "spikes_standalone").codeobj_class is None
