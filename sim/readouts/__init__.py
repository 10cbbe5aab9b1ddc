"""Readouts: per-trial quantities computed from a run, one column group each of ``trials/``.

A readout is a small module (registered in ``sim.registry``) whose ``READOUT`` reads the running
network at the end of every trial through the family's simulation object (``sim.simulation``)
and returns the trial's columns; the one recorder writes them into the per-trial table
(``trials/<column>``, one row per trial; docs/results.md). Reaction times, ERP traces, the KL
gap and parameter snapshots are meant to be readouts.
"""

from __future__ import annotations

from typing import Any, ClassVar


class Readout:
    """Base of every readout. ``family`` None: it applies to every model family."""

    name: ClassVar[str]
    family: ClassVar[str | None] = None
    units: ClassVar[dict[str, str]] = {}  # column -> units (others are "1")

    def enabled(self, scenario: Any) -> bool:
        return True

    def row(self, simulation: Any, trial: Any) -> dict[str, Any]:
        """This trial's columns (numbers or arrays), read at the trial's end."""
        raise NotImplementedError
