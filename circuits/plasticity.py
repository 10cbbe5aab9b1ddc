r"""Weight plasticity: learning as slow inference over the generative weights.

The weights enter F through the error they predict, 1/2 e' Pi e with e = mu_below - g(W, mu).
Descending F,

.. math::

    \tau_W \frac{dW}{dt} = -\frac{\partial F}{\partial W}
      = \begin{cases} \varepsilon_{\text{below}}\, f(\mu)^\top & g = W f(\mu) \\
        \big(f'(W\mu) \odot \varepsilon_{\text{below}}\big)\, \mu^\top & g = f(W\mu) \end{cases}

a Hebbian product of presynaptic activity and postsynaptic (error) rate (Bogacz 2017, eq. 20).
``GenerativeMap.weight_gradient_factors`` gives the two factors; the update is applied once per
step with rate dt / tau_W, in place.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse
from scipy.linalg import blas

HEBBIAN_EQUATIONS = """
dw/dt = error_post * {f} / tau_weights : 1 (clock-driven)
tau_weights : second (shared, constant)
"""


def hebbian_update(weights, post: np.ndarray, pre: np.ndarray, rate: float,
                   rows: np.ndarray | None = None) -> None:
    """weights += rate * outer(post, pre), in place (dense: BLAS ger; sparse: existing synapses).

    For CSR weights, ``rows`` (the row of every stored entry) may be passed to save its
    recomputation.
    """
    if scipy.sparse.issparse(weights):
        if rows is None:
            rows = sparse_rows(weights)
        weights.data += rate * post[rows] * pre[weights.indices]
        return
    ger = blas.dger if weights.dtype == np.float64 else blas.sger
    # W is C-ordered, so W.T is a Fortran array that ger can update without copying.
    ger(rate, pre, post, a=weights.T, overwrite_a=True)


def sparse_rows(weights: scipy.sparse.csr_matrix) -> np.ndarray:
    """The row index of every stored entry of a CSR matrix."""
    return np.repeat(np.arange(weights.shape[0]), np.diff(weights.indptr))


def synaptic_weight_equations(f: str, learned: bool) -> str:
    """The ``w`` of a Brian2 ``Synapses`` from beliefs (pre) to the error units below (post)."""
    return HEBBIAN_EQUATIONS.format(f=f) if learned else "w : 1\n"
