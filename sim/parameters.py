"""A scenario's resolved parameters (``Scenario.resolved``, ``/scenario/parameters`` in a
result) as dotted keys, as ``--set`` names them (``model.levels.0.precision``), and which of
them differ between two: for ``pcsim diff`` (``sim.report.diff``) and for the checkpoint a
resumed run must fit (``sim.checkpoint``). Plain Python: no Brian2, no NumPy."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested tables and lists of tables as dotted keys (``trials.0.name``); a list of plain
    values is one value."""
    if isinstance(value, dict):
        items: Iterator[tuple[str, Any]] = ((str(k), v) for k, v in value.items())
    elif isinstance(value, list) and any(isinstance(v, dict | list) for v in value):
        items = ((str(i), v) for i, v in enumerate(value))
    else:
        return {prefix: value}
    flat: dict[str, Any] = {}
    for key, item in items:
        flat.update(flatten(item, f"{prefix}.{key}" if prefix else key))
    return flat


def differing_keys(first: Any, second: Any) -> list[tuple[str, Any, Any]]:
    """(dotted key, value in first, value in second) of each parameter that differs between
    two nested tables (``flatten``), first's keys first; a key only one has shows ``None``
    for the other."""
    flat = [flatten(first), flatten(second)]
    keys = dict.fromkeys([*flat[0], *flat[1]])
    return [(key, flat[0].get(key), flat[1].get(key)) for key in keys
            if key not in flat[0] or key not in flat[1] or flat[0][key] != flat[1][key]]
