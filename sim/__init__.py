"""pcsim: predictive coding as neural dynamics on Brian2.

``sim.run(scenario, ...)`` runs a scenario file (a path or a bundled name) and returns the
loaded ``Result``; ``sim.load(path)`` reads a result file; ``sim.sweep(...)`` runs a grid of
them and ``sim.open_sweep(folder)`` reads its index (``sim.sweeps``); ``sim.headlines(result)``
gives a result's headline numbers; ``sim.export_nwb(result, path)`` writes it as NWB.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sim.brian_cache  # noqa: F401  (Brian2's cache-size note: off before Brian2 is imported)
from sim._version import __version__
from sim.errors import (
    DivergenceError,
    NumericalWarning,
    ResultError,
    RunInterrupted,
    ScenarioError,
)
from sim.io.reader import Result, load

if TYPE_CHECKING:
    from sim.sweeps.table import Sweep

__all__ = ["DivergenceError", "NumericalWarning", "Result", "ResultError", "RunInterrupted",
           "ScenarioError", "__version__", "export_nwb", "headlines", "load", "open_sweep",
           "run", "sweep"]


def _in_own_temp_folder(function):
    """``function`` with Brian2's and the compiler's temporary files in this process's own
    folder for the call (``sim.temp_folder``, imported at the first call: ``import sim`` stays
    light for the report side)."""

    @functools.wraps(function)
    def in_own_folder(*args: Any, **kwargs: Any) -> Any:
        from sim import temp_folder

        with temp_folder.inside():
            return function(*args, **kwargs)

    return in_own_folder


@_in_own_temp_folder
def run(
    scenario: str | Path,
    output: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    seed: int | None = None,
    progress: bool = False,
    overwrite: bool = False,
    keep_partial: bool = False,
    debug: bool = False,
    resume: bool = False,
) -> Result:
    """Run a scenario (path or bundled name, with ``overrides`` as dotted keys) and load it.
    A result file as ``scenario`` runs the scenario it stores again (``sim.rerun``: its text,
    overrides and seed; ``overrides`` and ``seed`` then apply on top): with the same software
    (a ``UserWarning`` names any version that differs) every dataset equals the stored run's.

    Without ``output`` the file goes to ``outputs/<name>-seed<seed>-<time>.h5``. An existing
    ``output`` is replaced only with ``overwrite``. Raises ``ScenarioError`` for a mistake in
    the scenario (or a step beyond its stability bound, a recording larger than the free disk
    space, a run over the memory limit), ``ResultError`` for the output path or its checkpoint,
    ``DivergenceError`` if the run blows up, ``RunInterrupted`` on Ctrl-C (``keep_partial``
    keeps what was simulated, marked ``interrupted``). ``debug`` keeps Brian2's log files
    (pcsim removes them otherwise: ``sim.brian_logging``). ``resume``: go on from the
    checkpoint of an interrupted run writing ``output`` (``[record] checkpoint_every``,
    ``sim.checkpoint``). Everything that can refuse the run (the output path, the scenario,
    the disk space, the step's stability, the memory, the checkpoint) is checked before Brian2
    is imported, as ``pcsim run`` does (``sim.preflight``).
    """
    import warnings

    from sim.preflight import preflight_run

    def warn(message: str) -> None:  # at the caller's line: warn, preflight_run, run, decorator
        warnings.warn(message, NumericalWarning, stacklevel=5)

    def versions(message: str) -> None:  # a result re-run by other software (sim.rerun)
        warnings.warn(message, UserWarning, stacklevel=5)

    loaded, target = preflight_run(scenario, output, overrides=overrides, seed=seed,
                                   overwrite=overwrite, resume=resume, warn=warn,
                                   versions=versions)

    from sim.engine import run_scenario, text_progress

    bar = text_progress() if progress else None
    try:
        run_scenario(loaded, target, bar, overwrite=overwrite, keep_partial=keep_partial,
                     checked=True, debug=debug, resume=resume)
    finally:
        if bar is not None:
            bar.close()
    return load(target)


@_in_own_temp_folder
def sweep(
    scenario: str | Path,
    vary: dict[str, list[Any]] | None = None,
    seeds: int | None = None,
    jobs: int | None = None,
    scheduler: str | None = None,
    output: str | Path | None = None,
    progress: bool = False,
    client: Any = None,
    overrides: dict[str, Any] | None = None,
) -> Sweep:
    """Run the grid of ``scenario`` (its ``[sweep]`` table, extended by ``vary``: dotted key ->
    values) times ``seeds`` (the scenario's seed + 0 .. seeds-1), and open its index.

    Each point is one result file in ``output`` (default ``outputs/sweep-<name>``); points
    already finished there are skipped, failed ones tried again. ``jobs`` local processes
    (default: every core), or the workers of the Dask scheduler at ``scheduler`` (or of a
    ``dask.distributed.Client`` given as ``client``). Raises ``ScenarioError`` for a bad key
    (before anything runs) and ``RunInterrupted`` on Ctrl-C; a point with a bad value is
    marked failed, with its error, in the index. Keys, seeds and files: ``sim.sweeps.grid``.
    ``overrides`` (dotted key -> value, as ``pcsim sweep --set``) apply to every point's
    scenario (``seed`` there: the first seed); a key both set and varied is a ``ScenarioError``.
    """
    from sim.sweeps.run import run_sweep

    outcome = run_sweep(scenario, vary, seeds, jobs, scheduler, output, progress, client,
                        overrides)
    return open_sweep(outcome.index)


def open_sweep(folder_or_index: str | Path) -> Sweep:
    """Open a sweep by its folder or index file: ``.grid`` (axis key -> values, and ``seed``),
    ``.table`` (one row per point: pandas DataFrame if installed, else a NumPy structured
    array), ``.counts``, ``.result(row)`` (``sim.sweeps.table``)."""
    from sim.sweeps.table import open_sweep as open_index

    return open_index(folder_or_index)


def headlines(result: Result) -> list:
    """The headline numbers of a loaded result, as ``pcsim run`` and ``pcsim show`` print them:
    rows with ``quantity``, ``over``, ``value``, ``units``, ``reference`` and
    ``reference_name`` (``sim.report.headlines``; declared in the scenario's ``[report]``)."""
    from sim.report.headlines import headlines as rows

    return rows(result)


def export_nwb(result: Result | str | Path, path: str | Path, overwrite: bool = False) -> Path:
    """Write a result (a loaded ``Result`` or a result file's path) as an NWB file at ``path``
    (``.nwb``) and return it: time series from the result's declarations, the trial table as
    NWB trials, spikes as the units table, the scenario and versions as metadata
    (``sim.export.nwb``, docs/results.md). Needs pynwb (``pip install 'pcsim[nwb]'``);
    ``ResultError`` for an existing ``path`` (unless ``overwrite``) or a file that is not a
    complete result; nothing is left at ``path`` unless the export finished."""
    from sim.export.nwb import export_nwb as export

    return export(result, path, overwrite)
