"""The memory of a hierarchical run, by part, before it is built (summed by ``sim.memory``).

Per unit of every level (input included), ``sim.memory.UNIT_NUMBERS`` float64 numbers: Brian2's
state variables of its error and belief units (signal, prediction, error, precision, belief,
their drives), the parsed arrays (precision, the stimulus's values and noise), the free
energy's and the stability preflight's temporaries. Per weight, ``WEIGHT_COPIES``: the parsed
matrix, the coupling's array (and its transposed layout), the stability preflight's J, the
initial weights written to the file and F's Hessian products. Both were measured as the peak
RSS of ``perception/single_cause`` with 10^5 to 10^7 input units (~195-230 bytes a unit over
the baseline) and of ``perception/hierarchy`` at 2000-1000-100 and 4000-2000-100 (~6 copies of
the weights). F's Laplace term holds a dense N x N Hessian over the N belief units.
"""

from __future__ import annotations

from typing import Any

import scipy.sparse

from circuits.mechanism import MemoryPart
from sim.families.hierarchical import spiking
from sim.memory import NUMBER_BYTES, STATE_NUMBERS, TRIAL_NUMBERS, UNIT_NUMBERS, recording_buffer

WEIGHT_COPIES = 6  # copies of each weight matrix (measured)
HESSIAN_COPIES = 3  # F's Hessian over the beliefs, its factor and a temporary


def memory_parts(scenario: Any) -> list[MemoryPart]:
    """Populations, weights, F's Hessian, the trial table and the recording buffers."""
    model = scenario.model
    protocol = scenario.protocol
    copies = min(protocol.batch if protocol is not None else 1, len(scenario.trials))
    recorded = set(scenario.record.variables)
    parts = []
    for index, level in enumerate(model.levels):
        size_key = f"model.levels[{index}].size"
        parts.append(MemoryPart(f"the {level.size} units of level {level.name!r}"
                                + (f" in {copies} copies" if copies > 1 else ""),
                                UNIT_NUMBERS * level.size * copies * NUMBER_BYTES, size_key,
                                checkpointed=STATE_NUMBERS * level.size * NUMBER_BYTES))
        if level.generative is not None:
            weights = level.generative.weights
            rows, columns = weights.shape
            # a sparse matrix: its values and column indices (CSR)
            entries = weights.nnz * 2 if scipy.sparse.issparse(weights) else rows * columns
            parts.append(MemoryPart(f"the weights of level {level.name!r} ({rows} x {columns})",
                                    WEIGHT_COPIES * entries * NUMBER_BYTES, size_key,
                                    checkpointed=entries * NUMBER_BYTES))
        where = f"levels/{level.name}"
        streams = ([f"{where}/input"] if index == 0 else
                   [f"{where}/belief"] if "belief" in recorded else [])
        streams += [f"{where}/{name}" for name in ("error", "precision") if name in recorded]
        parts.extend(recording_buffer(path, level.size) for path in streams)
    beliefs = model.n_beliefs
    widest = max(range(1, len(model.levels)), key=lambda index: model.levels[index].size)
    parts.append(MemoryPart(f"F's Laplace term (a {beliefs} x {beliefs} Hessian over the "
                            "belief units)", HESSIAN_COPIES * beliefs**2 * NUMBER_BYTES,
                            f"model.levels[{widest}].size"))
    units = sum(level.size for level in model.levels)
    table = TRIAL_NUMBERS * len(scenario.trials) * units * NUMBER_BYTES
    parts.append(MemoryPart(f"the trial table ({len(scenario.trials)} trials of {units} units)",
                            table, "protocol.trials", checkpointed=table))
    return parts + spiking.memory_parts(scenario)
