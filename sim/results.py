"""Result files: one self-describing HDF5 file per run (layout in docs/results.md).

Writing goes to a hidden temporary file beside the target, renamed onto the target only when
the run completes (``ResultWriter.commit``); a failed run removes it. ``load`` reads a finished
file into a ``Result``.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import platform
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

SCHEMA_VERSION = 1
CHUNK_SAMPLES = 1024
UNCOMPRESSED_ABOVE = 1 << 20


class ResultError(ValueError):
    """A file that cannot be read as a pcsim result."""


class DivergenceError(RuntimeError):
    """The run blew up (NaN, Inf or a runaway rate): ``path`` holds what came before, marked
    ``status = "diverged"`` with the message in the ``failure`` attribute."""

    def __init__(self, message: str, path: Path) -> None:
        super().__init__(message)
        self.path = path


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM) stopped the run; ``path`` is the kept partial result, or None."""

    def __init__(self, message: str, path: Path | None) -> None:
        super().__init__(message)
        self.message, self.path = message, path


def versions() -> dict[str, str]:
    import brian2

    from sim import __version__

    return {
        "pcsim_version": __version__,
        "brian2_version": brian2.__version__,
        "numpy_version": np.__version__,
        "h5py_version": h5py.__version__,
        "python_version": platform.python_version(),
    }


def write_array(group: h5py.Group, name: str, data: Any, units: str = "1", **attrs: Any) -> None:
    """A complete (non-streamed) dataset, compressed when large enough to matter.

    Arrays of more than ``UNCOMPRESSED_ABOVE`` numbers are stored chunked but not compressed:
    gzip saves ~10% on random weights and costs about a second per 10^7 of them.
    """
    data = np.asarray(data)
    options: dict[str, Any] = {}
    if data.dtype.kind == "U":
        data = data.astype(h5py.string_dtype())
    elif data.size > UNCOMPRESSED_ABOVE:
        options = {"chunks": True}
    elif data.size >= 256:
        options = {"compression": "gzip", "compression_opts": 4, "shuffle": True, "chunks": True}
    dataset = group.create_dataset(name, data=data, **options)
    dataset.attrs["units"] = units
    for key, value in attrs.items():
        dataset.attrs[key] = value


def write_matrix(group: h5py.Group, name: str, matrix: Any, units: str = "1") -> None:
    """A dense array as a dataset; a scipy.sparse matrix as a group of its CSR arrays
    (``data``, ``indices``, ``indptr``; attributes ``format`` = ``csr`` and ``shape``)."""
    import scipy.sparse

    if not scipy.sparse.issparse(matrix):
        write_array(group, name, matrix, units=units)
        return
    matrix = scipy.sparse.csr_matrix(matrix)
    sub = group.create_group(name)
    sub.attrs["format"] = "csr"
    sub.attrs["shape"] = matrix.shape
    sub.attrs["units"] = units
    for part in ("data", "indices", "indptr"):
        write_array(sub, part, getattr(matrix, part), units=units if part == "data" else "1")


def read_matrix(group: h5py.Group, name: str):
    """What ``write_matrix`` wrote: a NumPy array, or a scipy.sparse CSR matrix."""
    node = group[name]
    if isinstance(node, h5py.Dataset):
        return node[()]
    import scipy.sparse

    return scipy.sparse.csr_matrix(
        (node["data"][()], node["indices"][()], node["indptr"][()]),
        shape=tuple(int(n) for n in node.attrs["shape"]))


