"""The ``hierarchical`` model family: continuous causes, Gaussian levels, Brian2 circuits.

``parse`` reads ``[model]`` and each trial, ``build`` makes the running network, ``free_energy``
evaluates F, ``stability`` bounds the step; ``KIND`` is what the engine sees.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sim.families.hierarchical.memory import memory_parts
from sim.families.hierarchical.parse import describe_model, parse_model, parse_trial
from sim.families.hierarchical.spiking import check_scenario
from sim.families.hierarchical.stability import analyse_hierarchical

if TYPE_CHECKING:  # the build side imports Brian2: only when a run builds
    from sim.families.hierarchical.build import HierarchicalSimulation
    from sim.io.writer import ResultWriter
    from sim.scenario import Scenario


class HierarchicalKind:
    name = "hierarchical"
    record_variables = ("belief", "error", "precision", "free_energy")

    parse_model = staticmethod(parse_model)
    parse_trial = staticmethod(parse_trial)
    describe = staticmethod(describe_model)
    memory = staticmethod(memory_parts)  # sim.memory
    stability = staticmethod(analyse_hierarchical)  # sim.stability.preflight
    check = staticmethod(check_scenario)  # sim.scenario: what needs the whole scenario

    def build(self, scenario: Scenario, writer: ResultWriter,
              readouts_off: dict[str, str] | None = None) -> HierarchicalSimulation:
        if scenario.model.neurons == "spiking":
            from sim.families.hierarchical.spiking_build import SpikingSimulation

            return SpikingSimulation(scenario, writer, readouts_off)
        from sim.families.hierarchical.build import HierarchicalSimulation

        return HierarchicalSimulation(scenario, writer, readouts_off)


KIND = HierarchicalKind()
