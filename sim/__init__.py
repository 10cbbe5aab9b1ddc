"""pcsim: predictive coding as neural dynamics on Brian2.

``sim.run(scenario, ...)`` runs a scenario file (a path or a bundled name) and returns the
loaded ``Result``; ``sim.load(path)`` reads a result file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sim._version import __version__
from sim.errors import (
    DivergenceError,
    NumericalWarning,
    ResultError,
    RunInterrupted,
    ScenarioError,
)
from sim.io.reader import Result, load

__all__ = ["DivergenceError", "NumericalWarning", "Result", "ResultError", "RunInterrupted",
           "ScenarioError", "__version__", "load", "run"]


def run(
    scenario: str | Path,
    output: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    seed: int | None = None,
    progress: bool = False,
    overwrite: bool = False,
    keep_partial: bool = False,
    debug: bool = False,
) -> Result:
    """Run a scenario (path or bundled name, with ``overrides`` as dotted keys) and load it.

    Without ``output`` the file goes to ``outputs/<name>-seed<seed>-<time>.h5``. An existing
    ``output`` is replaced only with ``overwrite``. Raises ``ScenarioError`` for a mistake in
    the scenario (or a step beyond its stability bound), ``ResultError`` for the output path,
    ``DivergenceError`` if the run blows up, ``RunInterrupted`` on Ctrl-C (``keep_partial``
    keeps what was simulated, marked ``interrupted``). ``debug`` keeps Brian2's log files
    (pcsim removes them otherwise: ``sim.brian_logging``).
    """
    from sim.engine import default_output, run_scenario, text_progress
    from sim.scenario import load_scenario

    loaded = load_scenario(scenario, overrides=overrides, seed=seed)
    target = Path(output) if output is not None else default_output(loaded)
    run_scenario(loaded, target, text_progress() if progress else None, overwrite=overwrite,
                 keep_partial=keep_partial, debug=debug)
    return load(target)
