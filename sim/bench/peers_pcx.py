r"""The peers' case in PCX (``pip install pcx``): importing this module raises ImportError
without it.

The hierarchy as a PCX energy module, written from PCX's documented building blocks (``Vode``,
``nn.Linear``, ``value_and_grad`` over the vodes' values, an ``optax.sgd`` optimiser, ``scan``
inside ``jit``): the top vode's prediction is the prior mean m, each lower vode's is
W_l tanh(h_l) from the vode above, the sensory vode is frozen at the input x(t) (a ramp set
every step), and every vode's energy is 1/2 Pi (h - u)^2. One inference step is one SGD step of
rate dt/tau_belief on the non-frozen vodes: h_l -= dt/tau (Pi_l e_l - f'(h_l) W_l' Pi_{l-1}
e_{l-1}), pcsim's step with instantaneous errors. Vodes start at the top-down prediction of the
prior (PCX's forward initialisation). Batch B (the leading axis of ``vmap``) runs B copies.
"""

from __future__ import annotations

from importlib import metadata

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pcx
import pcx.functional as pxf
import pcx.nn as pxnn
import pcx.predictive_coding as pxc
import pcx.utils as pxu

from sim.bench.jax_timing import compiled_rates
from sim.bench.reference import Hierarchy

jax.config.update("jax_enable_x64", True)

NAME = f"PCX {metadata.version('pcx')}"


def _weighted_energy(precision: jax.Array):
    def energy(vode, rkg=None):
        error = vode.get("h") - vode.get("u")
        return 0.5 * precision * error * error

    return energy


class PeerHierarchy(pxc.EnergyModule):
    """Vodes top (mu_L) ... sensory (x); ``layers[i]`` predicts the vode below vode i."""

    def __init__(self, model: Hierarchy, dtype) -> None:
        super().__init__()
        weights = list(reversed(model.weights))  # W_L first
        precisions = [jnp.asarray(p, dtype=dtype) for p in reversed(model.precisions)]
        self.prior_mean = pcx.static(jnp.asarray(model.prior_mean, dtype=dtype))
        self.layers = []
        for w in weights:
            layer = pxnn.Linear(w.shape[1], w.shape[0], bias=False)
            layer.nn.weight.set(jnp.asarray(np.asarray(w), dtype=dtype))
            self.layers.append(layer)
        self.vodes = [pxc.Vode(energy_fn=_weighted_energy(p)) for p in precisions]
        self.vodes[-1].h.frozen = True  # the sensory input

    def __call__(self, x: jax.Array | None = None) -> jax.Array:
        h = self.vodes[0](self.prior_mean.get())
        for layer, vode in zip(self.layers, self.vodes[1:], strict=True):
            h = vode(layer(jnp.tanh(h)))
        if x is not None:
            self.vodes[-1].set("h", x)
        return h


@pxf.vmap(pxu.M(pxc.VodeParam | pxc.VodeParam.Cache).to((None, 0)), in_axes=(0,), out_axes=0)
def _forward(x, *, model: PeerHierarchy):
    return model(x)


@pxf.vmap(pxu.M(pxc.VodeParam | pxc.VodeParam.Cache).to((None, 0)), in_axes=(0,),
          out_axes=(None, 0), axis_name="batch")
def _energy(x, *, model: PeerHierarchy):
    prediction = model(x)
    return jax.lax.psum(model.energy(), "batch"), prediction


def compile_run(model: Hierarchy, steps: int, batch: int = 1, dtype=jnp.float64):
    """A function of no arguments that runs ``steps`` inference steps from the start and returns
    the final beliefs mu_1..mu_L (batch x n each), and the PCX module it runs."""
    if model.site != "before" or model.nonlinearity != "tanh" or model.tau_weights_ms:
        raise ValueError("the PCX peer covers g = W tanh(mu) with fixed weights")
    network = PeerHierarchy(model, dtype)
    x0 = jnp.broadcast_to(jnp.asarray(model.x, dtype=dtype), (batch, len(model.x)))
    ramp = jnp.asarray(model.x_stop - model.x, dtype=dtype)
    optim_h = pxu.Optim(lambda: optax.sgd(model.dt_ms / model.tau_belief_ms))
    dt_ms, duration_ms = model.dt_ms, model.duration_ms

    def inference_step(k, *, model, optim_h):
        x = x0 + ramp * (k * dt_ms / duration_ms)
        with pxu.step(model, clear_params=pxc.VodeParam.Cache):
            _, grads = pxf.value_and_grad(
                pxu.M_hasnot(pxc.VodeParam, frozen=True).to([False, True]), has_aux=True,
            )(_energy)(x, model=model)
        optim_h.step(model, grads["model"])
        return (), None

    @pxf.jit()
    def run(*, model: PeerHierarchy, optim_h: pxu.Optim):
        with pxu.step(model, (pxc.STATUS.INIT, None), clear_params=pxc.VodeParam.Cache):
            _forward(x0, model=model)  # forward initialisation, then back to no status
        optim_h.init(pxu.M_hasnot(pxc.VodeParam, frozen=True)(model))
        pxf.scan(inference_step, xs=jnp.arange(steps, dtype=dtype))(model=model,
                                                                    optim_h=optim_h)
        optim_h.clear()
        return tuple(vode.get("h") for vode in model.vodes[-2::-1])

    return lambda: run(model=network, optim_h=optim_h)


def steps_per_s(model: Hierarchy, steps: int, batch: int = 1, dtype=jnp.float64,
                repeats: int = 3) -> tuple[list[float], list[np.ndarray]]:
    """(steps per second of each timed run, final beliefs mu_1..mu_L of the first copy)."""
    return compiled_rates(compile_run(model, steps, batch, dtype), steps, repeats)
