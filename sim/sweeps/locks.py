"""Who is running a point: lock files ``point-<key>.lock`` naming host and pid.

A worker creates the lock (exclusively) before it runs a point and removes it when it is done;
while the point runs it touches the lock every ``HEARTBEAT_S`` seconds. A lock is stale, and
its point is redone by the next sweep, when its writer is gone: on this host, its pid no longer
runs; on another host (a cluster sharing the folder), it was not touched for ``STALE_AFTER_S``
seconds. Temporary result files (``sim.io.partials``) of a point whose lock is stale or gone
are orphans and are removed.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from pathlib import Path

from sim.io.partials import HOST, PARTIAL
from sim.processes import alive, start_ticks

HEARTBEAT_S = 30.0
STALE_AFTER_S = 300.0  # ten missed heartbeats
SWEEP_BEAT_S = 2.0  # the sweep's own heartbeat, for workers of a cluster
SWEEP_GONE_S = 20.0  # a cluster's worker abandons a point when the sweep's beat is this old


def lock_path(folder: Path, key: str) -> Path:
    return folder / f"point-{key}.lock"


def read_lock(path: Path) -> dict | None:
    """The lock's ``host``, ``pid``, ``started`` (time) and ``start_ticks`` (the process's
    start, ``start_ticks``) (None: no lock, or unreadable)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def is_stale(path: Path, now: float | None = None) -> bool:
    """Whether the lock's writer is gone (see the module's docstring)."""
    owner = read_lock(path)
    try:
        age = (now or time.time()) - path.stat().st_mtime
    except OSError:
        return True  # removed meanwhile
    if owner is None:  # being written, or damaged
        return age > STALE_AFTER_S
    if owner.get("host") == HOST:
        return not alive(int(owner.get("pid", -1)), owner.get("start_ticks"))
    return age > STALE_AFTER_S


class PointLock:
    """The lock a worker holds while it runs a point (a context manager; ``acquired`` says
    whether it got it)."""

    def __init__(self, folder: Path, key: str) -> None:
        self.path = lock_path(folder, key)
        self.acquired = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> PointLock:
        for _ in range(2):
            try:
                handle = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                if not is_stale(self.path):
                    return self
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()
                continue
            with os.fdopen(handle, "w", encoding="utf-8") as file:
                json.dump({"host": HOST, "pid": os.getpid(), "started": time.time(),
                           "start_ticks": start_ticks(os.getpid())}, file)
            self.acquired = True
            self._thread = threading.Thread(target=self._beat, daemon=True)
            self._thread.start()
            return self
        return self

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            with contextlib.suppress(OSError):
                os.utime(self.path)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self.acquired:
            owner = read_lock(self.path)
            if owner and owner.get("host") == HOST and owner.get("pid") == os.getpid():
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()


def clean_folder(folder: Path) -> None:
    """Remove stale locks, and temporary result files whose writer is gone (this host: its pid;
    another host: its point's lock is stale or missing and the file is ``STALE_AFTER_S`` old),
    and the heartbeats of gone sweeps."""
    now = time.time()
    for path in folder.glob(".sweep-*.alive"):  # heartbeats of sweeps killed outright
        if abandoned(path):
            path.unlink(missing_ok=True)
    for path in folder.glob("point-*.lock"):
        if is_stale(path, now):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
    for path in folder.glob(".*.partial"):
        match = PARTIAL.match(path.name)
        if not match:
            continue
        if match["host"] == HOST:
            orphan = not alive(int(match["pid"]))
        else:
            name = match["name"]
            lock = folder / (Path(name).stem + ".lock")
            owner = read_lock(lock)
            writing = owner is not None and str(owner.get("pid")) == match["pid"] \
                and owner.get("host") == match["host"] and not is_stale(lock, now)
            try:
                old = now - path.stat().st_mtime > STALE_AFTER_S
            except OSError:
                continue
            orphan = not writing and old
        if orphan:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def running(folder: Path, key: str) -> bool:
    """Whether a live writer holds the point's lock."""
    path = lock_path(folder, key)
    return path.exists() and not is_stale(path)


class SweepHeartbeat:
    """While a sweep sends points to a cluster it touches ``.sweep-HOST-PID.alive`` in the
    folder every ``SWEEP_BEAT_S``; a worker running one of its points stops it (writing nothing)
    once the file is older than ``SWEEP_GONE_S`` or gone (``abandoned``): Dask workers are not
    the sweep's children, so they cannot die with it, but they stop writing for it."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / f".sweep-{HOST}-{os.getpid()}.alive"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True)

    def __enter__(self) -> SweepHeartbeat:
        self.path.touch()
        self._thread.start()
        return self

    def _beat(self) -> None:
        while not self._stop.wait(SWEEP_BEAT_S):
            with contextlib.suppress(OSError):
                self.path.touch()

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.path.unlink(missing_ok=True)


def abandoned(path: str | Path) -> bool:
    """Whether the sweep whose heartbeat file is ``path`` is gone."""
    try:
        return time.time() - Path(path).stat().st_mtime > SWEEP_GONE_S
    except OSError:
        return True
