"""Reading a result file: ``load(path)`` gives a lazy ``Result`` (layout in docs/results.md).

``load`` checks the file against the schema (``sim.io.schema``: attributes, dataset names,
ranks, dtypes and shapes, all from the file's metadata) and reads its attributes, no values. A
recorded time series (a dataset that grew along time while the run went: ``time``,
``free_energy``, ``levels/<name>/belief``, ...) is a ``LazyArray`` (``sim.io.lazy``):
indexing it reads only that part of the file. Any other dataset (trial table, weights, the
scenario) is read whole the first time it is asked for, then kept. The file stays open until
``Result.close()``, the end of ``with sim.load(path) as result:``, or the garbage collection of
the ``Result``. A damaged file (a part missing or malformed, truncated, bytes changed) gives a
``ResultError`` of one line naming the file, at ``load`` or when a damaged value is read.
Reading the HDF5 file itself (h5py's errors made that one line, datasets read and kept,
attributes decoded) is ``sim.io.result_file``; here are the ``Result`` built on it and ``load``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from circuits.variables import DECLARED
from sim.errors import MissingDatasetError, ResultError
from sim.io.lazy import LazyArray
from sim.io.result_file import (
    READ_ERRORS,
    Datasets,
    ResultFile,
    check_utf8,
    damaged,
    dtype_kind,
    read_attributes,
)
from sim.io.schema import SCHEMA_VERSION
from sim.io.schema_check import Layout, check, expected_groups, expected_streams


class Result:
    """A result file: attributes at once, datasets by HDF5 path as they are asked for.

    ``result["levels/features/belief"]`` (or ``result.datasets[...]``) of a time series is a
    ``LazyArray``: ``[:, 3]`` reads one unit's trace, ``[1000:2000]`` a time window,
    ``np.asarray(...)`` all of it. Other datasets (``result.trials[...]``, weights) are read
    into a NumPy array and kept. ``result.shape(path)`` and ``path in result`` read nothing.
    ``with sim.load(path) as result:`` closes the file at the end of the block; a plain
    ``result = sim.load(path)`` holds it open until ``result.close()`` or garbage collection.
    Arrays read before closing stay usable; reading anything else then raises ``ResultError``.
    """

    def __init__(self, path: Path, file: ResultFile, attrs: dict[str, Any],
                 dataset_attrs: dict[str, dict[str, Any]],
                 group_attrs: dict[str, dict[str, Any]],
                 shapes: dict[str, tuple[int, ...]], problems: list[str]) -> None:
        self.path = path
        self.problems = problems  # how the file departs from the schema (sim.io.schema)
        self.attrs = attrs
        self.dataset_attrs = dataset_attrs
        self.group_attrs = group_attrs
        self._file = file
        self._shapes = shapes
        self._parameters: dict | None = None
        self.datasets = Datasets(file, {name: name for name in shapes})

    def __enter__(self) -> Result:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the file (again: nothing happens)."""
        self._file.handle.close()

    def __repr__(self) -> str:
        state = "open" if self._file.handle else "closed"
        return f"<Result {self.path} ({self.attrs.get('model_kind')}, {state})>"

    def __getitem__(self, path: str) -> Any:
        return self.datasets[path.strip("/")]

    def __contains__(self, path: str) -> bool:
        return path.strip("/") in self.datasets

    def shape(self, path: str) -> tuple[int, ...]:
        """A dataset's shape, from the file's metadata (nothing read)."""
        return self._shapes[path.strip("/")]

    def read(self, path: str, selection: Any) -> Any:
        """Part of a dataset, read now and not kept: ``result.read("time", -1)``,
        ``result.read("levels/input/input", np.s_[:100])`` (h5py slicing)."""
        path = path.strip("/")
        if path not in self._shapes:
            raise KeyError(path)
        return self._file.read(path, selection)

    def units(self, path: str) -> str:
        return self.dataset_attrs[path.strip("/")].get("units", "1")

    @property
    def kind(self) -> str:
        return str(self.attrs["model_kind"])

    @property
    def time(self) -> LazyArray:
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
    def free_energy(self) -> LazyArray:
        """F at every sample, nat (a time series); ``MissingDatasetError`` if it was not recorded
        (``[record] variables``) or is missing."""
        if "free_energy" not in self:
            raise MissingDatasetError(f"{self.path}: no /free_energy ([record] variables did "
                                      "not record it, or the file is damaged: pcsim show says "
                                      "which)")
        return self["free_energy"]

    @property
    def scenario_source(self) -> str:
        return str(self["scenario/source"])

    @property
    def parameters(self) -> dict:
        """The resolved scenario (``/scenario/parameters``), read and parsed once."""
        if self._parameters is None:
            text = str(self["scenario/parameters"])
            try:
                parameters = json.loads(text)
            except ValueError as err:
                raise ResultError(f"{self.path}: damaged pcsim result: /scenario/parameters: "
                                  f"not JSON ({err})") from err
            if not (isinstance(parameters, dict) and isinstance(parameters.get("model"), dict)
                    and isinstance(parameters.get("record"), dict)):
                raise ResultError(f"{self.path}: damaged pcsim result: /scenario/parameters: "
                                  "not a scenario's (a JSON object with tables model and "
                                  "record)")
            self._parameters = parameters
        return self._parameters

    def missing_parts(self) -> list[str]:
        """What the scenario (``/scenario/parameters``, read now) says the file holds and it
        lacks, one line each: the levels, modalities or factors it names, the time series its
        ``[record] variables`` recorded."""
        layout = Layout(self.attrs, {}, self.group_attrs)
        groups, problems = expected_groups(layout, self.parameters["model"])
        problems += [f"/{group}: missing (the scenario names it)" for group in groups
                     if group not in self.group_attrs]
        variables = self.parameters["record"].get("variables")
        if not isinstance(variables, list):
            return [*problems, "/scenario/parameters: record.variables is not a list"]
        return problems + [f"/{path}: missing (recorded: [record] variables)"
                           for path in expected_streams(layout, [str(v) for v in variables])
                           if path not in self]

    @property
    def level_names(self) -> list[str]:
        names = [p.split("/")[1] for p in self.group_attrs if p.startswith("levels/")]
        return sorted(set(names), key=lambda n: self.group_attrs[f"levels/{n}"]["index"])

    def level(self, name_or_index: str | int) -> Datasets:
        """``belief``, ``error``, ``precision`` (samples x units) of one level, if recorded
        (each read when asked for)."""
        name = (self.level_names[name_or_index] if isinstance(name_or_index, int)
                else name_or_index)
        return self._under(f"levels/{name}/")

    def weights(self, name: str, which: str = "initial") -> Any:
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
    def trials(self) -> Datasets:
        """The per-trial table: column name -> array (one row per trial), read when asked."""
        return self._under("trials/")

    @property
    def snapshots(self) -> Datasets:
        """Snapshots of the learned parameters (``[record] snapshots_every``): ``trial`` (the
        row in ``trials``) and each parameter by path (``levels/<name>/weights``: snapshots x
        its shape), read when asked; empty when the run took none."""
        return self._under("snapshots/")
    @property
    def neurons(self) -> str:
        """``rate`` or ``spiking`` (``[model] neurons``; files before it: ``rate``)."""
        return str(self.attrs.get("neurons", "rate"))

    def spikes(self, populations: Any = None) -> dict[str, Any]:
        """Every spiking population's spikes by ``<level>/<population>`` (e.g.
        ``features/error_positive``): ``SpikeTrains`` with ``time`` (s), ``neuron`` and
        ``unit`` arrays and the group's attributes, read now; empty for a rate result.
        ``populations`` (names such as ``error_positive``): only those are read."""
        from sim.io.spikes import SpikeTrains, population_paths

        return {path: SpikeTrains(np.asarray(self[f"spikes/{path}/time"][:]),
                                  np.asarray(self[f"spikes/{path}/neuron"][:]),
                                  self.group_attrs[f"spikes/{path}"])
                for path in population_paths(self.group_attrs)
                if populations is None or path.split("/")[1] in populations}

    def trials_frame(self) -> Any:
        """The per-trial table as a pandas DataFrame, one row per trial (needs pandas).

        A column of one number per trial stays one column; a column of one short vector per
        trial (``final_belief/<level>`` of at most 16 units, ...) becomes one column per
        element, ``name[i]``; longer vectors and arrays of more axes per trial
        (``reference_density``, covariances) stay one column holding an array per trial.
        """
        from sim.io.tables import trial_frame

        return trial_frame(self.trials)

    def _under(self, prefix: str) -> Datasets:
        return Datasets(self._file, {path[len(prefix):]: path for path in self._shapes
                                     if path.startswith(prefix)})


