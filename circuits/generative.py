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

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Literal

import numpy as np
import scipy.sparse

from circuits import lane_elementwise, lane_products
from circuits.nonlinearity import Nonlinearity

Site = Literal["before", "after"]
Matrix = np.ndarray | scipy.sparse.csr_matrix


def dense(matrix: Matrix) -> np.ndarray:
    return matrix.toarray() if scipy.sparse.issparse(matrix) else np.asarray(matrix)


def _product(matrix: Matrix, vector: np.ndarray, out: np.ndarray | None,
             rows: bool = False) -> np.ndarray:
    """matrix @ vector, written into ``out`` if given (in place for dense matrices).

    ``rows``: ``vector`` is a (B, n) stack of B vectors, one per row (the B copies of a
    batched run, ``sim.batch``): each row's product, vector @ matrix' (one matrix-matrix
    product), one per row of the result.
    """
    if rows:
        return _row_products(matrix, vector, out)
    if out is None:
        return matrix @ vector
    if scipy.sparse.issparse(matrix):
        np.copyto(out, matrix @ vector)
    else:
        np.dot(matrix, vector, out=out)
    return out


COLUMN_FORM_ROWS = 64  # below this many rows, _row_products runs as matrix @ rows'


def _row_products(matrix: Matrix, rows: np.ndarray, out: np.ndarray | None) -> np.ndarray:
    """matrix @ row for every row of ``rows`` (B, n): (B, m), into ``out`` if given.

    For few rows (B < ``COLUMN_FORM_ROWS``) a dense product runs as (matrix @ rows') and its
    transpose is copied out: BLAS blocks the (m, B) shape better than the (B, m) one. Measured
    with OpenBLAS 0.3.30 on one core, 1000 x 500 weights, the pair of products of one step:
    2.3x faster at B = 2, 1.6x at B = 16 (float32), 1.0-1.2x in float64; from B = 64 on,
    the row form is as fast or faster (0.94x at B = 128, float64). Where the compiled loop of
    ``circuits.lane_products`` takes them (dense, B = 16 float32 copies, 8 float64, ... below
    ``COLUMN_FORM_ROWS``), it runs them instead: 1.4x (float32) and 1.7x (float64) faster than
    the column form at B = 16.
    """
    if scipy.sparse.issparse(matrix):
        found = (matrix @ rows.T).T
    elif lane_products.fits(matrix, rows, out, COLUMN_FORM_ROWS):
        return lane_products.products(matrix, rows, out)
    elif len(rows) < COLUMN_FORM_ROWS:
        found = np.dot(matrix, rows.T).T
    elif out is None:
        return rows @ matrix.T
    else:
        np.dot(rows, matrix.T, out=out)
        return out
    if out is None:
        return np.ascontiguousarray(found)
    np.copyto(out, found)
    return out


def scale_rows(factors: np.ndarray, matrix: Matrix) -> Matrix:
    """diag(factors) @ matrix, keeping a sparse matrix sparse (CSR)."""
    if scipy.sparse.issparse(matrix):
        return (scipy.sparse.diags(factors) @ matrix).tocsr()
    return factors[:, np.newaxis] * matrix


