"""The precompiled standard headers of a compiled program (``sim.compiled.headers``): a build
includes them and g++ uses the precompiled form, the preferences are as before the block and a
second build compiles nothing; the object files hold the same machine code
as without them; a precompiled header that crashes g++ is removed and the build made again;
other flags get another folder; where the compiler is not GCC, or the cache path cannot be
written unquoted into a makefile, a build gets no flag.

The build is a small network's (two code objects), in a cache of this module's own.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from brian2 import Network, NeuronGroup, ms, prefs

from sim.compiled import headers
from sim.compiled.device import standalone
from sim.engine import configure_brian

needs_objdump = pytest.mark.skipif(shutil.which("objdump") is None, reason="no objdump")


def _flags(program: Path, header: Path) -> list[str]:
    """The makefile's compiler and flags without the header's (``headers.MAKE_RULES``)."""
    printed = subprocess.run(["make", "-s", "-f", "makefile", "-f",
                              str(header.parent / headers.MAKEFILE), f"PCSIM_HEADER={header}",
                              "pcsim-flags"], cwd=program, capture_output=True, text=True,
                             check=True)
    return printed.stdout.split()


def build(cache_root: Path) -> tuple[np.ndarray, int]:
    """Build and run a small network (two code objects): (v at the end, files compiled)."""
    with standalone("decay", cache_root) as program:
        group = NeuronGroup(2, "dv/dt = (w - v) / (5 * ms) : 1\nw : 1", method="euler",
                            name="decay")
        group.v = [1.0, 2.0]
        group.run_regularly("w = sin(t / (3 * ms))", name="decay_drive")
        outcome = program.run(Network(group), 2 * ms)
        return np.asarray(group.v[:]), outcome.compiled_files


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, Path, np.ndarray]:
    """(the program's folder, the header, v at the end); skips where the compiler is not
    GCC."""
    if not headers.uses_gcc(headers.compiler()):
        pytest.skip("the compiler is not GCC: no precompiled header")
    cache_root = tmp_path_factory.mktemp("standalone-cache")
    v, _ = build(cache_root)
    program = cache_root / "decay"
    found = re.search(r"-include(\S+)", (program / "makefile").read_text())
    assert found is not None
    return program, Path(found[1]), v


def test_a_build_includes_the_header_and_gcc_uses_the_precompiled_one(built):
    program, header, _ = built
    assert header.parent.parent == program.parent / headers.FOLDER
    assert header.read_text() == headers.TEXT
    precompiled = header.with_name(f"{headers.HEADER}.gch")
    assert precompiled.is_file()
    assert sorted(path.name for path in header.parent.iterdir()) == sorted(
        [headers.HEADER, precompiled.name, headers.MAKEFILE, headers.SETTINGS])  # no partial
    compiler, *flags = _flags(program, header)
    source = next((program / "code_objects").glob("*.cpp"))
    shown = subprocess.run([compiler, *flags, f"-include{header}", "-H", str(source), "-o",
                            os.devnull], cwd=program, capture_output=True, text=True, check=True)
    # g++ -H: "! <file>" is a precompiled header used, "x <file>" one it could not use
    assert f"! {precompiled}" in shown.stderr.splitlines()


@needs_objdump
def test_the_code_objects_compile_to_the_same_machine_code_without_it(built, tmp_path):
    """Every code object's object file against the same source compiled without the header
    (the makefile's flags otherwise): ``objdump -d`` equal, instruction by instruction."""
    program, header, _ = built
    compiler, *flags = _flags(program, header)
    sources = sorted((program / "code_objects").glob("*.cpp"))
    assert len(sources) >= 2
    for source in sources:
        plain = tmp_path / f"{source.stem}.o"
        subprocess.run([compiler, *flags, str(source), "-o", str(plain)], cwd=program,
                       check=True)
        assert _code(plain) == _code(source.with_suffix(".o")), source.name


def _code(path: Path) -> list[str]:
    """The disassembly, without objdump's first lines (they name the file)."""
    return subprocess.run(["objdump", "-d", str(path)], capture_output=True, text=True,
                          check=True).stdout.splitlines()[3:]


def test_the_flags_are_the_blocks_own_and_a_second_build_compiles_nothing(built):
    """The standalone block adds the header's flag to a copy of Brian2's preferences: after
    it they are as before, and the same network built again in this process compiles
    nothing (a flag added twice would change the makefile and recompile it all)."""
    program, _, v = built
    configure_brian()  # as every run does: -g0 in Brian2's preferences already
    before = list(prefs["codegen.cpp.extra_compile_args_gcc"])
    again, compiled = build(program.parent)
    assert compiled == 0 and np.array_equal(again, v)
    assert prefs["codegen.cpp.extra_compile_args_gcc"] == before
    assert not any(flag.endswith(f"/{headers.HEADER}") for flag in before)  # the block's


def test_a_precompiled_header_that_crashes_gcc_is_removed_and_the_build_made_again(built):
    """A .gch built with other optimisation flags than the sources' crashed g++ (an internal
    compiler error, measured): put one in place, make the build compile again; it succeeds
    with the header read as text, with the same result, and the bad .gch is gone."""
    program, header, v = built
    compiler, *flags = _flags(program, header)
    precompiled = header.with_name(f"{headers.HEADER}.gch")
    subprocess.run([compiler, *flags, "-O1", "-x", "c++-header", str(header), "-o",
                    str(precompiled)], check=True)
    for path in (program / "code_objects").glob("*.o"):
        path.unlink()
    again, compiled = build(program.parent)
    assert compiled >= 2 and np.array_equal(again, v)
    assert not precompiled.exists()


def test_other_flags_another_folder_another_compiler_or_an_unquotable_path_none(
        tmp_path, monkeypatch):
    if headers.uses_gcc(headers.compiler()):
        plain = headers.include_flags(tmp_path / "plain", ["-O3"])
        assert plain[0].startswith(f"-include{tmp_path / 'plain' / headers.FOLDER}")
        assert headers.include_flags(tmp_path / "plain", ["-O3"]) == plain
        assert headers.include_flags(tmp_path / "plain", ["-O2"]) != plain
        assert headers.include_flags(tmp_path / "with space", ["-O3"]) == []
    fake = tmp_path / "clang++"
    fake.write_text("#!/bin/sh\necho '#define __clang__ 1'\necho '#define __GNUC__ 4'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("CXX", str(fake))
    assert not headers.uses_gcc(str(fake))
    assert headers.include_flags(tmp_path / "cache", ["-O3"]) == []
