"""Exact inference for linear-Gaussian hierarchies and 1-D posteriors on a grid (NumPy only).

The generative model, top-down:

    mu_L = m + n_L,   mu_l = W_{l+1} mu_{l+1} + n_l  (l = L-1..1),   x = W_1 mu_1 + n_0

with independent n_l ~ N(0, Pi_l^{-1}). Stacking every variable as a linear map of the noises
gives the joint Gaussian of (x, mu_1..mu_L); conditioning on x gives the posterior and the
marginal of x gives the surprise -ln p(x).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class GaussianPosterior:
    means: list[np.ndarray]  # posterior mean of mu_1..mu_L
    covariance: np.ndarray  # joint posterior covariance of the stacked beliefs
    surprise: float  # -ln p(x), nats


def linear_gaussian_posterior(
    weights: Sequence[np.ndarray],
    precisions: Sequence[np.ndarray],
    prior_mean: np.ndarray,
    x: np.ndarray,
) -> GaussianPosterior:
    """``weights[l-1]`` = W_l (n_{l-1} x n_l); ``precisions[l]`` = diag Pi_l for l = 0..L."""
    sizes = [len(x)] + [w.shape[1] for w in weights]
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    total = offsets[-1]
    # each variable = mean + loading @ (all noises); fill from the top level down
    loadings = [np.zeros((size, total)) for size in sizes]
    means = [np.zeros(size) for size in sizes]
    top = len(sizes) - 1
    for level in range(top, -1, -1):
        noise = slice(offsets[level], offsets[level + 1])
        loadings[level][:, noise] = np.eye(sizes[level])
        if level == top:
            means[level] = np.asarray(prior_mean, dtype=float) * np.ones(sizes[level])
        else:
            above = weights[level]
            means[level] = above @ means[level + 1]
            loadings[level] += above @ loadings[level + 1]
    noise_covariance = np.diag(np.concatenate([1.0 / np.asarray(p, dtype=float) *
                                               np.ones(s) for p, s in zip(precisions, sizes,
                                                                          strict=True)]))
    loading = np.vstack(loadings)
    mean = np.concatenate(means)
    covariance = loading @ noise_covariance @ loading.T
    n_x = sizes[0]
    s_xx = covariance[:n_x, :n_x]
    s_zx = covariance[n_x:, :n_x]
    s_zz = covariance[n_x:, n_x:]
    residual = x - mean[:n_x]
    gain = np.linalg.solve(s_xx, s_zx.T).T
    posterior_mean = mean[n_x:] + gain @ residual
    posterior_covariance = s_zz - gain @ s_zx.T
    _, logdet = np.linalg.slogdet(s_xx)
    surprise = 0.5 * (residual @ np.linalg.solve(s_xx, residual) + logdet
                      + n_x * np.log(2 * np.pi))
    split = np.split(posterior_mean, np.cumsum(sizes[1:])[:-1])
    return GaussianPosterior(split, posterior_covariance, float(surprise))


def grid_posterior_mode(
    log_joint: Callable[[np.ndarray], np.ndarray], low: float, high: float, points: int = 200001
) -> float:
    """argmax of a 1-D unnormalised log posterior on a grid, refined once around the peak."""
    grid = np.linspace(low, high, points)
    best = grid[np.argmax(log_joint(grid))]
    step = (high - low) / (points - 1)
    fine = np.linspace(best - step, best + step, points)
    return float(fine[np.argmax(log_joint(fine))])


@dataclass(frozen=True)
class InformationPosterior:
    mean: np.ndarray  # P^{-1} h
    covariance: np.ndarray  # P^{-1}
    precision: np.ndarray  # P
    log_det_precision: float  # ln|P|


def information_posterior(precision: np.ndarray, information: np.ndarray
                          ) -> InformationPosterior | None:
    r"""The Gaussian N(P^{-1} h, P^{-1}) of the information form exp(-1/2 mu'P mu + h'mu).

    For a quadratic energy E(mu) = 1/2 mu' P mu - h' mu + c, P is its Hessian and h = -dE/dmu
    at mu = 0. Solved by Cholesky (P = L L', ln|P| = 2 sum ln L_ii); None unless P is positive
    definite (an improper posterior: a flat prior on a direction the data do not pin down).
    """
    precision = np.asarray(precision, dtype=float)
    try:
        factor = np.linalg.cholesky(precision)
    except np.linalg.LinAlgError:
        return None
    inverse_factor = np.linalg.solve(factor, np.eye(len(precision)))
    covariance = inverse_factor.T @ inverse_factor
    mean = covariance @ np.asarray(information, dtype=float)
    log_det = 2.0 * float(np.sum(np.log(np.diag(factor))))
    return InformationPosterior(mean, covariance, precision, log_det)
