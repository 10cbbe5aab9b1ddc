"""The memory of a discrete run, by part, before it is built (summed by ``sim.memory``).

Its populations are small (one unit per cause and per outcome); what grows is the likelihood
A of each modality, outcomes x K_1 x ... x K_F over the joint causes: the parsed array, its
logarithm, the circuits' copies, and above all A described back into the resolved parameters
(``scenario/parameters``: a list of Python floats, its JSON text and h5py's copy of that), in
all ``LIKELIHOOD_COPIES`` numbers an entry (measured: 1000 outcomes x 2000 causes, peak RSS
701 MB, ~240 bytes an entry over the rest). A unit costs what a hierarchical one does
(``sim.memory``).
"""

from __future__ import annotations

from typing import Any

from circuits.mechanism import MemoryPart
from sim.memory import NUMBER_BYTES, STATE_NUMBERS, TRIAL_NUMBERS, UNIT_NUMBERS, recording_buffer

LIKELIHOOD_COPIES = 28  # numbers an entry of A costs, its description in the file included


def memory_parts(scenario: Any) -> list[MemoryPart]:
    """Units, likelihoods, the trial table and the recording buffers."""
    model = scenario.model
    recorded = set(scenario.record.variables)
    units = (sum(len(factor.causes) for factor in model.factors)
             + sum(len(modality.outcomes) for modality in model.modalities))
    parts = [MemoryPart(f"the {units} units", UNIT_NUMBERS * units * NUMBER_BYTES,
                        "model.factors" if model.mean_field else "model.causes",
                        checkpointed=STATE_NUMBERS * units * NUMBER_BYTES)]
    for index, modality in enumerate(model.modalities):
        shape = " x ".join(map(str, modality.likelihood.shape))
        parts.append(MemoryPart(f"the likelihood of modality {modality.name!r} ({shape})",
                                LIKELIHOOD_COPIES * modality.likelihood.size * NUMBER_BYTES,
                                f"model.modalities[{index}].likelihood",
                                checkpointed=modality.likelihood.size * NUMBER_BYTES))
    for factor in model.factors:
        where = f"factors/{factor.name}" if model.mean_field else "causes"
        parts.extend(recording_buffer(f"{where}/{name}", len(factor.causes))
                     for name in ("belief", "error") if name in recorded)
    table = TRIAL_NUMBERS * len(scenario.trials) * units * NUMBER_BYTES
    parts.append(MemoryPart(f"the trial table ({len(scenario.trials)} trials)", table,
                            "protocol.trials", checkpointed=table))
    return parts
