"""``sim.compiled.warm``: what a warm build no longer repeats gives what Brian2 and make give.

- Brian2's cache keys: ``_hashable`` replaced by a faster one gives the same key (equal, same
  hash) for the arguments of a real code generation, recorded while a network is built;
- data files: the files and their list (``static_array_specs``) are those of Brian2's own
  ``write_static_arrays``; a file that holds the bytes already is not written again, one that
  differs (a new value, a damaged file) is;
- make: a warm build of an unchanged program does not start make; a changed source, a changed
  make command, or a damaged or missing record starts it; the program's results are the same;
- generated code reused in a process: a network built again generates nothing new; one whose
  code differs (a constant of its equations, a TimedArray's length) gets its own code, and
  its results equal the runtime device's.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from brian2 import Network, NeuronGroup, StateMonitor, TimedArray, ms, prefs
from brian2.devices.cpp_standalone.device import CPPStandaloneDevice
from brian2.devices.device import get_device
from brian2.units.fundamentalunits import Dimension
from brian2.utils import caching

from sim.compiled import warm
from sim.compiled.device import standalone

MAKE = "devices.cpp_standalone.make_cmd_unix"
# one worker runs the module (pytest-xdist, --dist loadgroup): its cache_root is a worker's
# own, so the two tests of the "small" network on two workers built it twice
pytestmark = pytest.mark.xdist_group("compiled_warm")


def small_network(scale: float = 1.0, gain: float = 1.0,
                  drive_values: tuple = (0.0, 1.0, -1.0, 2.0)) -> tuple[Network, StateMonitor]:
    """Two neurons driven by a TimedArray (a Function whose values are a data file); ``gain``
    is a constant of the generated code."""
    drive = TimedArray(np.array(drive_values) * scale, dt=1 * ms, name="warm_drive")
    group = NeuronGroup(2, "dv/dt = (gain * drive(t) - v) / tau : 1\ntau : second (constant)",
                        method="euler", namespace={"drive": drive, "gain": gain},
                        name="warm_group")
    group.v = [0.5 * scale, -0.5]
    group.tau = [5, 10] * ms
    monitor = StateMonitor(group, "v", record=True, name="warm_samples")
    return Network(group, monitor, name="warm_network"), monitor


def test_faster_cache_keys_are_brian2s_keys():
    warm.faster_cache_keys()
    fast = caching._hashable
    original = fast.original
    seen = []

    def recording(obj):
        seen.append(obj)
        return original(obj)

    caching._hashable = recording  # Brian2's own, recording every argument it keys
    target = prefs["codegen.target"]
    prefs["codegen.target"] = "numpy"  # the same keys, nothing to compile
    try:
        group = NeuronGroup(3, "dv/dt = (w - v) / (10 * ms) : 1\nw : 1", method="euler",
                            name="keys_group")
        group.run_regularly("w = sin(t / ms)", name="keys_drive")
        Network(group, name="keys_network").run(0.2 * ms, namespace={})
    finally:
        caching._hashable = fast
        prefs["codegen.target"] = target
    top = [obj for obj in seen if not isinstance(obj, (str, int, float, bool, type(None)))]
    assert len(top) > 100  # variables' dictionaries, tuples, equations, quantities
    kinds = {type(obj) for obj in seen}  # the short cuts' kinds: a variable's dim and dtype
    assert {Dimension, type} <= kinds and any(issubclass(kind, np.dtype) for kind in kinds)
    for obj in [*seen, *seen]:  # twice: a class's key is then the one kept
        assert fast(obj) == original(obj)
        assert hash(fast(obj)) == hash(original(obj))


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("warm-cache")


def run_small(cache_root: Path, scale: float = 1.0, inspect=None, key: str = "small",
              **code) -> tuple:
    """Build and run the small network in ``cache_root/<key>``; the outcome and recorded v;
    ``inspect(device, program)`` is called after the build, while the device is current."""
    with standalone(key, cache_root) as program:
        network, monitor = small_network(scale, **code)
        outcome = program.run(network, 3 * ms)
        recorded = np.array(monitor.v)
        if inspect is not None:
            inspect(get_device(), program)
    return outcome, recorded


def test_data_files_are_brian2s_and_written_only_where_changed(cache_root, tmp_path):
    found = {}

    def inspect(device, program):
        specs = list(device.static_array_specs)
        CPPStandaloneDevice.write_static_arrays(device, str(tmp_path))  # Brian2's own
        found.update(specs=specs, brian2=list(device.static_array_specs),
                     directory=program.directory)

    (tmp_path / "static_arrays").mkdir()
    run_small(cache_root, inspect=inspect)
    assert found["specs"] == found["brian2"]
    names = [name for name, *_ in found["specs"]]
    assert any("warm_drive" in name for name in names)  # the TimedArray's values are data
    ours = found["directory"] / "static_arrays"
    for name in names:
        assert (ours / name).read_bytes() == (tmp_path / "static_arrays" / name).read_bytes()

    times = {name: (ours / name).stat().st_mtime_ns for name in names}
    damaged = next(name for name in names if "warm_drive" not in name)
    (ours / damaged).write_bytes(b"\x00")
    times[damaged] = (ours / damaged).stat().st_mtime_ns
    _, again = run_small(cache_root, scale=1.0)
    _, scaled = run_small(cache_root, scale=2.0)
    changed = {name for name in names if (ours / name).stat().st_mtime_ns != times[name]}
    # the damaged file was written back; the drive and the first v changed with the scale
    assert damaged in changed and any("warm_drive" in name for name in changed)
    assert changed < set(names)  # tau's file, the same in every run, was not written again
    assert not np.array_equal(again, scaled)


def test_make_runs_only_where_a_file_it_reads_changed(cache_root, tmp_path):
    calls = tmp_path / "make-calls.txt"
    wrapper = tmp_path / "make"
    wrapper.write_text(f'#!/bin/sh\necho "$@" >> {calls}\nexec make "$@"\n')
    wrapper.chmod(0o755)

    def made_count() -> int:
        return len(calls.read_text().splitlines()) if calls.exists() else 0

    saved = prefs[MAKE]
    prefs[MAKE] = str(wrapper)
    try:
        _, v_first = run_small(cache_root)  # a new make command: make runs
        assert made_count() == 1
        warm_outcome, v_warm = run_small(cache_root)
        assert made_count() == 1 and warm_outcome.compiled_files == 0
        assert np.array_equal(v_first, v_warm)

        directory = cache_root / "small"
        record = directory / warm.MADE_FILE
        for spoil in (lambda: record.write_text("{not json"),
                      lambda: record.unlink(),
                      lambda: os.utime(directory / "main.cpp"),  # make would look again
                      lambda: record.write_text(json.dumps({"command": ["make"],
                                                            "files": {}}))):
            spoil()
            before = made_count()
            _, v_again = run_small(cache_root)
            assert made_count() == before + 1
            assert np.array_equal(v_first, v_again)
    finally:
        prefs[MAKE] = saved
    run_small(cache_root)  # back to make itself: a new command line, so make runs
    assert json.loads(record.read_text())["command"][0] == saved


def runtime_small(**code) -> np.ndarray:
    """The small network on the runtime device (NumPy target): v recorded."""
    target = prefs["codegen.target"]
    prefs["codegen.target"] = "numpy"
    try:
        network, monitor = small_network(**code)
        network.run(3 * ms, namespace={})
        return np.array(monitor.v)
    finally:
        prefs["codegen.target"] = target


def test_generated_code_is_reused_only_for_the_same_inputs(cache_root):
    run_small(cache_root, key="reuse")
    kept = set(warm._generated)
    _, again = run_small(cache_root, key="reuse")
    assert kept and set(warm._generated) == kept  # every code object was found
    made = json.loads((cache_root / "reuse" / warm.MADE_FILE).read_text())
    assert not warm.make_needed(cache_root / "reuse", made["command"])  # sources as before
    assert np.max(np.abs(again - runtime_small())) <= 1e-12
    for code in ({"gain": 3.0}, {"drive_values": (0.5, -2.0, 1.0, 0.0, 4.0, 1.5)}):
        before = set(warm._generated)
        _, v = run_small(cache_root, key="reuse", **code)
        assert set(warm._generated) - before  # new code generated for what changed
        assert np.max(np.abs(v - runtime_small(**code))) <= 1e-12


def test_a_clocks_text_is_brian2s():
    from brian2 import Clock, second, usecond

    warm.clock_text_once()
    clock = Clock(dt=100 * usecond, name="text_clock")
    for dt in (100 * usecond, 0.5 * ms, 1 * second, 100 * usecond, 0.25 * ms):
        clock.dt = dt
        assert repr(clock) == f"Clock(dt={clock.dt!r}, name='text_clock')"
