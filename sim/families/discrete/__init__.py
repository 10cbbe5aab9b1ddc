"""The ``discrete`` model family: a categorical hidden cause inferred by a belief circuit.

``parse`` reads ``[model]`` (causes, prior D, modalities with likelihoods A and precisions
gamma) and each trial's observations, ``build`` makes the running network, ``stability`` bounds
the step; ``KIND`` is what the engine sees. Scenario fields and HDF5 layout: docs/discrete.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sim.families.discrete.memory import memory_parts
from sim.families.discrete.parse import describe_model, parse_model, parse_trial
from sim.families.discrete.stability import analyse_discrete

if TYPE_CHECKING:  # the build side imports Brian2: only when a run builds
    from sim.families.discrete.build import DiscreteSimulation
    from sim.io.writer import ResultWriter
    from sim.scenario import Scenario


class DiscreteKind:
    name = "discrete"
    record_variables = ("belief", "error", "free_energy", "surprise")

    parse_model = staticmethod(parse_model)
    parse_trial = staticmethod(parse_trial)
    describe = staticmethod(describe_model)
    memory = staticmethod(memory_parts)  # sim.memory
    stability = staticmethod(analyse_discrete)  # sim.stability.preflight

    def build(self, scenario: Scenario, writer: ResultWriter,
              readouts_off: dict[str, str] | None = None) -> DiscreteSimulation:
        from sim.families.discrete.build import DiscreteSimulation

        return DiscreteSimulation(scenario, writer, readouts_off)


KIND = DiscreteKind()
