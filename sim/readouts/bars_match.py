"""Bars matched: where a level learns its weights from Foldiak's bars (a ``bars`` stimulus,
``scenarios/learning/bars.toml``), how well its learned basis images match the true bars.

At the run's end it reads the learned weights the file holds (``weights_final``) and writes
``levels/<name>/bar_match`` beside them: per bar, the Pearson correlation of the bar with the
column of the learned W_1 assigned to it one to one (``sim.reference.bars``). The scenario's
headline counts the bars matched (``[[report.headline]] count_at_least``). No trial column.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse

from sim.families.hierarchical.stimulus import Bars
from sim.io.result_file import read_matrix
from sim.io.writer import write_array
from sim.protocol import learned_parameters
from sim.readouts import Readout
from sim.reference.bars import matched_correlations, true_bars


def bars_of(scenario: Any) -> Bars | None:
    """The bars a scenario's trials draw (the first trial with them), or None."""
    for trial in scenario.trials:
        stimulus = getattr(trial.settings, "stimulus", None)
        if isinstance(getattr(stimulus, "generator", None), Bars):
            return stimulus.generator
    return None


class BarsMatch(Readout):
    name = "bars_match"
    family = "hierarchical"
    batch_safe = True  # no column: it reads the learned weights once, at the end

    def enabled(self, scenario: Any) -> bool:
        return "weights" in learned_parameters(scenario.model) and bars_of(scenario) is not None

    def row(self, simulation: Any, trial: Any) -> dict[str, Any]:
        return {}

    def finish(self, simulation: Any, settings: Any) -> None:
        bars = bars_of(simulation.scenario)
        name = simulation.model.belief_levels[0].name
        weights = read_matrix(simulation.writer.file[f"levels/{name}"], "weights_final")
        weights = np.asarray(weights.toarray() if scipy.sparse.issparse(weights) else weights,
                             dtype=float)
        write_array(simulation.writer.file.require_group(f"levels/{name}"), "bar_match",
                    matched_correlations(weights, true_bars(bars.size, bars.value)),
                    description="per true bar (rows, then columns), the Pearson correlation "
                                "of the column of the learned W assigned to it one to one")


READOUT = BarsMatch()
