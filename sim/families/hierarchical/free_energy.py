r"""Laplace-approximated variational free energy of a hierarchical model, in nats.

With Q(mu) = N(mu, Sigma) and Gaussian likelihoods at every level,

.. math::

    E(\mu) = \sum_{l=0}^{L} \tfrac12 e_l^\top \Pi_l e_l - \tfrac12 \ln|\Pi_l|
             + \tfrac{n_l}{2}\ln 2\pi,
    \qquad e_l = \mu_l - g_{l+1}(\mu_{l+1}),\; e_L = \mu_L - m,\; \mu_0 = x

    F = E_Q[E] - H[Q] \approx E(\mu) + \tfrac12 \ln|H(\mu)| - \tfrac{N}{2}\ln 2\pi

where H = d^2E/dmu^2 is the energy's Hessian over all N belief units and Sigma = H^{-1} has
been chosen optimally (this is what makes the entropy term exact for a linear-Gaussian model, so
that F at the fixed point equals the surprise -ln p(x)). H is block tridiagonal:

.. math::

    H_{ll} = \Pi_l + J_l^\top \Pi_{l-1} J_l - \sum_i \varepsilon_{l-1,i}\,
             \partial^2 g_{l,i}/\partial\mu_l^2,\qquad
    H_{l,l+1} = -\Pi_l J_{l+1}

with eps_l = Pi_l e_l and J_l = dg_l/dmu_l. Units with zero precision (a flat prior) add no
energy and no log-determinant term: F is then defined up to that improper prior's constant.
If H is not positive definite (far from a mode) ln|det H| is used. With sparse weights (local
receptive fields) H is assembled as a scipy.sparse matrix and ln|det H| comes from its sparse
LU factors, so a 10^4-unit hierarchy never forms a dense N x N matrix.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse
import scipy.sparse.linalg

from circuits.generative import scale_rows
from sim.families.hierarchical.model import HierarchicalModel

LN_2PI = float(np.log(2.0 * np.pi))


@dataclass(frozen=True)
class FreeEnergy:
    energy: float  # E(mu), the Gibbs energy at the mean
    laplace: float  # 1/2 ln|H| - N/2 ln 2pi, the entropy side
    total: float


def prediction_errors(
    model: HierarchicalModel, sensory: np.ndarray, beliefs: Sequence[np.ndarray],
    prior_mean: np.ndarray | None = None,
) -> list[np.ndarray]:
    """e_l for l = 0..L given the input x and beliefs mu_1..mu_L (``prior_mean``: the one in
    force, default the model's)."""
    states = [np.asarray(sensory, dtype=float), *beliefs]
    errors = []
    for index, state in enumerate(states):
        if index + 1 < len(states):
            prediction = model.levels[index + 1].generative.predict(states[index + 1])
        else:
            prediction = model.prior_mean if prior_mean is None else prior_mean
        errors.append(state - prediction)
    return errors


def energy(errors: Sequence[np.ndarray], precisions: Sequence[np.ndarray]) -> float:
    total = 0.0
    for error, precision in zip(errors, precisions, strict=True):
        precision = np.broadcast_to(precision, error.shape)
        proper = precision > 0
        total += 0.5 * float(np.sum(precision * error**2))
        total += 0.5 * float(np.sum(LN_2PI - np.log(precision[proper])))
    return total


def energy_hessian(
    model: HierarchicalModel,
    beliefs: Sequence[np.ndarray],
    errors: Sequence[np.ndarray],
    precisions: Sequence[np.ndarray],
) -> np.ndarray | scipy.sparse.csc_matrix:
    """d^2 E / dmu^2 over all belief units (levels 1..L stacked); sparse if any W is.

    Block l (level l with itself): Pi_l + J_l' Pi_{l-1} J_l - sum_i (Pi_{l-1} e_{l-1})_i
    d^2 g_{l,i}; block (l-1, l): -Pi_{l-1} J_l (how mu_l moves the error that mu_{l-1} sees).
    """
    sparse = any(level.generative.is_sparse for level in model.belief_levels)
    diagonal = scipy.sparse.diags if sparse else np.diag
    count = len(model.belief_levels)
    blocks: list[list] = [[None] * count for _ in range(count)]
    for block, level in enumerate(model.belief_levels):
        index, mu = block + 1, beliefs[block]
        precision_below = np.broadcast_to(precisions[index - 1], errors[index - 1].shape)
        jacobian = level.generative.jacobian(mu)
        weighted_jacobian = scale_rows(precision_below, jacobian)
        blocks[block][block] = (
            diagonal(np.broadcast_to(precisions[index], mu.shape).astype(float))
            + jacobian.T @ weighted_jacobian
            - level.generative.curvature(mu, precision_below * errors[index - 1]))
        if block > 0:
            blocks[block - 1][block] = -weighted_jacobian
            blocks[block][block - 1] = -weighted_jacobian.T
    if sparse:
        return scipy.sparse.bmat(blocks, format="csc")
    sizes = [level.size for level in model.belief_levels]
    return np.block([[blocks[i][j] if blocks[i][j] is not None else np.zeros((sizes[i], sizes[j]))
                      for j in range(count)] for i in range(count)])


def log_abs_det(hessian) -> float:
    """ln|det H| of a dense or a sparse matrix."""
    if not scipy.sparse.issparse(hessian):
        return float(np.linalg.slogdet(hessian)[1])
    try:
        factors = scipy.sparse.linalg.splu(hessian)
    except RuntimeError:  # exactly singular
        return -np.inf
    return float(np.sum(np.log(np.abs(factors.U.diagonal()))))


def free_energy(
    model: HierarchicalModel,
    sensory: np.ndarray,
    beliefs: Sequence[np.ndarray],
    precisions: Sequence[np.ndarray] | None = None,
    laplace: bool = True,
    prior_mean: np.ndarray | None = None,
) -> FreeEnergy:
    """F at beliefs mu_1..mu_L for input x; precisions and prior mean default to the model's
    (pass those in force in the trial)."""
    if precisions is None:
        precisions = [level.precision for level in model.levels]
    errors = prediction_errors(model, sensory, beliefs, prior_mean)
    gibbs = energy(errors, precisions)
    if not laplace:
        return FreeEnergy(gibbs, 0.0, gibbs)
    hessian = energy_hessian(model, beliefs, errors, precisions)
    entropy_side = 0.5 * log_abs_det(hessian) - 0.5 * hessian.shape[0] * LN_2PI
    return FreeEnergy(gibbs, entropy_side, gibbs + entropy_side)
