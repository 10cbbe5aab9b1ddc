"""Python's and the C++ standard headers of the runtime device's Cython extensions, parsed
once: a GCC precompiled header.

The runtime device compiles a Cython extension for every new code object (a spiking network
of three levels has ~60; cold, ~3 s each). Of an extension's ~1.5 s in g++ (-O3
-march=native, one core), ~0.4 s went to parsing ``Python.h`` and the standard headers that
Cython's C++ output includes; with them precompiled the same source took ~1.1 s. The machine
code is the same (``tests/test_cython_headers.py`` compares the disassembly with and without).

How. ``include_flags`` (``sim.engine.configure_brian``) returns ``-include<folder>/
pcsim_cython.h`` for Brian2's compile arguments and makes sure ``pcsim_cython.h.gch`` is
built beside it first. The header is built by the compiler object Brian2's extension build
uses (distutils', with Python's flags, Brian2's macros and ``-x c++-header`` before the
source), so its flags are the extensions' own by construction; its folder,
``<Brian2's Cython cache>_pcsim_headers/<digest>``, is one per set of what makes them
(``_settings``): g++ checks a ``.gch`` against its flags only in part (``sim.compiled.headers``
measured a crash on a mismatch), so other flags never see it. The header's text is empty
where ``Python.h`` cannot be found (``__has_include``): Brian2 tests each compile argument
alone, once a process, on a file without Python's include path (``has_flag``), with other
flags, where g++ reads the text (measured: 0.7 s a process with the standard headers in it).

Not for code compiled with flags of its own (``circuits.extension``: ``without``). GCC only;
elsewhere, or where the header cannot be built, nothing changes: no flag (a header that did
not build is not tried again for the same settings: ``FAILED``). The flag goes to distutils
as an argument, never through a shell, so a cache path with a space or a quote takes it too
(a compiled program's makefile cannot: ``sim.compiled.headers``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from sim.compiled.headers import cpu_flags, uses_gcc
from sim.compiled.warm import write_whole

HEADER = "pcsim_cython.h"
FLAG = "-include"
STANDARD = ("stddef.h", "stdint.h", "math.h", "cmath", "string.h", "stdio.h", "stdlib.h",
            "limits.h", "ios", "new", "stdexcept", "typeinfo", "utility", "type_traits", "set",
            "complex", "atomic")
TEXT = ("// pcsim: Python's and the standard headers of Brian2's Cython extensions, "
        "precompiled once (sim.cython_headers)\n"
        '#if __has_include("Python.h")\n'
        "#ifndef PY_SSIZE_T_CLEAN\n#define PY_SSIZE_T_CLEAN\n#endif\n"
        '#include "Python.h"\n#include <structmember.h>\n#include <pythread.h>\n'
        + "".join(f"#include <{name}>\n" for name in STANDARD) + "#endif\n")
SETTINGS = "settings.json"
FAILED = "failed"  # the header did not build for its folder's settings: no flag, no new try


def is_flag(argument: str) -> bool:
    """Whether ``argument`` is ``include_flags``'s."""
    return argument.startswith(FLAG) and argument.endswith(f"/{HEADER}")


def without(arguments: list[str]) -> list[str]:
    """``arguments`` without ``include_flags``'s (for a build with other flags); a new list."""
    return [argument for argument in arguments if not is_flag(argument)]


def include_flags(compile_args: list[str]) -> list[str]:
    """The argument that includes the precompiled header for extensions compiled with
    ``compile_args`` (Brian2's ``extra_compile_args_gcc``), the header built first where it
    is not; none where the compiler is not GCC or the header cannot be built."""
    return list(_include_flags(tuple(without(compile_args)), _cache_folder()))


@functools.cache
def _include_flags(compile_args: tuple[str, ...], cache: Path) -> tuple[str, ...]:
    settings = _settings(compile_args)
    if settings is None:
        return ()
    folder = cache / hashlib.sha256(settings.encode()).hexdigest()[:16]
    header = folder / HEADER
    built = header.with_name(f"{HEADER}.gch")
    if not built.is_file():  # a warm process goes no further: no compiler runs
        if (folder / FAILED).is_file():  # tried once for these settings: not again
            return ()
        compiler, macros = _extension_compiler()
        if compiler is None or not uses_gcc(cxx_command(compiler)[0]):
            return ()
        for path, text in ((header, TEXT), (folder / SETTINGS, settings)):
            folder.mkdir(parents=True, exist_ok=True)
            write_whole(path, text)
        if not _precompile(compiler, macros, compile_args, header, built):
            write_whole(folder / FAILED, "the header did not build with these settings\n")
            return ()
    return (f"{FLAG}{header}",)


