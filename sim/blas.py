"""The OpenBLAS libraries NumPy and SciPy loaded (Linux, ctypes): their threads, set and read,
and the kernel family each picked for this CPU. A result records them (``sim.io.provenance``);
without OpenBLAS each function answers with nothing.

On a small machine shared with other work, a multithreaded BLAS that loses a core spins and runs
a 1000 x 500 matrix-vector product ~10x slower than one thread does, so ``pcsim bench`` pins
BLAS to one thread (``--threads``) for both pcsim and its references (the ratios then measure
the simulators, not the scheduler), and a sweep's workers run one thread each.
"""

from __future__ import annotations

import ctypes
import functools
import re
from pathlib import Path

_SETTERS = ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads",
            "openblas_set_num_threads64_", "openblas_set_num_threads")


def _loaded_openblas() -> list[str]:
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return []
    return sorted({match.group(0) for match in re.finditer(r"/\S*openblas\S*\.so\S*", maps)})


@functools.cache
def _libraries() -> tuple[tuple[str, ctypes.CDLL], ...]:
    """(path, library) of every loaded OpenBLAS, found once per process (reading the process's
    memory map takes ~2 ms, and a result asks at every run): NumPy's and SciPy's, loaded
    first here."""
    import numpy  # noqa: F401  (load NumPy's and SciPy's BLAS first)
    import scipy.linalg  # noqa: F401

    found = []
    for path in _loaded_openblas():
        try:
            found.append((path, ctypes.CDLL(path)))
        except OSError:
            continue
    return tuple(found)


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
    for path, setter in _functions(_SETTERS):
        setter(ctypes.c_int(count))
        changed.append(Path(path).name)
    return changed


_CORE_NAMES = ("scipy_openblas_get_corename64_", "scipy_openblas_get_corename",
               "openblas_get_corename64_", "openblas_get_corename")


def blas_cores() -> list[str]:
    """The kernel family each loaded OpenBLAS picked for this CPU (``Haswell``, ``SkylakeX``...;
    ``OPENBLAS_CORETYPE`` overrides the choice when set before NumPy is imported)."""
    cores = set()
    for _, getter in _functions(_CORE_NAMES):
        getter.restype = ctypes.c_char_p
        cores.add(getter().decode())
    return sorted(cores)


_THREAD_GETTERS = ("scipy_openblas_get_num_threads64_", "scipy_openblas_get_num_threads",
                   "openblas_get_num_threads64_", "openblas_get_num_threads")


def blas_threads() -> list[int]:
    """The number of threads each loaded OpenBLAS runs (``set_blas_threads`` sets it)."""
    return sorted({int(getter()) for _, getter in _functions(_THREAD_GETTERS)})
