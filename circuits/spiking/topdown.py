r"""Top-down precision through spikes (``[model.attention]`` with ``neurons = "spiking"``).

The rate model's mechanism (``circuits.precision_topdown``): a context belief mu_c sets the
log-precision of the error units of a target level through a mapping C,

.. math::  \Pi_i = \Pi_{\text{configured}, i}\, e^{\lambda_i}, \qquad \lambda = C \mu_c,

and, since F holds 1/2 Pi_i e_i^2 - 1/2 ln Pi_i per error unit (e = signal - prediction),
dF/dlambda_i = 1/2 (Pi_i e_i^2 - 1), so the context descends F with the extra drive

.. math::  -\frac{\partial F}{\partial \mu_c} \mathrel{+}= C^\top \xi, \qquad
           \xi_i = -\frac{\partial F}{\partial \lambda_i} = \tfrac12 (1 - \Pi_i e_i^2).

Both products go through spikes here, on fixed fan-in ``Synapses`` as every other connection
(``circuits.spiking.wiring``), and no population reads another's variables:

- **gain.** The context's belief pool sends spikes through C into a filtered input s_lambda of
  each error neuron of the target level, whose gain is Pi_configured exp(s_lambda) (clipped
  at +-``LOG_PRECISION_CEILING`` as the rate model's sum): x = Pi (s_signal - s_pred).
- **precision-error neurons** (role ``precision_error``, one pool pair per target unit): they
  take the same inputs as the target's error neurons (the signal, the prediction, s_lambda
  through C, the configured part as the error neurons take it) on synapses of their own and
  carry x = xi = 1/2 (1 - Pi_configured exp(s_lambda) (s_signal - s_pred)^2), as the rate
  model's ``carry_back`` computes it from the same quantities.
- **the context** receives them through C' into a filtered input s_attention, added to its
  integrator's drive beside f' W' eps_below - eps_own (``network.BELIEF``): in the mean
  tau_mu dmu_c/dt = ... + C' xi, the rate model's flow.

What is exact in the mean, and what is not
------------------------------------------

The filtered inputs are unbiased (``circuits.spiking``: the pair's difference is linear), so
s_lambda has mean C mu_c, and every *linear* use of it is exact in the mean. The gain and xi
are not linear in their inputs. A neuron's s_lambda is its own sample of K neurons from each
pool of each context unit (K = ``fan_in``), of variance
v_K = sum_k c_ik^2 (r_+ + r_-) / (2 K g^2 tau_s) (shot noise through the filter); for a
Gaussian input the mean gain is then

.. math::  \langle \Pi_{\text{configured}}\, e^{s_\lambda} \rangle
           = \Pi_{\text{configured}}\, e^{\lambda}\, e^{v/2}

(Jensen: the exp of a noisy input overshoots), with v = v_K + v_N: v_K shrinks as 1/K (the
fan-in, not N), v_N, the context pool's own fluctuation around the rate model's mu_c, as 1/N
(``circuits.spiking``). At posner's cue, mu_c = 1.39 (r_+ = 149 Hz, r_- = 10 Hz), K = 20,
g = 100 Hz, tau_s = 10 ms: v_K = 0.040, a gain 2.0% high. Likewise xi reads
<Pi e^2> = Pi (e^2 + var(s_signal - s_pred)) e^{v/2}: the squared error is biased up by the
variance of the neuron's own samples of signal and prediction (the stimulus is no sample, at
the input level), so xi is biased down by about Pi var / 2, var = (r_+ + r_-) /
(2 K g^2 tau_s) of the prediction's pool: 0.01 at posner's cue (Pi = 4, mu = 0), 0.05 on the
attended location once its target belief is 0.8. The context's fixed point,
Pi_prior (mu_c - m) = C' xi, moves by the bias over its prior precision (posner: 4), ~0.01;
measured, the decoded context settles within 0.023 of the rate model's in every condition
(``tests/test_spiking_posner.py``, N = 800, three seeds; the seeds' own spread is ~0.03).
The decoded precision (``levels/<target>/precision``) is Pi_configured exp(C mu_c) with mu_c
decoded from every neuron of the context pool, i.e. the rate model's formula at the decoded
belief, without the neurons' e^{v_K/2}.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from brian2 import NeuronGroup, linked_var

from circuits.precision import CONFIGURED, composition
from circuits.spiking.wiring import per_neuron, pool_units, synaptic

if TYPE_CHECKING:  # network imports this module
    from circuits.spiking.network import Builder, ErrorInputs, Pool

_, _GAIN_STATEMENT = composition(["s_lambda"])  # precision = Pi_configured exp(clip(s_lambda))
_LINKED = f"{CONFIGURED} : 1 (linked)\n"
GAIN = f"{_GAIN_STATEMENT} : 1\n{_LINKED}"
PRECISION_ERROR = (f"x = 0.5 * (1 - {_GAIN_STATEMENT.removeprefix('precision = ')} "
                   f"* (signal - prediction)**2) : 1\n{_LINKED}")
DECODED_LAMBDA = "log_precision_topdown"
_DECLARED, DECODED_GAIN = composition([DECODED_LAMBDA])
DECODER = f"{_DECLARED}\nd{DECODED_LAMBDA}/dt = -{DECODED_LAMBDA} / tau_synapse : 1\n"
WIRED = ("s_pred", "s_signal")  # the precision-error pool's inputs in the order drawn
DRIVE = " + s_attention"  # into the context's integrator (network.BELIEF's {drive})


@dataclass
class TopDown:
    """C (``mapping``, target units x context units) from the belief level ``context`` to the
    error neurons of level ``target`` (indices in the model's levels, input 0); ``objects``
    the Brian2 objects it added, once built."""

    context: int
    target: int
    mapping: np.ndarray
    pool: Pool | None = None  # the precision-error pool, once built
    objects: list[Any] = field(default_factory=list)

    def drive(self, index: int) -> tuple[str, tuple[str, ...]]:
        """The extra drive of level ``index``'s integrator and its synaptic input's name."""
        return (DRIVE, ("s_attention",)) if index == self.context else ("", ())

    def gain(self, index: int) -> tuple[str, str, tuple[str, ...]]:
        """Level ``index``'s error neurons' gain: its equations, the decoder variable the
        configured part is linked from, and the synaptic inputs it adds."""
        if index == self.target:
            return GAIN, CONFIGURED, ("s_lambda",)
        return "precision : 1 (linked)\n", "precision", ()

    def decoder_equations(self, index: int) -> str:
        return DECODER if index == self.target else ""


def build_topdown(build: Builder, topdown: TopDown, inputs: ErrorInputs, decoder: NeuronGroup,
                  context_pool: Pool, target_pool: Pool) -> None:
    """The precision-error pool of the target level, reading what its error neurons read
    (``inputs``), the connections through C and C', and the decoded
    precision in force."""
    n = build.settings.neurons_per_unit
    units = target_pool.units
    first = len(build.net.objects)
    own = tuple(name for name in WIRED if name in inputs.sources)
    pool = build.pool("precision_error", target_pool.level, target_pool.index, units,
                      PRECISION_ERROR + inputs.equations + synaptic(*own, "s_lambda"))
    unit_of = pool_units(units, n)
    for name in (CONFIGURED, *inputs.linked):
        setattr(pool.group, name, linked_var(decoder, name, index=unit_of))
    for name in own:
        source, values = inputs.sources[name]
        build.connect(source, pool, name, values)
    build.connect(context_pool, target_pool, "s_lambda", topdown.mapping)
    build.connect(context_pool, pool, "s_lambda", topdown.mapping)
    build.connect(pool, context_pool, "s_attention", topdown.mapping.T)
    # the decoded log-precision: every context neuron through C (no population reads it)
    build.connect(context_pool, decoder, DECODED_LAMBDA, topdown.mapping,
                  units=np.arange(units), fan=n)
    decoder.run_regularly(DECODED_GAIN, when="start", name=f"{decoder.name}_precision")
    topdown.pool = pool
    topdown.objects = build.net.objects[first:]


def start_topdown(topdown: TopDown, pools: dict, decoders: list[NeuronGroup],
                  names: list[str], beliefs: list[np.ndarray], neurons: int) -> None:
    """At a trial's reset (errors 0): lambda = C mu_c in every filtered s_lambda and the
    decoder, and the context's s_attention at C' xi with e = 0 (xi = 1/2); the precision-error
    pool's signal and prediction are set with the error pool's (``network.start_values``).
    The decoded precision is not set here: the decoder recomposes it from lambda
    (``DECODED_GAIN``) in every step's ``start`` slot, before the recorder samples the step
    (``groups`` slot), as the rate model's error units recompose theirs.
    ``names``: the model's level names, input first (``SpikingNetwork.level_names``)."""
    lam = topdown.mapping @ beliefs[topdown.context - 1]
    pools["error", topdown.pool.level].s_lambda = per_neuron(lam, neurons)
    topdown.pool.group.s_lambda = per_neuron(lam, neurons)
    context = pools["belief", names[topdown.context]]
    context.s_attention = per_neuron(topdown.mapping.T @ np.full(len(lam), 0.5), neurons)
    setattr(decoders[topdown.target], DECODED_LAMBDA, lam)
