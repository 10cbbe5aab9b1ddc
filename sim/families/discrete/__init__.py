"""The ``discrete`` model family: a categorical hidden cause inferred by a belief circuit.

``parse`` reads ``[model]`` (causes, prior D, modalities with likelihoods A and precisions
gamma) and each trial's observations, ``build`` makes the running network, ``stability`` bounds
the step; ``KIND`` is what the engine sees. Scenario fields and HDF5 layout: docs/discrete.md.
"""

from __future__ import annotations

import numpy as np

from sim.families.discrete.build import DiscreteSimulation
from sim.families.discrete.parse import describe_model, parse_model, parse_trial
from sim.families.discrete.stability import analyse_discrete
from sim.io.writer import ResultWriter
from sim.scenario import Scenario


class DiscreteKind:
    name = "discrete"
    record_variables = ("belief", "error", "free_energy", "surprise")

    parse_model = staticmethod(parse_model)
    parse_trial = staticmethod(parse_trial)
    describe = staticmethod(describe_model)
    stability = staticmethod(analyse_discrete)  # sim.stability.preflight

    def build(self, scenario: Scenario, writer: ResultWriter) -> DiscreteSimulation:
        return DiscreteSimulation(scenario, writer)

    def summary(self, simulation: DiscreteSimulation) -> list[str]:
        causes = simulation.model.causes
        lines = []
        for row in simulation.trial_rows:
            top = np.argsort(row["exact_posterior"])[::-1][:3]
            beliefs = ", ".join(f"{causes[k]} {row['final_belief'][k]:.3f} "
                                f"(exact {row['exact_posterior'][k]:.3f})" for k in top)
            lines.append(f"  {row['name']}: Q = {beliefs}; F = {row['final_free_energy']:.4f} "
                         f"nat, -ln p(o) = {row['surprise']:.4f} nat")
        return lines


KIND = DiscreteKind()
