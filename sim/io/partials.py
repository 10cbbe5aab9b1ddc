"""Temporary files of runs in progress: ``.NAME.HOST-PID.partial`` beside the target.

A run writes there and renames onto the target when it completes (``sim.io.writer``); a run
killed with SIGKILL leaves its temporary file, which the next run in that folder removes once
its writer (this host, that pid) is gone.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
from pathlib import Path

from sim.processes import alive

HOST = re.sub(r"[^A-Za-z0-9_]", "_", socket.gethostname())[:32] or "host"
PARTIAL = re.compile(r"^\.(?P<name>.+)\.(?P<host>[A-Za-z0-9_]+)-(?P<pid>\d+)\.partial$")


def remove_stale_partials(folder: Path) -> list[Path]:
    """Delete temporary files (``.NAME.HOST-PID.partial``) left in ``folder`` by runs of this
    host that no longer exist (killed with SIGKILL, or a crashed machine)."""
    removed = []
    for path in folder.glob(".*.partial"):
        match = PARTIAL.match(path.name)
        if not match or match["host"] != HOST or alive(int(match["pid"])):
            continue
        with contextlib.suppress(OSError):
            path.unlink()
            removed.append(path)
    return removed


def temporary_name(target: Path) -> Path:
    """Where the run that writes ``target`` keeps its file until it completes."""
    return target.with_name(f".{target.name}.{HOST}-{os.getpid()}.partial")
