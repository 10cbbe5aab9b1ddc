"""The index of a sweep, ``FOLDER/sweep.h5``: grid, points, status and summaries (h5py, NumPy).

It is rebuilt from the point files and their status (``point_status``) and replaced whole
(written to a temporary file, then ``os.replace``), never edited in place, so a reader never
sees half of one. Layout (docs/results.md, "Sweep index"):

- root attributes: ``format = "pcsim-sweep"``, ``index_version``, ``scenario_name``,
  ``scenario_path`` (the scenario as given), ``pcsim_version``, ``created_utc``;
- ``scenario/source``: the scenario text (with its ``[sweep]`` table, if any);
- ``grid/keys`` (axes' dotted keys), ``grid/values`` (each axis' values as a JSON list),
  ``grid/seeds``;
- ``points/``: one row per point, in grid order (the last axis, then the seed, varying
  fastest): ``file``, ``key``, ``status`` (``done``, ``diverged``, ``failed``, ``running``,
  ``missing``), ``error`` (one line, or empty), ``seed``, ``axis_index`` (points x axes: each
  value's position on its axis), ``overrides`` (JSON: the dotted keys set, wildcards expanded),
  ``summary`` (points x columns, NaN where absent) and ``summary_columns`` (``sim.sweeps.summary``;
  in the order the points give them: conditions in the scenario's order).
"""

from __future__ import annotations

import datetime
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from sim._version import __version__
from sim.errors import ResultError
from sim.io.partials import remove_stale_partials, temporary_name
from sim.io.result_file import READ_ERRORS
from sim.sweeps.detect import FORMAT, INDEX_NAME, index_path

INDEX_VERSION = 1
STATUSES = ("done", "diverged", "failed", "running", "missing")


@dataclass
class PointState:
    status: str
    error: str = ""
    summary: dict[str, float] | None = None


def point_status(folder: Path, key: str, summarize: bool = True) -> PointState:
    """What the folder says about a point: its result file, failure note or live lock."""
    from sim.io.reader import load
    from sim.sweeps.locks import running

    target = folder / f"point-{key}.h5"
    if target.exists():
        try:
            with load(target, allow_incomplete=True) as result:
                status = str(result.attrs.get("status"))
                error = str(result.attrs.get("failure", ""))
                summary = None
                if summarize and status in ("complete", "diverged"):
                    from sim.sweeps.summary import summarize as read_summary

                    summary = read_summary(result)
        except ResultError as err:
            return PointState("failed", str(err))
        if status == "complete":
            return PointState("done", "", summary)
        if status == "diverged":
            return PointState("diverged", error, summary)
    failure = folder / f"point-{key}.failed"
    if failure.exists():
        try:
            return PointState("failed", json.loads(failure.read_text("utf-8"))["error"])
        except (OSError, ValueError, KeyError):
            return PointState("failed", "unreadable failure note")
    if running(folder, key):
        return PointState("running")
    return PointState("missing")


def _strings(values: list[str]) -> np.ndarray:
    return np.array(values, dtype=h5py.string_dtype())


def write_index(folder: Path, grid: Any, points: list, states: dict[str, PointState],
                scenario_as_given: str) -> Path:
    """Write ``folder/sweep.h5`` from the grid and each point's state, atomically."""
    target = folder / INDEX_NAME
    temporary = temporary_name(target)
    remove_stale_partials(folder)
    columns = list(dict.fromkeys(c for p in points for c in (states[p.key].summary or {})))
    position = {c: i for i, c in enumerate(columns)}
    summary = np.full((len(points), len(columns)), np.nan)
    for row, point in enumerate(points):
        for column, value in (states[point.key].summary or {}).items():
            summary[row, position[column]] = value
    try:
        with h5py.File(temporary, "w") as file:
            attrs = file.attrs
            attrs["format"] = FORMAT
            attrs["index_version"] = INDEX_VERSION
            attrs["scenario_name"] = str(grid.table.get("name", ""))
            attrs["scenario_path"] = scenario_as_given
            attrs["pcsim_version"] = __version__
            attrs["created_utc"] = datetime.datetime.now(datetime.UTC).isoformat()
            file.create_dataset("scenario/source", data=Path(grid.scenario).read_text("utf-8"),
                                dtype=h5py.string_dtype())
            file.create_dataset("grid/keys", data=_strings(list(grid.axes)))
            file.create_dataset("grid/values", data=_strings(
                [json.dumps(values) for values in grid.axes.values()]))
            file.create_dataset("grid/seeds", data=np.array(grid.seeds, dtype=np.int64))
            group = file.create_group("points")
            group["file"] = _strings([p.file_name for p in points])
            group["key"] = _strings([p.key for p in points])
            group["status"] = _strings([states[p.key].status for p in points])
            group["error"] = _strings([states[p.key].error for p in points])
            group["seed"] = np.array([p.seed for p in points], dtype=np.int64)
            group["axis_index"] = np.array([p.indices for p in points],
                                           dtype=np.int64).reshape(len(points), len(grid.axes))
            group["overrides"] = _strings([json.dumps(p.overrides) for p in points])
            group["summary"] = summary
            group["summary_columns"] = _strings(columns)
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return target


