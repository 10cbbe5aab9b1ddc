"""The precision gamma of each modality in force in a discrete trial.

Columns: ``precision/<modality>``.
"""

from __future__ import annotations

from typing import Any

from sim.readouts import Readout


class ModalityPrecision(Readout):
    name = "modality_precision"
    family = "discrete"

    def row(self, simulation: Any, trial: Any) -> dict[str, Any]:
        return {f"precision/{modality.name}": float(gamma)
                for modality, gamma in zip(simulation.model.modalities,
                                           trial.settings.precision, strict=True)}


READOUT = ModalityPrecision()
