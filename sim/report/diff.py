"""``pcsim diff A.h5 B.h5``: which scenario parameters, run attributes and datasets of two
results differ (h5py and NumPy only: no Brian2, no pandas).

Parameters are the resolved scenario (``/scenario/parameters``) flattened to dotted keys, as
``--set`` names them (``model.levels.0.precision``). Datasets are compared value by value
(NaN equal to NaN), time series a block of samples at a time, so that two large results are
compared in bounded memory; numbers report the largest absolute difference. Floats (in
datasets and root attributes) are equal exactly by default, or within a ``Tolerance``
(``pcsim diff --rtol R --atol T``): floats a and b are equal where |a - b| <= max(T,
R max(|a|, |b|)), the symmetric rule of Python's ``math.isclose`` (so ``diff A B`` and
``diff B A`` agree); integers, text and where NaN and +-Inf stand stay exact.
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
# CPU and commit: sim.io.provenance; ``compiled_build``: a reused program computes what a
# build's does, sim.compiled.known)
VOLATILE = {"created_utc", "pcsim_version", "brian2_version", "numpy_version", "h5py_version",
            "python_version", "schema_version", "resumed_at_trials", "compiled_build",
            *PROVENANCE}
# root attributes that repeat a parameter (seed, dt_ms, method, name, model.kind, the trials)
DERIVED = {"seed", "scenario_name", "model_kind", "dt", "dt_units", "method", "duration"}
PARAMETERS = "scenario/parameters"
SHOWN = 12  # characters of a value shown before it is cut


@dataclass(frozen=True)
class Tolerance:
    """How far apart two floats may be and count as equal (both 0: exactly equal)."""

    rtol: float = 0.0
    atol: float = 0.0

    @property
    def exact(self) -> bool:
        return not (self.rtol or self.atol)

    def beyond(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Where floats ``a`` and ``b`` (NaN nowhere) are not equal within the tolerance; an
        infinity equals only itself."""
        with np.errstate(invalid="ignore", over="ignore"):
            gap = np.abs(a - b)
            allowed = np.maximum(self.atol, self.rtol * np.maximum(np.abs(a), np.abs(b)))
            return (a != b) & ~((gap <= allowed) & np.isfinite(a) & np.isfinite(b))

    def describe(self) -> str:
        return f"rtol {self.rtol:g}, atol {self.atol:g}"


EXACT = Tolerance()


@dataclass
class Difference:
    """What differs between two results (empty: identical)."""

    parameters: list[tuple[str, Any, Any]] = field(default_factory=list)
    attributes: list[tuple[str, Any, Any]] = field(default_factory=list)
    datasets: list[tuple[str, str]] = field(default_factory=list)  # path, how
    only_first: list[str] = field(default_factory=list)
    only_second: list[str] = field(default_factory=list)
    compared: int = 0
    close: list[str] = field(default_factory=list)  # equal only within the tolerance

    @property
    def identical(self) -> bool:
        return not (self.parameters or self.attributes or self.datasets or self.only_first
                    or self.only_second)


def parameter_differences(first: Result, second: Result) -> list[tuple[str, Any, Any]]:
    """(key, value in first, value in second) of each parameter that differs; a key only one
    result has shows ``None`` for the other (``sim.parameters.differing_keys``)."""
    return differing_keys(*(r.parameters if PARAMETERS in r else {} for r in (first, second)))


def attribute_differences(first: Result, second: Result,
                          tolerance: Tolerance = EXACT) -> list[tuple[str, Any, Any]]:
    skip = VOLATILE | (DERIVED if PARAMETERS in first and PARAMETERS in second else set())
    keys = [k for k in dict.fromkeys([*first.attrs, *second.attrs]) if k not in skip]
    found = []
    for key in keys:
        a, b = first.attrs.get(key), second.attrs.get(key)
        if a is None or b is None or not _same(np.asarray(a), np.asarray(b), tolerance):
            found.append((key, a, b))
    return found


def _same(a: np.ndarray, b: np.ndarray, tolerance: Tolerance) -> bool:
    if a.shape != b.shape:
        return False
    if a.dtype.kind in "fc" or b.dtype.kind in "fc":
        if a.dtype.kind not in "biufc" or b.dtype.kind not in "biufc":
            return False
        missing = np.isnan(a) | np.isnan(b)
        return bool(np.array_equal(np.isnan(a), np.isnan(b)) and not np.any(
            tolerance.beyond(a[~missing], b[~missing])))
    return bool(np.all(a == b))


def _blocks(first: Any, second: Any) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The two datasets' values side by side, a block of samples at a time for time series."""
    if isinstance(first, LazyArray) and first.shape:
        for where, block in first.blocks():
            yield block, np.asarray(second[where])
    else:
        yield np.asarray(first), np.asarray(second)


