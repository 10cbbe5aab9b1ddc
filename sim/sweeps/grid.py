"""The grid of a sweep: axes (``--vary KEY=V1,V2`` and the scenario's ``[sweep]`` table), seeds,
and the points they make.

A KEY is a dotted path into the scenario table, as ``pcsim run --set`` takes it
(``model.tau_belief_ms``, ``model.levels.0.precision``: list items by their index from 0); ``*``
in place of an index stands for every item of that list
(``protocol.trials.*.stimulus.noise_std`` sets it in every trial). Values are TOML (``5``,
``2.5``, ``[4.0, 1.0]``, ``"tanh"``; bare words are strings), separated by commas outside
brackets and quotes. ``--set KEY=VALUE`` (the same keys) changes the scenario of every point;
its keys are part of each point's overrides, hence of its name. Seeds: ``seeds = N`` runs each
point with the scenario's seed plus 0 .. N-1 (``N = 1``, the default: the scenario's own seed).
A point is one combination of the axes' values and one seed; its name (``point-<hash>.h5``)
comes from its values and the scenario without its ``[sweep]`` table, so a re-run, or a grid
extended by more values, finds the points already done.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import itertools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sim.errors import ScenarioError
from sim.toml_input import apply_overrides, check_value, describe, parse_value, show_key

WILDCARD = "*"
MAX_POINTS = 1_000_000  # combinations times seeds: a bigger grid is refused before it is made


@dataclass(frozen=True)
class Point:
    """One run of a sweep: the axes' values (concrete dotted keys, wildcards expanded), a seed."""

    values: tuple[Any, ...]  # one per axis, in the grid's order
    indices: tuple[int, ...]  # each value's position on its axis
    seed: int
    overrides: dict[str, Any] = field(hash=False, compare=False)
    key: str = ""  # the hash that names its files

    @property
    def file_name(self) -> str:
        return f"point-{self.key}.h5"


@dataclass
class Grid:
    """Axes (dotted key -> values, in order) and seeds; ``points`` is their product (made at
    the first access, then kept: a grid is not changed once made)."""

    scenario: Path  # the scenario file (bundled names resolved)
    axes: dict[str, list[Any]]
    seeds: list[int]
    table: dict = field(repr=False, default_factory=dict)  # the raw scenario table
    base: dict[str, Any] = field(default_factory=dict)  # ``--set``: every point's overrides

    @functools.cached_property
    def points(self) -> list[Point]:
        fingerprint = scenario_fingerprint(self.table)
        table = with_base(self.table, self.base)  # what the axes' wildcards stand for
        out = []
        value_lists = [list(enumerate(values)) for values in self.axes.values()]
        for combination in itertools.product(*value_lists, self.seeds):
            *chosen, seed = combination
            values = tuple(value for _, value in chosen)
            overrides = {**self.base,
                         **concrete_overrides(table, dict(zip(self.axes, values, strict=True)))}
            seed = overrides.pop("seed", seed)  # seed varied as an axis
            identity = json.dumps({"scenario": fingerprint, "overrides": overrides,
                                   "seed": seed}, sort_keys=True, default=str)
            key = hashlib.sha256(identity.encode()).hexdigest()[:16]
            out.append(Point(values, tuple(i for i, _ in chosen), seed, overrides, key))
        return out


def scenario_fingerprint(table: dict) -> str:
    """The scenario table without its ``[sweep]`` table, canonically (what the points share)."""
    rest = {key: value for key, value in table.items() if key != "sweep"}
    return hashlib.sha256(json.dumps(rest, sort_keys=True, default=str).encode()).hexdigest()


# --- parsing --vary ------------------------------------------------------------------------

def split_values(text: str) -> list[str]:
    """``1,2,[3, 4],"a,b"`` -> ``['1', '2', '[3, 4]', '"a,b"']`` (commas outside brackets and
    quotes separate values)."""
    parts, depth, quote, current = [], 0, "", []
    for char in text:
        if quote:
            quote = "" if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    parts.append("".join(current).strip())
    return parts


