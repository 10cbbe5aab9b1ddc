"""Reading a result file: ``load(path)`` gives a ``Result`` (layout in docs/results.md)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from sim.errors import ResultError
from sim.io.writer import SCHEMA_VERSION


def read_matrix(group: h5py.Group, name: str):
    """What ``write_matrix`` wrote: a NumPy array, or a scipy.sparse CSR matrix."""
    node = group[name]
    if isinstance(node, h5py.Dataset):
        return node[()]
    import scipy.sparse

    return scipy.sparse.csr_matrix(
        (node["data"][()], node["indices"][()], node["indptr"][()]),
        shape=tuple(int(n) for n in node.attrs["shape"]))


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
