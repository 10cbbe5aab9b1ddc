r"""Belief population: units whose rates mu_l descend the free energy.

From the free energy (``sim.families.hierarchical.free_energy``), mu_l enters F through its
own error e_l = mu_l - g_{l+1}(mu_{l+1}) and through the error below,
e_{l-1} = mu_{l-1} - g_l(mu_l). With eps = Pi e,

.. math::

    -\frac{\partial F}{\partial \mu_l} = J_l(\mu_l)^\top \varepsilon_{l-1} - \varepsilon_l

(the Laplace term's own gradient is neglected, as in Friston 2005 and Bogacz 2017: it is zero
for a linear model and small near a mode). The belief units therefore integrate two inputs,

.. math::

    \tau_\mu \frac{d\mu_l}{dt} = \underbrace{J_l^\top \varepsilon_{l-1}}_{\text{bottom\_up}}
                                 - \underbrace{\varepsilon_l}_{\text{own\_error}}

both delivered by ``circuits.coupling``: ``bottom_up`` from the error units below through the
generative weights (for g = W f(mu): f'(mu) * W' eps_{l-1}), ``own_error`` one-to-one from this
level's error units. The fixed point is dF/dmu = 0, the posterior mode. Mechanisms may add
terms to the ``drive`` (``circuits.equations``).

Where g_l = W f(mu_l) with a nonlinear f, the level also holds f(mu_l) unit by unit
(``activation``): the coupling computes it once a step, as it delivers to the errors, and
reads it for W f(mu) (and for f' where f' is a function of f: tanh' = 1 - tanh^2) instead of
evaluating f once per weight (``circuits.coupling``). It enters no equation here, and no
stream records it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from brian2 import Clock, NeuronGroup, ms

from circuits import schedule
from circuits.equations import gather
from circuits.mechanism import Piece

BELIEF_EQUATIONS = """
dbelief/dt = ({drive}) / tau_belief : 1
bottom_up : 1
own_error : 1
tau_belief : second (shared, constant)
"""
DRIVE = "bottom_up - own_error"
ACTIVATION_EQUATIONS = """
activation : 1
"""
# computed from mu at every step before anything reads it: no state to record or put back
# (``sim.compiled.clone.per_unit_state``)
ACTIVATION_VARIABLES = ("activation",)


def belief_population(
    name: str, initial: np.ndarray, tau_belief_ms: float, clock: Clock, method: str = "euler",
    pieces: Sequence[tuple[str, Piece]] = (), activation: bool = False,
) -> NeuronGroup:
    """One level's belief units, started at ``initial``, with the mechanisms' ``pieces``;
    ``activation``: they hold f(mu) for the coupling (module doc). Brian2 names the group
    ``belief_<name>``: the family passes the level's index (``circuits.naming``)."""
    equations = BELIEF_EQUATIONS + (ACTIVATION_EQUATIONS if activation else "")
    group = NeuronGroup(
        len(initial),
        gather(equations, {"drive": DRIVE}, pieces),
        method=method,
        name=f"belief_{name}",
        clock=clock,
        order=schedule.BELIEFS,
    )
    group.tau_belief = tau_belief_ms * ms
    group.belief = initial
    return group
