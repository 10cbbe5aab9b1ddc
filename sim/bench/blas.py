"""Whether OpenBLAS runs the kernels the CPU allows: the note ``pcsim bench`` prints where it
does not (the BLAS's threads and kernels themselves: ``sim.blas``)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from sim.blas import blas_cores

AVX2_CORES = ("haswell", "zen")  # OpenBLAS kernel families limited to 256-bit vectors


def cpu_has_avx512() -> bool:
    try:
        return " avx512f " in f" {Path('/proc/cpuinfo').read_text().replace(chr(10), ' ')} "
    except OSError:
        return False


def kernel_note(environ: Mapping[str, str] = os.environ) -> str | None:
    """One line when OpenBLAS runs 256-bit kernels on a CPU with AVX-512, which JAX's XLA,
    compiling for the host, does use; None otherwise. Where ``OPENBLAS_CORETYPE`` is set (some
    machines set it for older OpenBLAS builds, which computed wrong results or crashed on their
    CPU: this project's sets ``Haswell``) the line says so, since unset, NumPy 2.3's OpenBLAS
    (0.3.30) picks its AVX-512 (SkylakeX) kernels on the same AMD Zen 5."""
    cores = blas_cores()
    if not cores or not cpu_has_avx512() or not all(core.lower() in AVX2_CORES for core in cores):
        return None
    kernels = f"OpenBLAS runs its {'/'.join(cores)} (256-bit) kernels; XLA compiles for the host"
    forced = environ.get("OPENBLAS_CORETYPE")
    if forced:
        return (f"note: this CPU has AVX-512, but OPENBLAS_CORETYPE={forced} is set in this "
                f"environment, so {kernels}. For OpenBLAS's own choice run the bench with "
                "OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset (README, Performance).")
    return (f"note: this CPU has AVX-512 but {kernels}. OPENBLAS_CORETYPE=SkylakeX (set before "
            "starting Python) selects OpenBLAS's AVX-512 kernels: measure both (README, "
            "Performance).")
