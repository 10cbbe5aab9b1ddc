"""Which process is which on this host: a pid, when it started, and whether it still runs.

A pid alone does not name a process for long: once it exits, the kernel gives its number to a
later one. Whoever records a pid to check on it later (a sweep's point lock, a temporary
folder) records its start as well (``start_ticks``) and asks ``alive(pid, started)``.
No Brian2, no NumPy: the CLI imports this before anything else.
"""

from __future__ import annotations

import os
from pathlib import Path


def _stat(pid: int) -> list[str] | None:
    """Fields of ``/proc/PID/stat`` after the command name (None: not readable here)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def start_ticks(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks since boot; Linux), to tell it from a later
    process given the same pid."""
    fields = _stat(pid)
    return int(fields[19]) if fields and len(fields) > 19 else None


def boot_id() -> str | None:
    """This boot's id (Linux): start ticks count from the boot, so a record made before a
    reboot is not compared with them."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


def exists(pid: int) -> bool:
    """Whether some process has pid ``pid`` (without /proc: a signal-0 probe)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError, ValueError):  # e.g. another user's process: it exists
        return pid > 0
    return True


def alive(pid: int, started: int | None = None) -> bool:
    """Whether process ``pid`` of this host still runs: not a zombie (killed, not yet reaped by
    its new parent), and, given ``started`` (its ``start_ticks`` when it was recorded), the
    same process, not a later one that got its pid."""
    fields = _stat(pid)
    if fields is None:
        return exists(pid)
    if fields[0] in ("Z", "X"):
        return False
    return started is None or len(fields) <= 19 or int(fields[19]) == started
