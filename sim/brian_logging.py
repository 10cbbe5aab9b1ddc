"""What pcsim changes in Brian2's global logging, so that a run leaves no stray files.

On import Brian2 opens a debug log (``brian_debug_*.log``) and copies the running script
(``brian_script_*.py``) into the temp folder, and while compiling it redirects the compiler's
output to ``brian_stdout_*`` / ``brian_stderr_*`` files there. It deletes them at a normal exit,
but keeps them when the process is killed or when any uncaught exception reaches its
``sys.excepthook`` (also a user's own, after ``sim.run`` returned). pcsim, by default:

- closes the debug log and deletes it and the script copy as soon as the engine is imported,
  with ``prefs.logging.file_log`` and ``prefs.logging.save_script`` set to False;
- deletes the redirected compiler output after every run (it is recreated when needed);
- gives ``sys.excepthook`` back to Python's own if Brian2's is installed.

Console logging and everything else are Brian2's, but for its note on the size of its
compiled-code cache (``sim.brian_cache``). With ``pcsim --debug run`` or
``sim.run(..., debug=True)`` Brian2's file logging is switched back on for the run, and the
paths are printed. A user mixing pcsim with their own Brian2 code in one process gets these
settings too; ``settle(debug=True)`` restores Brian2's, with its log in the caller's temp folder
(not in the process's own, ``sim.temp_folder``, which is removed at exit).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys

from brian2 import prefs
from brian2.utils.logger import BrianLogger, brian_excepthook, std_silent

from sim import temp_folder


def _remove(path: str | None) -> None:
    if path:
        with contextlib.suppress(OSError):
            os.remove(path)


def settle(debug: bool = False) -> list[str]:
    """pcsim's logging settings (``debug``: Brian2's own, with its files); returns the paths
    of Brian2's log files in force (none unless ``debug``)."""
    prefs.logging.file_log = debug
    prefs.logging.save_script = debug
    if debug:
        if BrianLogger.file_handler is None:
            with temp_folder.outside():  # meant to outlive the process (sim.temp_folder)
                BrianLogger.initialize()
        sys.excepthook = brian_excepthook
        return [path for path in (BrianLogger.tmp_log, BrianLogger.tmp_script) if path]
    handler = BrianLogger.file_handler
    if handler is not None:
        logging.getLogger("brian2").removeHandler(handler)
        handler.close()
        BrianLogger.file_handler = None
    for path in (BrianLogger.tmp_log, BrianLogger.tmp_script):
        _remove(path)
        if path:
            _remove(path + ".1")  # a rotated log
    BrianLogger.tmp_log = BrianLogger.tmp_script = None
    if sys.excepthook is brian_excepthook:
        sys.excepthook = sys.__excepthook__
    return []


def clean_compiler_output() -> None:
    """Delete the files Brian2 redirected the compiler's output to (recreated when needed)."""
    for stream, name in (("dest_stdout", "dest_fname_stdout"),
                         ("dest_stderr", "dest_fname_stderr")):
        handle = getattr(std_silent, stream, None)
        if handle is not None:
            handle.close()
            _remove(getattr(std_silent, name, None))
            setattr(std_silent, stream, None)
        if hasattr(std_silent, name):
            delattr(std_silent, name)
