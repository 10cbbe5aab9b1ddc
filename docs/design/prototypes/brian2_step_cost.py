"""Brian2's own fixed cost per code object per step on the runtime (Cython) device.

N trivial one-neuron groups (``dv/dt = -v / tau``: one state-updater code object each) run for
20,000 steps of 0.1 ms, after a warm-up run that compiles them; the time per step against N gives
Brian2's loop cost per code object. The same with N empty ``NetworkOperation`` s (a Python call
per step each) and with N ``run_regularly`` operations (a code object each, no integration).

    python docs/design/prototypes/brian2_step_cost.py
"""
from __future__ import annotations

import time

import numpy as np
from brian2 import Network, NetworkOperation, NeuronGroup, defaultclock, ms, prefs

STEPS = 20_000
COUNTS = (1, 2, 4, 8)


def trivial_groups(count: int) -> list:
    return [NeuronGroup(1, "dv/dt = -v / (10*ms) : 1", method="euler", name=f"g{index}")
            for index in range(count)]


def network_operations(count: int) -> list:
    return [NeuronGroup(1, "v : 1", name="holder"),
            *[NetworkOperation(lambda: None, name=f"op{index}") for index in range(count)]]


def run_regularly(count: int) -> list:
    group = NeuronGroup(1, "v : 1", name="holder")
    return [group, *[group.run_regularly("v = v + 1", name=f"rr{index}")
                     for index in range(count)]]


def per_step(objects: list, repeats: int = 5) -> float:
    """Best of ``repeats`` warm runs, in us a step."""
    network = Network(*objects)
    network.run(10 * defaultclock.dt)  # compiles
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        network.run(STEPS * defaultclock.dt)
        best = min(best, time.perf_counter() - start)
    return 1e6 * best / STEPS


def main() -> None:
    prefs.codegen.target = "cython"
    defaultclock.dt = 0.1 * ms
    print(f"Brian2 runtime device (Cython), {STEPS} steps, best of 5, us per step")
    print(f"{'objects':>8s} {'groups':>8s} {'net. ops':>9s} {'run_reg.':>9s}")
    rows = {}
    for count in COUNTS:
        rows[count] = (per_step(trivial_groups(count)), per_step(network_operations(count)),
                       per_step(run_regularly(count)))
        groups, operations, regular = rows[count]
        print(f"{count:8d} {groups:8.2f} {operations:9.2f} {regular:9.2f}")
    print(f"(empty network, one group without code objects: {per_step(run_regularly(0)):.2f})")
    for column, label in enumerate(("state updaters", "network operations", "run_regularly")):
        slope, fixed = np.polyfit(COUNTS, [rows[c][column] for c in COUNTS], 1)
        print(f"{label}: {slope:.2f} us each per step (fit: {fixed:.2f} us fixed)")


if __name__ == "__main__":
    main()
