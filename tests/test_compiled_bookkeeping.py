"""A compiled program's ``objects.cpp`` at -O0 (``sim.compiled.bookkeeping``): make compiles
``objects.o`` without optimisation and without the standard headers' precompiled form, every
code object with the makefile's own flags; a second build compiles nothing; the results are
those of the runtime device (as ``tests/test_compiled_runs.py`` checks for the bundled
scenarios, every dataset within 1e-12).

The build is a small network's, in a cache of this module's own.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from brian2 import Network, NeuronGroup, ms

from sim.compiled import bookkeeping
from sim.compiled.device import standalone


def build(cache_root: Path) -> tuple[np.ndarray, int]:
    """Build and run a small network: (v at the end, files compiled)."""
    with standalone("bookkeeping", cache_root) as program:
        group = NeuronGroup(2, "dv/dt = (w - v) / (5 * ms) : 1\nw : 1", method="euler",
                            name="bookkeeping")
        group.v = [1.0, 2.0]
        group.w = [0.5, -0.5]
        outcome = program.run(Network(group), 2 * ms)
        return np.asarray(group.v[:]), outcome.compiled_files


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, np.ndarray, int]:
    cache_root = tmp_path_factory.mktemp("standalone-cache")
    v, compiled = build(cache_root)
    return cache_root, v, compiled


def commands(program: Path) -> dict[str, str]:
    """The compile command make runs for each object (``make -n -B``: printed, not run)."""
    printed = subprocess.run(["make", "-n", "-B", "-f", "makefile", "-f",
                              bookkeeping.RULES_FILE, "objects.o",
                              "code_objects/bookkeeping_stateupdater_codeobject.o"],
                             cwd=program, capture_output=True, text=True, check=True)
    return {line.split()[-1]: line for line in printed.stdout.splitlines() if " -o " in line}


def test_objects_at_o0_without_the_header_the_code_objects_as_the_makefile_says(built):
    cache_root, v, compiled = built
    program = cache_root / "bookkeeping"
    assert (program / bookkeeping.RULES_FILE).read_text() == bookkeeping.RULES
    found = commands(program)
    objects = found["objects.o"].split()
    code = found["code_objects/bookkeeping_stateupdater_codeobject.o"].split()
    assert "-O0" in objects and not [flag for flag in objects
                                     if flag.startswith("-include") or flag in ("-O3", "-O2")]
    assert "-O3" in code and "-O0" not in code
    # the rest of the flags are the makefile's own, for both
    assert {flag for flag in code if not flag.startswith(("-O", "-include"))} - {
        "code_objects/bookkeeping_stateupdater_codeobject.cpp",
        "code_objects/bookkeeping_stateupdater_codeobject.o"} == {
        flag for flag in objects if not flag.startswith("-O")} - {"objects.cpp", "objects.o"}
    assert compiled >= 2 and np.all(np.isfinite(v))


def test_a_second_build_compiles_nothing_and_gives_the_same_values(built):
    cache_root, v, _ = built
    again, compiled = build(cache_root)
    assert compiled == 0 and np.array_equal(again, v)
    # euler: v += dt (w - v) / tau, 20 steps of 0.1 ms from the same start
    expected = np.array([1.0, 2.0])
    for _ in range(20):
        expected = expected + 0.1 * (np.array([0.5, -0.5]) - expected) / 5.0
    np.testing.assert_allclose(v, expected, rtol=0, atol=1e-12)
