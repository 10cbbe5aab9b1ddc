"""Run a measurement on a given number of this machine's cores (Linux): every thread of the
process, and every thread started meanwhile, may run only there.

Why: ``pcsim bench`` compares systems on the same resources. BLAS is set to one thread
(``sim.blas``), but JAX's XLA (jaxlib 0.4.38, its default CPU runtime) splits a dot
over every core the process may use, whatever ``XLA_FLAGS`` say: with
``--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1`` a 16 x 500 by 500 x 1000
float32 product still kept two threads ~0.9 busy each on this 2-core machine (48 us a product;
69 us on one core). The peers' table therefore pins the whole process, pcsim and the NumPy
loop included, to as many cores as BLAS has threads.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _threads() -> list[int]:
    try:
        return [int(name) for name in os.listdir(Path("/proc/self/task"))]
    except OSError:
        return [0]


def _set(cores: set[int]) -> None:
    for thread in _threads():
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            os.sched_setaffinity(thread, cores)


def can_pin() -> bool:
    """Whether this platform can pin a process's threads to cores (Linux)."""
    return hasattr(os, "sched_setaffinity")


@contextmanager
def on_cores(count: int) -> Iterator[list[int] | None]:
    """Every thread of this process on the first ``count`` cores it may use, for the block;
    yields those cores (None where the platform cannot pin, and nothing is changed). Threads
    started in the block (XLA's pools) stay on them until the block ends, then every thread
    gets the process's former cores back."""
    if not can_pin():
        yield None
        return
    allowed = os.sched_getaffinity(0)
    chosen = set(sorted(allowed)[:max(1, count)])
    _set(chosen)
    try:
        yield sorted(chosen)
    finally:
        _set(allowed)
