"""f(mu) and f'(mu) once per belief unit, not once per weight (``circuits.coupling``).

Where g = W f(mu) with a nonlinear f, the belief units hold f(mu) (``activation``,
``circuits.belief``), which every coupling build fills once a step before the deliveries read
it, and the pull-back is W' eps scaled by f'(mu) unit by unit. Checked here on the built Brian2
objects against NumPy: a step's f(mu) and J' eps = f'(mu) * W' eps are those of the beliefs the
step began with, and the ``Synapses`` build evaluates no f per synapse. That the builds still
produce the same trajectories is ``test_speed_equivalence.test_dense_coupling_equals_synapses``
(and the compiled device's ``test_compiled_runs``). The networks are built and run on Brian2's
NumPy target (``brian_target``: the claim is the circuits' equations and schedule; on Cython
the synapses build alone compiled 21 extensions, ~110 s of a cold CI).
"""

from __future__ import annotations

import numpy as np
import pytest
from brian2 import Clock, Network, ms
from brian_target import numpy_target

from circuits.belief import belief_population
from circuits.coupling import build_coupling, keeps_activation
from circuits.error import error_population
from circuits.generative import GenerativeMap
from circuits.nonlinearity import parse_nonlinearity
from sim.engine import configure_brian

SIZES = [6, 4, 3]


def network(kind: str, nonlinearities: list[str]):
    """Levels of ``SIZES`` with random weights, ``nonlinearities`` per belief level."""
    configure_brian(target="numpy")
    rng = np.random.default_rng(5)
    clock = Clock(0.1 * ms)
    maps = [GenerativeMap(rng.normal(0.0, 0.5, (below, here)), parse_nonlinearity(name))
            for below, here, name in zip(SIZES[:-1], SIZES[1:], nonlinearities, strict=True)]
    beliefs = [belief_population(f"level{index}", rng.normal(0.0, 1.0, size), 5.0, clock,
                                 activation=keeps_activation(gmap))
               for index, (size, gmap) in enumerate(zip(SIZES[1:], maps, strict=True), start=1)]
    errors = [error_population(f"level{index}", np.ones(size), "relaxing", 2.0, clock)
              for index, size in enumerate(SIZES)]
    errors[0].signal = rng.normal(0.0, 1.0, SIZES[0])
    coupling = build_coupling(kind, maps, beliefs, errors, clock)
    return Network(*beliefs, *errors, *coupling.objects), maps, beliefs, errors, coupling


@pytest.fixture(autouse=True)
def _numpy_target():
    with numpy_target():  # Brian2's target as it was, after each test
        yield


@pytest.mark.parametrize("kind", ["dense", "synapses"])
def test_each_step_uses_f_and_its_slope_of_the_beliefs_it_began_with(kind):
    net, maps, beliefs, errors, _ = network(kind, ["tanh", "mu**2"])
    net.run(2 * ms)
    began = [np.array(group.belief[:]) for group in beliefs]
    net.run(0.1 * ms)  # one step: errors move, J' eps reaches the beliefs, then mu moves
    for group, mu in zip(beliefs, began, strict=True):
        assert not np.array_equal(group.belief[:], mu)  # the beliefs moved in the step
    np.testing.assert_allclose(beliefs[0].activation[:], np.tanh(began[0]), rtol=1e-15)
    np.testing.assert_allclose(beliefs[1].activation[:], began[1] ** 2, rtol=1e-15)
    slopes = [1 / np.cosh(began[0]) ** 2, 2 * began[1]]
    for gmap, group, below, slope in zip(maps, beliefs, errors[:-1], slopes, strict=True):
        np.testing.assert_allclose(group.bottom_up[:], slope * (gmap.weights.T @ below.error[:]),
                                   rtol=1e-12)


def test_the_synapses_evaluate_no_f_per_synapse():
    """The generative synapses read the units' f(mu) (``activation_pre``); a linear level
    holds none and its synapses read mu."""
    _, _, beliefs, _, coupling = network("synapses", ["tanh", "identity"])
    nonlinear, linear = ("\n".join([str(synapses.equations), *(
        updater.abstract_code for updater in synapses.summed_updaters.values())])
        for synapses in coupling.synapses)
    assert "tanh" not in nonlinear and "belief_pre" not in nonlinear
    assert "activation_pre" in nonlinear
    assert "belief_pre" in linear
    assert "activation" in beliefs[0].variables and "activation" not in beliefs[1].variables
