"""The g++ flags of the code Brian2 compiles for pcsim: the same in every process that builds.

``-g0``: no debug information. Python's CFLAGS ask for ``-g``; nothing reads the result, and it
costs about a tenth of a cold start's compiling (38 Cython extensions of four bundled
scenarios, one core: 164 -> 146 s of CPU); the machine code is the same (golden dumps
identical). The flag has to be the same wherever a program is built: a compiled program's
makefile holds the flags, and a process whose flags differ from the build's recompiles it. So
both places that set Brian2's preferences for a build add it: ``sim.engine.configure_brian``
(the runtime device's Cython extensions) and ``sim.compiled.device.standalone`` (a compiled
program, whether or not ``configure_brian`` ran in that process). Brian2's Cython cache key
holds no flags, so extensions built before stay in use.
"""

from __future__ import annotations

NO_DEBUG_INFO = "-g0"


def gcc_arguments(current: list[str]) -> list[str]:
    """``current`` (``prefs.codegen.cpp.extra_compile_args_gcc``) with ``NO_DEBUG_INFO`` last,
    added once, and without the Cython extensions' header (``sim.cython_headers``); a new
    list."""
    from sim.cython_headers import without

    arguments = without(current)
    return arguments if NO_DEBUG_INFO in arguments else [*arguments, NO_DEBUG_INFO]
