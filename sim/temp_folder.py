"""The temporary folder a pcsim process owns: ``<temp>/pcsim-HOST-PID/``, so a kill leaves no
stray files.

Brian2 writes temporary files from its import on (``brian_debug_*.log``, ``brian_script_*.py``),
and while it compiles (``brian_stdout_*``/``brian_stderr_*``: the compiler's output;
``brian_flag_test_*/``: compiler flag tests); gcc writes ``cc*.s`` and the like to ``$TMPDIR``; a
sweep's worker warms up in a ``pcsim-warm-*`` folder. Removing them one by one
(``sim.brian_logging``) cannot work for a process killed outright (SIGKILL, a batch scheduler,
the out-of-memory killer). So every temporary file of a pcsim process goes to one folder it owns:
Python's ``tempfile.tempdir`` and the ``TMPDIR`` that child processes (the compiler, a sweep's
workers) inherit point there while pcsim works. The folder holds ``owner.json`` (host, pid, the
process's start ``sim.processes.start_ticks`` and the boot id); it is removed when the process
exits, and the next pcsim process using the same temp folder removes the folders of processes
that are gone (``remove_stale``: this host only; a pid now used by another process counts as
gone; a folder without a readable owner is removed only if no process has its pid).

- ``inside()``: for the duration of a call (also a decorator), then ``tempfile.tempdir`` and
  ``TMPDIR`` are given back (``pcsim run``, ``sweep`` and ``bench``, ``sim.cli.COMPILING``;
  ``sim.run``, ``sim.sweep``: a library user's own temporary files stay where they were); the
  folder is removed at once if nothing is left in it, else when the process exits.
- ``enter()``: for the whole process, for good (a sweep's local worker, whose folder then lies
  inside its sweep's).
- ``outside()``: the caller's temp folder for a while, for files meant to outlive the process
  (Brian2's log with ``--debug``).

Neither is thread-safe against other threads' use of ``TMPDIR`` during a call. Brian2's
compiled-code cache (``~/.cython/brian_extensions``) is not temporary and is left alone.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from sim.io.partials import HOST
from sim.processes import alive, boot_id, exists, start_ticks

PREFIX = "pcsim-"
OWNER = "owner.json"
FOLDER = re.compile(rf"^{PREFIX}(?P<host>[A-Za-z0-9_]+)-(?P<pid>\d+)$")

_folder: Path | None = None  # this process's folder while it exists
_base: Path | None = None  # the temp folder it lies in (the caller's)
_for_good = False  # entered with ``enter``: never given back
_depth = 0  # nested ``inside`` blocks
_registered_exit = False


def folder() -> Path | None:
    """This process's temporary folder, if it has one now."""
    return _folder


def base() -> Path:
    """The caller's temp folder: where this process's folder lies (or would)."""
    return _base if _base is not None else Path(tempfile.gettempdir())


def _owner_is_gone(path: Path, pid: int) -> bool:
    try:
        owner = json.loads((path / OWNER).read_text(encoding="utf-8"))
        if owner.get("host") != HOST or int(owner.get("pid", -1)) != pid:
            return False  # not what its name says: not ours to judge
    except (OSError, ValueError, TypeError, AttributeError):
        return not exists(pid)  # being made (mkdir, then owner), or damaged: be conservative
    if owner.get("boot") and owner.get("boot") != boot_id():
        return True  # made before a reboot
    return not alive(pid, owner.get("start_ticks"))


def remove_stale(where: Path) -> list[Path]:
    """Remove the folders in ``where`` of this host's pcsim processes that are gone."""
    removed = []
    try:
        entries = list(os.scandir(where))
    except OSError:
        return removed
    for entry in entries:
        match = FOLDER.match(entry.name)
        if not match or match["host"] != HOST or not entry.is_dir(follow_symlinks=False):
            continue
        pid = int(match["pid"])
        path = Path(entry.path)
        if pid != os.getpid() and _owner_is_gone(path, pid):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _make() -> Path | None:
    """Create this process's folder in the current temp folder (None: it cannot be made there;
    temporary files then stay where they would have gone)."""
    global _folder, _base, _registered_exit
    try:
        where = Path(tempfile.gettempdir())
        remove_stale(where)
        path = where / f"{PREFIX}{HOST}-{os.getpid()}"
        if path.exists():  # this pid's, so a gone process's (this process has none yet)
            shutil.rmtree(path)
        path.mkdir(mode=0o700)
        owner = {"host": HOST, "pid": os.getpid(), "start_ticks": start_ticks(os.getpid()),
                 "boot": boot_id()}
        (path / OWNER).write_text(json.dumps(owner), encoding="utf-8")
    except OSError:
        return None
    _folder, _base = path, where
    if not _registered_exit:
        atexit.register(_remove_at_exit, os.getpid())
        _registered_exit = True
    return path


def _point_here(path: Path) -> None:
    tempfile.tempdir = str(path)
    os.environ["TMPDIR"] = str(path)


def _remove_at_exit(pid: int) -> None:
    if _folder is not None and os.getpid() == pid:  # not in a forked child
        shutil.rmtree(_folder, ignore_errors=True)


def enter() -> Path | None:
    """From now on this process's temporary files go to its own folder (made here, after the
    stale folders of gone processes are removed); removed at exit. For a process that is pcsim
    (the command, a sweep's worker): call it before Brian2 is imported."""
    global _for_good
    if _folder is None and _make() is None:
        return None
    _for_good = True
    _point_here(_folder)
    return _folder


@contextlib.contextmanager
def inside() -> Iterator[Path | None]:
    """This process's temporary files go to its own folder for the duration of the block (also a
    decorator); then ``tempfile.tempdir`` and ``TMPDIR`` are as they were."""
    global _depth, _folder
    if _for_good or _depth:
        _depth += 1
        try:
            yield _folder
        finally:
            _depth -= 1
        return
    saved = tempfile.tempdir, os.environ.get("TMPDIR")
    path = _folder or _make()
    if path is not None:
        _point_here(path)
    _depth += 1
    try:
        yield path
    finally:
        _depth -= 1
        tempfile.tempdir = saved[0]
        if saved[1] is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = saved[1]
        with contextlib.suppress(OSError):
            if path is not None and not _for_good and os.listdir(path) == [OWNER]:
                (path / OWNER).unlink()  # nothing else is left (else: removed at exit)
                path.rmdir()
                _folder = None


@contextlib.contextmanager
def outside() -> Iterator[Path]:
    """The caller's temp folder for the duration of the block: for files meant to outlive this
    process (Brian2's log with ``--debug``); ``TMPDIR`` is left as it is."""
    saved = tempfile.tempdir
    tempfile.tempdir = str(base())
    try:
        yield base()
    finally:
        tempfile.tempdir = saved
