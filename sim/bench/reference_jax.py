"""The dense hierarchy's update scheme as a ``jax.lax.scan``: joins ``pcsim bench`` when JAX is
installed (importing this module raises ImportError otherwise). Same equations and order as
``sim.bench.reference.run_hierarchy`` (no weight learning), compiled once, timed on a second call.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

from sim.bench.reference import Hierarchy

jax.config.update("jax_enable_x64", True)

FUNCTIONS = {
    "identity": (lambda mu: mu, jnp.ones_like),
    "tanh": (jnp.tanh, lambda mu: 1.0 - jnp.tanh(mu) ** 2),
}


def compile_hierarchy(model: Hierarchy, steps: int):
    """A jitted function of no arguments returning the final beliefs mu_1..mu_L."""
    if model.tau_weights_ms is not None or model.site != "before":
        raise ValueError("the JAX reference covers fixed weights with g = W f(mu) only")
    f, df = FUNCTIONS[model.nonlinearity]
    dtype = model.dtype
    W = [jnp.asarray(np.asarray(w.todense() if hasattr(w, "todense") else w), dtype=dtype)
         for w in model.weights]
    L = len(W)
    Pi = [jnp.asarray(p, dtype=dtype) for p in model.precisions]
    m, x0 = jnp.asarray(model.prior_mean, dtype=dtype), jnp.asarray(model.x, dtype=dtype)
    ramp = (jnp.zeros_like(x0) if model.x_stop is None
            else jnp.asarray(model.x_stop, dtype=dtype) - x0)
    duration = model.duration_ms or 1.0
    relax = model.dt_ms / model.tau_error_ms
    move = model.dt_ms / model.tau_belief_ms
    instantaneous = model.errors == "instantaneous"

    mu0, above = [None] * (L + 1), m
    for level in range(L, 0, -1):
        mu0[level] = jnp.broadcast_to(above, (W[level - 1].shape[1],)).astype(dtype)
        above = W[level - 1] @ f(mu0[level])
    eps0 = tuple(jnp.zeros(p.shape[0], dtype=dtype) for p in Pi)

    def step(carry, k):
        mu, eps = carry
        states = (x0 + ramp * (k * model.dt_ms / duration), *mu)
        predictions = [W[i] @ f(states[i + 1]) for i in range(L)] + [m]
        targets = [Pi[i] * (states[i] - predictions[i]) for i in range(L + 1)]
        eps = tuple(t if instantaneous else e + relax * (t - e)
                    for e, t in zip(eps, targets, strict=True))
        mu = tuple(states[i] + move * (df(states[i]) * (W[i - 1].T @ eps[i - 1]) - eps[i])
                   for i in range(1, L + 1))
        return (mu, eps), None

    @jax.jit
    def run():
        (mu, _), _ = jax.lax.scan(step, (tuple(mu0[1:]), eps0), jnp.arange(steps, dtype=dtype))
        return mu

    return run


def steps_per_s(model: Hierarchy, steps: int) -> tuple[float, list[np.ndarray]]:
    """(steps per second of the compiled scan, final beliefs)."""
    run = compile_hierarchy(model, steps)
    jax.block_until_ready(run())  # compile
    began = time.perf_counter()
    beliefs = jax.block_until_ready(run())
    elapsed = time.perf_counter() - began
    return steps / elapsed, [np.asarray(mu) for mu in beliefs]
