"""The stability preflight against independent computations: Brian2's own integration step for
each method, and the time constants of the learning flows."""

from __future__ import annotations

import numpy as np
import pytest
from brian2 import Clock, Network, NeuronGroup, ms, prefs

import sim
from sim.scenario import METHODS
from sim.scenario_writer import write_scenario
from sim.stability import relaxation_factor


@pytest.mark.parametrize("method", METHODS)
def test_stability_function_is_brian2s_step(method):
    """One step of dx/dt = -x/tau by Brian2 multiplies x by R(-dt/tau) = 1 - a'."""
    prefs.codegen.target = "numpy"
    clock = Clock(0.3 * ms)
    group = NeuronGroup(1, "dx/dt = -x / tau : 1\ntau : second", method=method, clock=clock)
    group.x, group.tau = 1.0, 0.2 * ms
    Network(group).run(0.3 * ms)
    assert group.x[0] == pytest.approx(1 - relaxation_factor(method, 1.5), rel=1e-12)


def learning(dt_ms: float, **learn) -> dict:
    """x = 1 through W = 1, unit precisions, N(0, 1) prior, slow beliefs; learning ``learn``."""
    return {
        "name": "learning", "dt_ms": dt_ms,
        "model": {
            "errors": "instantaneous", "tau_belief_ms": 100.0,
            "levels": [{"name": "x", "size": 1, "precision": 1.0},
                       {"name": "v", "size": 1, "weights": 1.0, "initial_belief": 1.0}],
            "prior": {"mean": 0.0, "precision": 1.0},
            "learning": learn,
        },
        "protocol": {"trials": [{"duration_ms": 100 * dt_ms,
                                 "stimulus": {"kind": "constant", "value": 2.0}}]},
    }


# precision: rate 1/(2 Pi^2 tau) = 5/ms at Pi = 1, tau = 0.1 ms: Euler needs dt < 0.4 ms.
# weights at mu = 1 (g = W mu): rate Pi mu^2 / tau = 10/ms at tau = 0.1 ms: dt < 0.2 ms.
@pytest.mark.parametrize(("learn", "field", "bound_ms"),
                         [({"tau_precision_ms": 0.1}, "tau_precision", 0.4),
                          ({"tau_weights_ms": 0.1}, "tau_weights", 0.2)])
def test_learning_time_constants_bound_the_step(tmp_path, learn, field, bound_ms):
    path = write_scenario(tmp_path / "fast.toml", learning(1.01 * bound_ms, **learn))
    with pytest.raises(sim.ScenarioError, match=f"dt_ms: .*{field}.*use dt_ms < "
                                                f"{bound_ms:.4g}"):
        sim.run(path, output=tmp_path / "fast.h5")
    assert not (tmp_path / "fast.h5").exists()
    path = write_scenario(tmp_path / "slow.toml", learning(0.4 * bound_ms, **learn))
    result = sim.run(path, output=tmp_path / "slow.h5")
    assert np.all(np.isfinite(result.level("v")["belief"]))
