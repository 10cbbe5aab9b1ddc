"""Result files: one self-describing HDF5 file per run (layout in docs/results.md).

Writing goes to a hidden temporary file beside the target, renamed onto the target only when
the run completes (``ResultWriter.commit``); a failed run removes it. ``load`` reads a finished
file into a ``Result``.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

SCHEMA_VERSION = 1
CHUNK_SAMPLES = 1024


class ResultError(ValueError):
    """A file that cannot be read as a pcsim result."""


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
    """A complete (non-streamed) dataset, compressed when large enough to matter."""
    data = np.asarray(data)
    options: dict[str, Any] = {}
    if data.dtype.kind == "U":
        data = data.astype(h5py.string_dtype())
    elif data.size >= 256:
        options = {"compression": "gzip", "compression_opts": 4, "shuffle": True, "chunks": True}
    dataset = group.create_dataset(name, data=data, **options)
    dataset.attrs["units"] = units
    for key, value in attrs.items():
        dataset.attrs[key] = value


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


class ResultWriter:
    """The HDF5 file of one run, written beside ``target`` and moved there on ``commit``."""

    def __init__(self, target: Path) -> None:
        self.target = Path(target)
        self.target.parent.mkdir(parents=True, exist_ok=True)
        self.temporary = self.target.with_name(f".{self.target.name}.{os.getpid()}.partial")
        self.file = h5py.File(self.temporary, "w")
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

    def commit(self, status: str = "complete") -> Path:
        self.flush()
        self.file.attrs["status"] = status
        self.file.close()
        os.replace(self.temporary, self.target)
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
    """Read a pcsim result file (refuses other files, newer schemas and unfinished runs)."""
    path = Path(path)
    try:
        handle = h5py.File(path, "r")
    except (OSError, FileNotFoundError) as err:
        raise ResultError(f"{path}: cannot open as HDF5 ({err})") from err
    with handle:
        attrs = {key: _decode(value) for key, value in handle.attrs.items()}
        if "schema_version" not in attrs or "pcsim_version" not in attrs:
            raise ResultError(f"{path}: not a pcsim result file (no schema_version)")
        if int(attrs["schema_version"]) > SCHEMA_VERSION:
            raise ResultError(
                f"{path}: written with result schema {attrs['schema_version']} by pcsim "
                f"{attrs['pcsim_version']}; this pcsim reads up to schema {SCHEMA_VERSION}: "
                "upgrade pcsim"
            )
        if attrs.get("status") != "complete" and not allow_incomplete:
            raise ResultError(
                f"{path}: the run is marked {attrs.get('status')!r}, not complete; "
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
