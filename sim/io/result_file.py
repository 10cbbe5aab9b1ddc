"""The file side of reading a result: an open HDF5 file read safely, for ``sim.io.reader``.

h5py (and HDF5 below it) raises many kinds of error on a damaged file (truncated, bytes
changed, parts gone): ``READ_ERRORS`` names them, and ``damaged`` turns one into a
``ResultError`` of one line naming the file. ``ResultFile`` holds the open file and the values
read from it so far (a time series as a ``LazyArray``, any other dataset read whole once and
kept); ``Datasets`` is a read-only mapping of some of them by name. ``read_attributes`` decodes
a node's attributes and refuses text that is not UTF-8 (``check_utf8``); ``dtype_kind`` is a
dataset's kind of values for the schema check; ``read_matrix`` reads what ``write_matrix``
wrote. ``sim.io.reader`` builds the ``Result`` (and ``load``) on these.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from sim.errors import MissingDatasetError, ResultError
from sim.io.lazy import UNSUPPORTED_BY_H5PY, LazyArray

# what h5py (and HDF5 below it) raises for a damaged file: truncated, bytes changed, parts gone
READ_ERRORS = (OSError, KeyError, ValueError, TypeError, RuntimeError, IndexError,
               AttributeError, OverflowError, SystemError)


def damaged(path: Path, where: str, err: BaseException) -> ResultError:
    """The one-line error of a file h5py could not read (``where``: what was being read)."""
    text = " ".join(f"{type(err).__name__}: {err}".split())
    return ResultError(f"{path}: damaged pcsim result ({where}{text[:300]})")


def read_matrix(group: h5py.Group, name: str) -> Any:
    """What ``write_matrix`` wrote: a NumPy array, or a scipy.sparse CSR matrix."""
    node = group[name]
    if isinstance(node, h5py.Dataset):
        return node[()]
    import scipy.sparse

    return scipy.sparse.csr_matrix(
        (node["data"][()], node["indices"][()], node["indptr"][()]),
        shape=tuple(int(n) for n in node.attrs["shape"]))


class ResultFile:
    """The open HDF5 file of a result, the dataset values read from it so far, and the time
    series (``LazyArray``) handed out."""

    def __init__(self, path: Path, handle: h5py.File, series: dict[str, dict[str, Any]]) -> None:
        self.path = path
        self.handle = handle
        self.values: dict[str, Any] = {}
        self.series = series  # HDF5 path -> shape, dtype, chunks, units of each time series

    def dataset(self, name: str) -> h5py.Dataset:
        if not self.handle:  # an h5py File is false once closed
            raise ResultError(f"{self.path}: closed, /{name} was not read; read datasets before "
                              "close() (or inside `with sim.load(...) as result:`; a time "
                              "series with np.asarray or a slice), or load the file again")
        return self.handle[name]

    def read(self, name: str, selection: Any = ()) -> Any:
        try:
            return _decode(self.dataset(name)[selection])
        except ResultError:
            raise
        except READ_ERRORS as err:
            whole = isinstance(selection, tuple) and not selection
            if isinstance(err, UNSUPPORTED_BY_H5PY) and not whole:
                raise  # a selection h5py cannot do: a LazyArray reads it whole, NumPy indexes
            raise damaged(self.path, f"/{name}: ", err) from err

    def value(self, name: str) -> Any:
        """A time series as a ``LazyArray``; any other dataset read whole and kept."""
        if name not in self.values:
            if name in self.series:
                self.values[name] = LazyArray(name, read=lambda where: self.read(name, where),
                                              **self.series[name])
            else:
                self.values[name] = self.read(name)
        return self.values[name]


class Datasets(Mapping[str, Any]):
    """Datasets of a result by name (read-only): a time series as a ``LazyArray``, any other
    dataset read on first access and kept.

    ``keys()``, ``in``, ``len`` and iteration read no data; ``values()`` and ``items()`` read
    every dataset they reach that is not a time series.
    """

    def __init__(self, file: ResultFile, paths: dict[str, str]) -> None:
        self._file = file
        self._paths = paths  # name here -> HDF5 path

    def __getitem__(self, name: str) -> Any:
        if name not in self._paths:
            raise MissingDatasetError(f"{self._file.path}: no dataset {name!r} here "
                                      f"({len(self._paths)} datasets; pcsim show lists them)")
        return self._file.value(self._paths[name])

    def __contains__(self, name: object) -> bool:
        return name in self._paths

    def __iter__(self) -> Iterator[str]:
        return iter(self._paths)

    def __len__(self) -> int:
        return len(self._paths)

    def __repr__(self) -> str:
        read = sum(path in self._file.values and path not in self._file.series
                   for path in self._paths.values())
        return f"<{len(self)} datasets of {self._file.path}, {read} read>"


def _decode(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.ndarray) and value.dtype.kind in "OS":
        return np.array([_decode(v) for v in value.ravel()], dtype=object).reshape(value.shape)
    return value


def check_utf8(path: Path, text: str | bytes, what: str) -> None:
    """Refuse text that is not UTF-8 (h5py keeps undecodable bytes as lone surrogates, which
    no one can print, or as bytes): changed bytes in a name or a text attribute."""
    try:
        text.decode("utf-8") if isinstance(text, bytes) else text.encode("utf-8")
    except UnicodeError:
        raise ResultError(f"{path}: damaged pcsim result ({what} is not UTF-8 text)") from None


def read_attributes(path: Path, node: h5py.HLObject) -> dict[str, Any]:
    """The attributes of ``node``, decoded; text that is not UTF-8 is refused (``check_utf8``)."""
    found = {}
    for key, value in node.attrs.items():
        where = f"attribute {key!r} of /{node.name.lstrip('/')}"
        check_utf8(path, key, where)
        found[key] = _decode(value)
        texts = found[key].ravel() if isinstance(found[key], np.ndarray) else [found[key]]
        for text in texts:
            if isinstance(text, str):
                check_utf8(path, text, where)
    return found


def dtype_kind(dtype: np.dtype) -> str:
    """A dataset's kind of values for the schema: ``text``, ``integer``, ``float``, ``bool``
    or ``other``."""
    if h5py.check_string_dtype(dtype) is not None or dtype.kind in "SU":
        return "text"
    return {"i": "integer", "u": "integer", "f": "float", "b": "bool"}.get(dtype.kind, "other")
