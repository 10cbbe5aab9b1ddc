"""One pcsim run in a fresh process, for what a long-lived process cannot measure.

``python -m sim.bench.child SCENARIO OUTPUT [--cache-dir DIR]`` runs the scenario through the
public engine and prints one JSON line: ``import_s`` (importing pcsim and Brian2),
``startup_s`` (scenario file to first step: reading, building, code generation or loading the
compiled code), ``run_s`` (the time-step loop), ``peak_rss_mb`` (the process's peak resident
memory) and ``build_rss_mb`` (resident memory at the first step). With ``--cache-dir`` (an
empty folder) Brian2 compiles every code object afresh: a cold start.
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402


def resident_mb(field: str = "VmRSS") -> float:
    """Resident memory now (``VmRSS``) or at its peak (``VmHWM``), MiB, from /proc (Linux).

    (``getrusage``'s ru_maxrss would not do: across fork and exec it keeps the parent's peak.)
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Probe:
    """The engine's progress callback: times the first step and the end of the last trial."""

    def __init__(self) -> None:
        self.first: float | None = None
        self.last: float | None = None
        self.first_rss = 0.0

    def __call__(self, fraction: float) -> None:
        now = time.perf_counter()
        if self.first is None:
            self.first = now
            self.first_rss = resident_mb()
        if fraction >= 1.0 - 1e-12 and self.last is None:
            self.last = now


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sim.bench.child")
    parser.add_argument("scenario")
    parser.add_argument("output")
    parser.add_argument("--cache-dir", help="an empty Brian2 code cache (cold start)")
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads (0: leave as is)")
    args = parser.parse_args(argv)

    from brian2 import prefs

    from sim.blas import set_blas_threads
    from sim.engine import run_scenario
    from sim.scenario import load_scenario

    if args.threads:
        set_blas_threads(args.threads)
    if args.cache_dir:
        prefs.codegen.runtime.cython.cache_dir = args.cache_dir
    imported = time.perf_counter()
    probe = Probe()
    run_scenario(load_scenario(args.scenario), Path(args.output), probe)
    print(json.dumps({
        "import_s": imported - STARTED,
        "startup_s": probe.first - imported,
        "run_s": probe.last - probe.first,
        "peak_rss_mb": resident_mb("VmHWM"),
        "build_rss_mb": probe.first_rss,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