def _cache_folder() -> Path:
    """``<Brian2's Cython cache>_pcsim_headers``: beside Brian2's cache, not in it
    (``brian2.clear_cache`` refuses a folder with files of other kinds)."""
    from brian2.codegen.runtime.cython_rt.extension_manager import get_cython_cache_dir

    cache = Path(os.path.expanduser(get_cython_cache_dir()))
    return cache.with_name(f"{cache.name}_pcsim_headers")


def _extension_compiler():
    """(the distutils compiler Brian2's extension build compiles with, set up as its build
    sets it up, and Brian2's macros), or (None, []) where there is none."""
    from brian2 import prefs
    from brian2.codegen.runtime.cython_rt.extension_manager import cython_extension_manager
    from setuptools._distutils.ccompiler import get_default_compiler, new_compiler
    from setuptools._distutils.sysconfig import customize_compiler

    try:
        name = prefs["codegen.cpp.compiler"] or get_default_compiler()  # as Brian2's
        build = cython_extension_manager._get_build_extension(name)
        compiler = new_compiler(compiler=build.compiler)
        customize_compiler(compiler)
        compiler.set_include_dirs(build.include_dirs)
    except Exception:  # no compiler to find: the extensions say so themselves
        return None, []
    return compiler, list(prefs["codegen.cpp.define_macros"])


def cxx_command(compiler) -> list[str]:
    """The command ``compiler`` (distutils') compiles a C++ source with: its own for C++
    where it has one (setuptools >= 72), else the one for every source (older ones, such as
    the 65 a new virtualenv of Python 3.11 starts with)."""
    return getattr(compiler, "compiler_so_cxx", None) or compiler.compiler_so


COMPILER_VARIABLES = ("CC", "CXX", "CFLAGS", "CCSHARED", "CPPFLAGS", "CXXFLAGS")


def _settings(compile_args: tuple[str, ...]) -> str | None:
    """What the header's compile is made of, as text (its folder's name is this text's
    digest), read without building the compiler object (a warm run's cost): what distutils
    makes the command of (Python's configuration and the environment's variables), the
    compilers' files (path, size and time: a new compiler is a new file, told without running
    it), Python's include folders and version, setuptools' version (which command compiles
    C++: ``cxx_command``), Brian2's macros, ``compile_args``, the CPU's flags
    (``-march=native``). None where there is no compiler."""
    import sysconfig

    import setuptools  # Brian2 imported it already
    from brian2 import prefs

    configured = {name: sysconfig.get_config_var(name) for name in COMPILER_VARIABLES}
    environment = {name: os.environ.get(name) for name in COMPILER_VARIABLES}
    compilers = {}  # distutils compiles C++ with CXX's (setuptools >= 72) or CC's command
    for name in ("CC", "CXX"):
        command = (environment[name] or configured[name] or "").split()
        executable = shutil.which(command[0]) if command else None
        if executable is not None:
            found = Path(executable).resolve()
            stat = found.stat()
            compilers[name] = [str(found), stat.st_size, stat.st_mtime_ns]
    if not compilers:
        return None
    paths = sysconfig.get_paths()
    return json.dumps({"configured": configured, "environment": environment,
                       "compilers": compilers,
                       "include": [paths["include"], paths["platinclude"], sys.exec_prefix],
                       "python": sys.version, "setuptools": setuptools.__version__,
                       "macros": repr(prefs["codegen.cpp.define_macros"]),
                       "compile_args": list(compile_args), "cpu": cpu_flags()},
                      sort_keys=True, indent=1) + "\n"


def _precompile(compiler, macros: list, compile_args: tuple[str, ...],
                header: Path, built: Path) -> bool:
    """Build ``header`` into ``built`` as an extension's source is compiled (the same
    compiler object, flags and arguments), in a folder of its own, renamed into place whole.
    Whether it was built."""
    with tempfile.TemporaryDirectory(prefix="pcsim_header_", dir=header.parent) as work:
        source = Path(work) / "header.cpp"  # distutils compiles sources by their suffix
        shutil.copyfile(header, source)
        try:
            from brian2.utils.logger import std_silent

            with std_silent():
                objects = compiler.compile([str(source)], output_dir=work, macros=macros,
                                           extra_preargs=["-x", "c++-header"],
                                           extra_postargs=list(compile_args))
        except Exception:  # a header that does not build: the extensions as before
            return False
        os.replace(objects[0], built)
    return True
