"""The condition a generated trial came from (``[[protocol.conditions]]``, ``sim.protocol``).

Column: ``condition`` (strings). Only when the scenario declares conditions: a scenario that
lists its trials gets no such column. A sequence (``sim.sequence``: spaced rare conditions, or
trains) adds ``kind`` (``standard``, ``deviant``, ``first``) and ``repetition`` (the trial's
place in its run of one condition, from 1).
"""

from __future__ import annotations

from typing import Any

from sim.readouts import Readout


class Condition(Readout):
    name = "condition"
    batch_safe = True

    def enabled(self, scenario: Any) -> bool:
        return scenario.has_conditions

    def row(self, simulation: Any, trial: Any) -> dict[str, Any]:
        if trial.kind is None:
            return {"condition": trial.condition}
        return {"condition": trial.condition, "kind": trial.kind,
                "repetition": trial.repetition}


READOUT = Condition()
