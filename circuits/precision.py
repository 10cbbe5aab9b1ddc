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
  log-precision, ``circuits.precision_topdown``) and inferred (fast precision units,
  ``circuits.precision_inferred``) precision each add a term to the error population's
  ``log_precision`` sum (a ``Piece`` term). When there are any, the error population gains
  ``precision_configured`` (where the family writes the configured part) and recomposes
  ``precision`` = Pi_configured exp(sum lambda_k) in its own equations at the start of every
  step (``schedule.PRECISION``; the sum clipped at +-20). While no such mechanism is on,
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

from collections.abc import Sequence
from dataclasses import replace

from circuits.mechanism import Piece

PRECISION_EQUATIONS = """
precision : 1
"""
CONFIGURED = "precision_configured"  # where the configured part lives once contributions exist
LOG_PRECISION = "log_precision"  # the sum the mechanisms' log contributions go into
LOG_PRECISION_CEILING = 20.0  # |sum of log contributions| is clipped here: Pi stays finite


def log_contributions(pieces: Sequence[tuple[str, Piece]]
                      ) -> tuple[list[tuple[str, Piece]], list[str], list[str]]:
    """Split the pieces' terms of the ``log_precision`` sum from the rest: (the pieces without
    them, the terms, the mechanisms that gave them)."""
    rest, terms, owners = [], [], []
    for owner, piece in pieces:
        if LOG_PRECISION in piece.terms:
            terms.append(piece.terms[LOG_PRECISION])
            owners.append(owner)
            piece = replace(piece, terms={k: v for k, v in piece.terms.items()
                                          if k != LOG_PRECISION})
        rest.append((owner, piece))
    return rest, terms, owners


def composition(terms: Sequence[str]) -> tuple[str, str]:
    """With log contributions: the extra declaration (the configured part) and the statement
    that recomposes Pi = Pi_configured exp(sum lambda_k) at the start of every step."""
    total = " + ".join(terms)
    return (f"{CONFIGURED} : 1",
            f"precision = {CONFIGURED} * exp(clip({total}, -{LOG_PRECISION_CEILING}, "
            f"{LOG_PRECISION_CEILING}))")


def configured_variable(group) -> str:
    """Where the configured part of a group's precision lives: ``precision`` itself, or
    ``precision_configured`` when a mechanism adds a log contribution to it."""
    return CONFIGURED if CONFIGURED in group.variables else "precision"
