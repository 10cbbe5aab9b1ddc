"""Snapshots of learned parameters: ``snapshots/`` of a result (docs/results.md).

Every ``[record] snapshots_every`` trials (and after the last), the learned parameters are
appended along axis 0 of datasets that grow with the run, so an interrupted run keeps those
taken so far: ``snapshots/trial`` (the trial's row in ``trials/``) and one dataset per
parameter, by the path the mechanism gives (``snapshots/levels/<name>/weights``, ...).
"""

from __future__ import annotations

from typing import Any

import h5py
import numpy as np

BYTES_PER_NUMBER = 8


class SnapshotWriter:
    """Appends one snapshot per call to ``add``; datasets are made at the first."""

    def __init__(self, group: h5py.Group) -> None:
        self.group = group
        self.datasets: dict[str, h5py.Dataset] = {}

    def _dataset(self, path: str, value: np.ndarray) -> h5py.Dataset:
        if path not in self.datasets and path in self.group:  # a resumed run's (sim.checkpoint)
            self.datasets[path] = self.group[path]
        if path not in self.datasets:
            self.datasets[path] = self.group.create_dataset(
                path, shape=(0, *value.shape), maxshape=(None, *value.shape), dtype=value.dtype,
                chunks=(1, *value.shape) if value.size else None)
            self.datasets[path].attrs["units"] = "1"
        return self.datasets[path]

    def add(self, trial: int, values: dict[str, Any]) -> None:
        for path, value in {"trial": np.array(trial), **values}.items():
            value = np.asarray(value, dtype=np.int64 if path == "trial" else np.float64)
            dataset = self._dataset(path, value)
            dataset.resize(dataset.shape[0] + 1, axis=0)
            dataset[-1] = value


def snapshot_count(trials: int, every: int) -> int:
    """How many snapshots a run of ``trials`` takes: after every ``every``-th trial and after
    the last (0: none)."""
    if not every or not trials:
        return 0
    return trials // every + (trials % every != 0)


def is_due(position: int, trials: int, every: int) -> bool:
    """Whether a snapshot follows the trial at ``position`` (0-based, running order)."""
    return bool(every) and ((position + 1) % every == 0 or position == trials - 1)


def snapshot_bytes(shapes: dict[str, tuple[int, ...]], count: int) -> int:
    """What ``count`` snapshots of arrays of ``shapes`` take in the file (uncompressed)."""
    per = sum(int(np.prod(shape)) for shape in shapes.values()) + 1
    return count * per * BYTES_PER_NUMBER
