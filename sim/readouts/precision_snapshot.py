"""The precision of every level at the end of each hierarchical trial: what was in force
(configured, scheduled) or learned by then (``circuits.precision_learned``). With cues on one
level, a cue's weight in the percept is its share of this precision (Ernst & Banks 2002).

Columns: ``final_precision/<level>`` (trials x units; the top level's is the prior precision).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sim.readouts import Readout


class PrecisionSnapshot(Readout):
    name = "precision_snapshot"
    family = "hierarchical"

    def row(self, simulation: Any, trial: Any) -> dict[str, Any]:
        return {f"final_precision/{level.name}": np.array(precision, dtype=float)
                for level, precision in zip(simulation.model.levels, simulation.precisions,
                                            strict=True)}


READOUT = PrecisionSnapshot()
