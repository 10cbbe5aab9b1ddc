"""The learned covariance's per-step work as compiled code (``sim.compiled``).

On the runtime device ``circuits.covariance`` delivers Sigma eps and learns Sigma with NumPy
operations on the arrays of Sigma's population (``covariance_<level>``: ``covariance``, entry
(i, j) at unit i n + j, and the trial's ``learning`` switch). Compiled, that population is
cloned like the family's own (so its state is recorded at every sample and trial boundary and
replayed into the runtime arrays, where F, the streams, the trial rows and the outputs read
it; a trial's start writes its switch, played back by ``sim.compiled.trial_starts``), and a
helper population ``covariance_<level>_terms`` of n x n units does the work. Its linked
variables read the entry's Sigma and switch (one to one), eps_i, eps_j and e_j of the cloned
error units (i, j: the entry's row and column), in the runtime's slots:

- ``DELIVER_TO_ERRORS - 1``: ``term = Sigma_ij eps_j``, summed into ``lateral_i`` by
  ``(summed)`` synapses at ``DELIVER_TO_ERRORS`` (the NumPy product's slot);
- ``COVARIANCE_ORDER``: ``Sigma_ij += e_j (rate eps_i)`` (the operand order of BLAS ``ger``
  in the runtime's update), then, in a code object of its own so that no compiler
  reassociates the two roundings, ``Sigma_ii -= rate``; both scaled by the switch, so a phase
  that does not learn adds zeros and leaves Sigma bitwise unchanged.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from circuits import schedule
from circuits.covariance import COVARIANCE_ORDER, Circuit

TERMS = """
covariance : 1 (linked)
learning : 1 (linked)
error_row : 1 (linked)
error_column : 1 (linked)
interneuron_column : 1 (linked)
diagonal : 1 (constant)
term : 1
rate : 1 (shared, constant)
"""
LEARN = "covariance = covariance + interneuron_column * (learning * rate * error_row)"
DECAY = "covariance = covariance - learning * rate * diagonal"


def compiled_circuit(circuit: Circuit, context: Any) -> list:
    """One level's circuit on the compiled device (``context``: a ``CompiledContext``): the
    helper population with its code and the synapses that deliver Sigma eps."""
    from brian2 import NeuronGroup, Synapses, linked_var

    errors = context.clone(context.simulation.context.errors[circuit.index])
    state = context.clone(circuit.state)
    n = len(circuit.error)
    units = np.arange(n * n)
    rows, columns = units // n, units % n
    name = circuit.state.name
    terms = NeuronGroup(n * n, TERMS, clock=context.clock, name=f"{name}_terms")
    terms.rate = circuit.rate or 0.0  # a value, not a constant of the code: a sweep over
    # tau_ms runs one compiled program (sim.compiled)
    terms.covariance = linked_var(state, "covariance")
    terms.learning = linked_var(state, "learning")
    terms.error_row = linked_var(errors, "error", index=rows)
    terms.error_column = linked_var(errors, "error", index=columns)
    terms.interneuron_column = linked_var(errors, "interneuron", index=columns)
    terms.diagonal = (rows == columns).astype(float)
    terms.run_regularly("term = covariance * error_column", when=schedule.SLOT,
                        order=schedule.DELIVER_TO_ERRORS - 1, name=f"{name}_product")
    if circuit.rate is not None:
        terms.run_regularly(LEARN, when=schedule.SLOT, order=COVARIANCE_ORDER,
                            name=f"{name}_learn")
        terms.run_regularly(DECAY, when=schedule.SLOT, order=COVARIANCE_ORDER + 1,
                            name=f"{name}_decay")
    lateral = Synapses(terms, errors, "lateral_post = term_pre : 1 (summed)",
                       clock=context.clock, name=f"{name}_lateral")
    lateral.connect(i=units, j=rows)
    schedule.summed_at(lateral, schedule.DELIVER_TO_ERRORS)
    return [terms, lateral]