def dataset_difference(first: Any, second: Any, tolerance: Tolerance = EXACT) -> str | None:
    """How two datasets of the same path differ (None: equal, floats within ``tolerance``):
    shapes, text, NaN at other places, or the largest absolute difference."""
    return _difference(first, second, tolerance)[0]


def _difference(first: Any, second: Any, tolerance: Tolerance) -> tuple[str | None, bool]:
    """``dataset_difference``, and whether the values are equal exactly (one reading)."""
    shapes = (np.shape(first), np.shape(second))
    if shapes[0] != shapes[1]:
        return f"shapes {shapes[0]} and {shapes[1]}", False
    largest, nan_apart, text, beyond = 0.0, False, False, False
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
            floats = a.dtype.kind in "fc" or b.dtype.kind in "fc"
            beyond = beyond or bool(np.any(tolerance.beyond(a[both], b[both]) if floats
                                           else a[both] != b[both]))
    if text:
        return "text differs", False
    if nan_apart:
        return f"NaN at different places; elsewhere max |A - B| = {largest:.6g}", False
    return (f"max |A - B| = {largest:.6g}" if beyond else None), not largest


def compare(first: Result, second: Result, tolerance: Tolerance = EXACT) -> Difference:
    """Every difference between two open results (floats: beyond ``tolerance``)."""
    found = Difference(parameters=parameter_differences(first, second),
                       attributes=attribute_differences(first, second, tolerance))
    paths = [p for p in first.datasets if p != PARAMETERS]
    found.only_first = [p for p in paths if p not in second]
    found.only_second = [p for p in second.datasets if p != PARAMETERS and p not in first]
    for path in paths:
        if path in second:
            found.compared += 1
            how, exact = _difference(first[path], second[path], tolerance)
            if how:
                found.datasets.append((path, how))
            elif not exact:
                found.close.append(path)
    return found


def _shown(value: Any) -> str:
    text = "(absent)" if value is None else json.dumps(value) if isinstance(
        value, list | dict | str) else str(value)
    return text if len(text) <= 4 * SHOWN else text[: 4 * SHOWN - 3] + "..."


def verdict(found: Difference, tolerance: Tolerance = EXACT) -> str:
    """What the first line of ``pcsim diff`` says after the two names: identical, equal within
    the tolerance (and which datasets only so), or how many parts differ."""
    if found.identical and tolerance.exact:
        return f"identical (same parameters; {found.compared} datasets equal)"
    if found.identical:
        return (f"equal within {tolerance.describe()} (same parameters; "
                f"{found.compared} datasets equal, {len(found.close)} of them not bitwise"
                + (f": {', '.join('/' + p for p in found.close[:SHOWN // 3])}"
                   + (", ..." if len(found.close) > SHOWN // 3 else "") if found.close else "")
                + ")")
    return (f"differ ({len(found.parameters)} parameter(s), "
            f"{len(found.datasets)} of {found.compared} dataset(s) in both, "
            f"{len(found.only_first) + len(found.only_second)} in one only)")


def detail_lines(found: Difference, first: str, second: str,
                 tolerance: Tolerance = EXACT) -> list[str]:
    """The lines under ``verdict``, indented: each parameter, attribute and dataset that
    differs, and the datasets only the result named ``first`` or ``second`` has."""
    lines = []
    if found.parameters:
        lines.append("  parameters (A -> B):")
        width = max(len(key) for key, _, _ in found.parameters)
        lines += [f"    {key:{width}s}  {_shown(a)} -> {_shown(b)}"
                  for key, a, b in found.parameters]
    if found.attributes:
        lines.append("  attributes (A -> B):")
        lines += [f"    {key}  {_shown(a)} -> {_shown(b)}" for key, a, b in found.attributes]
    if found.datasets:
        lines.append("  datasets:" if tolerance.exact else
                     f"  datasets (beyond {tolerance.describe()}):")
        width = max(len(path) for path, _ in found.datasets) + 1
        lines += [f"    {'/' + path:{width}s}  {how}" for path, how in found.datasets]
    for label, paths in ((first, found.only_first), (second, found.only_second)):
        if paths:
            lines.append(f"  only in {label}: " + ", ".join("/" + p for p in paths))
    return lines


def diff_lines(first: Result, second: Result,
               tolerance: Tolerance = EXACT) -> tuple[list[str], bool]:
    """What ``pcsim diff`` prints, and whether the results differ (floats: beyond
    ``tolerance``)."""
    found = compare(first, second, tolerance)
    head = f"{first.path} and {second.path}: {verdict(found, tolerance)}"
    return ([head, *detail_lines(found, str(first.path), str(second.path), tolerance)],
            not found.identical)
