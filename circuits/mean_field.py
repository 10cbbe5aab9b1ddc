r"""Mean-field beliefs over several hidden factors: one categorical circuit per factor, coupled.

The hidden cause is a tuple s = (s_1, ..., s_F) (the creak: *what* made it and *where*), with
independent priors D_f and likelihoods over the joint cause, A_m[o, k_1, ..., k_F]. The
evidence so far is the log-likelihood tensor L[k_1, ..., k_F] = sum_i ln Ã_{m_i}[o_i, k_1..k_F]
(``circuits.discrete.sensory_message`` of each observation, summed). The belief is mean-field,
Q(s) = prod_f Q_f(s_f), and its free energy

.. math::

    F = \sum_f \sum_k Q_{f,k} (\ln Q_{f,k} - \ln D_{f,k})
        - \mathbb{E}_{Q}[L]
      = -\ln p(o) + KL\Big[\prod_f Q_f \,\Big\|\, p(s \mid o)\Big]

(the KL is > 0 whenever the posterior correlates the factors: mean-field Q cannot hold it).
Holding every factor but f fixed,

.. math::

    F = KL[Q_f \| Q_f^*] + \text{const}, \qquad
    Q_f^* \propto D_f \exp(s_f), \qquad s_f = \mathbb{E}_{Q_{-f}}[L]

so factor f's circuit is the single-cause circuit (``circuits.discrete``) with the *message*
s_f as its sensory input: tau dv_f/dt = eps_f - Q_f . eps_f, eps_f = ln D_f + s_f - ln Q_f. For
two factors s_1 = L Q_2 and s_2 = L' Q_1, matrix-vector products of O(K_1 K_2), done here in
NumPy/BLAS straight into the error units' ``sensory`` (``(summed)`` Synapses ran ~10x slower
for dense coupling).

**Factors take turns.** Parallel mean-field flows are not monotone in F: with strongly coupled
factors a step that is safe for one factor makes F rise. Here, within one step, factor 1
receives its message from the others' current beliefs and moves, then factor 2 receives its
message (with factor 1 already moved) and moves, and so on (a Gauss-Seidel sweep; the slots are
in ``circuits.schedule``). Each move is the single-factor Euler step with its message fixed,
Q_f <- Q_f^{1-h} (Q_f^*)^h normalised, h = dt/tau, which lowers KL[Q_f || Q_f^*] and hence F
for 0 < h <= 1, whatever the coupling. So F never increases for dt <= tau_belief, the bound
the stability preflight already checks for one factor (warn above, refuse at dt >= 2 tau).
Its fixed points are the fixed points of coordinate-ascent variational inference (CAVI):
Q_f = Q_f^* for every f.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from brian2 import Clock, NetworkOperation

from circuits import schedule
from circuits.discrete import CategoricalCircuit


def softmax(v: np.ndarray) -> np.ndarray:
    """Q = exp(v) / sum exp(v), stable."""
    q = np.exp(v - v.max())
    return q / q.sum()


def log_softmax(v: np.ndarray) -> np.ndarray:
    """ln Q = v - ln sum exp(v) over the last axis (a factor's log-beliefs, or a row of them
    per step: the same arithmetic row by row), stable (no ln 0 for a cause that underflows)."""
    shifted = v - v.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def message(evidence: np.ndarray, beliefs: Sequence[np.ndarray | None], factor: int,
            out: np.ndarray | None = None) -> np.ndarray:
    """s_f = E_{Q_-f}[L]: the evidence tensor contracted with every other factor's belief
    (``beliefs[factor]`` is not read)."""
    if evidence.ndim == 2:  # the common case, in place with BLAS
        if factor == 0:
            return np.dot(evidence, beliefs[1], out=out)
        return np.dot(beliefs[0], evidence, out=out)
    contracted = evidence
    for other in range(evidence.ndim - 1, -1, -1):  # from the last axis, so indices hold
        if other != factor:
            contracted = np.tensordot(contracted, beliefs[other], axes=([other], [0]))
    if out is None:
        return contracted
    np.copyto(out, contracted)
    return out


def expected_evidence(evidence: np.ndarray, beliefs: Sequence[np.ndarray]) -> float:
    """E_Q[L] under the mean-field Q."""
    return float(message(evidence, beliefs, 0) @ beliefs[0])


class MeanFieldCoupling:
    """Delivers each factor's message s_f to its circuit's error units, in turns."""

    def __init__(self, circuits: Sequence[CategoricalCircuit], evidence: np.ndarray,
                 clock: Clock) -> None:
        self.circuits = list(circuits)
        self.evidence = evidence  # L, updated in place as observations arrive
        self.objects = [
            NetworkOperation(self._deliverer(f), when=schedule.SLOT,
                             order=schedule.MEAN_FIELD_MESSAGE + schedule.FACTOR_TURN * f,
                             clock=clock, name=f"mean_field_message{f}")
            for f in range(len(self.circuits))
        ]

    def _deliverer(self, factor: int):
        """A function of no arguments (Brian2 passes t to a function of one)."""
        return lambda: self.deliver(factor)

    def deliver(self, factor: int) -> None:
        """s_f from the other factors' Q now (factor f's own belief is not needed)."""
        others = [None if f == factor else softmax(circuit.v)
                  for f, circuit in enumerate(self.circuits)]
        message(self.evidence, others, factor, out=self.circuits[factor].sensory)