def declared(result: Result, path: str, key: str, default: str = "") -> str:
    """A recorded variable's declaration (``circuits.variables``: ``label``, ``symbol``,
    ``role``, ``plot``, ``panel``, ``style``, ``when``, ``reference``), from its dataset's
    ``declared_<key>`` attribute; ``default`` where the dataset declares none (not a declared
    variable, or a file written before declarations)."""
    value = result.dataset_attrs.get(path.strip("/"), {}).get(DECLARED + key, default)
    return value.decode() if isinstance(value, bytes) else str(value)


def load(path: str | Path, allow_incomplete: bool = False, allow_damaged: bool = False) -> Result:
    """Open a pcsim result file (refuses other files, newer schemas, unfinished runs and
    damaged files).

    Every schema up to ``SCHEMA_VERSION`` loads. A run marked ``interrupted`` or ``diverged``
    (or still ``running``: a temporary file) loads only with ``allow_incomplete``. A file that
    departs from the schema (``sim.io.schema``: checked from its metadata, nothing read) is
    refused with its first problem, or with ``allow_damaged`` opened with them listed in
    ``Result.problems`` (``pcsim show``). Attributes are read now, datasets when asked for;
    the file stays open until ``close()`` or the end of a ``with`` block (see ``Result``).
    """
    path = Path(path)
    if path.is_dir():
        raise ResultError(f"{path}: is a folder, not a result file")
    if not path.exists():
        raise ResultError(f"{path}: no such file")
    try:
        handle = h5py.File(path, "r")
    except READ_ERRORS as err:
        text = " ".join(str(err).split())[:300]
        raise ResultError(f"{path}: cannot open as HDF5 (not HDF5, truncated or damaged: "
                          f"{text})") from err
    try:
        result = _open(path, handle, allow_incomplete)
    except ResultError:
        handle.close()
        raise
    except READ_ERRORS as err:
        handle.close()
        raise damaged(path, "", err) from err
    if result.problems and not allow_damaged:
        result.close()
        more = len(result.problems) - 1
        raise ResultError(f"{path}: damaged pcsim result: {result.problems[0]}"
                          + (f" (and {more} more: pcsim show lists them)" if more else ""))
    return result


