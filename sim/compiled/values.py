"""Values set from Python as data files of the program, not constants of its code.

Brian2's ``cpp_standalone`` device writes an array set from Python to a file the program reads
when it starts, but a single value (a shared variable's, or one value for every unit) as a
line of ``main.cpp`` (``array[0] = 0.15;``). A sweep over a time constant, a precision or a
readout's threshold then changed ``main.cpp`` at every point, and each point recompiled
``main.o`` (1-5 s; parallel points of one shape took turns rewriting it). ``values_as_data``
makes the device write those values as files too (what it does for any array of more than one
value), so that within a program shape (``sim.compiled.shape``) a new value compiles nothing.
The clocks' resets (``t``, ``timestep``: the same zeros in every run) stay lines of code.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def values_as_data(device: Any) -> None:
    """Make ``device`` (a ``CPPStandaloneDevice``) write single values set from Python as data
    files. Brian2 keeps one device for every standalone block of a process: done once."""
    from brian2.core.clocks import Clock
    from brian2.core.variables import DynamicArrayVariable

    fill = device.fill_with_array
    if getattr(fill, "values_as_data", False):
        return

    def fill_with_array(var: Any, arr: Any) -> None:
        arr = np.asarray(arr)
        if arr.size != 1 or isinstance(var, DynamicArrayVariable) or \
                isinstance(var.owner, Clock):
            fill(var, arr)
            return
        values = np.full(var.size, arr.item(), dtype=var.dtype)  # as Brian2 caches it
        device.array_cache[var] = values
        array_name = device.get_array_name(var, access_data=False)
        device.main_queue.append(("set_by_array", (array_name,
                                                   device.static_array(array_name, values),
                                                   False)))

    fill_with_array.values_as_data = True
    device.fill_with_array = fill_with_array
