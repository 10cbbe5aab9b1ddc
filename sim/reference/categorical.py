r"""Exact inference over a categorical hidden cause (NumPy only).

A cause s in {1..K} has prior D; each observation is made through a modality m with likelihood
A_m (outcomes x causes, columns sum to 1) under a precision (inverse temperature) gamma_m:

.. math::

    \tilde A_m[o, k] = A_m[o, k]^{\gamma_m} / \sum_{o'} A_m[o', k]^{\gamma_m}

An observation is an outcome index o, or a probability vector p over outcomes (virtual
evidence: an uncertain report of the outcome), with likelihood sum_o p_o Ã_m[o, k]. Given all
observations o, the joint is p(o, s=k) = D_k prod_i Ã_{m_i}[o_i, k] and

.. math::

    p(s=k \mid o) = p(o, s=k) / p(o), \qquad
    F(Q) = \sum_k Q_k (\ln Q_k - \ln p(o, s=k)) = -\ln p(o) + KL[Q \| p(s \mid o)].

Names follow pymdp (``D``, ``A``). Tests and the result files both use these functions.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

Observation = tuple[np.ndarray, float, "int | np.ndarray"]  # (A, gamma, outcome)


def precise_likelihood(A: np.ndarray, gamma: float = 1.0) -> np.ndarray:
    """Ã = A**gamma with each column (one cause) renormalised over outcomes."""
    powered = np.asarray(A, dtype=float) ** gamma
    return powered / powered.sum(axis=0, keepdims=True)


def likelihood(A: np.ndarray, outcome: int | np.ndarray, gamma: float = 1.0) -> np.ndarray:
    """p(o | s) for every cause s: a row of Ã, or p @ Ã for a probability vector p (A may be
    outcomes x K_1 x ... x K_F, over the joint causes of several factors)."""
    tilde = precise_likelihood(A, gamma)
    if np.ndim(outcome) == 0:
        return tilde[int(outcome)]
    return np.tensordot(np.asarray(outcome, dtype=float), tilde, axes=1)


def log_joint(D: np.ndarray, observations: Iterable[Observation],
              log_prior: np.ndarray | None = None) -> np.ndarray:
    """ln p(o, s=k): ln D_k (or ``log_prior``) plus the log-likelihood of every observation."""
    total = np.log(np.asarray(D, dtype=float)) if log_prior is None else log_prior
    for A, gamma, outcome in observations:
        total = total + np.log(likelihood(A, outcome, gamma))
    return total


def surprise(joint: np.ndarray) -> float:
    """-ln p(o) = -ln sum_k p(o, s=k), from the log joint."""
    top = float(np.max(joint))
    return -(top + float(np.log(np.sum(np.exp(joint - top)))))


def posterior(joint: np.ndarray) -> np.ndarray:
    """p(s=k | o) from the log joint."""
    weights = np.exp(joint - np.max(joint))
    return weights / weights.sum()


def free_energy(Q: np.ndarray, joint: np.ndarray) -> float:
    """F(Q) = sum_k Q_k (ln Q_k - ln p(o, s=k)), with 0 ln 0 = 0."""
    Q = np.asarray(Q, dtype=float)
    held = Q > 0
    return float(np.sum(Q[held] * (np.log(Q[held]) - joint[held])))


def bayes(D: np.ndarray, observations: Iterable[Observation]) -> tuple[np.ndarray, float]:
    """The exact posterior p(s | o) and the surprise -ln p(o)."""
    joint = log_joint(D, observations)
    return posterior(joint), surprise(joint)


# --- several factors: the exact joint posterior and mean-field Q --------------------------------

def joint_log_prior(priors: Iterable[np.ndarray]) -> np.ndarray:
    """ln D_1[k_1] + ... + ln D_F[k_F] over the joint causes (independent priors)."""
    total = np.zeros(())
    for prior in priors:
        total = np.add.outer(total, np.log(np.asarray(prior, dtype=float)))
    return total


def marginals(joint_posterior: np.ndarray) -> list[np.ndarray]:
    """p(s_f | o) for every factor f of a joint posterior."""
    axes = range(joint_posterior.ndim)
    return [joint_posterior.sum(axis=tuple(a for a in axes if a != f)) for f in axes]


def mean_field_free_energy(beliefs: list[np.ndarray], log_joint_values: np.ndarray) -> float:
    """F(Q) = E_Q[ln Q - ln p(o, s)] for Q = prod_f Q_f, with 0 ln 0 = 0."""
    q = beliefs[0]
    for belief in beliefs[1:]:
        q = np.multiply.outer(q, belief)
    return free_energy(q.ravel(), log_joint_values.ravel())


def bayes_factors(priors: list[np.ndarray], observations: Iterable[Observation]
                  ) -> tuple[np.ndarray, float]:
    """The exact joint posterior p(s_1, ..., s_F | o) of independent factors and -ln p(o)."""
    joint = log_joint(None, observations, log_prior=joint_log_prior(priors))
    return posterior(joint.ravel()).reshape(joint.shape), surprise(joint.ravel())


def cavi_sweep(beliefs: list[np.ndarray], log_joint_values: np.ndarray) -> list[np.ndarray]:
    """One sweep of coordinate-ascent variational inference: for f = 1..F in turn,
    Q_f <- softmax(E_{Q_-f}[ln p(o, s)]), with the factors already updated in this sweep."""
    beliefs = [np.asarray(b, dtype=float).copy() for b in beliefs]
    for f in range(len(beliefs)):
        expected = log_joint_values
        for other in range(len(beliefs) - 1, -1, -1):
            if other != f:
                expected = np.tensordot(expected, beliefs[other], axes=([other], [0]))
        beliefs[f] = posterior(expected)
    return beliefs
