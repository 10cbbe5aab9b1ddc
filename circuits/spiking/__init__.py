r"""The spiking realisation of the hierarchical network (``[model] neurons = "spiking"``).

Every belief unit and every error unit of the rate model (``circuits.belief``,
``circuits.error``) becomes a pair of populations of N spiking neurons (N =
``neurons_per_unit``), one for the positive and one for the negative part of the quantity it
carries; where a level predicts through a nonlinearity, g = W f(mu), its f(mu) is a third pair
(the *activation* neurons). Populations talk to each other only through spikes on Brian2
``Synapses`` (``on_pre``) whose weights add to exponentially filtered synaptic variables of the
target neurons. What reaches a population from outside is what reaches the rate model's from
outside: the stimulus (a current into the input level's error neurons), the configured
precision (the error neurons' gain) and the prior mean (the top error neurons' prediction).
Top-down precision (``[model.attention]``: a context belief setting the log-gain of a level's
error neurons, and receiving dF/dlambda back) is built through spikes too, by
``circuits.spiking.topdown``, which derives it.

Method: rate-coded populations with a NEF-style integrator
==========================================================

Chosen after Eliasmith & Anderson (2003, *Neural Engineering*, ch. 2 and 8: representation by a
population's filtered spikes, dynamics by recurrent connections), rate-coded Poisson populations
(Dayan & Abbott 2001, ch. 1, 7) and the signed prediction-error neurons of Keller &
Mrsic-Flogel (2018, Neuron 100:424). Spike-coding networks (Boerlin, Machens & Deneve 2013)
would shrink the fluctuation as 1/N instead of 1/sqrt(N), but need all-to-all fast inhibition
(N^2 synapses) and their decoders are fixed by the network's own greedy spiking rule, which does
not carry precision as a gain; they are left for later.

**Encoding.** A neuron of the positive pool of a quantity x fires as a Poisson process of rate

.. math::  r_+ = r_0 + \min(g\,[x]_+,\; r_\max - r_0), \qquad
           r_- = r_0 + \min(g\,[-x]_+,\; r_\max - r_0)

(r_0 ``baseline_rate_hz``, r_max ``max_rate_hz``, g ``rate_per_unit_hz``), where x is computed
from the neuron's own synaptic input (below). Below saturation, r_+ - r_- = g x *identically*
(``[x]_+ - [-x]_+ = x``): the pair is linear in its input, so noise in the input leaves the mean
difference unbiased, and the baseline cancels.

**Decoding by synapses.** A synapse from a neuron of a source pool adds ``+w`` (positive pool)
or ``-w`` (negative pool) to a synaptic variable s of its target, which decays with tau_s
(``tau_synapse_ms``). Each target neuron draws K neurons (``fan_in``; all N if K >= N) from
each pool of each source unit it listens to, with w = c / (K g tau_s), c the connection's value
(a generative weight W_ij, or 1). Then the mean of s obeys

.. math::  \tau_s \frac{d\langle s\rangle}{dt} = -\langle s\rangle + \sum_j c_j\,
           \frac{K (r_{+,j} - r_{-,j})}{K g} = -\langle s\rangle + \sum_j c_j x_j,

a low-pass copy of sum_j c_j x_j. Synapses number 2 K per target neuron per source unit, so
they grow as N (not N^2) for a fixed K.

**The network** (per level l; l = 0 is the input, L the top):

- *error neurons* of level l: x = E with E = Pi (s_signal - s_pred) (``errors =
  "instantaneous"``) or tau_eps dE/dt = Pi (s_signal - s_pred) - E (``"relaxing"``, each
  neuron's own leaky E: a leak restores every neuron's copy to the shared input, so the copies
  cannot random-walk apart). Pi is the neuron's gain (the configured precision); s_signal is the
  belief pool of level l (the stimulus at l = 0), s_pred the activation pool of level l+1
  through W_{l+1} (the prior mean at the top).
- *belief neurons* of level l: a NEF integrator. x = s_self + (tau_s / tau_mu) u, with
  s_self the pool's own filtered spikes (recurrent, c = 1), u = f'(s_self) s_up - s_own,
  s_up the error pool of level l-1 through W_l' and s_own this level's error pool. In the mean
  tau_s ds_self/dt = -s_self + x = (tau_s / tau_mu) u, i.e.

  .. math::  \tau_\mu \frac{d\mu_l}{dt} = f'(\mu_l) \odot W_l^\top \varepsilon_{l-1}
             - \varepsilon_l = -\frac{\partial F}{\partial \mu_l},

  the rate model's flow (``circuits.belief``). Here tau_s is the recurrent connection's own
  filter, tau_rec (``tau_recurrent_ms``, tau_s unless set): the flow holds for any tau_rec,
  a longer one averages more spikes. The state lives in the pool's filtered activity
  that all its neurons share, not in a per-neuron copy: had each neuron integrated its own copy
  of u from its own noisy inputs, nothing would pull a copy back to the others and they would
  diffuse apart without bound.
- *activation neurons* of level l (where f is not the identity): x = f(s_mu), s_mu the belief
  pool of level l: the neuron's transfer function is f.

So the population means follow the rate model with every signal passed once more through the
synaptic filter: in the limit of many neurons (and tau_s -> 0) the decoded beliefs and errors
follow the rate model's free-energy descent and settle at its fixed point (the posterior mode).

What it costs away from that limit
==================================

- **Noise ~ N^-1/2.** A pool's filtered output over a window tau_s counts about
  n = 2 N_eff r tau_s spikes (r the mean rate), a Poisson count: its decoded value fluctuates by
  ~ sqrt(r / (N tau_s)) / g. Through the integrator this noise accumulates as a random walk of
  diffusion D ~ sigma^2 / tau_s, held back by the descent at rate H / tau_mu (H the curvature of F
  along the direction): var(mu) ~ D tau_mu / (2 H) ~ 1/N. The decoded belief's fluctuation
  therefore scales as N^-1/2 (``tests/test_spiking_evidence.py`` measures the slope), and shrinks
  with larger g, r_0 and tau_s.
- **Rectification and nonlinearity bias.** The pair's difference is linear, so there is no
  bias from rectification below saturation; a neuron driven past r_max saturates (bias of any
  size: choose g so that g |x| + r_0 < r_max for the values the model visits). A nonlinear
  transfer (activation neurons f, the belief neurons' f') applied to a noisy input gives
  E[f(s)] = f(E s) + f''(s) var(s) / 2, where var(s) is a neuron's own K-sample's variance,
  ~ (r_+ + r_-) / (2 K g^2 tau_s), plus the population's ~ 1/N: the first part shrinks with
  the fan-in K, not with N (single_cause, f = mu^2, K = 20: +0.045 on the prediction, about
  +0.01 on the belief).
- **Discretisation.** A neuron fires on its filtered inputs before they decay in that step
  (``network.DECAY_SLOT``); the other order leaks dt/tau_s per tau_s out of every integrator.
- **Delay.** Each hop adds a synaptic low-pass tau_s; the integrator's loop is stable and close to
  the rate model only while tau_s << tau_mu / H. ``tau_synapse_ms`` is therefore best a few times
  smaller than ``tau_belief_ms`` (the trials must also be long compared with tau_mu).
"""
