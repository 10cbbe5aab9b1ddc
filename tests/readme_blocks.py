"""The README's code blocks, read from README.md when they are run (no copy kept by hand).

Every fenced block of README.md is run as written (issue 24, point 2):

- ``bash`` blocks by ``.ci/run``, in order, in a fresh copy of the repository: they install
  pcsim into a fresh virtualenv made the README's way (the quick start's ``pip install .``,
  then the test command), so they need the network and take minutes. ``python3
  tests/readme_blocks.py shell`` prints them as one bash script in which every command must
  exit with 0, or with the N its comment states as ``(exit N)`` (``pcsim diff`` of two
  different results exits 1), else the script stops naming the README's line.
- ``python`` blocks by ``tests/test_readme.py``, in order, in one namespace, in a temporary
  folder (after the shell blocks when ``.ci/run`` runs the README's test command).

Standard library only: ``.ci/run`` runs this before any virtualenv exists.
"""

from __future__ import annotations

import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
SHELL = ("bash", "sh", "shell")
PYTHON = ("python",)
FENCE = re.compile(r"^```\s*([\w+-]*)\s*$")
EXPECTED_EXIT = re.compile(r"#.*\(exit (\d+)\)\s*$")


@dataclass(frozen=True)
class Block:
    """One fenced block: its language (the fence's info string), the README line of its first
    line of code, and its text."""

    language: str
    line: int
    text: str


@dataclass(frozen=True)
class Command:
    """One shell command as the README writes it (continuation lines joined by bash itself),
    the README line it starts on, and the exit code its comment states (0 if none)."""

    text: str
    line: int
    expected_exit: int


def blocks(path: Path = README) -> list[Block]:
    """Every fenced block of ``path``, in order; an unclosed fence is an error."""
    found: list[Block] = []
    language: str | None = None
    start = 0
    body: list[str] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        fence = FENCE.match(line)
        if language is None:
            if fence:
                language, start, body = fence.group(1), number + 1, []
        elif line.strip() == "```":
            found.append(Block(language, start, "\n".join(body) + "\n"))
            language = None
        else:
            body.append(line)
    if language is not None:
        raise ValueError(f"{path}: the block opened at line {start - 1} is never closed")
    return found


def commands(block: Block) -> list[Command]:
    """The commands of a shell block: each line, with the lines it continues (a trailing
    backslash), blank and comment-only lines left out."""
    out: list[Command] = []
    pending: list[str] = []
    first = 0
    for offset, line in enumerate(block.text.splitlines()):
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if not pending:
            first = block.line + offset
        pending.append(line)
        if not line.endswith("\\"):
            expected = EXPECTED_EXIT.search(line)
            out.append(Command("\n".join(pending), first,
                               int(expected.group(1)) if expected else 0))
            pending = []
    if pending:
        raise ValueError(f"README.md line {first}: a command ends with a backslash")
    return out


def shell_script(path: Path = README) -> str:
    """The README's shell blocks as one bash script, each command checked as it ends."""
    lines = ["#!/usr/bin/env bash", f"# generated from {path.name} by tests/readme_blocks.py",
             "set -uo pipefail"]
    for block in blocks(path):
        if block.language not in SHELL:
            continue
        for command in commands(block):
            where = f"{path.name} line {command.line}"
            expected = command.expected_exit
            lines += [f"echo {shlex.quote(f'+ {where}: ' + command.text)}", command.text,
                      f"status=$?; if [ $status -ne {expected} ]; then",
                      f'  echo "{where}: exit $status, expected {expected}:" '
                      f"{shlex.quote(command.text)} >&2; exit 1; fi"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    if sys.argv[1:] != ["shell"]:
        sys.exit("usage: python3 tests/readme_blocks.py shell  (prints the README's shell "
                 "blocks as one bash script)")
    sys.stdout.write(shell_script())
