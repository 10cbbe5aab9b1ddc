"""The OpenBLAS libraries NumPy and SciPy loaded (Linux, ctypes): their threads, set and read,
and the kernel family each picked for this CPU. A result records them (``sim.io.provenance``);
without OpenBLAS each function answers with nothing.

On a small machine shared with other work, a multithreaded BLAS that loses a core spins and runs
a 1000 x 500 matrix-vector product ~10x slower than one thread does, so ``pcsim bench`` pins
BLAS to one thread (``--threads``) for both pcsim and its references (the ratios then measure
the simulators, not the scheduler), and a sweep's workers and a compiled program run one thread each
(``ONE_THREAD``).
"""

from __future__ import annotations

import ctypes
import functools
from pathlib import Path

from circuits.blas import opened_openblas, symbol_names

# a process's BLAS and OpenMP held to one thread from its start (its environment), not only once
# loaded: a sweep's workers (sim.sweeps.pool) and a compiled program (sim.compiled.device)
ONE_THREAD = {name: "1" for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                                     "MKL_NUM_THREADS")}


@functools.cache
def _libraries() -> tuple[tuple[str, ctypes.CDLL], ...]:
    """(path, library) of every loaded OpenBLAS, found once per process (reading the process's
    memory map takes ~2 ms, and a result asks at every run): NumPy's and SciPy's, loaded
    first here."""
    import numpy  # noqa: F401  (load NumPy's and SciPy's BLAS first)
    import scipy.linalg  # noqa: F401

    return tuple(opened_openblas())


def _functions(names: tuple[str, ...]):
    """(library path, the first of ``names`` it exports) for every loaded OpenBLAS."""
    for path, library in _libraries():
        function = next((getattr(library, name) for name in names
                         if getattr(library, name, None) is not None), None)
        if function is not None:
            yield path, function


def set_blas_threads(count: int) -> list[str]:
    """Set every loaded OpenBLAS to ``count`` threads; returns the libraries it changed."""
    changed = []
    for path, setter in _functions(symbol_names("openblas_set_num_threads")):
        setter(ctypes.c_int(count))
        changed.append(Path(path).name)
    return changed


def blas_cores() -> list[str]:
    """The kernel family each loaded OpenBLAS picked for this CPU (``Haswell``, ``SkylakeX``...;
    ``OPENBLAS_CORETYPE`` overrides the choice when set before NumPy is imported)."""
    cores = set()
    for _, getter in _functions(symbol_names("openblas_get_corename")):
        getter.restype = ctypes.c_char_p
        cores.add(getter().decode())
    return sorted(cores)


def blas_threads() -> list[int]:
    """The number of threads each loaded OpenBLAS runs (``set_blas_threads`` sets it)."""
    getters = _functions(symbol_names("openblas_get_num_threads"))
    return sorted({int(getter()) for _, getter in getters})
