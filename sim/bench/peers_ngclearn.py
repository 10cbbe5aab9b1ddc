r"""The peers' case in ngc-learn (``pip install ngclearn``): importing this module raises
ImportError without it.

The hierarchy from ngc-learn's documented components, wired as its predictive-coding examples
wire them: ``RateCell`` beliefs z_l (tanh, tau_m = tau_belief; the cell scales its bottom-up
input by f'(z)), ``GaussianErrorCell`` errors e_l with unit variance and Pi_l as their
modulator (dmu = Pi (target - mu); a vector variance makes the cell's log-likelihood a vector),
``DenseSynapse`` cables for the predictions (W_l') and for carrying the errors up (W_l), a
top-level error cell whose mean is the prior m, and one small component of our own for the input
(x(t) = x + (x_stop - x) t / duration, computed every step from the keyword t). One
``MethodProcess`` step runs, in pcsim's order: input, predictions, errors, error cables, beliefs
(z += dt/tau (f'(z) W' eps_below - eps)); ``process.scan`` runs the steps (one compiled
``jax.lax.scan``). Beliefs start at the top-down prediction of the prior.
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import ngclearn
import numpy as np
from ngclearn import Compartment, Context, MethodProcess, compilable
from ngclearn.components import DenseSynapse, GaussianErrorCell, RateCell
from ngclearn.components.jaxComponent import JaxComponent
from ngcsimlib.global_state import stateManager

from sim.bench.jax_timing import compiled_rates
from sim.bench.reference import Hierarchy

jax.config.update("jax_enable_x64", True)

NAME = f"ngc-learn {ngclearn.__version__}"
_contexts = itertools.count()


class RampInput(JaxComponent):
    """x(t) = start + slope t / duration, set into ``outputs`` at every step."""

    def __init__(self, name, start, stop, duration_ms, batch_size=1, **kwargs):
        super().__init__(name, **kwargs)
        shape = (batch_size, len(start))
        self.start = jnp.broadcast_to(jnp.asarray(start), shape)
        self.slope = jnp.broadcast_to(jnp.asarray(stop) - jnp.asarray(start), shape)
        self.duration_ms = duration_ms
        self.outputs = Compartment(jnp.zeros(shape, dtype=self.start.dtype))

    @compilable
    def advance_state(self, t):
        self.outputs.set(self.start + self.slope * (t / self.duration_ms))


def _synapse(name: str, matrix: np.ndarray, batch: int, dtype) -> DenseSynapse:
    synapse = DenseSynapse(name, shape=matrix.shape, batch_size=batch)
    synapse.weights.set(jnp.asarray(matrix, dtype=dtype))
    return synapse


def compile_run(model: Hierarchy, steps: int, batch: int = 1, dtype=jnp.float64):
    """A function of no arguments that runs ``steps`` steps from the start and returns the final
    beliefs mu_1..mu_L (batch x n each)."""
    if model.site != "before" or model.nonlinearity != "tanh" or model.tau_weights_ms:
        raise ValueError("the ngc-learn peer covers g = W tanh(mu) with fixed weights")
    W = [np.asarray(w, dtype=dtype) for w in model.weights]
    Pi = [np.asarray(p, dtype=dtype) for p in model.precisions]
    L = len(W)
    name = f"pcsim_peer_{next(_contexts)}"
    with Context(name):
        source = RampInput("x", np.asarray(model.x, dtype=dtype),
                           np.asarray(model.x_stop, dtype=dtype), model.duration_ms, batch)
        beliefs = [RateCell(f"z{i}", n_units=W[i - 1].shape[1], tau_m=model.tau_belief_ms,
                            act_fx="tanh", batch_size=batch) for i in range(1, L + 1)]
        errors = [GaussianErrorCell(f"e{i}", n_units=len(Pi[i]), batch_size=batch)
                  for i in range(L + 1)]
        predictions = [_synapse(f"W{i}", W[i - 1].T, batch, dtype) for i in range(1, L + 1)]
        carriers = [_synapse(f"E{i}", W[i - 1], batch, dtype) for i in range(1, L + 1)]
        source.outputs >> errors[0].target
        for i in range(1, L + 1):
            z, below, own = beliefs[i - 1], errors[i - 1], errors[i]
            z.zF >> predictions[i - 1].inputs
            predictions[i - 1].outputs >> below.mu
            z.z >> own.target
            below.dmu >> carriers[i - 1].inputs
            carriers[i - 1].outputs >> z.j
            own.dtarget >> z.j_td
        advance = MethodProcess(name="advance_process") >> source.advance_state
        for component in [*predictions, *errors, *carriers, *beliefs]:
            advance >> component.advance_state
    # precision through each error cell's modulator (dmu = (target - mu) / 1 * Pi); the start:
    # beliefs at the top-down prediction of the prior mean, m as the top error's mean
    for cell, precision in zip(errors, Pi, strict=True):
        cell.modulator.set(jnp.broadcast_to(jnp.asarray(precision), (batch, len(precision))))
    above = np.asarray(model.prior_mean, dtype=dtype)
    errors[-1].mu.set(jnp.broadcast_to(jnp.asarray(above), (batch, len(above))))
    for i in range(L, 0, -1):
        mu = np.broadcast_to(above, (W[i - 1].shape[1],))
        beliefs[i - 1].z.set(jnp.broadcast_to(jnp.asarray(mu), (batch, len(mu))))
        beliefs[i - 1].zF.set(jnp.tanh(beliefs[i - 1].z.get()))
        above = W[i - 1] @ np.tanh(mu)
    # this model's compartments only (the global state also holds earlier models')
    start = {key: value for key, value in stateManager.state.items()
             if key.startswith(f"{name}:")}
    rows = jnp.array(advance.pack_rows(steps, t=lambda k: k * model.dt_ms, dt=model.dt_ms),
                     dtype=dtype)
    keys = [z.z.target for z in beliefs]

    def run():
        final, _ = advance.scan(rows, current_state=start, store_state=False,
                                store_results=False)
        return tuple(final[key] for key in keys)

    return run


def steps_per_s(model: Hierarchy, steps: int, batch: int = 1, dtype=jnp.float64,
                repeats: int = 3) -> tuple[list[float], list[np.ndarray]]:
    """(steps per second of each timed run, final beliefs mu_1..mu_L of the first copy)."""
    return compiled_rates(compile_run(model, steps, batch, dtype), steps, repeats)