@dataclass
class GenerativeMap:
    """g(mu) from the level above (``n_here`` units) to the level below (``n_below`` units).

    ``predict`` and ``pull_back`` take ``rows=True`` for (B, n) stacks of beliefs and errors,
    one copy per row (a batched run, ``sim.batch``), and return one row per copy (without it a
    2-D ``mu`` is a stack of columns, as the grid references use).
    """

    weights: Matrix
    nonlinearity: Nonlinearity
    site: Site = "before"

    @property
    def shape(self) -> tuple[int, int]:
        return self.weights.shape

    def predict(self, mu: np.ndarray, out: np.ndarray | None = None,
                drive: np.ndarray | None = None, rows: bool = False,
                activation: np.ndarray | None = None) -> np.ndarray:
        """g(mu), written into ``out`` if given; for g = f(W mu), W mu goes into ``drive`` if
        given (``pull_back`` reuses it); ``activation``: f(mu) if already known (the belief
        units' ``activation``, ``circuits.coupling``). f is skipped for the identity."""
        f = self.nonlinearity
        if self.site == "before" or f.is_identity:
            if activation is None:
                activation = mu if f.is_identity else f.f(mu)
            return _product(self.weights, activation, out, rows)
        drive = _product(self.weights, mu, drive, rows)
        if out is None:
            return f.f(drive)
        np.copyto(out, f.f(drive))
        return out

    def push_forward(self, mu: np.ndarray, v: np.ndarray) -> np.ndarray:
        """J(mu) v: how the prediction moves when mu moves by v."""
        if self.site == "before":
            return self.weights @ (self.nonlinearity.df(mu) * v)
        return self.nonlinearity.df(self.weights @ mu) * (self.weights @ v)

    def pull_back(self, mu: np.ndarray, error_below: np.ndarray, out: np.ndarray | None = None,
                  drive: np.ndarray | None = None, transposed: Matrix | None = None,
                  rows: bool = False, activation: np.ndarray | None = None) -> np.ndarray:
        """J(mu)' eps_below: the error from below carried up through the Jacobian of g.

        Written into ``out`` if given. ``drive`` is W mu if already known (g = f(W mu)),
        ``transposed`` W' in a faster layout (a CSR copy of sparse weights), ``activation``
        f(mu) if already known (f' is then taken from it where it can be, ``df_of_f``).
        """
        f = self.nonlinearity
        if self.site == "after" and not f.is_identity:
            drive = _product(self.weights, mu, None, rows) if drive is None else drive
            error_below = f.df(drive) * error_below
        out = _product(self.weights.T if transposed is None else transposed, error_below, out,
                       rows)
        if self.site == "before" and not f.is_identity:
            out *= (f.df(mu) if activation is None or f.df_of_f is None
                    else f.df_of_f(activation))
        return out

    def predict_call(self, mu: np.ndarray, out: np.ndarray, drive: np.ndarray | None = None,
                     rows: bool = False, activation: np.ndarray | None = None
                     ) -> Callable[[], object]:
        """``predict(mu, out, drive, rows, activation)`` as a call of no arguments on these
        arrays, its branches taken now: the dense coupling's step, whose arrays stay (Brian2's
        state; weights change only in place). The same numbers as ``predict``; for one copy of
        dense weights with g = W f(mu) it is the one BLAS call (f(mu) in ``activation``, which
        the caller fills), without ``predict``'s dispatch at every step; for B copies that
        ``circuits.lane_products`` takes, its one call. Both bind the weights array now, at
        build: changes in place are followed, a replaced ``self.weights`` is not (nothing
        replaces it after build; batched runs refuse learning)."""
        f = self.nonlinearity
        general = partial(self.predict, mu, out=out, drive=drive, rows=rows,
                          activation=activation)
        if self.is_sparse or self.site != "before" or (activation is None and not f.is_identity):
            return general
        operand = mu if activation is None else activation
        if rows:
            return lane_products.bound(self.weights, operand, out, COLUMN_FORM_ROWS) or general
        return partial(np.dot, self.weights, operand, out=out)

    def pull_back_call(self, mu: np.ndarray, error_below: np.ndarray, out: np.ndarray,
                       drive: np.ndarray | None, transposed: Matrix, rows: bool = False,
                       activation: np.ndarray | None = None) -> Callable[[], object]:
        """``pull_back(mu, error_below, out, drive, transposed, rows, activation)`` as a call
        of no arguments, as ``predict_call``: for one copy of dense weights with g = W f(mu),
        W' eps into ``out`` (one BLAS call, or for B copies ``circuits.lane_products``' where
        it takes them), then scaled in place by f'(mu)."""
        f = self.nonlinearity
        general = partial(self.pull_back, mu, error_below, out=out, drive=drive,
                          transposed=transposed, rows=rows, activation=activation)
        if self.is_sparse or self.site != "before":
            return general
        if not rows:
            product = partial(np.dot, transposed, error_below, out=out)
        elif (product := lane_products.bound(transposed, error_below, out,
                                             COLUMN_FORM_ROWS)) is None:
            return general
        if f.is_identity:
            return product
        if rows and f.is_tanh and activation is not None and (
                scale := lane_elementwise.slope_call(activation, out)) is not None:

            def compiled() -> None:  # out *= 1 - activation**2, NumPy's bits in one pass
                product()
                scale()

            return compiled
        if activation is None or f.df_of_f is None:
            slope, at = f.df, mu
        else:
            slope, at = f.df_of_f, activation

        def call() -> None:
            product()
            np.multiply(out, slope(at), out=out)

        return call

    @property
    def is_sparse(self) -> bool:
        return scipy.sparse.issparse(self.weights)

    def jacobian(self, mu: np.ndarray) -> Matrix:
        """dg/dmu, (n_below, n_here): dense, or sparse (CSR) when W is."""
        df = self.nonlinearity.df(mu if self.site == "before" else self.weights @ mu)
        if self.is_sparse:
            scale = scipy.sparse.diags(df)
            return (self.weights @ scale if self.site == "before" else scale @ self.weights).tocsr()
        if self.site == "before":
            return self.weights * df[np.newaxis, :]
        return df[:, np.newaxis] * self.weights

    def curvature(self, mu: np.ndarray, error_below: np.ndarray) -> Matrix:
        """sum_i eps_i d^2 g_i / dmu dmu', (n_here, n_here): dense, or sparse when W is."""
        on_diagonal = self.curvature_diagonal(mu, error_below)
        if on_diagonal is not None:
            return (scipy.sparse.diags if self.is_sparse else np.diag)(on_diagonal)
        drive = self.nonlinearity.d2f(self.weights @ mu) * error_below
        return self.weights.T @ scale_rows(drive, self.weights)

    def curvature_diagonal(self, mu: np.ndarray, error_below: np.ndarray) -> np.ndarray | None:
        """The curvature's diagonal where it has nothing else (g = W f(mu): f acts unit by unit;
        a linear g: zero), None where it is a full matrix (g = f(W mu))."""
        if self.nonlinearity.is_identity:
            return np.zeros(self.shape[1])
        if self.site == "before":
            return self.nonlinearity.d2f(mu) * (self.weights.T @ error_below)
        return None

    def weight_sensitivity(self, mu: np.ndarray) -> np.ndarray:
        """||dg_i/dW_i||^2 per row i: how strongly W's row i moves prediction i."""
        f = self.nonlinearity
        if self.site == "before":
            return np.full(self.shape[0], float(np.sum(f.f(mu) ** 2)))
        return f.df(self.weights @ mu) ** 2 * float(np.sum(mu**2))

    def weight_gradient_factors(
        self, mu: np.ndarray, error_below: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(a, b) with -dF/dW = outer(a, b): the Hebbian factors of the weight update."""
        if self.site == "before":
            return error_below, self.nonlinearity.f(mu)
        return self.nonlinearity.df(self.weights @ mu) * error_below, mu


def local_weights(
    below: tuple[int, int], here: tuple[int, int], field: tuple[int, int],
    scale: float, rng: np.random.Generator,
) -> scipy.sparse.csr_matrix:
    """Local receptive fields: W (n_below, n_here) as CSR, both levels on 2-D grids (row-major).

    Unit (r, c) of the ``here`` grid (H x W) is centred on unit (floor((r + 1/2) H_b / H),
    floor((c + 1/2) W_b / W)) of the ``below`` grid (H_b x W_b) and connects to the
    ``field`` = (f_r, f_c) window around it (offsets -f//2 .. f-1-f//2), clipped at the borders.
    Weights are normal with standard deviation scale / sqrt(f_r f_c) (fan-in scaling).
    """
    (rows_b, cols_b), (rows_h, cols_h), (f_r, f_c) = below, here, field
    centre_r = ((2 * np.arange(rows_h) + 1) * rows_b) // (2 * rows_h)
    centre_c = ((2 * np.arange(cols_h) + 1) * cols_b) // (2 * cols_h)
    r = centre_r[:, None, None, None] + (np.arange(f_r) - f_r // 2)[None, None, :, None]
    c = centre_c[None, :, None, None] + (np.arange(f_c) - f_c // 2)[None, None, None, :]
    unit = (np.arange(rows_h)[:, None] * cols_h + np.arange(cols_h)[None, :])[:, :, None, None]
    r, c, unit = np.broadcast_arrays(r, c, unit)
    inside = (r >= 0) & (r < rows_b) & (c >= 0) & (c < cols_b)
    target, source = (r * cols_b + c)[inside], unit[inside]
    values = rng.normal(0.0, scale / np.sqrt(f_r * f_c), size=target.size)
    return scipy.sparse.csr_matrix((values, (target, source)),
                                   shape=(rows_b * cols_b, rows_h * cols_h))
