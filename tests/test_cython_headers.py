"""The precompiled header of the runtime device's Cython extensions (``sim.cython_headers``):
``configure_brian`` adds its flag and builds it; g++ uses it for an extension Brian2 generated,
and the object file holds the same machine code as without it; a warm process runs no compiler
to find it; compiled programs and extensions with flags of their own never take it; other
flags get another folder, and a header that does not build, or a compiler that is not GCC,
gives no flag.

Each test works in a Cython cache of its own (Brian2's preference, restored after).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import brian2
import numpy as np
import pytest
from brian2 import Network, NeuronGroup, ms, prefs

from sim import cython_headers
from sim.compiled.headers import uses_gcc
from sim.compiler_flags import gcc_arguments
from sim.engine import configure_brian

ARGUMENTS = "codegen.cpp.extra_compile_args_gcc"


@pytest.fixture
def cache(tmp_path):
    """A Cython cache of this test's own; Brian2's preferences as they were after it."""
    saved = {name: prefs[name] for name in (ARGUMENTS, "codegen.runtime.cython.cache_dir",
                                            "codegen.runtime.cython.delete_source_files")}
    prefs["codegen.runtime.cython.cache_dir"] = str(tmp_path / "brian_extensions")
    cython_headers._include_flags.cache_clear()
    yield tmp_path / "brian_extensions"
    for name, value in saved.items():
        prefs[name] = value
    cython_headers._include_flags.cache_clear()


def gcc_or_skip() -> None:
    compiler, _ = cython_headers._extension_compiler()
    if compiler is None or not uses_gcc(cython_headers.cxx_command(compiler)[0]):
        pytest.skip("the compiler is not GCC: no precompiled header")


def header_flag() -> str:
    flags = [flag for flag in prefs[ARGUMENTS] if cython_headers.is_flag(flag)]
    assert len(flags) == 1, prefs[ARGUMENTS]
    return flags[0]


def compile_command(source: Path, output: Path, arguments: list[str]) -> list[str]:
    """``source`` compiled as Brian2's extension build compiles it: the distutils compiler's
    command, Python's, NumPy's and Brian2's include folders, then ``arguments``."""
    compiler, _ = cython_headers._extension_compiler()
    synapses = Path(brian2.__file__).parent / "synapses"
    folders = [*compiler.include_dirs, np.get_include(), str(synapses)]
    return [*cython_headers.cxx_command(compiler), *(f"-I{folder}" for folder in folders), "-c",
            str(source), "-o", str(output), *arguments]


def test_an_extension_uses_the_header_and_compiles_to_the_same_machine_code(cache, tmp_path):
    """A network's extension (Brian2's generated source kept): configure_brian's flag names
    a built .gch beside the Cython cache; g++ -H shows it used for each source, and the object
    file without the flag disassembles to the same instructions."""
    gcc_or_skip()
    configure_brian()
    flag = header_flag()
    header = Path(flag.removeprefix(cython_headers.FLAG))
    assert header.parent.parent == cache.with_name(f"{cache.name}_pcsim_headers")
    precompiled = header.with_name(f"{cython_headers.HEADER}.gch")
    assert precompiled.is_file()
    assert sorted(path.name for path in header.parent.iterdir()) == sorted(
        [cython_headers.HEADER, precompiled.name, cython_headers.SETTINGS])  # no partial
    prefs["codegen.runtime.cython.delete_source_files"] = False
    group = NeuronGroup(3, "dv/dt = -v / (5 * ms) : 1", method="euler", name="header_test")
    group.v = [0.5, 1.5, 2.5]
    Network(group).run(0.2 * ms)
    sources = sorted(cache.glob("*.cpp"))
    assert sources
    arguments = [argument for argument in prefs[ARGUMENTS] if argument != flag]
    for source in sources:
        shown = subprocess.run(compile_command(source, tmp_path / "shown.o",
                                               [*arguments, flag, "-H", "-fsyntax-only"]),
                               capture_output=True, text=True, check=True)
        # g++ -H: "! <file>" is a precompiled header used, "x <file>" one it could not use
        assert f"! {precompiled}" in shown.stderr.splitlines(), source.name
        if shutil.which("objdump"):
            plain, with_header = tmp_path / "plain.o", tmp_path / "header.o"
            subprocess.run(compile_command(source, plain, arguments), check=True)
            subprocess.run(compile_command(source, with_header, [*arguments, flag]), check=True)
            assert _code(plain) == _code(with_header), source.name


