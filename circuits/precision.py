r"""Precision: the gain of error units, set by the scenario, by attention, or learned.

Precision Pi_l multiplies the prediction error an error unit receives (see ``circuits.error``),
so a change of precision is a change of gain, the neural signature of attention. It is a
per-unit variable of the error population that any code may set while the network runs.

Optionally precision is learned on a slow time scale by descending F. With
F_l = 1/2 Pi e^2 - 1/2 ln Pi per unit, dF/dPi = (e^2 - 1/Pi) / 2, so

.. math::

    \tau_\Pi \frac{d\Pi}{dt} = \tfrac12 \left(\Pi^{-1} - e^2\right)

whose fixed point Pi = 1 / <e^2> is the inverse of the error variance.
"""

from __future__ import annotations

FIXED_PRECISION = "precision : 1\n"

LEARNED_PRECISION = """
dprecision/dt = (1 / precision - (signal - prediction)**2) / (2 * tau_precision) : 1
tau_precision : second (shared, constant)
"""


def precision_equations(learned: bool) -> str:
    return LEARNED_PRECISION if learned else FIXED_PRECISION