def parse_vary(items: list[str]) -> dict[str, list[Any]]:
    """``["model.tau_belief_ms=5,10"]`` -> ``{"model.tau_belief_ms": [5, 10]}``."""
    axes: dict[str, list[Any]] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        values = split_values(text) if sep else []
        if not key or not text.strip() or any(not value for value in values):
            raise ScenarioError(f"--vary {describe(item)}: expected KEY=V1,V2,..., e.g. "
                                "model.tau_belief_ms=5,10")
        axes[key] = [parse_value(value, f"--vary {show_key(key)}") for value in values]
        for value in axes[key]:
            check_value(key, value, "--vary")  # the text rule, before any point runs
    return axes


# --- the [sweep] table ----------------------------------------------------------------------

def flatten_vary(table: Any, where: str, path: str) -> dict[str, list[Any]]:
    """``[sweep.vary]``: quoted dotted keys (``"model.tau_belief_ms" = [5, 10]``) or nested
    tables (``model.tau_belief_ms = [5, 10]``) -> dotted key -> values."""
    if not isinstance(table, dict):
        raise ScenarioError(f"{path}: {where}: expected a table of KEY = [values]")
    axes: dict[str, list[Any]] = {}
    for name, value in table.items():
        key = f"{where}.{name}"
        if isinstance(value, dict):
            axes.update({f"{name}.{k}": v
                         for k, v in flatten_vary(value, key, path).items()})
        elif isinstance(value, list) and value:
            axes[name] = value
        else:
            raise ScenarioError(f"{path}: {key}: expected a non-empty list of values, got "
                                f"{describe(value)}")
    return axes


def sweep_table(table: dict, path: str) -> tuple[dict[str, list[Any]], int | None]:
    """The axes and seed count the scenario's ``[sweep]`` table declares."""
    sweep = table.get("sweep", {})
    if not isinstance(sweep, dict):
        raise ScenarioError(f"{path}: sweep: expected a table ([sweep])")
    unknown = sorted(set(sweep) - {"vary", "seeds"})
    if unknown:
        raise ScenarioError(f"{path}: sweep.{unknown[0]}: unknown field; known fields here: "
                            "seeds, vary")
    seeds = sweep.get("seeds")
    if seeds is not None:
        seeds = check_seeds(seeds, f"{path}: sweep.seeds")
    return flatten_vary(sweep.get("vary", {}), "sweep.vary", path), seeds


def check_seeds(seeds: Any, where: str) -> int:
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ScenarioError(f"{where}: expected a positive integer (the number of seeds), got "
                            f"{describe(seeds)}")
    return seeds


# --- keys -----------------------------------------------------------------------------------

def expand_key(table: dict, key: str) -> list[str]:
    """The concrete dotted keys a key with ``*`` stands for (itself when it has none)."""
    if WILDCARD not in key.split("."):
        return [key]
    parts = key.split(".")
    star = parts.index(WILDCARD)
    node: Any = table
    for part in parts[:star]:
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            return []
    if not isinstance(node, list):
        return []
    prefix, rest = ".".join(parts[:star]), ".".join(parts[star + 1:])
    keys = []
    for index in range(len(node)):
        keys += expand_key(table, ".".join(p for p in (prefix, str(index), rest) if p))
    return keys


def concrete_overrides(table: dict, chosen: dict[str, Any]) -> dict[str, Any]:
    """Axis key -> value, with wildcard keys expanded to every key they stand for."""
    out: dict[str, Any] = {}
    for key, value in chosen.items():
        for concrete in expand_key(table, key):
            out[concrete] = value
    return out


def has_path(table: dict, key: str) -> bool:
    node: Any = table
    for part in key.split("."):
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            return False
    return True


def with_base(table: dict, base: dict[str, Any]) -> dict:
    """The scenario table with the ``--set`` overrides applied (``table`` itself when none)."""
    if not base:
        return table
    out = copy.deepcopy(table)
    apply_overrides(out, base, "--set")
    return out