class StreamedDataset:
    """A dataset that grows along axis 0, filled from an in-memory buffer of ``CHUNK_SAMPLES``."""

    def __init__(self, group: h5py.Group, name: str, width: int | None, units: str,
                 dtype: np.dtype, read: Callable[[], Any], **attrs: Any) -> None:
        shape = (0,) if width is None else (0, width)
        maxshape = (None,) if width is None else (None, width)
        chunk_rows = max(1, min(CHUNK_SAMPLES, (1 << 20) // (8 * max(width or 1, 1))))
        chunks = (chunk_rows,) if width is None else (chunk_rows, width)
        self.dataset = group.create_dataset(
            name, shape=shape, maxshape=maxshape, dtype=dtype, chunks=chunks,
            compression="gzip", compression_opts=4, shuffle=True,
        )
        self.dataset.attrs["units"] = units
        for key, value in attrs.items():
            self.dataset.attrs[key] = value
        self.buffer = np.empty((chunk_rows, *shape[1:]), dtype=dtype)
        self.filled = 0
        self.read = read

    def sample(self) -> None:
        self.buffer[self.filled] = self.read()
        self.filled += 1
        if self.filled == len(self.buffer):
            self.flush()

    def flush(self) -> None:
        if not self.filled:
            return
        start = self.dataset.shape[0]
        self.dataset.resize(start + self.filled, axis=0)
        self.dataset[start:] = self.buffer[: self.filled]
        self.filled = 0


HOST = re.sub(r"[^A-Za-z0-9_]", "_", socket.gethostname())[:32] or "host"
PARTIAL = re.compile(r"^\.(?P<name>.+)\.(?P<host>[A-Za-z0-9_]+)-(?P<pid>\d+)\.partial$")


def remove_stale_partials(folder: Path) -> list[Path]:
    """Delete temporary files (``.NAME.HOST-PID.partial``) left in ``folder`` by runs of this
    host that no longer exist (killed with SIGKILL, or a crashed machine)."""
    removed = []
    for path in folder.glob(".*.partial"):
        match = PARTIAL.match(path.name)
        if not match or match["host"] != HOST or _alive(int(match["pid"])):
            continue
        with contextlib.suppress(OSError):
            path.unlink()
            removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. another user's process: alive
        return True
    return True


class ResultWriter:
    """The HDF5 file of one run, written beside ``target`` and moved there on ``commit``."""

    def __init__(self, target: Path) -> None:
        self.target = Path(target)
        self.temporary = self.target.with_name(f".{self.target.name}.{HOST}-{os.getpid()}.partial")
        try:
            self.target.parent.mkdir(parents=True, exist_ok=True)
            remove_stale_partials(self.target.parent)
            # streams write whole chunks, so no chunk cache: with HDF5's default one, memory
            # grew by ~1 kB per sample of a long run
            self.file = h5py.File(self.temporary, "w", rdcc_nbytes=0)
        except OSError as err:
            where = f": {err.filename}" if err.filename else ""
            raise ResultError(f"{self.target}: cannot write the result here "
                              f"({err.strerror or err}{where})") from err
        self.file.attrs["schema_version"] = SCHEMA_VERSION
        self.file.attrs["status"] = "running"
        self.file.attrs["created_utc"] = datetime.datetime.now(datetime.UTC).isoformat()
        for key, value in versions().items():
            self.file.attrs[key] = value
        self.streams: list[StreamedDataset] = []

    def stream(self, path: str, width: int | None, read: Callable[[], Any], units: str = "1",
               dtype: Any = np.float64, **attrs: Any) -> StreamedDataset:
        group_name, _, name = path.rpartition("/")
        group = self.file.require_group(group_name or "/")
        streamed = StreamedDataset(group, name, width, units, np.dtype(dtype), read, **attrs)
        self.streams.append(streamed)
        return streamed

    def flush(self) -> None:
        for streamed in self.streams:
            streamed.flush()

    def commit(self, status: str = "complete", overwrite: bool = True) -> Path:
        """Close the file and move it onto the target in one step (never half-written).

        Without ``overwrite`` the move is a hard link, which fails rather than replace a file
        that appeared at the target while the run went on.
        """
        self.flush()
        self.file.attrs["status"] = status
        self.file.close()
        if overwrite:
            os.replace(self.temporary, self.target)
            return self.target
        try:
            os.link(self.temporary, self.target)
        except FileExistsError as err:
            raise ResultError(f"{self.target}: appeared while the run went on; not replaced "
                              "(pass --overwrite to replace it)") from err
        except OSError:  # no hard links on this file system
            if self.target.exists():
                raise ResultError(f"{self.target}: already exists; not replaced") from None
            os.replace(self.temporary, self.target)
            return self.target
        self.temporary.unlink()
        return self.target

    def abort(self) -> None:
        try:
            self.file.close()
        finally:
            self.temporary.unlink(missing_ok=True)


@dataclass
class Result:
    """A loaded run: every dataset by its HDF5 path, with attributes, plus shortcuts."""

    path: Path
    attrs: dict[str, Any]
    datasets: dict[str, np.ndarray]
    dataset_attrs: dict[str, dict[str, Any]] = field(repr=False)
    group_attrs: dict[str, dict[str, Any]] = field(repr=False)

    def __getitem__(self, path: str) -> np.ndarray:
        return self.datasets[path.strip("/")]

    def __contains__(self, path: str) -> bool:
        return path.strip("/") in self.datasets

    def units(self, path: str) -> str:
        return self.dataset_attrs[path.strip("/")].get("units", "1")

    @property
    def kind(self) -> str:
        return str(self.attrs["model_kind"])

    @property
    def time(self) -> np.ndarray:
        """Sample times in seconds."""
        return self["time"]

    @property
    def dt(self) -> float:
        """Integration step in seconds."""
        return float(self.attrs["dt"])

    @property
    def seed(self) -> int:
        return int(self.attrs["seed"])

    @property
    def free_energy(self) -> np.ndarray:
        return self["free_energy"]

    @property
    def scenario_source(self) -> str:
        return str(self["scenario/source"])

    @property
    def parameters(self) -> dict:
        return json.loads(str(self["scenario/parameters"]))

    @property
    def level_names(self) -> list[str]:
        names = [p.split("/")[1] for p in self.group_attrs if p.startswith("levels/")]
        return sorted(set(names), key=lambda n: self.group_attrs[f"levels/{n}"]["index"])

    def level(self, name_or_index: str | int) -> dict[str, np.ndarray]:
        """``belief``, ``error``, ``precision`` (samples x units) of one level, if recorded."""
        name = (self.level_names[name_or_index] if isinstance(name_or_index, int)
                else name_or_index)
        prefix = f"levels/{name}/"
        return {p[len(prefix):]: a for p, a in self.datasets.items() if p.startswith(prefix)}

    def weights(self, name: str, which: str = "initial"):
        """W of level ``name`` (``initial`` or ``final``): an array, or scipy.sparse CSR."""
        prefix = f"levels/{name}/weights_{which}"
        if prefix in self.datasets:
            return self.datasets[prefix]
        import scipy.sparse

        shape = tuple(int(n) for n in self.group_attrs[prefix]["shape"])
        return scipy.sparse.csr_matrix(
            (self[prefix + "/data"], self[prefix + "/indices"], self[prefix + "/indptr"]),
            shape=shape)

    @property
    def trials(self) -> dict[str, np.ndarray]:
        return {p[len("trials/"):]: a for p, a in self.datasets.items() if p.startswith("trials/")}


def _decode(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.ndarray) and value.dtype.kind in "OS":
        return np.array([_decode(v) for v in value.ravel()], dtype=object).reshape(value.shape)
    return value


def load(path: str | Path, allow_incomplete: bool = False) -> Result:
    """Read a pcsim result file (refuses other files, newer schemas and unfinished runs).

    Every schema up to ``SCHEMA_VERSION`` loads. A run marked ``interrupted`` or ``diverged``
    (or still ``running``: a temporary file) loads only with ``allow_incomplete``.
    """
    path = Path(path)
    if path.is_dir():
        raise ResultError(f"{path}: is a folder, not a result file")
    try:
        handle = h5py.File(path, "r")
    except (OSError, FileNotFoundError) as err:
        raise ResultError(f"{path}: cannot open as HDF5 ({err})") from err
    try:
        with handle:
            return _read(path, handle, allow_incomplete)
    except ResultError:
        raise
    except (OSError, KeyError, ValueError, TypeError, RuntimeError) as err:
        raise ResultError(f"{path}: damaged pcsim result ({type(err).__name__}: {err})") from err


def _read(path: Path, handle: h5py.File, allow_incomplete: bool) -> Result:
    attrs = {key: _decode(value) for key, value in handle.attrs.items()}
    if "schema_version" not in attrs or "pcsim_version" not in attrs:
        raise ResultError(f"{path}: not a pcsim result file (no schema_version)")
    schema = attrs["schema_version"]
    if isinstance(schema, bool | str | bytes) or not float(schema).is_integer():
        raise ResultError(f"{path}: not a pcsim result file (schema_version {schema!r})")
    if int(schema) > SCHEMA_VERSION:
        raise ResultError(
            f"{path}: written with result schema {attrs['schema_version']} by pcsim "
            f"{attrs['pcsim_version']}; this pcsim reads up to schema {SCHEMA_VERSION}: "
            "upgrade pcsim"
        )
    if attrs.get("status") != "complete" and not allow_incomplete:
        failure = f" ({attrs['failure']})" if "failure" in attrs else ""
        raise ResultError(
            f"{path}: the run is marked {attrs.get('status')!r}, not complete{failure}; "
            "pass allow_incomplete=True to read it anyway"
        )
    datasets: dict[str, np.ndarray] = {}
    dataset_attrs: dict[str, dict[str, Any]] = {}
    group_attrs: dict[str, dict[str, Any]] = {}

    def visit(name: str, node: Any) -> None:
        if isinstance(node, h5py.Dataset):
            datasets[name] = _decode(node[()])
            dataset_attrs[name] = {k: _decode(v) for k, v in node.attrs.items()}
        else:
            group_attrs[name] = {k: _decode(v) for k, v in node.attrs.items()}

    handle.visititems(visit)
    return Result(path, attrs, datasets, dataset_attrs, group_attrs)
