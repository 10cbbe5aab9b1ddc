"""The generative mapping g_l by which level l predicts level l-1, and its derivatives.

Two forms, chosen per level:

- ``before``:  g(mu) = W f(mu)        (Bogacz 2017, section 4; f = mu**2 gives his exercise 2)
- ``after``:   g(mu) = f(W mu)

with W of shape (n_below, n_here), dense or scipy.sparse. The free-energy gradient needs the
transposed Jacobian applied to the precision-weighted error from below, J' eps; the Laplace
term needs J itself and the curvature sum_i eps_i d2 g_i / dmu dmu'. These are pure NumPy
functions shared by the dense coupling, the free-energy monitor and analysis code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import scipy.sparse

from sim.nonlinearity import Nonlinearity

Site = Literal["before", "after"]
Matrix = np.ndarray | scipy.sparse.csr_matrix


def dense(matrix: Matrix) -> np.ndarray:
    return matrix.toarray() if scipy.sparse.issparse(matrix) else np.asarray(matrix)


@dataclass
class GenerativeMap:
    """g(mu) from the level above (``n_here`` units) to the level below (``n_below`` units)."""

    weights: Matrix
    nonlinearity: Nonlinearity
    site: Site = "before"

    @property
    def shape(self) -> tuple[int, int]:
        return self.weights.shape

    def predict(self, mu: np.ndarray) -> np.ndarray:
        """g(mu)."""
        if self.site == "before":
            return self.weights @ self.nonlinearity.f(mu)
        return self.nonlinearity.f(self.weights @ mu)

    def pull_back(self, mu: np.ndarray, error_below: np.ndarray) -> np.ndarray:
        """J(mu)' eps_below: the error from below carried up through the Jacobian of g."""
        if self.site == "before":
            return self.nonlinearity.df(mu) * (self.weights.T @ error_below)
        return self.weights.T @ (self.nonlinearity.df(self.weights @ mu) * error_below)

    def jacobian(self, mu: np.ndarray) -> np.ndarray:
        """dg/dmu as a dense (n_below, n_here) matrix."""
        weights = dense(self.weights)
        if self.site == "before":
            return weights * self.nonlinearity.df(mu)[np.newaxis, :]
        return self.nonlinearity.df(weights @ mu)[:, np.newaxis] * weights

    def curvature(self, mu: np.ndarray, error_below: np.ndarray) -> np.ndarray:
        """sum_i eps_i d^2 g_i / dmu dmu' as a dense (n_here, n_here) matrix."""
        if self.nonlinearity.is_identity:
            return np.zeros((self.shape[1], self.shape[1]))
        if self.site == "before":
            return np.diag(self.nonlinearity.d2f(mu) * (self.weights.T @ error_below))
        weights = dense(self.weights)
        drive = self.nonlinearity.d2f(weights @ mu) * error_below
        return weights.T @ (drive[:, np.newaxis] * weights)

    def weight_gradient_factors(
        self, mu: np.ndarray, error_below: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(a, b) with -dF/dW = outer(a, b): the Hebbian factors of the weight update."""
        if self.site == "before":
            return error_below, self.nonlinearity.f(mu)
        return self.nonlinearity.df(self.weights @ mu) * error_below, mu
