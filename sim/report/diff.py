"""``pcsim diff A.h5 B.h5``: which scenario parameters, run attributes and datasets of two
results differ (h5py and NumPy only: no Brian2, no pandas).

Parameters are the resolved scenario (``/scenario/parameters``) flattened to dotted keys, as
``--set`` names them (``model.levels.0.precision``). Datasets are compared value by value
(NaN equal to NaN), time series a block of samples at a time, so that two large results are
compared in bounded memory; numbers report the largest absolute difference.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sim.io.lazy import LazyArray
from sim.io.provenance import PROVENANCE
from sim.io.reader import Result
from sim.parameters import differing_keys

# root attributes that say when, with what and where a file was written, not what was computed
# (``resumed_at_trials``: a resumed run equals an uninterrupted one, sim.checkpoint; the BLAS,
# CPU and commit: sim.io.provenance)
VOLATILE = {"created_utc", "pcsim_version", "brian2_version", "numpy_version", "h5py_version",
            "python_version", "schema_version", "resumed_at_trials", *PROVENANCE}
# root attributes that repeat a parameter (seed, dt_ms, method, name, model.kind, the trials)
DERIVED = {"seed", "scenario_name", "model_kind", "dt", "dt_units", "method", "duration"}
PARAMETERS = "scenario/parameters"
SHOWN = 12  # characters of a value shown before it is cut


@dataclass
class Difference:
    """What differs between two results (empty: identical)."""

    parameters: list[tuple[str, Any, Any]] = field(default_factory=list)
    attributes: list[tuple[str, Any, Any]] = field(default_factory=list)
    datasets: list[tuple[str, str]] = field(default_factory=list)  # path, how
    only_first: list[str] = field(default_factory=list)
    only_second: list[str] = field(default_factory=list)
    compared: int = 0

    @property
    def identical(self) -> bool:
        return not (self.parameters or self.attributes or self.datasets or self.only_first
                    or self.only_second)


def parameter_differences(first: Result, second: Result) -> list[tuple[str, Any, Any]]:
    """(key, value in first, value in second) of each parameter that differs; a key only one
    result has shows ``None`` for the other (``sim.parameters.differing_keys``)."""
    return differing_keys(*(r.parameters if PARAMETERS in r else {} for r in (first, second)))


def attribute_differences(first: Result, second: Result) -> list[tuple[str, Any, Any]]:
    skip = VOLATILE | (DERIVED if PARAMETERS in first and PARAMETERS in second else set())
    keys = [k for k in dict.fromkeys([*first.attrs, *second.attrs]) if k not in skip]
    found = []
    for key in keys:
        a, b = first.attrs.get(key), second.attrs.get(key)
        if a is None or b is None or not _same(np.asarray(a), np.asarray(b)):
            found.append((key, a, b))
    return found


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    if a.shape != b.shape:
        return False
    if a.dtype.kind in "fc" or b.dtype.kind in "fc":
        return bool(np.array_equal(a, b, equal_nan=True))
    return bool(np.all(a == b))


def _blocks(first: Any, second: Any) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The two datasets' values side by side, a block of samples at a time for time series."""
    if isinstance(first, LazyArray) and first.shape:
        for where, block in first.blocks():
            yield block, np.asarray(second[where])
    else:
        yield np.asarray(first), np.asarray(second)


def dataset_difference(first: Any, second: Any) -> str | None:
    """How two datasets of the same path differ (None: equal): shapes, text, NaN at other
    places, or the largest absolute difference."""
    shapes = (np.shape(first), np.shape(second))
    if shapes[0] != shapes[1]:
        return f"shapes {shapes[0]} and {shapes[1]}"
    largest, nan_apart, text = 0.0, False, False
    for a, b in _blocks(first, second):
        if a.dtype.kind in "OSUV" or b.dtype.kind in "OSUV":
            text = text or not np.array_equal(a, b)
            continue
        if a.dtype.kind == "b" or b.dtype.kind == "b":
            a, b = a.astype(np.int64), b.astype(np.int64)
        missing = np.isnan(a) if a.dtype.kind in "fc" else np.zeros(a.shape, bool)
        missing_b = np.isnan(b) if b.dtype.kind in "fc" else np.zeros(b.shape, bool)
        nan_apart = nan_apart or bool(np.any(missing != missing_b))
        both = ~(missing | missing_b)
        if np.any(both):
            with np.errstate(invalid="ignore", over="ignore"):
                gaps = np.abs(a[both] - b[both]).astype(float)
            same_inf = np.isinf(a[both]) & (a[both] == b[both])
            gaps[same_inf] = 0.0
            largest = max(largest, float(np.max(gaps, initial=0.0)))
    if text:
        return "text differs"
    if nan_apart:
        return f"NaN at different places; elsewhere max |A - B| = {largest:.6g}"
    return f"max |A - B| = {largest:.6g}" if largest else None


def compare(first: Result, second: Result) -> Difference:
    """Every difference between two open results."""
    found = Difference(parameters=parameter_differences(first, second),
                       attributes=attribute_differences(first, second))
    paths = [p for p in first.datasets if p != PARAMETERS]
    found.only_first = [p for p in paths if p not in second]
    found.only_second = [p for p in second.datasets if p != PARAMETERS and p not in first]
    for path in paths:
        if path in second:
            found.compared += 1
            how = dataset_difference(first[path], second[path])
            if how:
                found.datasets.append((path, how))
    return found


def _shown(value: Any) -> str:
    text = "(absent)" if value is None else json.dumps(value) if isinstance(
        value, list | dict | str) else str(value)
    return text if len(text) <= 4 * SHOWN else text[: 4 * SHOWN - 3] + "..."


def diff_lines(first: Result, second: Result) -> tuple[list[str], bool]:
    """What ``pcsim diff`` prints, and whether the results differ."""
    found = compare(first, second)
    names = f"{first.path} and {second.path}"
    if found.identical:
        return [f"{names}: identical (same parameters; {found.compared} datasets equal)"], False
    lines = [f"{names}: differ ({len(found.parameters)} parameter(s), "
             f"{len(found.datasets)} of {found.compared} dataset(s) in both, "
             f"{len(found.only_first) + len(found.only_second)} in one only)"]
    if found.parameters:
        lines.append("  parameters (A -> B):")
        width = max(len(key) for key, _, _ in found.parameters)
        lines += [f"    {key:{width}s}  {_shown(a)} -> {_shown(b)}"
                  for key, a, b in found.parameters]
    if found.attributes:
        lines.append("  attributes (A -> B):")
        lines += [f"    {key}  {_shown(a)} -> {_shown(b)}" for key, a, b in found.attributes]
    if found.datasets:
        lines.append("  datasets:")
        width = max(len(path) for path, _ in found.datasets) + 1
        lines += [f"    {'/' + path:{width}s}  {how}" for path, how in found.datasets]
    for label, paths in ((first.path, found.only_first), (second.path, found.only_second)):
        if paths:
            lines.append(f"  only in {label}: " + ", ".join("/" + p for p in paths))
    return lines, True
