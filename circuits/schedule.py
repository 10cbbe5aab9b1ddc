"""The order of work inside one time step, in Brian2's ``groups`` slot.

One step from t to t + dt (a semi-implicit Euler step: errors first, then beliefs)::

    STIMULUS            x(t) written into the sensory error units
    DELIVER_TO_ERRORS   predictions g(mu(t)) and signals mu(t) reach the error units
    ERRORS              error units update (relax, or take Pi * e at once)
    PLASTICITY          weights learn (``circuits.plasticity``, NumPy couplings)
    WEIGHT_CONSTRAINT   learned weights are projected onto their constraint
                        (``circuits.weight_constraint``)
    DELIVER_TO_BELIEFS  new errors reach the belief units (own and bottom-up)
    BELIEFS             belief units update: mu(t + dt)

The discrete circuit (``circuits.discrete``) uses the same slots: observations at STIMULUS,
its pool at POOL (= DELIVER_TO_BELIEFS; its ``(summed)`` synapses just before), recording at
DISCRETE_RECORD (a sample shows Q(t), eps(t) and F(t) together), belief units at BELIEFS. With
several factors (``circuits.mean_field``) the factors take turns: factor f receives its message
from the others at MEAN_FIELD_MESSAGE and runs its pool and belief units at the slots above
shifted by f * FACTOR_TURN, after factor f - 1 has moved (a Gauss-Seidel sweep); the recorder
samples before factor 0 moves, so a sample shows every factor at t.

Recording sits after the error units when they are instantaneous (so a sample shows eps(t) =
Pi e(t)) and before them when they relax (so a sample shows the state at t). Brian2 places a
``(summed)`` variable's update just before its target group (order - 1), so the ``Synapses``
coupling lands in the same slots as the dense one.
"""

from __future__ import annotations

from collections.abc import Callable

STIMULUS = -5
DELIVER_TO_ERRORS = 0
ERRORS = 10
DELIVER_TO_BELIEFS = 20
PLASTICITY = DELIVER_TO_BELIEFS - 2
WEIGHT_CONSTRAINT = DELIVER_TO_BELIEFS - 1
BELIEFS = 30
SLOT = "groups"
POOL = DELIVER_TO_BELIEFS
PRECISION = STIMULUS + 1  # a precision made of several parts is recomposed (circuits.precision)
PRECISION_UNITS = BELIEFS + 5  # inferred precision moves after the beliefs (and the recorder)
DISCRETE_RECORD = DELIVER_TO_BELIEFS + 5
FACTOR_TURN = 40  # factor f of a mean-field belief works at these slots + f * FACTOR_TURN
MEAN_FIELD_MESSAGE = POOL - 5  # a factor's message from the others, before its pool


def summed_at(synapses, order: int, names: tuple[str, ...] | None = None) -> None:
    """Every ``(summed)`` update of ``synapses`` (or those of the summed variables ``names``,
    e.g. ``prediction_post``) at ``order`` of this slot: Brian2 places one just before its
    target group (the target's order - 1), not where the work it stands for happens."""
    for name, updater in synapses.summed_updaters.items():
        if names is None or name in names:
            updater.order = order


def record_order(errors: str) -> int:
    return ERRORS + 5 if errors == "instantaneous" else ERRORS - 5


class Switched:
    """Work that a ``NetworkOperation`` (of ``run``) does only while ``on``.

    Brian2 reads an object's ``active`` only when a run begins, and the serial trials of a
    protocol share one run (``sim.trial_sequence``): what a trial switches on or off for
    itself (a learning phase) is switched here, between any two steps.
    """

    def __init__(self, work: Callable[[], None], on: bool = True) -> None:
        self.work, self.on = work, on

    def run(self) -> None:
        if self.on:
            self.work()
