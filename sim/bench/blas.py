"""Set the number of threads of the OpenBLAS libraries NumPy and SciPy loaded (Linux, ctypes).

On a small machine shared with other work, a multithreaded BLAS that loses a core spins and runs
a 1000 x 500 matrix-vector product ~10x slower than one thread does, so ``pcsim bench`` pins
BLAS to one thread (``--threads``) for both pcsim and its references: the ratios then measure
the simulators, not the scheduler. Without OpenBLAS this does nothing and says so.
"""

from __future__ import annotations

import ctypes
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


def set_blas_threads(count: int) -> list[str]:
    """Set every loaded OpenBLAS to ``count`` threads; returns the libraries it changed."""
    import numpy  # noqa: F401  (load NumPy's and SciPy's BLAS first)
    import scipy.linalg  # noqa: F401

    changed = []
    for path in _loaded_openblas():
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        for name in _SETTERS:
            setter = getattr(library, name, None)
            if setter is not None:
                setter(ctypes.c_int(count))
                changed.append(Path(path).name)
                break
    return changed
