"""Everything that can refuse a run, checked before the engine (and with it Brian2) is imported.

One function for ``pcsim run`` and ``sim.run``, so that the two refuse the same runs with the
same lines, in the same order: the output path (and the figure beside it), the scenario, the
disk space for the recording, the step's stability, the snapshots' size and the memory
(``sim.stability.preflight``), then the checkpoint (``sim.checkpoint.check_start``). A refusal
takes a fraction of a second.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from sim.errors import ResultError

RESUME_NEEDS_OUTPUT = ("--resume: expected -o OUT.h5 (or output=OUT.h5 with resume=True), the "
                       "result the interrupted run was writing (its checkpoint is "
                       "OUT.h5.checkpoint)")
FIGURE_REMEDY = "pass --overwrite to replace it or --no-plot to skip the figure"


def check_outputs(output: Path, overwrite: bool, figure: bool) -> None:
    """Refuse an existing result at ``output`` (and, with ``figure``, the ``.png`` beside it),
    unless ``overwrite``, or a folder there (``sim.io.target.check_target``)."""
    from sim.io.target import check_target

    check_target(output, overwrite)
    if figure:
        check_target(output.with_suffix(".png"), overwrite, "the figure beside the result",
                     FIGURE_REMEDY)


def preflight_run(scenario: str | Path, output: str | Path | None, *,
                  overrides: dict[str, Any] | None = None, seed: int | None = None,
                  overwrite: bool = False, resume: bool = False, figure: bool = False,
                  warn: Callable[[str], None],
                  versions: Callable[[str], None] | None = None) -> tuple[Any, Path]:
    """Load ``scenario`` (path or bundled name, ``overrides``, ``seed``) and check the run that
    would write ``output`` (None: ``outputs/<name>-seed<seed>-<time>.h5``); the loaded
    scenario and the output path. ``warn`` gets each warning of the stability analysis.
    A result file as ``scenario`` is the scenario it stores, run again (``sim.rerun``; its
    overrides, then these); ``versions`` (default ``warn``) gets the line that says which
    software versions differ from those that wrote it.

    Raises ``ResultError`` for the output (an existing file without ``overwrite``, a folder;
    ``resume`` without ``output``; a checkpoint that is missing or does not fit, or, without
    ``resume``, one left by an interrupted run) and ``ScenarioError`` for the scenario, a
    recording larger than the free disk space, an unstable step, or too much memory.
    """
    import numpy as np

    from sim.checkpoint import check_start
    from sim.compiled.choice import checked_device
    from sim.io.target import default_output
    from sim.memory import check_disk
    from sim.rerun import is_result_file, stored_scenario
    from sim.scenario import load_scenario
    from sim.stability import preflight

    if output is not None:  # checked first: it needs no scenario
        check_outputs(Path(output), overwrite, figure)
    elif resume:
        raise ResultError(RESUME_NEEDS_OUTPUT)
    # validation checks what it computes for finiteness: numpy's warnings would only repeat it
    with np.errstate(all="ignore"):
        if is_result_file(scenario):  # a result: its scenario, run again (sim.rerun)
            loaded, note = stored_scenario(scenario, overrides, seed)
            if note:
                (versions or warn)(note)
        else:
            loaded = load_scenario(scenario, overrides=overrides, seed=seed)
        target = Path(output) if output is not None else default_output(loaded)
        if output is None:
            check_outputs(target, overwrite, figure)
        check_disk(loaded, target)  # cheap: before the stability analysis
        messages = preflight(loaded)
    for message in messages:
        warn(message)
    check_start(loaded, target, resume, overwrite)  # its checkpoint (resume)
    checked_device(loaded, resume)  # [numerics] device: what it refuses whatever the model
    return loaded, target

