"""Brian2's bookkeeping of a run whose program is not generated again (a known program,
``sim.compiled.known``): what Brian2 2.9's ``CPPStandaloneDevice.network_run`` does besides
generating code, so that the monitors, clocks and final state are read as after a build."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def stand_in_for_run(network: Any, duration_s: float, directory: Path) -> None:
    """What Brian2 2.9's ``CPPStandaloneDevice.network_run`` does besides generating code and
    queueing it for ``main.cpp`` (and ``device.build``: the project's ``directory``), on the
    current device: the network and its clocks known to the device, the clocks'
    interval and end, the network's time, the objects marked as run by it; and every cached
    value but the clocks' steps dropped, so that each is read from the program's results (a
    generated code object drops those it writes; the others' files hold what was set)."""
    from brian2 import Network, second
    from brian2.devices.device import get_device
    from brian2.synapses.synapses import Synapses

    device = get_device()  # itself: an attribute set on ``brian2.device``, its proxy, stays
    device.project_dir = str(directory)  # there (it kept the synapses set below alive)
    device.networks.add(network)
    objects = network.sorted_objects
    network._clocks = {obj.clock for obj in objects}
    t_end = network.t + duration_s * second
    for clock in network._clocks:
        clock.set_interval(network.t, t_end)
    network._stopped = False
    Network._globally_stopped = False
    for obj in objects:
        if obj._network is None:
            obj._network = network.id
    device.synapses |= {obj for obj in network.objects if isinstance(obj, Synapses)}
    device.clocks.update(network._clocks)
    network.t_ = float(t_end)
    for clock in device.clocks:
        if clock.name == "clock":
            clock._name = "_clock"
    network.after_run()
    steps = {id(clock.variables["dt"]) for clock in device.clocks}
    for var in list(device.array_cache):
        if id(var) not in steps:
            device.array_cache[var] = None
    for clock in network._clocks:
        device.array_cache[clock.variables["timestep"]] = np.array([clock._i_end])
        device.array_cache[clock.variables["t"]] = np.array([clock._i_end * clock.dt_])
