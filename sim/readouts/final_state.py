"""The state a trial ends in: the final free energy and the final beliefs.

Columns: ``final_free_energy`` (nat) and the family's belief columns
(``final_belief/<level>`` per hierarchical level, ``final_belief`` over discrete causes).
"""

from __future__ import annotations

from typing import Any, ClassVar

from sim.readouts import Readout


class FinalState(Readout):
    name = "final_state"
    batch_safe = True
    units: ClassVar[dict[str, str]] = {"final_free_energy": "nat"}

    def row(self, simulation: Any, trial: Any) -> dict[str, Any]:
        return {"final_free_energy": simulation.free_energy_now(),
                **simulation.final_beliefs()}


READOUT = FinalState()
