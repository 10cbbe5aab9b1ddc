"""The C++ standard headers of a compiled program, parsed once: a GCC precompiled header.

A compiled program has a source per code object (about 50 for attention/posner), and each
includes the same standard headers through Brian2's ``objects.h``. g++ spent nearly all of a
source's time parsing them: measured on one core, -O3 -march=native, a code object's source
took 0.74 s of CPU as Brian2 compiles it, 0.54 s for its headers alone, 0.14 s with them
precompiled (``objects.cpp``, 4.3 s, gains nothing: its own code is the cost).

So every source of a program gets ``-include<folder>/pcsim_std.h`` (``include_flags``: one
word, as Brian2 keeps only the compile arguments g++ accepts alone; written into the makefile
unquoted, so a cache path with a space or a quote gets none): a header of the standard headers
Brian2's sources include (``STANDARD``; each has its include guard, so a source that includes
it again reads nothing). Before make compiles a program, ``precompile`` builds
``<folder>/pcsim_std.h.gch`` with the makefile's own compiler and flags; g++ then reads it in
place of the header. The folder, ``<cache>/headers/<digest>``, is one per set of what makes the
flags (``_settings``: compiler and version, Brian2's version and C++ preferences, the CPU's
flags for ``-march=native``): g++ checks a ``.gch`` against its flags only in part, and one
built with other optimisation flags crashed it (measured: an internal compiler error), so
builds with other flags never see it. Should a build fail with it anyway, it is removed and
the build made once more, reading the header as text (``forget``, ``sim.compiled.device``).

A precompiled header holds the compiler's state after parsing: the code objects' machine
code is the same (``tests/test_compiled_headers.py`` compares their object files' disassembly
with and without); a source that included no ``<iostream>`` (Brian2's empty
``synapses_classes.cpp``) gains its static initialiser. GCC only: clang reads GCC's
precompiled headers as an error, so other compilers get no flag (``uses_gcc``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shlex
import subprocess
from pathlib import Path

from sim.compiled.warm import write_text_if_changed

HEADER = "pcsim_std.h"
FOLDER = "headers"  # in the compiled-program cache, beside the programs' folders
STANDARD = ("algorithm", "assert.h", "climits", "cmath", "ctime", "fstream", "iostream",
            "iterator", "limits", "map", "math.h", "random", "set", "stdint.h", "stdlib.h",
            "utility", "vector")
TEXT = ("// pcsim: the standard headers of Brian2's generated sources, precompiled once "
        "(sim.compiled.headers)\n" + "".join(f"#include <{name}>\n" for name in STANDARD))
MAKEFILE = "pcsim_headers.mk"  # read after the program's makefile: its compiler and flags
SETTINGS = "settings.json"  # what the folder's flags are made of (``_settings``)
MAKE_RULES = """\
PCSIM_FLAGS = $(filter-out -include$(PCSIM_HEADER),$(CXXFLAGS))
pcsim-flags:
\t@echo $(CXX) $(PCSIM_FLAGS)
pcsim-precompile:
\t$(CXX) $(PCSIM_FLAGS) -x c++-header $(PCSIM_HEADER) -o $(PCSIM_OUT)
"""


def compiler() -> str:
    """The C++ compiler Brian2's makefile runs: make's ``$(CXX)``."""
    return os.environ.get("CXX") or "g++"


@functools.cache
def uses_gcc(command: str) -> bool:
    """Whether ``command`` is GCC's C++ compiler (not clang, which also defines __GNUC__)."""
    try:
        macros = subprocess.run([*shlex.split(command), "-dM", "-E", "-x", "c++", os.devnull],
                                capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return "__GNUC__" in macros and "__clang__" not in macros


def include_flags(cache_root: Path, compile_args: list[str]) -> list[str]:
    """The compile argument that includes the header (none where the compiler is not GCC),
    in a folder of ``cache_root`` of its own for these ``compile_args`` (Brian2's
    ``extra_compile_args_gcc`` of the build) and everything else that makes the makefile's
    flags (``_settings``); writes the header and the rules there where they are not so."""
    if not uses_gcc(compiler()):
        return []
    settings = _settings(compile_args)
    if settings is None:
        return []
    folder = cache_root / FOLDER / hashlib.sha256(settings.encode()).hexdigest()[:16]
    header = folder / HEADER
    if any(char in str(header) for char in " \t\n'\"\\$#"):
        return []
    for path, text in ((header, TEXT), (folder / MAKEFILE, MAKE_RULES),
                       (folder / SETTINGS, settings)):
        write_text_if_changed(path, text)
    return [f"-include{header}"]


def precompile(directory: Path, flags: list[str], make: list[str], run_make) -> str | None:
    """Build the header with ``directory``'s makefile's compiler and flags where it is not
    built yet; ``flags``: ``include_flags``'s (nothing to do when empty); ``make``: the make
    command; ``run_make(directory, command)``: how pcsim runs make (``launch.run_make``:
    signals). Returns the name of a signal that stopped it, else None; a failed compile is
    left alone: g++ then reads the header as text."""
    if not flags:
        return None
    header, target = _paths(flags)
    if target.is_file():
        return None
    # built beside it under another name (a half-written .gch would be read), then renamed
    partial = header.with_name(f"{HEADER}.{os.getpid()}.part")
    command = [*make[:1], "-s", "-f", "makefile", "-f", str(header.with_name(MAKEFILE)),
               f"PCSIM_HEADER={header}", "pcsim-precompile", f"PCSIM_OUT={partial}"]
    try:
        made = run_make(directory, command)
        if made.signal_name is None and made.returncode == 0:
            os.replace(partial, target)
        return made.signal_name
    finally:
        partial.unlink(missing_ok=True)


def forget(flags: list[str]) -> bool:
    """Remove the precompiled header of ``flags`` (``include_flags``'s); whether there was one
    (a build that failed with it is made again without: ``sim.compiled.device``)."""
    if not flags:
        return False
    target = _paths(flags)[1]
    if not target.is_file():
        return False
    target.unlink(missing_ok=True)
    return True


def _paths(flags: list[str]) -> tuple[Path, Path]:
    """(the header, its precompiled form) of ``include_flags``'s flags."""
    header = Path(flags[0].removeprefix("-include"))
    return header, header.with_name(f"{HEADER}.gch")


def _settings(compile_args: list[str]) -> str | None:
    """What the makefile's compile flags are made of, as text: the compiler, its version and
    target, Brian2's version, its C++ preferences with ``compile_args``, the CPU's flags
    (``-march=native``); None where the compiler does not answer. (OpenMP, which adds a flag,
    is off in every build: ``sim.compiled.device.standalone``.)"""
    import brian2
    from brian2 import prefs

    version = _compiler_version(compiler())
    if version is None:
        return None
    chosen = {name: repr(value) for name, value in prefs.items()
              if name.startswith("codegen.cpp.")}
    chosen["codegen.cpp.extra_compile_args_gcc"] = repr(compile_args)
    return json.dumps({"compiler": compiler(), "version": version,
                       "brian2": brian2.__version__, "prefs": chosen, "cpu": cpu_flags()},
                      sort_keys=True, indent=1) + "\n"


@functools.cache
def _compiler_version(command: str) -> str | None:
    """``command``'s version and target (once a process: a run asks at every build)."""
    try:
        answer = subprocess.run([*shlex.split(command), "-dumpfullversion", "-dumpmachine"],
                                capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return answer.stdout if answer.returncode == 0 else None


@functools.cache
def cpu_flags() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            return next((line for line in info if line.startswith("flags")), "")
    except OSError:
        return ""
