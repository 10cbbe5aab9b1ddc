"""Compiling a small C loop for the runtime device: one Cython extension through Brian2's
extension manager, as Brian2 compiles its own code objects (its cache directory, its compiler
and flags, ``-march=native`` among them), used by ``circuits.lane_products`` and
``circuits.lane_elementwise``.

Brian2's cache key is the source text (with Python's, Cython's and NumPy's versions), not the
flags: ``extra`` flags are written into the source as a comment too, so a change of them is a
new extension, not the old one loaded again.
"""

from __future__ import annotations

from collections.abc import Sequence


def compile_extension(source: str, owner: str, extra: Sequence[str] = ()) -> object:
    """The module compiled from the Cython ``source`` with Brian2's compiler flags and then
    ``extra``; whatever Brian2 raises where it cannot (no compiler, no Cython)."""
    from brian2 import prefs
    from brian2.codegen.cpp_prefs import get_compiler_and_args
    from brian2.codegen.runtime.cython_rt.extension_manager import cython_extension_manager

    from sim.cython_headers import without

    compiler, arguments = get_compiler_and_args()
    if extra:  # flags of its own: not the header precompiled for Brian2's (sim.cython_headers)
        arguments = without(arguments)
        source = f"# compiled with Brian2's flags and then: {' '.join(extra)}\n{source}"
    return cython_extension_manager.create_extension(
        source, compiler=compiler, extra_compile_args=[*arguments, *extra],
        extra_link_args=prefs["codegen.cpp.extra_link_args"], owner_name=owner)
