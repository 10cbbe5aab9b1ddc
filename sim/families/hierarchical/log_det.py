"""ln|det H| of the energy's Hessian H (the Laplace term of F, ``free_energy``): by block
elimination of its dense block-tridiagonal blocks (sum of n_l^3 instead of N^3), or from the
sparse LU factors of a scipy.sparse H.

NumPy's LAPACK only: a second OpenBLAS (SciPy's, with its own spinning thread pool) made a run
with the default threads 3x slower; SciPy is used only for the sparse LU.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse
import scipy.sparse.linalg


def block_log_abs_det(diagonal_blocks: Sequence[np.ndarray],
                      upper_blocks: Sequence[np.ndarray], overwrite: bool = False
                      ) -> float | None:
    """ln|det H| of a symmetric block-tridiagonal H (diagonal blocks D_b, upper blocks U_b
    between b and b + 1) by block elimination from both ends towards the largest block k:

        S_0 = D_0,          S_{b+1} = D_{b+1} - U_b' S_b^{-1} U_b          (b + 1 < k)
        T_{m-1} = D_{m-1},  T_{b-1} = D_{b-1} - U_{b-1} T_b^{-1} U_{b-1}'  (b - 1 > k)
        R = D_k - U_{k-1}' S_{k-1}^{-1} U_{k-1} - U_k T_{k+1}^{-1} U_k'

    and ln|det H| = sum ln|det S_b| + sum ln|det T_b| + ln|det R|. It costs sum n_b^3 (and
    the products) instead of N^3, and the largest block, eliminated last, is only factorised
    for its determinant (1000-500-100: one LU of 500 and a product, not two LUs of 500). None
    if a complement is singular (H may not be: the caller falls back to the whole matrix).
    ``overwrite``: the complements may be formed in the diagonal blocks' own arrays (no n x n
    temporaries)."""
    sizes = [np.shape(block)[0] for block in diagonal_blocks]
    largest = sizes.index(max(sizes))  # the first largest, as np.argmax (without its list copy)
    above = _eliminate(diagonal_blocks[:largest], upper_blocks[:largest], overwrite)
    below = _eliminate(diagonal_blocks[largest + 1:][::-1],  # the chain below, from its end
                       [upper.T for upper in upper_blocks[largest:][::-1]], overwrite)
    if above is None or below is None:
        return None
    (total_above, incoming), (total_below, from_below) = above, below
    last = _complement(diagonal_blocks[largest], incoming, overwrite)
    last = _complement(last, from_below, overwrite or incoming is not None)
    sign, log_det = np.linalg.slogdet(last)
    return None if sign == 0 else total_above + total_below + float(log_det)


def _eliminate(diagonal_blocks: Sequence[np.ndarray], couplings: Sequence[np.ndarray],
               overwrite: bool) -> tuple[float, np.ndarray | None] | None:
    """Eliminate a chain of blocks in order, C_b coupling block b to the next:
    S_0 = D_0, S_{b+1} = D_{b+1} - C_b' S_b^{-1} C_b. Returns sum_b ln|det S_b| and what the
    chain takes from the block after it, C' S^{-1} C of its last (None for an empty chain);
    None if a complement is singular."""
    total, incoming = 0.0, None
    for diagonal, coupling in zip(diagonal_blocks, couplings, strict=True):
        schur = _complement(diagonal, incoming, overwrite)
        sign, log_det = np.linalg.slogdet(schur)
        if sign == 0:
            return None
        total += float(log_det)
        incoming = coupling.T @ np.linalg.solve(schur, coupling)
    return total, incoming


def _complement(diagonal: np.ndarray, removed: np.ndarray | None, overwrite: bool
                ) -> np.ndarray:
    """diagonal - removed (in diagonal's array if ``overwrite``)."""
    diagonal = np.asarray(diagonal, dtype=float)
    if removed is None:
        return diagonal
    if overwrite:
        diagonal -= removed
        return diagonal
    return diagonal - removed


def log_abs_det(hessian) -> float:
    """ln|det H| of a dense or a sparse matrix."""
    if not scipy.sparse.issparse(hessian):
        return float(np.linalg.slogdet(hessian)[1])
    try:
        factors = scipy.sparse.linalg.splu(hessian)
    except RuntimeError:  # exactly singular
        return -np.inf
    return float(np.sum(np.log(np.abs(factors.U.diagonal()))))
