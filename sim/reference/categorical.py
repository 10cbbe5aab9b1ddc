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
    """p(o | s=k) for every cause k: a row of Ã, or p @ Ã for a probability vector p."""
    tilde = precise_likelihood(A, gamma)
    if np.ndim(outcome) == 0:
        return tilde[int(outcome)]
    return np.asarray(outcome, dtype=float) @ tilde


def log_joint(D: np.ndarray, observations: Iterable[Observation]) -> np.ndarray:
    """ln p(o, s=k): ln D_k plus the log-likelihood of every observation."""
    total = np.log(np.asarray(D, dtype=float))
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
