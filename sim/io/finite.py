"""Which non-finite values a result may hold: NaN only in a dataset whose writer declares what
a NaN there means, +-Inf nowhere.

The code that writes a dataset that may hold NaN gives it the attribute ``nan_means`` (a
sentence: a reaction time's NaN is a miss, ``free_energy``'s a sample without the Laplace
term; docs/results.md lists them). Any other non-finite value is a number the run failed to
compute, so a result holding one is not ``complete``: ``ResultWriter.commit`` raises
``NonFiniteData`` and the engine marks the file ``diverged`` (exit 3). Streams are checked
band by band as they are written (``StreamedDataset.check``), never read back; every other
dataset (tables, weights, snapshots) is read back at the commit, a band of rows at a time. A
resumed run's streams check the rows copied back from its checkpoint the same way
(``StreamedDataset.append``, ``sim.checkpoint.copy_result``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import h5py
import numpy as np

NAN_MEANS = "nan_means"  # the attribute: what a NaN in the dataset means
BAND_BYTES = 8 << 20  # read back a band of rows this large at a time, at most


@dataclass(frozen=True)
class NonFinite:
    """The first value of a dataset that it may not hold: where (``path``, ``index``, the
    first axis being samples when ``streamed``) and what it is."""

    path: str
    index: tuple[int, ...]
    value: complex | float
    nan_declared: bool
    streamed: bool

    def describe(self) -> str:
        where = ", ".join(str(i) for i in self.index)
        allowed = ("declares a meaning for NaN only" if self.nan_declared else
                   f"declares no meaning for NaN (no '{NAN_MEANS}' attribute)")
        return f"{self.path.lstrip('/')}[{where}] = {self.value}, and the dataset {allowed}"


class NonFiniteData(Exception):  # noqa: N818 - what the commit found, not a program error
    """A dataset holds a value that ``nan_means`` does not allow (``found``)."""

    def __init__(self, found: NonFinite) -> None:
        super().__init__(found.describe())
        self.found = found


def nan_allowed(attrs: Any) -> bool:
    """Whether a dataset with these attributes declares what its NaN values mean."""
    return NAN_MEANS in attrs


def first_disallowed(values: Any, nan_ok: bool, offset: int = 0
                     ) -> tuple[tuple[int, ...], Any] | None:
    """The index (``offset`` added on axis 0) and value of the first entry of ``values``
    that is +-Inf, or NaN unless ``nan_ok``; None when there is none (or not numbers).
    One sum over the array decides in the usual case: finite only if every entry is."""
    values = np.asarray(values)
    if values.dtype.kind not in "fc" or not values.size:
        return None
    with np.errstate(all="ignore"):  # a sum of large finite values may overflow: looked at
        if np.isfinite(np.add.reduce(values, axis=None)):
            return None
    bad = np.isinf(values) if nan_ok else ~np.isfinite(values)
    if not bad.any():
        return None
    index = np.unravel_index(int(np.argmax(bad)), values.shape)
    value = values[index]
    if index:
        index = (int(index[0]) + offset, *(int(i) for i in index[1:]))
    return tuple(index), value.item()


def check_dataset(dataset: h5py.Dataset) -> NonFinite | None:
    """Read ``dataset`` back a band of rows at a time: its first value not allowed."""
    if dataset.dtype.kind not in "fc" or not dataset.size:
        return None
    nan_ok = nan_allowed(dataset.attrs)
    if dataset.ndim == 0:
        bands = [(0, dataset[()])]
    else:
        rows = max(1, BAND_BYTES * dataset.shape[0] // (dataset.dtype.itemsize * dataset.size))
        bands = ((start, dataset[start:start + rows])
                 for start in range(0, dataset.shape[0], rows))
    for start, values in bands:
        found = first_disallowed(values, nan_ok, start)
        if found:
            return NonFinite(dataset.name, found[0], found[1], nan_ok, False)
    return None


def check_file(group: h5py.Group, skip: set[str]) -> NonFinite | None:
    """The first value not allowed in any dataset under ``group`` but those named in
    ``skip`` (their absolute paths: the streams, checked as they were written)."""
    found: list[NonFinite] = []

    def visit(name: str, item: Any) -> bool | None:
        if isinstance(item, h5py.Dataset) and item.name not in skip:
            bad = check_dataset(item)
            if bad:
                found.append(bad)
                return True  # stops the visit
        return None

    group.visititems(visit)
    return found[0] if found else None
