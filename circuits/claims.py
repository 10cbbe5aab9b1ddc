"""Claims: what a mechanism does to each level's parameters, and which claims cannot share one.

A mechanism declares its claims (``Mechanism.claims``): for each level it acts on, what it does
to a parameter of that level. The family's check of mechanisms (``sim.registry``) compares the
claims of every mechanism a scenario switches on and refuses incompatible ones, so no
mechanism needs to know the others by name. The vocabulary is what pcsim's mechanisms do:

- parameters: ``precision`` (the gain of a level's error units, ``circuits.precision``),
  ``covariance`` (Sigma of a level's interneuron circuit), ``weights`` (the generative weights
  of a belief level, which predict the level below), ``prior`` (the prior on a level's
  beliefs; at the top its Gaussian mean and precision);
- actions:

  ``replaces``
      puts its own value in force in place of the level's (``circuits.covariance``: a full
      precision matrix Sigma^-1 instead of the per-unit precision); nothing else may act on
      that parameter of that level.
  ``learns``
      integrates the parameter as a slow flow that descends F and persists across trials
      (its ``Mechanism.learns``: ``circuits.precision_learned``, ``circuits.plasticity``,
      ``circuits.prior_learning``, ``circuits.covariance``); one flow per parameter.
  ``multiplies``
      multiplies the value in force by a factor of its own: a log contribution to precision
      (``circuits.precision_inferred``, ``circuits.precision_topdown``), or a density that
      multiplies a level's prior (``circuits.sparse_prior``); factors combine with each other
      and with a learned value.
  ``constrains``
      keeps a learned parameter in an allowed set (``circuits.weight_constraint``: W >= 0);
      it needs a mechanism that learns that parameter of that level.

Two claims on one parameter of one level conflict where either ``replaces`` it, or both
``learn`` it; anything else combines. Nothing here imports Brian2.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

PARAMETERS = ("precision", "covariance", "weights", "prior")
ACTIONS = ("replaces", "learns", "multiplies", "constrains")


@dataclass(frozen=True)
class Claim:
    """A mechanism's claim on one ``parameter`` of one level (by name): its ``action``.

    ``key``: the field of the mechanism's section that puts the claim there (a refusal points
    at its line; empty: the section's header)."""

    action: str
    parameter: str
    level: str
    key: str = ""

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"claim action {self.action!r}; expected one of {ACTIONS}")
        if self.parameter not in PARAMETERS:
            raise ValueError(f"claim parameter {self.parameter!r}; expected one of "
                             f"{PARAMETERS}")


def claims_on(levels: Iterable[str], action: str, parameter: str, key: str = ""
              ) -> list[Claim]:
    """The same claim on each of ``levels``."""
    return [Claim(action, parameter, level, key) for level in levels]


def conflict(first: Claim, second: Claim) -> str | None:
    """Why two mechanisms' claims cannot hold together (None: they combine)."""
    if (first.parameter, first.level) != (second.parameter, second.level):
        return None
    if "replaces" in (first.action, second.action):
        return f"a {first.parameter} that one mechanism replaces takes no other"
    if first.action == second.action == "learns":
        return f"two flows would learn the same {first.parameter}"
    return None


def incompatible(claims: Iterable[tuple[str, Claim]]) -> tuple[str, Claim, str] | None:
    """The first claim (in the order given, with its mechanism's name) that cannot hold with
    the claims before it, or that lacks what it needs, and the reason in one line naming both
    mechanisms, the level and the conflict; None when all combine."""
    seen: list[tuple[str, Claim]] = []
    for owner, claim in claims:
        for other, earlier in seen:
            why = conflict(earlier, claim) if other != owner else None
            if why:
                return owner, claim, (
                    f"{other} and {owner} both claim the {claim.parameter} of level "
                    f"{claim.level!r} ({other} {earlier.action}, {owner} {claim.action}): "
                    f"{why}; switch one of them off on that level")
        seen.append((owner, claim))
    for owner, claim in seen:
        if claim.action == "constrains" and not any(
                other != owner and earlier.action == "learns"
                and (earlier.parameter, earlier.level) == (claim.parameter, claim.level)
                for other, earlier in seen):
            return owner, claim, (f"{owner} constrains learned {claim.parameter} on level "
                                  f"{claim.level!r}, and no mechanism switched on learns "
                                  f"{claim.parameter} there")
    return None
