"""A recorded time series read through h5py on demand: ``LazyArray``.

``result["levels/objects/belief"]`` is one of these: it knows its shape, dtype and units from the
file's metadata, and ``series[selection]`` reads only that selection (h5py slicing: one unit's
trace ``series[:, 3]``, a time window ``series[1000:2000]``). ``np.asarray(series)`` (or
``series[()]``) reads all of it, and so do arithmetic (``series * 1e3``, ``a - b``, NumPy
ufuncs and functions) and NumPy array methods (``series.sum(axis=1)``, ``.T``, ``.tolist()``):
the result is a plain NumPy array. Nothing is kept: each read goes to the file, which must
still be open.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from numpy.lib.mixins import NDArrayOperatorsMixin

from sim.errors import ResultError

# what h5py raises for a selection it cannot do (decreasing or repeated indices, a negative
# step, several index arrays): NumPy then does it on the whole array
UNSUPPORTED_BY_H5PY = (TypeError, ValueError, IndexError, NotImplementedError)


class LazyArray(NDArrayOperatorsMixin):
    """A dataset of an open result, read when (and as far as) it is indexed."""

    def __init__(self, name: str, shape: tuple[int, ...], dtype: np.dtype,
                 read: Callable[[Any], np.ndarray], chunks: tuple[int, ...] | None = None,
                 units: str = "1") -> None:
        self.name = name
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)
        self.chunks = chunks
        self.units = units
        self._read = read

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of a 0-d dataset")
        return self.shape[0]

    def __repr__(self) -> str:
        return f"<LazyArray /{self.name} {self.shape} {self.dtype} [{self.units}]>"

    def __getitem__(self, selection: Any) -> Any:
        """Read ``selection`` only (h5py slicing); selections h5py cannot do (decreasing or
        repeated indices, negative steps) are read whole and indexed by NumPy."""
        try:
            return self._read(selection)
        except ResultError:  # a damaged file (a ValueError too): not a selection to retry
            raise
        except UNSUPPORTED_BY_H5PY:
            return self._read(())[selection]

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        values = self._read(())
        return values if dtype is None else values.astype(dtype, copy=False)

    def __array_ufunc__(self, ufunc: np.ufunc, method: str, *inputs: Any, **kwargs: Any) -> Any:
        inputs = tuple(np.asarray(x) if isinstance(x, LazyArray) else x for x in inputs)
        if "out" in kwargs:
            kwargs["out"] = tuple(np.asarray(x) if isinstance(x, LazyArray) else x
                                  for x in kwargs["out"])
        return getattr(ufunc, method)(*inputs, **kwargs)

    def __getattr__(self, name: str) -> Any:
        """NumPy array methods and attributes (``sum``, ``max``, ``T``, ``tolist``, ...) on the
        whole series, read now."""
        if name.startswith("_") or not hasattr(np.ndarray, name):
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        return getattr(np.asarray(self), name)

    def __iter__(self) -> Iterator[Any]:
        """Rows in order, read a block of rows (one chunk's worth) at a time."""
        if not self.shape:
            raise TypeError("iteration over a 0-d dataset")
        for _, block in self.blocks():
            yield from block

    def blocks(self, rows: int | None = None) -> Iterator[tuple[slice, np.ndarray]]:
        """``(where, values)`` along axis 0, ``rows`` samples at a time (default: a chunk's
        rows, or about 1 MiB), so that a whole dataset can be reduced in bounded memory."""
        row_bytes = max(1, self.nbytes // max(1, len(self)))
        step = rows or (self.chunks[0] if self.chunks else max(1, (1 << 20) // row_bytes))
        for start in range(0, len(self), step):
            where = slice(start, min(start + step, len(self)))
            yield where, self[where]
