"""Exact Bayes for a discrete trial: the posterior over causes given every observation since
the last reset, and the surprise -ln p(o) (``sim.reference.categorical``), beside Q.

Columns: ``exact_posterior`` (trials x causes) and ``surprise`` (nat).
"""

from __future__ import annotations

from typing import Any, ClassVar

from sim.readouts import Readout
from sim.reference import categorical


class ExactPosterior(Readout):
    name = "exact_posterior"
    family = "discrete"
    units: ClassVar[dict[str, str]] = {"surprise": "nat"}

    def row(self, simulation: Any, trial: Any) -> dict[str, Any]:
        exact, surprise = categorical.bayes(simulation.model.prior, simulation.evidence)
        return {"surprise": surprise, "exact_posterior": exact}


READOUT = ExactPosterior()
