"""The condition a generated trial came from (``[[protocol.conditions]]``, ``sim.protocol``).

Column: ``condition`` (strings). Only when the scenario declares conditions: a scenario that
lists its trials gets no such column.
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
        return {"condition": trial.condition}


READOUT = Condition()