@dataclass
class SweepIndex:
    """What an index file holds, read whole (it is small)."""

    path: Path
    attrs: dict[str, Any]
    source: str
    axes: dict[str, list[Any]]
    seeds: list[int]
    files: list[str]
    keys: list[str]
    status: list[str]
    errors: list[str]
    point_seeds: np.ndarray
    axis_index: np.ndarray
    overrides: list[dict]
    summary: np.ndarray
    summary_columns: list[str]

    @property
    def folder(self) -> Path:
        return self.path.parent

    def counts(self) -> dict[str, int]:
        return {status: self.status.count(status) for status in STATUSES
                if status in self.status}

    def values(self, row: int) -> dict[str, Any]:
        """The axes' values of point ``row``."""
        return {key: values[int(i)] for (key, values), i
                in zip(self.axes.items(), self.axis_index[row], strict=True)}


def _text(values: Any) -> list[str]:
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values]


def read_index(folder_or_index: str | Path) -> SweepIndex:
    """Read a sweep index (a folder: its ``sweep.h5``)."""
    path = index_path(folder_or_index)
    try:
        with h5py.File(path, "r") as file:
            if file.attrs.get("format") != FORMAT:
                raise ResultError(f"{path}: not a pcsim sweep index (no format = {FORMAT!r})")
            version = int(file.attrs["index_version"])
            if version > INDEX_VERSION:
                raise ResultError(f"{path}: sweep index version {version}; this pcsim reads up "
                                  f"to {INDEX_VERSION}: upgrade pcsim")
            points = file["points"]
            keys = _text(file["grid/keys"][()])
            index = SweepIndex(
                path=path,
                attrs={k: (v.decode() if isinstance(v, bytes) else v)
                       for k, v in file.attrs.items()},
                source=_text([file["scenario/source"][()]])[0],
                axes={key: json.loads(text) for key, text
                      in zip(keys, _text(file["grid/values"][()]), strict=True)},
                seeds=[int(s) for s in file["grid/seeds"][()]],
                files=_text(points["file"][()]),
                keys=_text(points["key"][()]),
                status=_text(points["status"][()]),
                errors=_text(points["error"][()]),
                point_seeds=points["seed"][()],
                axis_index=points["axis_index"][()],
                overrides=[json.loads(t) for t in _text(points["overrides"][()])],
                summary=points["summary"][()],
                summary_columns=_text(points["summary_columns"][()]),
            )
    except FileNotFoundError as err:
        raise ResultError(f"{path}: no such sweep index (run pcsim sweep ... -o "
                          f"{path.parent})") from err
    except ResultError:
        raise
    except READ_ERRORS as err:
        text = " ".join(f"{type(err).__name__}: {err}".split())[:300]
        raise ResultError(f"{path}: damaged sweep index ({text})") from err
    problem = _inconsistency(index)
    if problem:
        raise ResultError(f"{path}: damaged sweep index ({problem})")
    return index


def _inconsistency(index: SweepIndex) -> str | None:
    """What does not fit in an index read whole: the points' columns of unequal lengths, an
    axis position or a status that is not one (None: it fits)."""
    count = len(index.files)
    if not all(isinstance(values, list) for values in index.axes.values()):
        return "/grid/values holds an axis that is not a JSON list"
    shapes = {"points/key": (len(index.keys),), "points/status": (len(index.status),),
              "points/error": (len(index.errors),), "points/seed": index.point_seeds.shape,
              "points/overrides": (len(index.overrides),),
              "points/axis_index": index.axis_index.shape,
              "points/summary": index.summary.shape}
    expected = {"points/axis_index": (count, len(index.axes)),
                "points/summary": (count, len(index.summary_columns))}
    for name, shape in shapes.items():
        if shape != expected.get(name, (count,)):
            return f"/{name} has shape {shape}, expected {expected.get(name, (count,))}"
    sizes = np.array([len(values) for values in index.axes.values()], dtype=np.int64)
    if count and index.axis_index.size and (np.any(index.axis_index < 0)
                                            or np.any(index.axis_index >= sizes)):
        return "/points/axis_index holds a position beyond its axis"
    unknown = sorted(set(index.status) - set(STATUSES))
    return f"/points/status holds {unknown[0]!r}" if unknown else None
