"""Where a step of ``attention/posner`` goes today: cProfile of ``sim.run`` in a warm process.

Runs Posner once to warm Brian2's code cache, then timed (as is, and with F's Laplace term only at
trial ends), then once under cProfile, and prints the wall times
and, per step (180,000), the cumulative cost of each Python network operation, of Brian2's code
objects, of Brian2's own loop around them and of the recorder's work at each 1 ms sample; then
once more with Brian2's own per-object profile (``Network.run(profile=True)``).

    python docs/design/prototypes/profile_posner.py
"""
from __future__ import annotations

import cProfile
import pstats
import tempfile
import time
from pathlib import Path

import brian2

import sim

STEPS = 180_000
SAMPLES = 18_000

# (label, file suffix, function name): what each piece of a step runs
PIECES = [
    ("Network.run (all of the run)", "brian2/core/network.py", "run"),
    ("every network operation (9 a step)", "brian2/core/operations.py", "run"),
    ("every Brian2 code object (6 a step)", "brian2/codegen/codeobject.py", "__call__"),
    ("  of which the compiled Cython block", "cython_rt/cython_rt.py", "run_block"),
    ("stimulus: Inputs.deliver", "hierarchical/inputs.py", "deliver"),
    ("coupling_to_errors", "circuits/coupling.py", "deliver_to_errors"),
    ("coupling_to_beliefs", "circuits/coupling.py", "deliver_to_beliefs"),
    ("topdown_precision", "circuits/precision_topdown.py", "predict_precision"),
    ("topdown_to_context", "circuits/precision_topdown.py", "carry_back"),
    ("reaction time check", "readouts/decision_watch.py", "check"),
    ("precision_schedule (idle)", "hierarchical/build.py", "_change_precision"),
    ("recorder (all, incl. F)", "sim/simulation.py", "_record"),
    ("F at each sample: before_sample", "hierarchical/build.py", "before_sample"),
    ("  of which hessian_blocks", "hierarchical/free_energy.py", "hessian_blocks"),
    ("  of which constant_log_det", "hierarchical/free_energy.py", "constant_log_det"),
    ("guard (divergence, Ctrl-C)", "sim/guard.py", "_tick"),
]


def cumulative(stats: pstats.Stats, suffix: str, name: str) -> tuple[int, float]:
    """Calls and cumulative seconds of ``name`` in a file ending ``suffix`` (the outermost, where
    a closure and a method share the name)."""
    found = [(cum, ncalls) for (path, _, function), (_, ncalls, _, cum, _)
             in stats.stats.items()  # type: ignore[attr-defined]
             if function == name and path.endswith(suffix)]
    seconds, calls = max(found, default=(0.0, 0))
    return calls, seconds


def brian2_profile(folder: Path) -> None:
    """Brian2's own per-object timing (``Network.run(profile=True)``, far lighter than cProfile):
    each network operation's and each code object's total, per step."""
    networks = []
    original = brian2.Network.run

    def run_profiled(self, *args, **kwargs):
        networks.append(self)
        return original(self, *args, **{**kwargs, "profile": True})

    brian2.Network.run = run_profiled
    try:
        start = time.perf_counter()
        sim.run("attention/posner", folder / "brian2-profiled.h5")
        wall = time.perf_counter() - start
    finally:
        brian2.Network.run = original
    info = sorted(networks[-1].profiling_info, key=lambda item: -float(item[1]))
    total = sum(float(seconds) for _, seconds in info)
    print(f"Brian2's profile (Network.run(profile=True)), wall {wall:.2f} s, "
          f"objects together {total:.2f} s:")
    print(f"{'object':40s} {'s':>7s} {'us/step':>8s}")
    for name, seconds in info:
        print(f"{name:40s} {float(seconds):7.2f} {1e6 * float(seconds) / STEPS:8.2f}")


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="posner-profile-"))
    sim.run("attention/posner", folder / "warm.h5")  # compile once
    start = time.perf_counter()
    sim.run("attention/posner", folder / "plain.h5")
    plain = time.perf_counter() - start
    start = time.perf_counter()
    sim.run("attention/posner", folder / "no-laplace.h5",
            overrides={"record.laplace": "trial_end"})
    no_laplace = time.perf_counter() - start
    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.runcall(sim.run, "attention/posner", folder / "profiled.h5")
    profiled = time.perf_counter() - start
    stats = pstats.Stats(profiler)
    print(f"warm run: {plain:.2f} s ({1e6 * plain / STEPS:.1f} us a step); "
          f"under cProfile {profiled:.2f} s")
    print(f"warm run with record.laplace = 'trial_end': {no_laplace:.2f} s: F's Laplace term at "
          f"every sample costs {1e6 * (plain - no_laplace) / SAMPLES:.0f} us a sample unprofiled")
    print(f"{'piece':42s} {'calls':>9s} {'s (prof.)':>10s} {'us/step':>8s} {'share':>6s}")
    total = cumulative(stats, "brian2/core/network.py", "run")[1]
    for label, suffix, name in PIECES:
        calls, seconds = cumulative(stats, suffix, name)
        print(f"{label:42s} {calls:9d} {seconds:10.2f} {1e6 * seconds / STEPS:8.1f} "
              f"{seconds / total:6.1%}")
    print("(cProfile inflates Python calls; shares are of Network.run under the profiler)")
    print(f"per 1 ms sample: F with its Laplace term "
          f"{1e6 * cumulative(stats, 'hierarchical/build.py', 'before_sample')[1] / SAMPLES:.0f}"
          " us (profiled)")
    brian2_profile(folder)


if __name__ == "__main__":
    main()
