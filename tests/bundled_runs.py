"""Every bundled scenario run once per test session, as a user runs it: ``pcsim run NAME -o
FILE`` in a fresh process, default length and recording, figure written beside the file.

Three test modules read the same runs (``tests/conftest.py``'s ``bundled`` fixture): the CLI's
end-to-end checks and golden traces (``test_cli.py``), the printed headlines
(``test_headlines.py``) and the figure lint (``test_figures.py``). Each scenario runs when a
test first asks for it, so ``pytest -k posner`` runs only Posner.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class BundledRun:
    """One ``pcsim run``: the result file, its figure, and what the command printed."""

    name: str
    output: Path
    returncode: int
    stdout: str
    stderr: str

    @property
    def figure(self) -> Path:
        return self.output.with_suffix(".png")


class BundledRuns:
    """Runs, by bundled name, made when first asked for and kept for the session."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.done: dict[str, BundledRun] = {}

    def __getitem__(self, name: str) -> BundledRun:
        if name not in self.done:
            output = self.folder / (name.replace("/", "__") + ".h5")
            ran = subprocess.run([sys.executable, "-m", "sim.cli", "run", name, "-o", str(output)],
                                 capture_output=True, text=True, timeout=600)
            self.done[name] = BundledRun(name, output, ran.returncode, ran.stdout, ran.stderr)
        return self.done[name]