def _open(path: Path, handle: h5py.File, allow_incomplete: bool) -> Result:
    attrs = read_attributes(path, handle)
    if "schema_version" not in attrs or "pcsim_version" not in attrs:
        raise ResultError(f"{path}: not a pcsim result file (no schema_version)")
    version = attrs["schema_version"]
    if isinstance(version, bool | str | bytes) or not float(version).is_integer():
        raise ResultError(f"{path}: not a pcsim result file (schema_version {version!r})")
    if int(version) > SCHEMA_VERSION:
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
    shapes: dict[str, tuple[int, ...]] = {}
    dataset_attrs: dict[str, dict[str, Any]] = {}
    group_attrs: dict[str, dict[str, Any]] = {}
    series: dict[str, dict[str, Any]] = {}
    kinds: dict[str, tuple[tuple[int, ...], str]] = {}

    def visit(name: str, node: Any) -> None:
        check_utf8(path, name, f"the name {name!r}")
        if isinstance(node, h5py.Dataset):
            shapes[name] = node.shape
            kinds[name] = (node.shape, dtype_kind(node.dtype))
            dataset_attrs[name] = read_attributes(path, node)
            if node.maxshape and node.maxshape[0] is None:  # streamed: a time series
                series[name] = {"shape": node.shape, "dtype": node.dtype, "chunks": node.chunks,
                                "units": str(dataset_attrs[name].get("units", "1"))}
        else:
            group_attrs[name] = read_attributes(path, node)

    handle.visititems(visit)
    problems = check(Layout(attrs, kinds, group_attrs))
    return Result(path, ResultFile(path, handle, series), attrs, dataset_attrs, group_attrs,
                  shapes, problems)
