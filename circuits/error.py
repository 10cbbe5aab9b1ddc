r"""Error population: units whose rates become precision-weighted prediction errors.

Each unit compares a ``signal`` (its level's belief, or the sensory input at level 0) with the
``prediction`` from the level above (the prior mean at the top) and reports
eps = Pi (signal - prediction). F depends on e only through 1/2 e' Pi e, and

.. math::

    \tfrac12 e^\top \Pi e = \max_{\varepsilon}\; \varepsilon^\top e
                             - \tfrac12 \varepsilon^\top \Pi^{-1} \varepsilon

(Bogacz 2017, eq. 32-33). Gradient ascent on the bracket, preconditioned by Pi so that the
relaxation time does not depend on the gain, gives the *relaxing* error unit

.. math::

    \tau_\varepsilon \frac{d\varepsilon}{dt} = \Pi\,(s - p) - \varepsilon

whose fixed point is eps = Pi e. (Without the preconditioner this is Bogacz's
d eps/dt = e - eps/Pi, which has the same fixed point but relaxes in tau * Pi; here precision
acts as a multiplicative gain on the input, as attention does on a neuron, and Pi = 0, a flat
prior, is allowed.) The *instantaneous* limit tau_eps -> 0 sets eps = Pi e every step.
``precision`` is a parameter of the population (``circuits.precision``); mechanisms may
integrate it or add to it (``circuits.equations``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from brian2 import Clock, NeuronGroup, ms

from circuits import schedule
from circuits.equations import gather
from circuits.mechanism import Piece
from circuits.precision import CONFIGURED, PRECISION_EQUATIONS, composition, log_contributions

RELAXING_EQUATIONS = """
derror/dt = (precision * (signal - prediction) - error) / tau_error : 1
"""

INSTANTANEOUS_EQUATIONS = """
error : 1
"""

INSTANTANEOUS_UPDATE = "error = precision * (signal - prediction)"

INPUT_EQUATIONS = """
signal : 1
prediction : 1
tau_error : second (shared, constant)
"""


def error_population(
    name: str,
    precision: np.ndarray,
    mode: Literal["relaxing", "instantaneous"],
    tau_error_ms: float,
    clock: Clock,
    method: str = "euler",
    pieces: Sequence[tuple[str, Piece]] = (),
) -> NeuronGroup:
    """One level's error units with per-unit precision (gain) and the mechanisms' ``pieces``;
    Brian2 names the group ``error_<name>``: the family passes the level's index
    (``circuits.naming``)."""
    dynamics = RELAXING_EQUATIONS if mode == "relaxing" else INSTANTANEOUS_EQUATIONS
    pieces, log_terms, _ = log_contributions(pieces)
    declaration, recompose = composition(log_terms) if log_terms else ("", "")
    group = NeuronGroup(
        len(precision),
        gather(dynamics + INPUT_EQUATIONS + PRECISION_EQUATIONS + declaration, {}, pieces),
        method=method,
        name=f"error_{name}",
        clock=clock,
        order=schedule.ERRORS,
    )
    group.tau_error = tau_error_ms * ms
    group.precision = precision
    if log_terms:  # Pi = Pi_configured exp(sum of the mechanisms' log contributions)
        group.variables[CONFIGURED].set_value(precision)
        group.run_regularly(recompose, when=schedule.SLOT, order=schedule.PRECISION,
                            name=f"{group.name}_precision")
    if mode == "instantaneous":
        group.run_regularly(INSTANTANEOUS_UPDATE, when=schedule.SLOT, order=schedule.ERRORS,
                            name=f"{group.name}_update")
    return group
