"""One process at a time: an exclusive ``flock`` on a file, held for a ``with`` block.

Used where processes of one machine share something a first use writes: a compiled program's
folder (``sim.compiled.device``) and pynwb's cache of its type map, which its first import
writes in place, so that a second process reading it meanwhile reads half a file
(``sim.export.nwb.import_pynwb``)."""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def locked(path: Path, required: bool = True) -> Iterator[None]:
    """Hold an exclusive lock on the file ``path`` (made if missing), blocking until other
    processes release it. Not ``required``: where the file cannot be opened (a shared
    temporary folder's file of another user), the block runs without the lock."""
    with contextlib.ExitStack() as stack:
        try:
            handle = stack.enter_context(open(path, "a"))
        except OSError:
            if required:
                raise
            handle = None
        if handle is not None:
            fcntl.flock(handle, fcntl.LOCK_EX)
            stack.callback(fcntl.flock, handle, fcntl.LOCK_UN)  # before the file closes
        yield
