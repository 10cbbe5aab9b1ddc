"""Where a result was computed: the BLAS, the CPU and the pcsim commit, as root attributes.

The software versions (``sim.io.writer.versions``) say what ran; these say on what and from
which source, the facts that change the last bits of a run when they change (a BLAS picks its
kernels per CPU, and its threads split sums):

- ``blas``: the BLAS NumPy was built with, name and version (``numpy.show_config``);
- ``blas_core``: the kernel family the loaded OpenBLAS picked for this CPU (``Haswell``,
  ``SkylakeX``; ``OPENBLAS_CORETYPE`` overrides it), and ``blas_threads``: the threads it runs,
  the largest where NumPy's and SciPy's differ; both only for OpenBLAS
  (``sim.blas``), absent for another BLAS;
- ``cpu_model``: the CPU's model name (``/proc/cpuinfo``, else ``platform``);
- ``git_commit``, ``git_dirty`` (1: tracked files differ from that commit): only when pcsim
  runs from a git checkout (``sim/`` beside a ``.git``), from one ``git status`` (4-6 ms);
  an installed pcsim, or a checkout where git is missing or refuses, records neither.

The BLAS name, its kernels and the CPU are read once per process; the threads and the commit at
every run (a process may change them between runs). A run does not wait for git: the writer
starts ``git status`` as it creates the file and reads its answer when it commits the file
(``GitStatus``), so the run and git share the machine's cores. ``pcsim diff`` ignores them all
(``PROVENANCE``), as it ignores the versions.
"""

from __future__ import annotations

import functools
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

from sim.io.schema import PROVENANCE_ATTRIBUTES

PROVENANCE = tuple(attribute.name for attribute in PROVENANCE_ATTRIBUTES)
CHECKOUT = Path(__file__).resolve().parents[2]  # the folder holding ``sim/``
GIT_TIMEOUT_S = 10.0


def provenance(git: bool = True) -> dict[str, Any]:
    """The attributes above that this process can tell (each absent when it cannot);
    ``git``: with ``git_state`` (else the caller reads it, ``GitStatus``)."""
    facts: dict[str, Any] = {"blas": blas_name(), "cpu_model": cpu_model()}
    facts.update(openblas())
    if git:
        facts.update(git_state(CHECKOUT))
    return facts


@functools.cache
def blas_name() -> str:
    """``scipy-openblas 0.3.30``: the BLAS NumPy was built with ("unknown" if it does not say)."""
    import numpy as np

    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return " ".join(str(blas[key]) for key in ("name", "version") if blas.get(key))
    except (KeyError, TypeError, ValueError):  # a NumPy that does not describe its build so
        return "unknown"


def openblas() -> dict[str, Any]:
    """``blas_core`` and ``blas_threads`` of the loaded OpenBLAS libraries (none: empty)."""
    from sim.blas import blas_threads

    threads = blas_threads()
    return {**({"blas_core": blas_core()} if blas_core() else {}),
            **({"blas_threads": max(threads)} if threads else {})}


@functools.cache
def blas_core() -> str:
    """The kernel families of the loaded OpenBLAS libraries, chosen once as each loaded."""
    from sim.blas import blas_cores

    return ", ".join(blas_cores())


@functools.cache
def cpu_model() -> str:
    """The CPU's model name (``AMD EPYC 9B45``), or the machine type where none is told."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model", "Hardware") and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def git_state(root: Path) -> dict[str, Any]:
    """``git_commit`` and ``git_dirty`` of the checkout at ``root`` (empty when ``root`` is not
    one, or git is missing or fails): one ``git status`` without untracked files, and without
    taking git's index lock (runs at once in one checkout must not block each other)."""
    return GitStatus(root).state()


class GitStatus:
    """``git_state`` of ``root``, its ``git status`` started at once and read by ``state``
    (the caller works meanwhile); ``close`` ends one whose answer is not wanted."""

    def __init__(self, root: Path) -> None:
        self.process: subprocess.Popen | None = None
        if not (root / ".git").exists():
            return
        environment = {key: value for key, value in os.environ.items()
                       if key not in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE")}
        environment["GIT_OPTIONAL_LOCKS"] = "0"
        try:
            self.process = subprocess.Popen(
                ["git", "-C", str(root), "status", "--porcelain=v2", "--branch",
                 "--untracked-files=no"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL, text=True, env=environment,
                process_group=0)  # a Ctrl-C of the run (its process group) is not git's:
            # an interrupted run kept with --keep-partial still records the commit (and unlike
            # a new session, a new group keeps the spawn cheap: vfork, 0.2 ms)
        except (OSError, subprocess.SubprocessError):
            self.process = None

    def state(self) -> dict[str, Any]:
        """The answer (the process ended); empty where git failed or took GIT_TIMEOUT_S."""
        process, self.process = self.process, None
        if process is None:
            return {}
        try:
            output, _ = process.communicate(timeout=GIT_TIMEOUT_S)
        except (OSError, subprocess.SubprocessError):
            process.kill()
            process.communicate()
            return {}
        lines = output.splitlines()
        commit = next((line.split()[2] for line in lines if line.startswith("# branch.oid ")),
                      "")
        if process.returncode != 0 or len(commit) < 40:  # not a repository, or no commit yet
            return {}
        return {"git_commit": commit,
                "git_dirty": int(any(not line.startswith("#") for line in lines))}

    def close(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.communicate()
            self.process = None
