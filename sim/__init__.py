"""pcsim: predictive coding as neural dynamics on Brian2.

``sim.run(scenario, ...)`` runs a scenario file (a path or a bundled name) and returns the
loaded ``Result``; ``sim.load(path)`` reads a result file.
"""

from __future__ import annotations

__version__ = "0.1.0"

from pathlib import Path
from typing import Any

from sim.results import Result, ResultError, load
from sim.validation import ScenarioError

__all__ = ["Result", "ResultError", "ScenarioError", "__version__", "load", "run"]


def run(
    scenario: str | Path,
    output: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    seed: int | None = None,
    progress: bool = False,
) -> Result:
    """Run a scenario (path or bundled name, with ``overrides`` as dotted keys) and load it.

    Without ``output`` the file goes to ``outputs/<name>-seed<seed>-<time>.h5``.
    """
    from sim.engine import default_output, run_scenario, text_progress
    from sim.scenario import load_scenario

    loaded = load_scenario(scenario, overrides=overrides, seed=seed)
    target = Path(output) if output is not None else default_output(loaded)
    run_scenario(loaded, target, text_progress() if progress else None)
    return load(target)
