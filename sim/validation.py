"""Reading scenario tables with precise one-line errors: file, line, field path, value, expected.

``Fields`` wraps one TOML table. Each ``take`` call names a field, its type and range; ``close``
rejects the keys nobody took, with a did-you-mean. Every failure is a ``ScenarioError``, which
the CLI prints as one line (exit code 2) and ``sim.run`` raises as is.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from circuits.mechanism import unknown_name
from sim import toml_input
from sim.errors import ScenarioError
from sim.toml_input import describe

REQUIRED = object()




@dataclass(frozen=True)
class Source:
    """Where a scenario came from, to point at lines in messages.

    ``overrides`` are the dotted keys given with ``--set``: a mistake in one of them is
    reported as coming from the command line, not from a line of the file.
    """

    path: str
    text: str
    overrides: tuple[str, ...] = ()

    def line_of(self, field: str) -> int | None:
        """The line that defines ``field`` (``model.levels[1].weights.kind``), or its nearest
        enclosing key or table header (a key inside an inline table points at that table)."""
        target = field_tokens(field)
        best, best_length = None, 0
        for number, tokens in key_lines(self.text):
            length = len(tokens)
            if length > best_length and target[:length] == tokens:
                best, best_length = number, length
                if length == len(target):
                    break
        return best

    def error(self, field: str, message: str) -> ScenarioError:
        tokens = field_tokens(field)
        for key in self.overrides:
            override = [int(part) if part.isdigit() else part for part in key.split(".")]
            if tokens[: len(override)] == override:
                return ScenarioError(f"{self.path} (--set {key}): {field}: {message}")
        line = self.line_of(field) if tokens else None
        where = f"{self.path}:{line}" if line else self.path
        return ScenarioError(f"{where}: {field}: {message}")


def field_tokens(field: str) -> list[str | int]:
    """``model.levels[1].size`` -> ``['model', 'levels', 1, 'size']``."""
    tokens: list[str | int] = []
    for part in field.split("."):
        name, *indices = part.split("[")
        if name and name != "(top level)":
            tokens.append(name)
        tokens.extend(int(index.rstrip("]")) for index in indices if index.rstrip("]").isdigit())
    return tokens


_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?")
_KEY = re.compile(r"^\s*((?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*')"
                  r"(?:\s*\.\s*(?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*'))*)\s*=")


def _dotted(text: str) -> list[str]:
    return [part.strip().strip("\"'") for part in re.findall(
        r"\"[^\"]*\"|'[^']*'|[^.]+", text)]


def _strip_strings(line: str) -> str:
    """The line without string literals and comments (for counting brackets)."""
    line = re.sub(r"\"(?:[^\"\\]|\\.)*\"|'[^']*'", "", line)
    return line.split("#", 1)[0]


def key_lines(text: str):
    """(line number, key path) for every key and table header of a TOML text.

    A small scanner, enough to point at lines: it follows ``[table]`` and ``[[array]]`` headers
    (counting array items), dotted keys, and skips the insides of multi-line strings and of
    values that span several lines.
    """
    table: list[str | int] = []
    counts: dict[tuple, int] = {}
    depth = 0
    in_string = None
    for number, line in enumerate(text.split("\n"), start=1):  # (not U+2028 & co. in strings)
        if in_string:
            if in_string in line:
                in_string = None
            continue
        if depth == 0:
            header = _HEADER.match(line)
            key = None if header else _KEY.match(line)
            if header:
                parts = _dotted(header.group(2))
                path: list[str | int] = []
                for i, part in enumerate(parts):
                    path.append(part)
                    prefix = tuple(parts[: i + 1])
                    if header.group(1) == "[[" and i == len(parts) - 1:
                        counts[prefix] = counts.get(prefix, -1) + 1
                        for nested in [k for k in counts if k[: len(prefix)] == prefix
                                       and len(k) > len(prefix)]:
                            del counts[nested]  # a new item starts its own sub-arrays
                        path.append(counts[prefix])
                    elif prefix in counts:
                        path.append(counts[prefix])
                table = path
                yield number, list(table)
                continue
            if key:
                yield number, [*table, *_dotted(key.group(1))]
                line = line[key.end():]
        for quote in ('"""', "'''"):
            if line.count(quote) % 2 == 1:
                in_string = quote
                line = line[: line.index(quote)]
        bare = _strip_strings(line)
        depth = max(0, depth + bare.count("[") + bare.count("{") - bare.count("]")
                    - bare.count("}"))


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
            raise self.error(key, f"got {describe(value)}, expected one of {expected}"
                                  f"{suggestion}")
        return value

    def names(self, key: str, default: Any = REQUIRED, choices: Sequence[str] | None = None,
              what: str = "level") -> Any:
        """A non-empty list of distinct names, as a tuple (``default`` as given when the key is
        absent); with ``choices``, each one of them (``unknown_name``)."""
        value = self.raw(key, default)
        if not self.has(key):
            return default
        if (not isinstance(value, list) or not value
                or not all(isinstance(name, str) for name in value)):
            raise self.error(key, f"expected a non-empty list of {what} names, got "
                                  f"{describe(value)}")
        twice = next((name for name in value if value.count(name) > 1), None)
        if twice is not None:
            raise self.error(key, f"a {what} is named twice ({describe(twice)}); expected distinct "
                                  "names")
        problem = None if choices is None else unknown_name(value, choices, what)
        if problem:
            raise self.error(key, problem)
        return tuple(value)

    def flag(self, key: str, default: Any = REQUIRED) -> bool:
        value = self.raw(key, default)
        if not isinstance(value, bool):
            raise self.error(key, f"expected true or false, got {describe(value)}")
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
    try:
        finite = math.isfinite(value)
    except OverflowError:  # an integer past the largest float
        finite = False
    if not finite:
        raise fail(f"expected a finite number, got {describe(value)}")
    if positive and value <= 0:
        raise fail(f"expected a positive number, got {describe(value)}")
    if minimum is not None and value < minimum:
        raise fail(f"expected a number >= {minimum}, got {describe(value)}")
    if maximum is not None and value > maximum:
        raise fail(f"expected a number <= {maximum}, got {describe(value)}")
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
    """A scenario file's table and its ``Source``, after the checks of ``sim.toml_input``
    (size, encoding, TOML, nesting, the text rule): each failure one line naming the file."""
    return toml_table(toml_input.read_text(path), str(path))


def toml_table(text: str, path: str) -> tuple[dict, Source]:
    """``read_toml`` of a scenario's text read already (a result's ``/scenario/source``), with
    ``path`` naming where it came from in messages."""
    data = toml_input.loads(text, path)
    source = Source(path, text)
    toml_input.check_tree(data, (), lambda at, message: source.error(
        toml_input.field_path(at), message))
    return data, source