def _code(path: Path) -> list[str]:
    """The disassembly, without objdump's first lines (they name the file)."""
    return subprocess.run(["objdump", "-d", str(path)], capture_output=True, text=True,
                          check=True).stdout.splitlines()[3:]


def test_a_warm_process_runs_no_compiler_and_configure_twice_adds_the_flag_once(
        cache, monkeypatch):
    gcc_or_skip()
    configure_brian()
    first = list(prefs[ARGUMENTS])
    configure_brian()
    assert prefs[ARGUMENTS] == first
    cython_headers._include_flags.cache_clear()  # as a new process
    for name in ("uses_gcc", "_extension_compiler", "_precompile"):
        monkeypatch.setattr(cython_headers, name,
                            lambda *args, name=name: pytest.fail(f"{name} ran"))
    configure_brian()
    assert prefs[ARGUMENTS] == first


def test_compiled_programs_and_extensions_with_flags_of_their_own_never_take_it(
        cache, monkeypatch):
    """``gcc_arguments`` (a compiled program's flags, ``sim.compiled.device.standalone``)
    drops it; ``circuits.extension`` with extra flags compiles without it, and with none
    with Brian2's flags as they are."""
    from brian2.codegen.runtime.cython_rt.extension_manager import cython_extension_manager

    from circuits.extension import compile_extension

    gcc_or_skip()
    configure_brian()
    flag = header_flag()
    assert flag not in gcc_arguments(prefs[ARGUMENTS])
    taken = []
    monkeypatch.setattr(cython_extension_manager, "create_extension",
                        lambda source, **keywords: taken.append(keywords["extra_compile_args"]))
    compile_extension("x = 1\n", "header_test", ["-fno-fast-math"])
    compile_extension("x = 1\n", "header_test")
    assert flag not in taken[0] and taken[0][-1] == "-fno-fast-math"
    assert flag in taken[1]


def test_other_flags_another_folder_and_no_flag_where_no_header(cache, monkeypatch):
    """Other compile arguments: another folder. An argument the compiler refuses: the header
    does not build, no flag and nothing left half-made, and a new process does not try again.
    A compiler that is not GCC: no flag."""
    gcc_or_skip()
    plain = cython_headers.include_flags(["-O3"])
    assert plain == cython_headers.include_flags(["-O3"])
    other = cython_headers.include_flags(["-O2"])
    assert other and Path(other[0]).parent != Path(plain[0]).parent
    refused = ["-O3", "--no-such-flag-pcsim"]
    assert cython_headers.include_flags(refused) == []
    for folder in cache.with_name(f"{cache.name}_pcsim_headers").iterdir():
        assert not [path for path in folder.iterdir() if path.name.startswith("pcsim_header_")]
    cython_headers._include_flags.cache_clear()  # a new process does not try it again
    monkeypatch.setattr(cython_headers, "_precompile", lambda *args: pytest.fail("tried"))
    assert cython_headers.include_flags(refused) == []
    monkeypatch.setattr(cython_headers, "uses_gcc", lambda command: False)
    assert cython_headers.include_flags(["-O1"]) == []


def test_a_cache_path_with_a_space_takes_the_flag_and_compiles(cache, tmp_path):
    """The flag goes to g++ as one argument, without a shell: a Cython cache whose path has a
    space (a home folder named so) takes it, and a network compiles and runs with it."""
    gcc_or_skip()
    prefs["codegen.runtime.cython.cache_dir"] = str(tmp_path / "with space" / "extensions")
    configure_brian()
    assert " " in header_flag()
    group = NeuronGroup(2, "dv/dt = -v / (5 * ms) : 1", method="euler", name="header_space")
    group.v = [1.0, 2.0]
    Network(group).run(1 * ms)
    np.testing.assert_allclose(group.v[:], np.array([1.0, 2.0]) * 0.98**10, rtol=1e-12)
