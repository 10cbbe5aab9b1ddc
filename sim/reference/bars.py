"""Foldiak's bars: the true bars as images, and how well learned basis images match them.

Pure NumPy and SciPy (tests and the ``bars_match`` readout use it). A basis image (a column of
the learned W) matches a bar one to one: the Hungarian assignment (``scipy.optimize.
linear_sum_assignment``) of bars to columns that maximises the summed Pearson correlation.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment


def true_bars(size: int, value: float = 1.0) -> np.ndarray:
    """The 2 ``size`` bars as flattened ``size`` x ``size`` images (row-major), one per row:
    bar k < size is row k of the grid, bar size + k its column k."""
    bars = np.zeros((2 * size, size, size))
    for k in range(size):
        bars[k, k, :] = value
        bars[size + k, :, k] = value
    return bars.reshape(2 * size, -1)


def matched_correlations(weights: np.ndarray, bars: np.ndarray) -> np.ndarray:
    """Per bar (row of ``bars``), the Pearson correlation with the column of ``weights``
    assigned to it one to one (columns of no variance correlate 0)."""
    centred_bars = bars - bars.mean(axis=1, keepdims=True)
    centred = weights - weights.mean(axis=0, keepdims=True)
    norms = np.linalg.norm(centred_bars, axis=1)[:, None] * np.linalg.norm(centred, axis=0)
    correlation = centred_bars @ centred / np.where(norms > 0, norms, np.inf)
    rows, columns = linear_sum_assignment(-correlation)
    matched = np.zeros(len(bars))
    matched[rows] = correlation[rows, columns]
    return matched
