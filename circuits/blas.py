"""The OpenBLAS libraries loaded into this process (Linux): their files, opened with ctypes,
and the names OpenBLAS's symbols take in them. ``circuits.coupling_compiled`` links the one
NumPy loaded into a compiled program; ``sim.blas`` sets and reads their threads."""

from __future__ import annotations

import ctypes
import re
from collections.abc import Iterator
from pathlib import Path

# (symbol prefix, symbol suffix, integer type): OpenBLAS as NumPy's and SciPy's wheels ship it
# (ILP64, ``scipy_cblas_dgemv64_``, and LP64), then a plain build (ILP64, LP64)
VARIANTS = (("scipy_", "64_", "int64_t"), ("scipy_", "", "int"), ("", "64_", "int64_t"),
            ("", "", "int"))


def symbol_names(name: str) -> tuple[str, ...]:
    """``name`` (``openblas_set_num_threads``) as each of the ``VARIANTS`` spells it."""
    return tuple(f"{prefix}{name}{suffix}" for prefix, suffix, _ in VARIANTS)


def loaded_openblas() -> list[str]:
    """The files of the OpenBLAS libraries mapped into this process (``/proc/self/maps``),
    sorted; none where that file is absent (not Linux)."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return []
    # address, permissions, offset, device, inode, then the path (which may hold spaces)
    paths = {fields[5] for fields in (line.split(maxsplit=5) for line in maps.splitlines())
             if len(fields) == 6}
    # NumPy's and SciPy's wheels (numpy.libs/libscipy_openblas64_-*.so), or a system OpenBLAS
    # (Debian's /usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3)
    return sorted(path for path in paths if re.search(r"openblas.*\.so", path))


def opened_openblas() -> Iterator[tuple[str, ctypes.CDLL]]:
    """(file, ctypes handle) for every loaded OpenBLAS that opens."""
    for path in loaded_openblas():
        try:
            yield path, ctypes.CDLL(path)
        except OSError:
            continue
