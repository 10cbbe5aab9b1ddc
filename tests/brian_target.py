"""Brian2's NumPy target for a block of a test (``numpy_target``).

A test whose claim is a circuit's equations and schedule (not the code Cython compiles from
them) can build and run its network on NumPy's target: Brian2 generates the same abstract code
for both, and in a cold CI each of the network's Cython code objects is an extension compiled
anew (~3.4 s of CPU each). The runs users make are checked on Cython elsewhere (the bundled
scenarios, ``test_speed_equivalence``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def numpy_target() -> Iterator[None]:
    """Brian2 generates NumPy code inside the block, its own target after."""
    from brian2 import prefs

    target = prefs.codegen.target
    prefs.codegen.target = "numpy"
    try:
        yield
    finally:
        prefs.codegen.target = target
