"""Readouts: per-trial quantities computed from a run, one column group each of ``trials/``.

A readout is a small module (registered in ``sim.registry``) whose ``READOUT`` reads the running
network at the end of every trial through the family's simulation object (``sim.simulation``)
and returns the trial's columns; the one recorder writes them into the per-trial table
(``trials/<column>``, one row per trial; docs/results.md). Reaction times, ERP traces, the KL
gap and parameter snapshots are meant to be readouts.
"""

from __future__ import annotations

from typing import Any, ClassVar

from circuits.mechanism import MemoryPart


class Readout:
    """Base of every readout. ``family`` None: it applies to every model family.

    A readout that ``takes_settings`` is on only when the scenario has a
    ``[readouts.<name>]`` table (``parse`` reads it, ``describe`` gives it resolved); it may
    watch the running network (``objects``: Brian2 objects added for the run) and leave a
    summary at the end (``finish``).
    """

    name: ClassVar[str]
    family: ClassVar[str | None] = None
    units: ClassVar[dict[str, str]] = {}  # column (or group of columns) -> units; else "1"
    takes_settings: ClassVar[bool] = False
    # True: ``row`` reads the trial only through the simulation's documented state
    # (``final_beliefs``, ``free_energy_now``, ``precisions``, ``model``, the trial), so a
    # batched run (``sim.batch``) can give it each copy in turn; no ``objects``
    batch_safe: ClassVar[bool] = False

    def parse(self, fields: Any, model: Any) -> Any:
        """Read ``[readouts.<name>]`` (a ``sim.validation.Fields``), checked against the
        parsed model."""
        raise NotImplementedError

    def describe(self, settings: Any) -> dict:
        return {}

    def enabled(self, scenario: Any) -> bool:
        return not self.takes_settings or self.name in scenario.readouts

    def objects(self, simulation: Any, settings: Any) -> list:
        return []

    def memory(self, scenario: Any) -> list[MemoryPart]:
        """The memory its reference takes (``circuits.mechanism.MemoryPart``), estimated
        before the run; a readout whose parts would take the run past ``[numerics]
        memory_limit_mb`` is turned off (``sim.memory``)."""
        return []

    def row(self, simulation: Any, trial: Any) -> dict[str, Any]:
        """This trial's columns (numbers or arrays), read at the trial's end."""
        raise NotImplementedError

    def finish(self, simulation: Any, settings: Any) -> None:
        """Write what the readout leaves beside the trial table (``simulation.writer``)."""
