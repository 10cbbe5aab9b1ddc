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
    # column, or "<group>/" for every column of a group -> what a NaN in it means (its
    # ``nan_means`` attribute, docs/results.md); a column not named holds no NaN, and no
    # column holds +-Inf (``sim.io.finite``: else the run ends ``diverged``)
    nan_means: ClassVar[dict[str, str]] = {}
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

    def compiled(self, simulation: Any, settings: Any, context: Any) -> list | None:
        """What ``objects`` watch every step, as Brian2 objects without Python (the
        ``cpp_standalone`` device, ``sim.compiled``), or None: no compiled form. What they
        record goes back into the readout before each trial's row (``replayed``)."""
        return None

    def replayed(self, simulation: Any, settings: Any, recorded: Any, position: int) -> None:
        """A compiled run's replay is at the end of the trial at running ``position``: put
        what the compiled form recorded for it (``recorded``: its monitors' owner) where
        ``row`` reads it."""

    def column_units(self, simulation: Any) -> dict[str, str]:
        """Its columns' units (column, or group of columns -> units; else "1"): ``units``, or
        where they depend on the model (a level's ``units``), those of this run."""
        return self.units

    def nan_meaning(self, column: str, family: str) -> str | None:
        """What a NaN in ``column`` of a ``family`` model's table means (``nan_means``), or
        None: the column holds no NaN."""
        group, grouped, _ = column.partition("/")
        return self.nan_means.get(column) or (self.nan_means.get(f"{group}/") if grouped
                                              else None)

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

    def checkpoint(self, simulation: Any) -> Any:
        """What it keeps across trials (``simulation.readout_state``) as plain data, at a
        trial boundary (``sim.checkpoint``); None: nothing."""
        return None

    def resume(self, simulation: Any, kept: Any) -> None:
        """Put back what ``checkpoint`` gave, into a run built afresh."""
