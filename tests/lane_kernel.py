"""Whether this machine should run ``circuits.lane_products``' compiled loop, decided apart
from the module: its own gate (the compiler's macros) is what the tests check.

It is meant to run on Linux x86-64 CPUs with AVX2 and FMA and without AVX-512, given a C
compiler and Cython; elsewhere (AVX-512, other CPUs or systems, no compiler) it is off and
the products stay NumPy's. ``compiled_kernel`` gives the module where it is on, ``None``
where it is rightly off, and fails the test where it should be on and is not.
"""

from __future__ import annotations

import importlib.util
import platform
import shlex
import shutil
import sysconfig
from pathlib import Path

import pytest

from circuits import lane_products


def why_off() -> str | None:
    """Why the loop is rightly off on this machine, or None where it should run."""
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        return (f"lane products are for Linux x86-64 CPUs, not {platform.system()} "
                f"{platform.machine()}")
    flags: set[str] = set()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            flags = set(line.partition(":")[2].split())
            break
    if not {"avx2", "fma"} <= flags or "avx512f" in flags:
        return "lane products are for CPUs with AVX2 and FMA and without AVX-512"
    compiler = shlex.split(sysconfig.get_config_var("CC") or "cc")[0]
    if shutil.which(compiler) is None or importlib.util.find_spec("Cython") is None:
        return f"no C compiler ({compiler}) or no Cython: the lane products are not compiled"
    return None


def compiled_kernel() -> object | None:
    """The compiled module; None where it is rightly off (``why_off``); a failed test where
    this machine should run it and it does not."""
    module, why = lane_products.kernel()
    if module is None and why_off() is None:
        pytest.fail(f"this CPU should run the lane products: {why}")
    return module
