"""Reading scenario tables with precise one-line errors: file, line, field path, value, expected.

``Fields`` wraps one TOML table. Each ``take`` call names a field, its type and range; ``close``
rejects the keys nobody took, with a did-you-mean. Every failure is a ``ScenarioError``, which
the CLI prints as one line (exit code 2) and ``sim.run`` raises as is.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

REQUIRED = object()


class ScenarioError(ValueError):
    """A mistake in a scenario (or its overrides): the message says where and what was expected."""


@dataclass(frozen=True)
class Source:
    """Where a scenario came from, to point at lines in messages."""

    path: str
    text: str

    def line_of(self, key: str) -> int | None:
        name = re.escape(key)
        pattern = re.compile(rf'^\s*"?{name}"?\s*=|^\s*\[+\s*[\w.]*{name}\s*\]+')
        for number, line in enumerate(self.text.splitlines(), start=1):
            if pattern.search(line):
                return number
        return None

    def error(self, field: str, message: str) -> ScenarioError:
        key = field.rsplit(".", 1)[-1].split("[", 1)[0]
        line = self.line_of(key) if key else None
        where = f"{self.path}:{line}" if line else self.path
        return ScenarioError(f"{where}: {field}: {message}")


def describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class Fields:
    """One table of a scenario being read; ``path`` is its field path (``model.levels[1]``)."""

    def __init__(self, table: Any, path: str, source: Source) -> None:
        if not isinstance(table, dict):
            raise source.error(path or "(top level)", f"expected a table, got {describe(table)}")
        self.table = table
        self.path = path
        self.source = source
        self.taken: set[str] = set()

    def field(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def error(self, key: str, message: str) -> ScenarioError:
        return self.source.error(self.field(key), message)

    def has(self, key: str) -> bool:
        return key in self.table

    def raw(self, key: str, default: Any = REQUIRED) -> Any:
        self.taken.add(key)
        if key not in self.table:
            if default is REQUIRED:
                raise self.error(key, "missing (required)")
            return default
        return self.table[key]

    def sub(self, key: str, default: Any = REQUIRED) -> Fields:
        value = self.raw(key, {} if default is not REQUIRED else REQUIRED)
        return Fields(value, self.field(key), self.source)

    def subs(self, key: str) -> list[Fields]:
        value = self.raw(key)
        if not isinstance(value, list) or not value:
            raise self.error(key, f"expected a non-empty array of tables, got {describe(value)}")
        return [Fields(item, f"{self.field(key)}[{i}]", self.source)
                for i, item in enumerate(value)]

    def text(self, key: str, default: Any = REQUIRED, choices: tuple[str, ...] = ()) -> str:
        value = self.raw(key, default)
        if not isinstance(value, str):
            raise self.error(key, f"expected a string, got {describe(value)}")
        if choices and value not in choices:
            hint = difflib.get_close_matches(value, choices, n=1)
            suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
            expected = ", ".join(choices)
            raise self.error(key, f"got {value!r}, expected one of {expected}{suggestion}")
        return value

    def number(
        self,
        key: str,
        default: Any = REQUIRED,
        minimum: float | None = None,
        maximum: float | None = None,
        positive: bool = False,
        integer: bool = False,
    ) -> Any:
        value = self.raw(key, default)
        if value is None and default is None:
            return None
        return check_number(value, lambda msg: self.error(key, msg), minimum, maximum, positive,
                            integer)

    def vector(
        self, key: str, size: int, default: Any = REQUIRED, minimum: float | None = None,
        positive: bool = False,
    ) -> np.ndarray:
        """A scalar (broadcast) or a list of ``size`` numbers."""
        value = self.raw(key, default)
        return to_vector(value, size, lambda msg: self.error(key, msg), minimum, positive)

    def close(self) -> None:
        unknown = [key for key in self.table if key not in self.taken]
        if unknown:
            key = unknown[0]
            hint = difflib.get_close_matches(key, sorted(self.taken), n=1)
            suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
            known = ", ".join(sorted(self.taken))
            raise self.error(key, f"unknown field{suggestion}; known fields here: {known}")


def check_number(
    value: Any,
    fail: Callable[[str], ScenarioError],
    minimum: float | None = None,
    maximum: float | None = None,
    positive: bool = False,
    integer: bool = False,
) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise fail(f"expected {'an integer' if integer else 'a number'}, got {describe(value)}")
    if integer and not isinstance(value, int):
        raise fail(f"expected an integer, got {describe(value)}")
    if not math.isfinite(value):
        raise fail(f"expected a finite number, got {value!r}")
    if positive and value <= 0:
        raise fail(f"expected a positive number, got {value!r}")
    if minimum is not None and value < minimum:
        raise fail(f"expected a number >= {minimum}, got {value!r}")
    if maximum is not None and value > maximum:
        raise fail(f"expected a number <= {maximum}, got {value!r}")
    return value


def to_vector(
    value: Any,
    size: int,
    fail: Callable[[str], ScenarioError],
    minimum: float | None = None,
    positive: bool = False,
) -> np.ndarray:
    """A scalar broadcast to ``size`` or a list of exactly ``size`` numbers."""
    if isinstance(value, list):
        if len(value) != size:
            raise fail(f"expected a number or a list of {size} numbers, got a list of {len(value)}")
        items = value
    else:
        items = [value]
    for item in items:
        check_number(item, fail, minimum=minimum, positive=positive)
    return np.array(np.broadcast_to(np.asarray(items, dtype=float), size))


def to_matrix(
    value: Any, shape: tuple[int, int], fail: Callable[[str], ScenarioError]
) -> np.ndarray:
    if not isinstance(value, list) or not all(isinstance(row, list) for row in value):
        raise fail(f"expected a {shape[0]} x {shape[1]} array of numbers (a list of rows)")
    if len(value) != shape[0] or any(len(row) != shape[1] for row in value):
        got = f"{len(value)} rows of lengths {sorted({len(row) for row in value})}"
        raise fail(f"expected {shape[0]} rows of {shape[1]} numbers, got {got}")
    for row in value:
        for item in row:
            check_number(item, fail)
    return np.asarray(value, dtype=float)


def read_toml(path: Path) -> tuple[dict, Source]:
    import tomllib

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ScenarioError(f"{path}: cannot read scenario: {err.strerror}") from err
    except UnicodeDecodeError as err:
        raise ScenarioError(f"{path}: not a UTF-8 text file") from err
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ScenarioError(f"{path}: not valid TOML: {err}") from err
    return data, Source(str(path), text)
