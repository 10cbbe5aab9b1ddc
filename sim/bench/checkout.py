"""A temporary checkout of an older revision of pcsim, for timing the code before a change.

``revision_checkout(repository, revision)`` adds a detached git worktree of ``revision`` in a
temporary folder and removes it afterwards; where that cannot be done (no git, not a git
checkout, the revision not there) it yields no folder and one line saying why, so that the
bench goes on without the comparison.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

# The engine before issue 23 ("small models at compiled speed"): main's last commit before that
# work began. The "bundled scenarios" row compares the code as it is against this one.
BEFORE_ISSUE_23 = "451b4f9"


@dataclass
class Checkout:
    """``folder``: the checkout's root (None: none made); ``commit``: its full hash;
    ``note``: why there is none."""

    revision: str
    folder: Path | None = None
    commit: str = ""
    note: str = ""


def _git(repository: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(repository), *args], capture_output=True,
                          text=True, check=False)


def _commit(repository: Path, revision: str) -> tuple[str, str]:
    """The full hash of ``revision`` in ``repository``, or ("", why not)."""
    if shutil.which("git") is None:
        return "", "git is not installed"
    top = _git(repository, "rev-parse", "--show-toplevel")
    if top.returncode != 0 or Path(top.stdout.strip()).resolve() != repository.resolve():
        return "", f"{repository} is not a git checkout"
    found = _git(repository, "rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}")
    if found.returncode != 0:
        return "", f"revision {revision} is not in the git repository at {repository}"
    return found.stdout.strip(), ""


@contextmanager
def revision_checkout(repository: Path, revision: str, skip: bool = False
                      ) -> Iterator[Checkout]:
    """A detached worktree of ``revision`` while the block runs (``Checkout.folder``), or a
    ``Checkout`` with its ``note`` where none can be made (``skip``: none asked for)."""
    commit, note = ("", f"none asked for (--baseline {revision})") if skip else _commit(
        repository, revision)
    if not commit:
        yield Checkout(revision, note=note)
        return
    parent = Path(tempfile.mkdtemp(prefix="pcsim-bench-before-"))
    folder = parent / "checkout"
    added = _git(repository, "worktree", "add", "--detach", str(folder), commit)
    try:
        if added.returncode != 0:
            reason = (added.stderr.strip().splitlines() or ["failed"])[-1]
            yield Checkout(revision, commit=commit, note=f"git worktree add: {reason}")
        else:
            yield Checkout(revision, folder, commit)
    finally:
        removed = added.returncode != 0 or _git(
            repository, "worktree", "remove", "--force", str(folder)).returncode == 0
        shutil.rmtree(parent, ignore_errors=True)
        if not removed:  # git's record of the worktree outlived its folder: drop it
            _git(repository, "worktree", "prune")
