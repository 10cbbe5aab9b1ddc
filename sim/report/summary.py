"""One line per trial of a finished run, from its result file (``pcsim run`` prints them).

Per model kind (``SUMMARIES``): the hierarchy gives F and the top level's belief at the end of
each trial; the discrete model gives its three most probable causes, Q against the exact
posterior, and F against the surprise -ln p(o).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from sim.io.reader import Result
from sim.validation import describe


def hierarchical(result: Result) -> list[str]:
    trials = result.trials
    top = trials[f"final_belief/{result.level_names[-1]}"]
    return [f"  {name}: F = {trials['final_free_energy'][index]:.4f} nat, "
            f"top belief = {describe(np.round(top[index], 4).tolist())}"
            for index, name in enumerate(trials["name"])]


def discrete(result: Result) -> list[str]:
    causes = result.group_attrs["causes"]["names"]
    trials = result.trials
    lines = []
    for index, name in enumerate(trials["name"]):
        belief, exact = trials["final_belief"][index], trials["exact_posterior"][index]
        top = np.argsort(exact)[::-1][:3]
        beliefs = ", ".join(f"{causes[k]} {belief[k]:.3f} (exact {exact[k]:.3f})" for k in top)
        lines.append(f"  {name}: Q = {beliefs}; F = {trials['final_free_energy'][index]:.4f} "
                     f"nat, -ln p(o) = {trials['surprise'][index]:.4f} nat")
    return lines


SUMMARIES: dict[str, Callable[[Result], list[str]]] = {
    "hierarchical": hierarchical,
    "discrete": discrete,
}


def summary_lines(result: Result) -> list[str]:
    """One line per trial in the table (none for a kind without a summary, or no trials)."""
    if result.kind not in SUMMARIES or "name" not in result.trials:
        return []
    return SUMMARIES[result.kind](result)
