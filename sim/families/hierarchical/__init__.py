"""The ``hierarchical`` model family: continuous causes, Gaussian levels, Brian2 circuits.

``parse`` reads ``[model]`` and each trial, ``build`` makes the running network, ``free_energy``
evaluates F, ``stability`` bounds the step; ``KIND`` is what the engine sees.
"""

from __future__ import annotations

import numpy as np

from sim.families.hierarchical.build import HierarchicalSimulation
from sim.families.hierarchical.parse import describe_model, parse_model, parse_trial
from sim.families.hierarchical.stability import analyse_hierarchical
from sim.io.writer import ResultWriter
from sim.scenario import Scenario
from sim.validation import describe


class HierarchicalKind:
    name = "hierarchical"
    record_variables = ("belief", "error", "precision", "free_energy")

    parse_model = staticmethod(parse_model)
    parse_trial = staticmethod(parse_trial)
    describe = staticmethod(describe_model)
    stability = staticmethod(analyse_hierarchical)  # sim.stability.preflight

    def build(self, scenario: Scenario, writer: ResultWriter) -> HierarchicalSimulation:
        return HierarchicalSimulation(scenario, writer)

    def summary(self, simulation: HierarchicalSimulation) -> list[str]:
        lines = []
        for row in simulation.trial_rows:
            top = row[f"final_belief/{self.top_name(simulation)}"]
            lines.append(f"  {row['name']}: F = {row['final_free_energy']:.4f} nat, "
                         f"top belief = {describe(np.round(top, 4).tolist())}")
        return lines

    @staticmethod
    def top_name(simulation: HierarchicalSimulation) -> str:
        return simulation.model.levels[-1].name


KIND = HierarchicalKind()
