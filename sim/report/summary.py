"""One line per trial of a finished run, from its result file (``pcsim run`` prints them).

Per model kind (``SUMMARIES``): the hierarchy gives F and the top level's belief at the end of
each trial; the discrete model gives its three most probable causes, Q against the exact
posterior, and F against the surprise -ln p(o). More than ``LISTED`` trials: one line per
condition (the means over its trials) when the trials were generated from conditions, else the
first and last few trials.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from sim.io.reader import Result
from sim.report.show import ENDS, LISTED, condition_rows
from sim.validation import describe

Rows = Sequence[int] | np.ndarray


def hierarchical(result: Result, label: str, rows: Rows) -> str:
    """F and the top belief at the end of the trials ``rows`` (their means over several)."""
    trials = result.trials
    top = trials[f"final_belief/{result.level_names[-1]}"][rows].mean(axis=0)
    free_energy = trials["final_free_energy"][rows].mean()
    return (f"  {label}: F = {free_energy:.4f} nat, "
            f"top belief = {describe(np.round(top, 4).tolist())}")


def discrete(result: Result, label: str, rows: Rows) -> str:
    """Q of the three most probable causes against the exact posterior, F against -ln p(o)
    (their means over several trials)."""
    trials = result.trials
    if "causes" not in result.group_attrs:  # several factors, a mean-field Q
        return mean_field(result, label, rows)
    causes = result.group_attrs["causes"]["names"]
    belief = trials["final_belief"][rows].mean(axis=0)
    exact = trials["exact_posterior"][rows].mean(axis=0)
    top = np.argsort(exact)[::-1][:3]
    beliefs = ", ".join(f"{causes[k]} {belief[k]:.3f} (exact {exact[k]:.3f})" for k in top)
    return (f"  {label}: Q = {beliefs}; F = {trials['final_free_energy'][rows].mean():.4f} "
            f"nat, -ln p(o) = {trials['surprise'][rows].mean():.4f} nat")


def mean_field(result: Result, label: str, rows: Rows) -> str:
    """Per factor, its most probable cause: Q against the exact marginal; then F, -ln p(o) and
    their gap KL[Q || posterior] (means over several trials)."""
    trials = result.trials
    parts = []
    for path in sorted(p for p in result.group_attrs if p.startswith("factors/")):
        name = path.split("/")[1]
        causes = result.group_attrs[path]["names"]
        belief = trials[f"final_belief/{name}"][rows].mean(axis=0)
        exact = trials[f"exact_marginal/{name}"][rows].mean(axis=0)
        k = int(np.argmax(exact))
        parts.append(f"{name}: {causes[k]} {belief[k]:.3f} (exact {exact[k]:.3f})")
    return (f"  {label}: Q = {'; '.join(parts)}; F = "
            f"{trials['final_free_energy'][rows].mean():.4f} nat, -ln p(o) = "
            f"{trials['surprise'][rows].mean():.4f} nat, KL = {trials['kl'][rows].mean():.4f} "
            "nat")


SUMMARIES: dict[str, Callable[[Result, str, Rows], str]] = {
    "hierarchical": hierarchical,
    "discrete": discrete,
}


def summary_lines(result: Result) -> list[str]:
    """One line per trial in the table, or per condition (none for a kind without a summary,
    or no trials)."""
    if result.kind not in SUMMARIES or "name" not in result.trials:
        return []
    line = SUMMARIES[result.kind]
    names = result.trials["name"]
    if len(names) <= LISTED:
        return [line(result, name, [index]) for index, name in enumerate(names)]
    groups = condition_rows(result)
    if groups:
        return [line(result, f"{name} (mean of {len(rows)} trials)", rows)
                for name, rows in groups.items()]
    shown = [*range(ENDS), *range(len(names) - ENDS, len(names))]
    lines = [line(result, names[index], [index]) for index in shown]
    lines.insert(ENDS, f"  ... {len(names) - 2 * ENDS} more trials")
    return lines
