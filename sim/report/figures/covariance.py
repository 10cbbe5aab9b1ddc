"""The learned covariance panel of a hierarchical figure (``circuits.covariance``).

Sigma of each level that learns it, entry by entry, at each trial's end, against the sample
covariance of the input it learns from (each trial's input at its start, about the trials'
mean) and, where every trial of the scenario draws its input with one ``trial_covariance``,
the covariance it was drawn with: the true value. Reads the result only.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from sim.io.reader import Result
from sim.report.figures.references import shared_stimulus


def covariance_paths(result: Result) -> list[str]:
    return [path for path in result.datasets if path.endswith("/covariance")]


def drawn_covariance(result: Result) -> np.ndarray | None:
    """The ``trial_covariance`` every trial of the scenario draws its input with (None if the
    trials do not share one): read from the scenario's source stored in the result."""
    value = shared_stimulus(result, "trial_covariance")
    if value is None:
        return None
    value = np.asarray(value, dtype=float)
    return np.diag(np.broadcast_to(value, (1,))) if value.ndim == 0 else (
        np.diag(value) if value.ndim == 1 else value)


def draw_covariance(result: Result, axis: plt.Axes) -> None:
    """Sigma_ij over trials (one line per entry), the sample covariance of the input
    (dotted) and the drawn covariance (dashed), where known."""
    trials = np.arange(1, len(result.trials["t_start"]) + 1)
    inputs = None
    if "levels/input/input" in result:  # level 0 at each trial's start
        starts = np.searchsorted(result.time, np.asarray(result.trials["t_start"]) - 1e-12)
        inputs = np.asarray(result["levels/input/input"])[np.clip(starts, 0,
                                                                  len(result.time) - 1)]
    drawn = drawn_covariance(result)
    for path in covariance_paths(result):
        sigma = np.asarray(result[path])
        level = path.split("/")[1]
        n = sigma.shape[1]
        for i in range(n):
            for j in range(i, n):
                label = f"{level} Sigma[{i},{j}]"
                line, = axis.plot(trials[:len(sigma)], sigma[:, i, j], lw=1.0, label=label)
                if drawn is not None and drawn.shape == (n, n):
                    axis.axhline(drawn[i, j], color=line.get_color(), ls="--", lw=1.0)
                if inputs is not None and inputs.shape[1] == n and len(inputs) > 1:
                    sample = np.atleast_2d(np.cov(inputs.T))
                    axis.axhline(sample[i, j], color=line.get_color(), ls=":", lw=1.0)
    axis.set_xlabel("trial")
    axis.set_ylabel("learned covariance\nSigma", fontsize=8)
    axis.set_title("Sigma at each trial's end; dashed: the covariance the input is drawn with; "
                   "dotted: the inputs' sample covariance", fontsize=8)
    axis.legend(fontsize=7, loc="best")
