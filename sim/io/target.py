"""Where a result goes: the default name and the checks on a target, before any work.

Kept apart from ``sim.engine`` (which imports Brian2) so that ``pcsim run`` refuses an existing
output in a fraction of a second.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

from sim.errors import ResultError

DEFAULT_OUTPUT_DIR = Path("outputs")


def default_output(scenario: Any) -> Path:
    """``outputs/<name>-seed<seed>-<time>.h5``."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    return DEFAULT_OUTPUT_DIR / f"{scenario.name}-seed{scenario.seed}-{stamp}.h5"


def check_target(output: Path, overwrite: bool, role: str = "the result",
                 remedy: str = "pass --overwrite (or overwrite=True) to replace it") -> None:
    """Refuse to replace an existing file (unless ``overwrite``) or a folder; ``role`` says
    what would be written there, ``remedy`` how to go on."""
    if output.is_dir():
        raise ResultError(f"{output}: is a folder; give a file name for {role}")
    if output.exists() and not overwrite:
        raise ResultError(f"{output}: already exists ({role}); {remedy}")
