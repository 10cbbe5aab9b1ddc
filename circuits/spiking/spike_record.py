"""Each population's spikes recorded by a Brian2 ``SpikeMonitor`` whose Cython code compiles
in a third of the time (``spike_monitor``).

A spiking network records every pool's spikes (``sim.families.hierarchical.spiking_build``):
one ``SpikeMonitor`` a pool, so one Cython extension a pool, compiled once per network on a
machine (cached by Brian2). Brian2's Cython template for a monitor writes the recorded values
through typed memoryviews, and Cython then puts its whole memoryview support in the module:
~35,000 lines of C++ against ~14,000 for any other code object, ~5 s of g++ against ~1.5 s
(measured on one core, AMD EPYC Zen 3). Posner as spikes has 6 pools, the spiking hierarchy 7.

``SpikeRecordCode`` is pcsim's Cython code object (``circuits.shared_code``) with one template
of pcsim's own in front of Brian2's (``Templater.derive``, Brian2's hook for derived targets):
``templates/spikemonitor.pyx``, the same rule (the events of the monitored neurons, in order,
appended to the monitor's arrays, each neuron's count raised) written through pointers to the
arrays' data. The recorded ``i``, ``t`` and ``count`` are the same values, in the same order
(``tests/test_spike_record.py`` checks them against spikes known in advance). Where Brian2 does
not generate Cython for the runtime device (its NumPy target, no compiler, or another device:
a standalone device would take the class as it is, not its own), the monitor is Brian2's own.
"""

from __future__ import annotations

from typing import Any

from brian2 import SpikeMonitor, get_device
from brian2.devices.device import RuntimeDevice

from circuits.shared_code import SharedCythonCode, compiles_cython


class SpikeRecordCode(SharedCythonCode):
    """pcsim's Cython code object (``circuits.shared_code``), its ``spikemonitor`` template
    pcsim's."""

    templater = SharedCythonCode.templater.derive("circuits.spiking")


def spike_monitor(group: Any, name: str) -> SpikeMonitor:
    """A ``SpikeMonitor`` of every neuron of ``group``: on the runtime device's Cython with
    pcsim's template (module docstring), else Brian2's own."""
    cython = compiles_cython() and isinstance(get_device(), RuntimeDevice)
    code = SpikeRecordCode if cython else None
    return SpikeMonitor(group, name=name, codeobj_class=code)
