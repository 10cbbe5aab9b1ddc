r"""Categorical belief circuit: K belief units, K error units and one inhibitory pool.

A hidden cause s in {1..K} has prior D; the evidence so far, delivered by ``sensory_message``,
is s_k = sum_i ln Ã_{m_i}[o_i, k] (see ``sim.reference.categorical``), so that
ln p(o, s=k) = ln D_k + s_k. The belief Q over causes should minimise

.. math::

    F(Q) = \sum_k Q_k (\ln Q_k - \ln p(o, s=k)) = -\ln p(o) + KL[Q \| p(s \mid o)].

**Belief units** hold a log-belief v_k (membrane-like); their rates are a softmax, normalised
divisively by the pool, which sums every unit's drive e^{v_j}:

.. math::

    Q_k = e^{v_k} / Z = e^{v_k - \ln Z}, \qquad Z = \sum_j e^{v_j}.

**Error units** report, for each cause, how much more the model predicts it than the belief
holds: eps_k = -dF/dQ_k - 1,

.. math::

    \varepsilon_k = \ln D_k + s_k - \ln Q_k = \ln D_k + s_k - (v_k - \ln Z).

**Dynamics.** Through the softmax, dQ_j/dv_k = Q_j (delta_jk - Q_k), so

.. math::

    \frac{\partial F}{\partial v_k} = -Q_k (\varepsilon_k - \bar\varepsilon), \qquad
    \bar\varepsilon = \sum_j Q_j \varepsilon_j = -F.

The belief units descend F preconditioned by 1/Q_k (the inverse Fisher metric of the softmax),
with the pool feeding back the mean error, which is minus the free energy:

.. math::

    \tau \frac{dv_k}{dt} = \varepsilon_k - \bar\varepsilon.

Then dF/dt = -Var_Q[eps] / tau <= 0, zero only where every eps_k is equal, i.e. where
Q_k is proportional to p(o, s=k): the exact posterior, with eps_k = ln p(o) and F = -ln p(o).
The pool's total is conserved (d ln Z/dt = sum_k Q_k dv_k/dt = 0), so v_k stays the log-belief
ln Q_k when started at ln D. In discrete time (Euler, h = dt/tau) a step is
v <- (1-h) v + h ln p(o, s) + const, that is Q_{n+1} proportional to Q_n^{1-h} p(s|o)^h: a
geometric interpolation towards the posterior, along which KL (hence F) never increases for
0 < h <= 1, and ln Q - ln p(s|o) shrinks by (1-h) per step. The errors are computed once per
step by the pool and held over it, so every integration method takes this same step; h < 2 is
stable and ``sim.stability.analyse_discrete`` checks it before a run.

**Precision.** gamma_m (inverse temperature) weights modality m's likelihood: the message of
an outcome o is ln Ã[o, k] = gamma_m ln A[o, k] - ln sum_o' A[o', k]^gamma_m, a gain on the
log-likelihood synapse plus the normaliser that keeps Ã a distribution over outcomes. For a
probability vector p over outcomes (an uncertain report) the message is ln sum_o p_o Ã[o, k].
Each message is added to ``sensory`` when its observation arrives, weighted by the precision in
force at that time.

**Implementation.** Three Brian2 populations: belief units (K, the dynamics), error units (K,
no dynamics of their own: their rate is an expression of the log-belief v they read from the
belief units) and a one-unit inhibitory pool. The error units' K-to-1 convergence on the pool
is two sums, computed in NumPy once per step (``NetworkOperation``, as the dense coupling's
products are: Brian2's ``(summed)`` synapses looped at ~4 ns a synapse, 15 us a step at
K = 2000, most of the step). They give the pool its two drives, from which it computes ln Z
and the mean error:

.. math::

    Z = \sum_j e^{v_j}, \qquad
    \bar\varepsilon = \sum_j Q_j \varepsilon_j
      = \frac{1}{Z} \sum_j e^{v_j} (\ln D_j + s_j - v_j) + \ln Z

(the second drive uses eps_j - ln Z = ln D_j + s_j - v_j, so it does not depend on the pool's
own output). The error units read ln Z, the belief units the errors and the mean error, all
through linked variables.
Since ln Z stays near 0 (see above), e^{v_j} = Q_j Z never overflows. ``readout`` gives Q, eps
and F of the current state in NumPy, for recording only. A readout that watches Q at every step
(``sim.readouts.decision``) has the pool's operation keep v of each step (``v_steps``, a
``circuits.step_rows.StepRows``: a row copied where the sums read v anyway, no Python call of
its own per step) and computes Q of those rows afterwards, a block of steps at once, with the
same ``softmax``.
"""

from __future__ import annotations

import numpy as np
from brian2 import Clock, NetworkOperation, NeuronGroup, linked_var, ms

from circuits import schedule
from circuits.mechanism import state_array
from circuits.naming import level_key
from circuits.step_rows import StepRows

BELIEF_EQUATIONS = """
dv/dt = (error - mean_error) / tau_belief : 1
error : 1 (linked)
mean_error : 1 (linked)
log_norm : 1 (linked)
tau_belief : second (shared, constant)
"""

ERROR_EQUATIONS = """
error = log_prior + sensory - (v - log_norm) : 1
v : 1 (linked)
log_norm : 1 (linked)
log_prior : 1 (constant)
sensory : 1
"""

POOL_EQUATIONS = """
drive : 1
weighted_drive : 1
log_norm : 1
mean_error : 1
"""

POOL_UPDATE = """
log_norm = log(drive)
mean_error = weighted_drive / drive + log_norm
"""