def check_base(path: Path, table: dict, base: dict[str, Any]) -> dict[str, Any]:
    """``--set`` for a sweep: dotted keys (``*`` for every item of a list) and values that
    apply to the scenario of every point, checked as ``pcsim run --set`` checks them (a
    one-line ``ScenarioError``). Returns them with wildcards expanded."""
    from sim.scenario import load_scenario

    out: dict[str, Any] = {}
    for key, value in base.items():
        if key.split(".")[0] == "sweep":
            raise ScenarioError(f"{path}: --set {key}: the [sweep] table is not a scenario "
                                "field")
        concrete = expand_key(table, key)
        if not concrete:
            raise ScenarioError(f"{path}: --set {key}: no such list in the scenario for '*'")
        out.update(dict.fromkeys(concrete, value))
    load_scenario(path, overrides=out)  # a bad key or value: one line, before anything runs
    return out


def check_key(path: Path, table: dict, key: str, value: Any,
              base: dict[str, Any] | None = None) -> None:
    """A key names a field of the scenario: one the file sets, or one its parser takes (a field
    left at its default). Raises a one-line ``ScenarioError`` otherwise. ``table`` and ``base``:
    the scenario table with the sweep's ``--set`` overrides applied, and those overrides."""
    from sim.scenario import load_scenario

    if key.split(".")[0] == "sweep":
        raise ScenarioError(f"{path}: --vary {key}: the [sweep] table is not a scenario field")
    concrete = expand_key(table, key)
    if not concrete:
        raise ScenarioError(f"{path}: --vary {key}: no such list in the scenario for '*'")
    for one in concrete:
        if has_path(table, one):
            continue
        try:
            apply_overrides(copy.deepcopy(table), {one: value}, str(path))
            load_scenario(path, overrides={**(base or {}), one: value})
        except ScenarioError as err:
            message = str(err).replace("--set", "--vary")
            if "unknown field" in message or f"--vary {one}: " in message:
                raise ScenarioError(message) from None
            # a mistake in the value, not the key: that point fails when it runs


def make_grid(scenario: str | Path, vary: dict[str, list[Any]] | None = None,
              seeds: int | None = None, base: dict[str, Any] | None = None) -> Grid:
    """The grid of a sweep: the scenario's ``[sweep]`` table, extended (and, key by key,
    overridden) by ``vary``; ``seeds`` replaces ``sweep.seeds``; ``base`` (``--set``) overrides
    the scenario of every point (``seed`` there: the first seed). Raises ``ScenarioError`` for a
    key that is not a field of the scenario, or one both set and varied (before anything
    runs)."""
    from sim.scenario import find_scenario
    from sim.validation import read_toml

    path = find_scenario(scenario).resolve()
    table, _ = read_toml(path)
    base = check_base(path, table, base or {})
    axes, file_seeds = sweep_table(table, str(path))
    axes.update(vary or {})
    for key in axes:
        both = sorted(set(expand_key(table, key)) & set(base))
        if both:
            raise ScenarioError(f"{path}: --set {both[0]}: also varied (--vary or [sweep] "
                                f"{key}); give it one way")
    first_seed = base.pop("seed", table.get("seed", 0))
    effective = with_base(table, base)
    if seeds is not None:
        check_seeds(seeds, "--seeds")
    count = seeds if seeds is not None else file_seeds or 1
    if "seed" in axes and count > 1:
        raise ScenarioError(f"{path}: seed is varied as an axis; leave out seeds (--seeds)")
    points = math.prod(len(values) for values in axes.values()) * count
    if points > MAX_POINTS:
        raise ScenarioError(f"{path}: a sweep of {describe(points)} points ("
                            f"{' x '.join(str(len(v)) for v in axes.values()) or 'no'} axis "
                            f"values, {describe(count)} seeds); expected at most {MAX_POINTS}")
    for key, values in axes.items():
        if not values:
            raise ScenarioError(f"{path}: --vary {key}: no values")
        check_key(path, effective, key, values[0], base)
    if not isinstance(first_seed, int) or isinstance(first_seed, bool):
        first_seed = 0
    return Grid(path, axes, [first_seed + k for k in range(count)], table, base)
