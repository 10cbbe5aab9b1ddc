"""``sim.open_sweep``: a sweep's grid and one table row per point (h5py and NumPy; pandas if
installed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from sim.sweeps.index import SweepIndex, read_index


def _column(values: list[Any]) -> np.ndarray:
    """A table column: floats when every value is a number, else objects."""
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return np.array(values, dtype=float)
    column = np.empty(len(values), dtype=object)
    for row, value in enumerate(values):  # lists stay whole, one per row
        column[row] = value
    return column


class Sweep:
    """An opened sweep: ``grid`` (axis key -> values, and ``seed``), ``table`` (one row per
    point: the axes' values, ``seed``, ``status``, ``error``, ``file``, then the summary
    columns of ``sim.sweeps.summary``), ``counts`` and ``result(row)`` (``sim.load`` of a
    point's file)."""

    def __init__(self, index: SweepIndex) -> None:
        self.index = index
        self.path = index.path
        self.folder = index.folder
        self.grid: dict[str, list[Any]] = {**index.axes, "seed": list(index.seeds)}

    @property
    def axes(self) -> list[str]:
        return list(self.index.axes)

    @property
    def counts(self) -> dict[str, int]:
        return self.index.counts()

    def columns(self) -> dict[str, np.ndarray]:
        index = self.index
        rows = range(len(index.files))
        out: dict[str, np.ndarray] = {key: _column([index.values(r)[key] for r in rows])
                                      for key in index.axes}
        out["seed"] = np.asarray(index.point_seeds, dtype=np.int64)
        out["status"] = np.array(index.status, dtype=object)
        out["error"] = np.array(index.errors, dtype=object)
        out["file"] = np.array([str(self.folder / f) for f in index.files], dtype=object)
        for i, name in enumerate(index.summary_columns):
            out[name] = index.summary[:, i]
        return out

    @property
    def table(self) -> Any:
        """A pandas DataFrame when pandas is installed, else a NumPy structured array."""
        columns = self.columns()
        try:
            import pandas
        except ImportError:
            dtype = [(name, values.dtype) for name, values in columns.items()]
            table = np.empty(len(self.index.files), dtype=dtype)
            for name, values in columns.items():
                table[name] = values
            return table
        return pandas.DataFrame(columns)

    def result(self, row: int):
        """The result file of point ``row`` (``sim.load``)."""
        from sim.io.reader import load

        return load(self.folder / self.index.files[row], allow_incomplete=True)

    def __repr__(self) -> str:
        counts = ", ".join(f"{n} {s}" for s, n in self.counts.items())
        return f"<Sweep {self.path}: {len(self.index.files)} points ({counts})>"


def open_sweep(folder_or_index: str | Path) -> Sweep:
    """Open a sweep by its folder or its index file (``sweep.h5``)."""
    return Sweep(read_index(folder_or_index))
