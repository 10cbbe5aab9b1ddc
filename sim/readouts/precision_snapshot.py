"""The precision of every level at the end of each hierarchical trial: what was in force
(configured, scheduled) or learned by then (``circuits.precision_learned``). With cues on one
level, a cue's weight in the percept is its share of this precision (Ernst & Banks 2002).

Columns: ``final_precision/<level>`` (trials x units; the top level's is the prior precision)
and ``precision_share/<level>``, each unit's share of its level's precision, Pi_i / sum_j Pi_j:
for cues of one cause on one level under a flat prior, the weight of each cue in the percept.
A level whose precisions are all 0 (a flat prior, ``perception/cue_integration``'s top level)
has no shares: 0 / 0 is NaN, declared so (``nan_means``). No value would be right there: 0
would say the shares sum to 0, 1/n that its units weigh alike, and no unit weighs at all.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from sim.readouts import Readout


class PrecisionSnapshot(Readout):
    name = "precision_snapshot"
    batch_safe = True
    family = "hierarchical"
    nan_means: ClassVar[dict[str, str]] = {
        "precision_share/": "the level's precisions are all 0 (a flat prior): no unit carries "
                            "any weight, so none has a share of it (0/0)"}

    def row(self, simulation: Any, trial: Any) -> dict[str, Any]:
        row: dict[str, Any] = {}
        for level, precision in zip(simulation.model.levels, simulation.precisions,
                                    strict=True):
            values = np.array(precision, dtype=float)
            total = values.sum()
            row[f"final_precision/{level.name}"] = values
            row[f"precision_share/{level.name}"] = (values / total if total > 0
                                                    else np.full_like(values, np.nan))
        return row


READOUT = PrecisionSnapshot()
