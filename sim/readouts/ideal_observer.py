r"""The ideal observer beside the percept: a disorder as a mismatch of precisions.

A scenario that opts in with

.. code-block:: toml

    [readouts.ideal_observer]
    world = "model"      # the default

declares that the values configured in ``[model]`` are the world's (the healthy brain's), and
that a trial's overrides (a level's or a modality's ``precision``, ``prior_precision``,
``prior_mean``) are the brain departing from them. The ideal observer infers from the same
observations with the world's values; the percept is the circuit's final belief. Per trial:

**Discrete**. The world's prior D and each modality's configured gamma_m
(``[[model.modalities]] precision``) over every observation since the last reset (the family
keeps them in ``simulation.evidence`` as (A, gamma, outcome); gamma is replaced by the
modality's own):

.. math::

    p^*(s=k \mid o) \propto D_k \prod_i \tilde A_{m_i}[o_i, k],
    \qquad \tilde A_m = A_m^{\gamma_m} / \textstyle\sum_{o} A_m[o, \cdot]^{\gamma_m}

Columns, one factor: ``ideal_posterior`` (trials x causes), ``bias`` = Q - p* (per cause: the
percept's excess belief), and ``prior_precision`` (the brain's beta in force, 1 when the trial
sets none). Several factors (D = prod_f D_f, Q mean-field): ``ideal_marginal/<factor>`` (p*'s
marginal) and ``bias/<factor>`` = Q_f - that marginal (the mean-field gap is part of it).

**Hierarchical** (linear-Gaussian, constant noise-free input x): the exact posterior mean under
the configured precisions Pi_l (the top one the prior's) and prior mean m,

.. math::

    E(\mu) = \tfrac12 \sum_{l=0}^{L} e_l^\top \Pi_l e_l,\quad
    e_0 = x - W_1 \mu_1,\ e_l = \mu_l - W_{l+1}\mu_{l+1},\ e_L = \mu_L - m;
    \qquad \mu^* = H^{-1} h

with H the (constant) Hessian of E and h = -dE/dmu at mu = 0 (``sim.reference.gaussian``), one
Newton step to polish. Columns per belief level: ``ideal_mean/<level>`` and
``bias/<level>`` = final belief - mu*. Other trials (a nonlinear model, an input that varies or
is noisy, a mechanism that changes weights or precisions while running or adds energy on the
beliefs) are NaN, and so is an
improper world posterior.

Only scenarios that ask for it get these columns (``[readouts.ideal_observer]``, an explicit
opt-in). Inferring "a trial departs from the configured precisions" from the trials themselves
would switch it on in existing scenarios that sweep precision for other reasons (fog levels,
contrast, half asleep), where the configured value is no world.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import scipy.sparse

from sim import registry
from sim.families.hierarchical.free_energy import energy_hessian, prediction_errors
from sim.readouts import Readout
from sim.readouts.reference_posterior import energy_gradient, is_linear
from sim.reference import categorical
from sim.reference.gaussian import information_posterior

WORLDS = ("model",)  # where the world's values are: the ones configured in [model]


# --- the maths ----------------------------------------------------------------------------------

def world_evidence(model: Any, evidence: list[categorical.Observation]
                   ) -> list[categorical.Observation]:
    """The same observations, each under its modality's configured gamma (the world's)."""
    gammas = {id(modality.likelihood): modality.precision for modality in model.modalities}
    return [(A, gammas[id(A)], outcome) for A, _, outcome in evidence]


def linear_ideal_mean(model: Any, x: np.ndarray) -> list[np.ndarray] | None:
    """mu* per belief level (1..L) of a linear-Gaussian model under its configured precisions
    and prior mean, for the constant input ``x``; None if the posterior is improper."""
    in_force = model.in_force(None)
    precisions = [np.array(np.broadcast_to(p, level.size), dtype=float)
                  for p, level in zip(in_force.precisions, model.levels, strict=True)]
    sizes = [level.size for level in model.belief_levels]
    splits = np.cumsum(sizes)[:-1]
    zeros = [np.zeros(size) for size in sizes]
    hessian = energy_hessian(model, zeros, prediction_errors(model, x, zeros), precisions)
    if scipy.sparse.issparse(hessian):
        hessian = hessian.toarray()
    posterior = information_posterior(np.asarray(hessian, dtype=float),
                                      -energy_gradient(model, x, zeros, precisions))
    if posterior is None:
        return None
    mean = posterior.mean - posterior.covariance @ energy_gradient(
        model, x, np.split(posterior.mean, splits), precisions)  # one Newton step
    return np.split(mean, splits)


# --- the readouts ---------------------------------------------------------------------------------

class IdealObserver(Readout):
    name = "ideal_observer"
    batch_safe = True
    takes_settings = True  # on with [readouts.ideal_observer]

    nan_means: ClassVar[dict[str, str]] = dict.fromkeys(
        ("ideal_mean/", "bias/"),
        "no exact posterior mean in this trial (a nonlinear model, an input that varies or is "
        "noisy, a mechanism that changes weights or precisions while running), or an improper "
        "world posterior")

    def nan_meaning(self, column: str, family: str) -> str | None:
        return super().nan_meaning(column, family) if family == "hierarchical" else None

    def parse(self, fields: Any, model: Any) -> str:
        world = fields.text("world", default="model", choices=WORLDS)
        fields.close()
        return world

    def describe(self, world: str) -> dict:
        return {"world": world}

    def row(self, simulation: Any, trial: Any) -> dict[str, Any]:
        if simulation.scenario.kind.name == "discrete":
            return discrete_row(simulation, trial)
        return hierarchical_row(simulation, trial)


def discrete_row(simulation: Any, trial: Any) -> dict[str, Any]:
    model = simulation.model
    beliefs = simulation.final_beliefs()
    evidence = world_evidence(model, simulation.evidence)
    if not model.mean_field:
        ideal, _ = categorical.bayes(model.prior, evidence)
        beta = trial.settings.prior_precision
        return {"ideal_posterior": ideal, "bias": beliefs["final_belief"] - ideal,
                "prior_precision": 1.0 if beta is None else float(beta)}
    joint, _ = categorical.bayes_factors([factor.prior for factor in model.factors], evidence)
    row: dict[str, Any] = {}
    for factor, marginal in zip(model.factors, categorical.marginals(joint), strict=True):
        row[f"ideal_marginal/{factor.name}"] = marginal
        row[f"bias/{factor.name}"] = beliefs[f"final_belief/{factor.name}"] - marginal
    return row


def hierarchical_row(simulation: Any, trial: Any) -> dict[str, Any]:
    model = simulation.model
    levels = model.belief_levels
    row: dict[str, Any] = {}
    for level in levels:
        row[f"ideal_mean/{level.name}"] = np.full(level.size, np.nan)
        row[f"bias/{level.name}"] = np.full(level.size, np.nan)
    changed = {what for name in model.mechanisms for what in registry.mechanism(name).changes}
    stimulus = trial.settings.stimulus
    if (not is_linear(model) or not stimulus.is_constant
            or changed & {"weights", "precision", "posterior"}):
        return row
    ideal = linear_ideal_mean(model, np.asarray(stimulus.values[0], dtype=float))
    if ideal is None:
        return row
    beliefs = simulation.final_beliefs()
    for level, mean in zip(levels, ideal, strict=True):
        row[f"ideal_mean/{level.name}"] = mean
        row[f"bias/{level.name}"] = beliefs[f"final_belief/{level.name}"] - mean
    return row


READOUT = IdealObserver()
