"""Exact Bayes for a discrete trial, beside Q: the posterior given every observation since the
last reset, the surprise -ln p(o) and the gap F - surprise = KL[Q || posterior]
(``sim.reference.categorical``, computed from A and gamma directly, not from the circuit's
messages), under the prior in force: D, or ln D^beta - ln sum D^beta in a trial that sets a
prior precision beta (``DiscreteModel.log_prior_in_force``).

Columns, one factor: ``exact_posterior`` (trials x causes). Several factors (mean-field Q):
``exact_joint`` (trials x K_1 x ... x K_F) and ``exact_marginal/<factor>`` (trials x K_f),
beside ``final_belief/<factor>``, so over-confidence and explaining away show. Both:
``surprise`` (nat) and ``kl`` (nat): the final F minus the surprise, 0 at the exact posterior
(one factor), > 0 where the posterior correlates the factors (mean-field).
"""

from __future__ import annotations

from typing import Any, ClassVar

from sim.readouts import Readout
from sim.reference import categorical


class ExactPosterior(Readout):
    name = "exact_posterior"
    family = "discrete"
    units: ClassVar[dict[str, str]] = {"surprise": "nat", "kl": "nat"}

    def row(self, simulation: Any, trial: Any) -> dict[str, Any]:
        model = simulation.model
        if not model.mean_field and trial.settings.prior_precision is not None:
            joint = categorical.log_joint(None, simulation.evidence,
                                          log_prior=model.log_prior_in_force(trial.settings))
            exact, surprise = categorical.posterior(joint), categorical.surprise(joint)
            columns = {"exact_posterior": exact}
        elif not model.mean_field:
            exact, surprise = categorical.bayes(model.prior, simulation.evidence)
            columns = {"exact_posterior": exact}
        else:
            exact, surprise = categorical.bayes_factors([f.prior for f in model.factors],
                                                        simulation.evidence)
            columns = {"exact_joint": exact}
            for factor, marginal in zip(model.factors, categorical.marginals(exact),
                                        strict=True):
                columns[f"exact_marginal/{factor.name}"] = marginal
        return {"surprise": surprise, **columns,
                "kl": simulation.free_energy_now() - surprise}


READOUT = ExactPosterior()
