r"""The largest step of the learned covariance's error-interneuron loop (``circuits.covariance``),
per integration method: the maths alone (NumPy; no Brian2), used by the mechanism's ``bounds``.

With h = dt / tau_eps and Sigma held over a step, each eigenvalue sigma of Sigma gives a 2 x 2
linear system for the pair (eps, e) along its eigenvector,

.. math::

    \frac{d}{dt}\begin{pmatrix}\varepsilon\\ e\end{pmatrix}
    = \frac{1}{\tau_\varepsilon}\begin{pmatrix}0 & -1\\ \sigma & -1\end{pmatrix}
      \begin{pmatrix}\varepsilon\\ e\end{pmatrix} + \text{inputs},

with eigenvalues (-1 +- sqrt(1 - 4 sigma)) / 2 per tau_eps. A method's one step on it is
x' = x + h P(hA) (A x + b), P its one-step polynomial (``STEP_TERMS``: Euler 1 term, RK2 2,
RK4 4; Brian2's heun and milstein are Euler without noise; exponential Euler relaxes e exactly
and moves eps as Euler). The loop is stable while the step map's spectral radius is below 1:
with Euler iff h sigma < 1 (and h < 2); ``loop_step_bound`` finds the largest such h for any
method by a geometric scan and bisection.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

# the one-step polynomial P(Z) of each method on a linear system with held inputs:
# x' = x + h P(hA) (A x + b); Brian2's heun and milstein are Euler without noise
STEP_TERMS = {"euler": 1, "heun": 1, "milstein": 1, "rk2": 2, "rk4": 4}


@lru_cache(maxsize=256)  # the preflight asks for every trial
def loop_step_bound(sigma: float, method: str) -> float:
    """The largest h = dt / tau_eps for which the (eps, e) loop with Sigma's eigenvalue sigma
    stays stable under ``method`` (spectral radius of its one-step map below 1)."""
    terms = STEP_TERMS.get(method)
    if terms is None:  # exponential_euler: e relaxes exactly, eps (no self-term) as Euler
        def step(h: float) -> np.ndarray:
            decay = math.exp(-h)
            return np.array([[1.0, -h], [(1 - decay) * sigma, decay]])
    else:
        def step(h: float) -> np.ndarray:
            z = h * np.array([[0.0, -1.0], [0.0, -1.0]])
            poly, power = np.eye(2), np.eye(2)
            for k in range(2, terms + 1):
                power = power @ z / k
                poly = poly + power
            return np.eye(2) + h * poly @ np.array([[0.0, -1.0], [sigma, -1.0]])

    def stable(h: float) -> bool:
        return float(np.max(np.abs(np.linalg.eigvals(step(h))))) < 1.0

    high = 1e-3
    while stable(high) and high < 1e6:  # first instability on a geometric scan, then bisect
        high *= 1.25
    low = high / 1.25
    for _ in range(60):
        middle = (low + high) / 2
        low, high = (middle, high) if stable(middle) else (low, middle)
    return low
