r"""Precision: the gain of error units, and how every mechanism that sets it combines.

Precision Pi multiplies the prediction error an error unit receives (``circuits.error``), so a
change of precision is a change of gain, the neural signature of attention. It has one
representation, per error unit:

.. math::

    \Pi = \exp(\lambda), \qquad
    \lambda = \ln \Pi_{\text{configured}} + \sum_k \lambda_k

- the **configured** part Pi_configured is what the scenario sets: a level's ``precision``
  (the prior precision at the top), a trial's override, and, to come, a schedule within the
  trial. One function answers which configured values are in force in a trial
  (``HierarchicalModel.in_force``); the build, the stability preflight and the free energy
  all ask it. Pi_configured = 0 is a flat (improper) prior and stays 0 whatever is added.
- **log contributions** lambda_k add in log space: top-down (a context belief predicting the
  log-precision, to come) and inferred (fast precision units, ``circuits.precision_inferred``)
  precision each add a term. A mechanism that does declares ``precision_configured`` (where
  the family then writes the configured part) and keeps ``precision`` = Pi_configured *
  exp(sum lambda_k) up to date at the start of every step. While no such mechanism is on,
  ``precision`` is the configured value itself, a plain parameter (the numbers of a run do not
  depend on the representation).
- **slow learning** (``circuits.precision_learned``) changes the configured part, as a flow on
  ``precision`` itself: it persists across trials, where the fast contributions do not.
- a level may instead carry a **full precision matrix** (the learned covariance of an
  interneuron circuit, Bogacz 2017 section 5); the free energy and its Hessian then use that
  matrix for the level.

The recorded ``levels/<name>/precision`` is Pi in force (samples x units); its ``contributions``
attribute names the parts that set it (``configured``, then the mechanisms).
"""

from __future__ import annotations

PRECISION_EQUATIONS = """
precision : 1
"""
CONFIGURED = "precision_configured"  # declared by a mechanism that adds a log contribution


def configured_variable(group) -> str:
    """Where the configured part of a group's precision lives: ``precision`` itself, or
    ``precision_configured`` when a mechanism adds a log contribution to it."""
    return CONFIGURED if CONFIGURED in group.variables else "precision"