def sensory_message(log_A: np.ndarray, outcome: np.ndarray, gamma: float) -> np.ndarray:
    """ln Ã[o, k] for every cause k: one observation's input to the error units.

    ``log_A`` is ln A (outcomes x causes, or outcomes x K_1 x ... x K_F over the joint causes
    of several factors: then the message is over the joint causes); ``outcome`` a probability
    vector over outcomes (one-hot for a category). Computed in log space, so large gamma does
    not underflow.
    """
    weighted = gamma * log_A
    with np.errstate(divide="ignore"):
        log_p = np.log(np.asarray(outcome, dtype=float))
    log_p = log_p.reshape(-1, *([1] * (log_A.ndim - 1)))
    return _log_sum(weighted + log_p) - _log_sum(weighted)


def softmax(v: np.ndarray, out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Q = e^{v - ln Z} over the last axis of ``v`` (the log-beliefs now, or a row of them per
    step: the same arithmetic, bit for bit, row by row) into ``out``; returns max v and
    Z e^{-max v} of each row (ln Z is their log's sum), each with a last axis of one."""
    top = v.max(axis=-1, keepdims=True)
    np.subtract(v, top, out=out)
    np.exp(out, out=out)
    total = out.sum(axis=-1, keepdims=True)
    out /= total
    return top, total


def _log_sum(values: np.ndarray) -> np.ndarray:
    """ln sum over axis 0 of exp(values), per column, stable."""
    top = np.max(values, axis=0)
    return top + np.log(np.sum(np.exp(values - top), axis=0))


class CategoricalCircuit:
    """The populations and pool for K causes; ``objects`` go into the Brian2 network.

    Several circuits (one per factor of a mean-field belief, ``circuits.mean_field``) take
    turns within a step: ``turn`` f shifts every in-step slot by ``schedule.FACTOR_TURN * f``
    and its Brian2 names end in ``_<level_key(turn)>``: one factor's circuit is named as the first
    of several, so both compile the same code (once, cached).
    """

    def __init__(self, log_prior: np.ndarray, tau_belief_ms: float, clock: Clock,
                 method: str = "euler", turn: int = 0) -> None:
        size = len(log_prior)
        suffix = f"_{level_key(turn)}"
        shift = schedule.FACTOR_TURN * turn
        self.beliefs = NeuronGroup(size, BELIEF_EQUATIONS, method=method, clock=clock,
                                   name=f"discrete_beliefs{suffix}",
                                   order=schedule.BELIEFS + shift)
        self.errors = NeuronGroup(size, ERROR_EQUATIONS, clock=clock,
                                  name=f"discrete_errors{suffix}", order=schedule.ERRORS + shift)
        self.pool = NeuronGroup(1, POOL_EQUATIONS, clock=clock, name=f"discrete_pool{suffix}",
                                order=schedule.POOL + shift)
        to_pool = np.zeros(size, dtype=int)
        self.beliefs.error = linked_var(self.errors, "error")
        self.beliefs.mean_error = linked_var(self.pool, "mean_error", index=to_pool)
        self.beliefs.log_norm = linked_var(self.pool, "log_norm", index=to_pool)  # eps reads it
        self.errors.v = linked_var(self.beliefs, "v")
        self.errors.log_norm = linked_var(self.pool, "log_norm", index=to_pool)
        to_pool = NetworkOperation(self._converge, when=schedule.SLOT,
                                   order=schedule.POOL - 1 + shift, clock=clock,
                                   name=f"discrete_to_pool{suffix}")
        self.errors.state_updater.active = False  # no dynamics: eps is an expression
        self.pool.state_updater.active = False
        self.pool.run_regularly(POOL_UPDATE, when=schedule.SLOT, order=schedule.POOL + shift,
                                name=f"discrete_pool_update{suffix}")
        self.beliefs.tau_belief = tau_belief_ms * ms
        self.v = state_array(self.beliefs, "v")
        self.log_prior = state_array(self.errors, "log_prior")
        self.sensory = state_array(self.errors, "sensory")
        self.drive = state_array(self.pool, "drive")
        self.weighted_drive = state_array(self.pool, "weighted_drive")
        self.exp_v = np.empty_like(self.v)  # the sums' terms, buffers of every step
        self.gap = np.empty_like(self.v)
        self.log_prior[:] = log_prior
        self.belief = np.empty(size)  # Q, eps and F of the last ``readout``
        self.error = np.empty(size)
        self.v_steps: StepRows | None = None  # v of each step, while a readout keeps them
        self.free_energy = 0.0
        self.objects = [self.beliefs, self.errors, self.pool, to_pool]
        self.reset()

    def _converge(self) -> None:
        """The pool's drives: Z = sum_j e^{v_j} and sum_j e^{v_j} (ln D_j + s_j - v_j)."""
        np.exp(self.v, out=self.exp_v)
        np.add(self.log_prior, self.sensory, out=self.gap)
        self.gap -= self.v
        self.drive[0] = self.exp_v.sum()
        self.weighted_drive[0] = self.exp_v @ self.gap
        if self.v_steps is not None:  # v of this step, as it is until the beliefs move
            self.v_steps.keep(self.v)

    def reset(self) -> None:
        """Beliefs back to the prior (v = ln D), evidence cleared."""
        self.v[:] = self.log_prior
        self.sensory[:] = 0.0
        self.drive[:] = 1.0  # e^{ln D} sums to 1; the pool recomputes it every step
        self.readout()

    def readout(self) -> None:
        """Q = e^{v - ln Z}, eps = ln D + s - ln Q and F = -sum_k Q_k eps_k of the current v,
        into ``belief``, ``error`` and ``free_energy`` (in NumPy, for recording)."""
        v, error = self.v, self.error
        top, total = softmax(v, self.belief)
        log_norm = top + np.log(total)
        np.add(self.log_prior, self.sensory, out=error)
        error -= v
        error += log_norm
        self.free_energy = -float(self.belief @ error)
