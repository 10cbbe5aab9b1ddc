"""Step bound of the categorical belief circuit."""

from __future__ import annotations

from sim.stability import WARN_MARGIN, Stability, largest_stable_dt, margin, round_down


def analyse_discrete(scenario) -> Stability:
    """Categorical beliefs (``circuits.discrete``): tau dv/dt = eps - sum_j Q_j eps_j.

    The pool computes the errors once per step and holds them over it, so every method takes
    the same step v' = v + h (eps - mean eps), h = dt/tau. Around the posterior,
    ln Q - ln p(s|o) (up to a constant) is multiplied by 1 - h per step: the instantaneous
    bound above with lambda = 1. h < 2 is stable; F never increases for h <= 1 (margin 1/2).
    """
    tau = scenario.model.tau_belief_ms
    m = margin(scenario.dt_ms, 1.0, tau, None, scenario.method)
    return Stability(m, 1.0, largest_stable_dt(1.0, tau, None, scenario.method),
                     round_down(largest_stable_dt(1.0, tau, None, scenario.method,
                                                  below=WARN_MARGIN)),
                     None, "dt/tau_belief < 2 (F never increases for dt <= tau_belief)",
                     "ln Q - ln p(s|o) shrinks by 1 - dt/tau_belief per step, for any method")
