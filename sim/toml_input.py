"""TOML from users, read defensively: the scenario file's bytes, ``--set``/``--vary`` values (and
their dotted keys set in the scenario's table: ``apply_overrides``), and the one rule every key
and string of a scenario obeys.

A scenario file is UTF-8 text of at most ``MAX_FILE_BYTES`` (refused by its size before it is
read); a UTF-8 byte-order mark, which some editors write, is accepted and dropped; UTF-16 or
UTF-32 text, NUL bytes and bytes that are not UTF-8 are refused with one line saying the file
must be UTF-8. Tables and arrays nest at most ``MAX_DEPTH`` deep (bundled scenarios need 8).

The text rule (``text_problem``), for the file, ``--set`` and ``--vary`` values and the Python
API's overrides alike: no control character (Unicode category Cc: U+0000-U+001F, U+007F-U+009F)
and no lone surrogate (from command-line bytes that are not UTF-8) in any key or string. Names
become HDF5 attributes and datasets (where a NUL cannot be stored), file names and lines of
``pcsim show``; a control character would break them or the terminal. The prose fields
(``PROSE_FIELDS``: ``description``) may hold tabs and line breaks and run to
``PROSE_LIMIT`` characters; a key may have ``KEY_LIMIT`` characters, any other string (a name,
a kind, an expression) ``TEXT_LIMIT``. Messages echo user text through ``describe``, which
truncates it.
"""

from __future__ import annotations

import re
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sim.errors import ScenarioError

MAX_FILE_BYTES = 16 * 2**20  # a dense 1000 x 1000 matrix of weights takes ~10 MB (4 s to parse)
MAX_DEPTH = 32  # tables and arrays within each other
KEY_LIMIT = 128
TEXT_LIMIT = 256
PROSE_LIMIT = 100_000
PROSE_FIELDS = (("description",),)  # field paths of free text

_FORBIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_FORBIDDEN_IN_PROSE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
_BOMS = ((b"\x00\x00\xfe\xff", "UTF-32"), (b"\xff\xfe\x00\x00", "UTF-32"),
         (b"\xfe\xff", "UTF-16"), (b"\xff\xfe", "UTF-16"))
_UTF8_BOM = b"\xef\xbb\xbf"
_WALKED = (str, dict, list, tuple)  # what check_tree looks into


def describe(value: Any, limit: int = 60) -> str:
    """``repr(value)``, cut to ``limit`` characters: how a message echoes what a user gave."""
    try:
        text = repr(value)
    except ValueError:  # an integer past Python's limit on digits for conversion to text
        text = f"an integer of {value.bit_length()} bits"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def field_path(tokens: tuple[str | int, ...] | list[str | int]) -> str:
    """``('model', 'levels', 1, 'size')`` -> ``model.levels[1].size``."""
    out = ""
    for token in tokens:
        out += f"[{token}]" if isinstance(token, int) else (f".{token}" if out else token)
    return out or "(top level)"


def text_problem(text: str, prose: bool = False) -> str | None:
    """What breaks the text rule in ``text`` (a key or string of a scenario), or None."""
    limit = PROSE_LIMIT if prose else TEXT_LIMIT
    if len(text) > limit:
        return (f"a text of {len(text)} characters; expected at most {limit}"
                + ("" if prose else " (a name, a kind or an expression)"))
    found = (_FORBIDDEN_IN_PROSE if prose else _FORBIDDEN).search(text)
    if found is None:
        return None
    code, where = ord(found.group()), found.start() + 1
    if 0xD800 <= code <= 0xDFFF:
        return (f"{describe(text)} holds U+{code:04X} at character {where}, not a Unicode "
                "character (bytes that are not UTF-8?); expected UTF-8 text")
    allowed = " other than tab and line breaks" if prose else ""
    return (f"{describe(text)} holds the control character U+{code:04X} at character "
            f"{where}; expected text without control characters{allowed}")


def key_problem(key: str) -> str | None:
    """What breaks the text rule in a key (a field name, or a name used as a key), or None."""
    if len(key) > KEY_LIMIT:
        return f"a key of {len(key)} characters; expected at most {KEY_LIMIT}"
    problem = text_problem(key)
    return None if problem is None else f"key {problem}"


def show_key(key: Any) -> str:
    """A dotted key as a message shows it: as given when it obeys the text rule, else cut."""
    return key if isinstance(key, str) and key_problem(key) is None else describe(key)


def check_tree(value: Any, path: tuple[str | int, ...],
               fail: Callable[[tuple[str | int, ...], str], Exception]) -> None:
    """Raise ``fail(path, message)`` for the first key or string below ``value`` (found at
    ``path``) that breaks the text rule, or for tables and arrays nested past ``MAX_DEPTH``.

    Iterative (a value nested 5,000 deep must not exhaust Python's stack); a table's keys
    before its values.
    """
    stack: list[tuple[Any, tuple[str | int, ...], int]] = [(value, path, 0)]
    while stack:
        node, where, depth = stack.pop()
        if isinstance(node, str):
            problem = text_problem(node, prose=where in PROSE_FIELDS)
            if problem:
                raise fail(where, problem)
            continue
        if isinstance(node, dict):
            for key in node:
                problem = key_problem(key) if isinstance(key, str) else None
                if problem:
                    raise fail(where, problem)
            items: list = [(key, item) for key, item in node.items()
                           if isinstance(item, _WALKED)]
        elif isinstance(node, list | tuple):
            items = [(index, item) for index, item in enumerate(node)
                     if isinstance(item, _WALKED)]  # (a matrix: its numbers pass in one sweep)
        else:
            continue
        if depth >= MAX_DEPTH:  # named by the field it is in (a few keys down, no indices)
            shown = where[: len(path) + 3]
            while shown and isinstance(shown[-1], int):
                shown = shown[:-1]
            raise fail(shown, f"tables or arrays nested more than {MAX_DEPTH} deep; expected "
                              f"at most {MAX_DEPTH}")
        stack.extend((item, (*where, key), depth + 1) for key, item in reversed(items))


def read_text(path: Path) -> str:
    """The text of a scenario file, after the size and encoding checks (one-line
    ``ScenarioError``s naming the file)."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ScenarioError(f"{path}: a scenario file of {size / 2**20:.1f} MiB; expected at "
                                f"most {MAX_FILE_BYTES // 2**20} MiB (give large arrays "
                                "through --set or the Python API)")
        with path.open("rb") as file:
            raw = file.read(MAX_FILE_BYTES + 1)  # a file that grew since stat stays bounded
    except OSError as err:
        raise ScenarioError(f"{path}: cannot read scenario: {err.strerror or err}") from err
    if len(raw) > MAX_FILE_BYTES:
        raise ScenarioError(f"{path}: a scenario file of more than "
                            f"{MAX_FILE_BYTES // 2**20} MiB; expected at most that")
    return decode(raw, str(path))


def decode(raw: bytes, where: str) -> str:
    """UTF-8 text (a leading byte-order mark dropped), or a one-line ``ScenarioError``."""
    must = "a scenario file must be UTF-8 text: save it as UTF-8"
    for mark, encoding in _BOMS:
        if raw.startswith(mark):
            raise ScenarioError(f"{where}: {encoding} text (it starts with a {encoding} "
                                f"byte-order mark); {must}")
    raw = raw.removeprefix(_UTF8_BOM)
    nul = raw.find(b"\x00")
    if nul >= 0:
        line = raw.count(b"\n", 0, nul) + 1
        raise ScenarioError(f"{where}:{line}: a NUL byte (UTF-16 or UTF-32 text, or not a text "
                            f"file?); {must}")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        raise ScenarioError(f"{where}:{line}: byte 0x{raw[err.start]:02x} is not UTF-8; "
                            f"{must}") from None


def loads(text: str, where: str) -> dict:
    """``tomllib.loads``, with every failure as one line naming ``where``."""
    try:
        return tomllib.loads(text)
    except (RecursionError, ValueError) as err:  # (TOMLDecodeError is a ValueError)
        raise refusal(err, text, where) from None


def refusal(err: RecursionError | ValueError, text: str, where: str,
            in_file: bool = True) -> ScenarioError:
    """The one line for a failure of ``tomllib`` on ``text`` (a file's: with its line)."""
    if isinstance(err, tomllib.TOMLDecodeError):
        return ScenarioError(f"{where}: not valid TOML: {err}")
    if isinstance(err, RecursionError):
        return ScenarioError(f"{where}: tables or arrays nested thousands deep; expected at "
                             f"most {MAX_DEPTH}")
    # tomllib lets int() refuse a number past Python's limit on digits
    digits = sys.get_int_max_str_digits()
    long = re.search(f"[0-9_]{{{digits + 1},}}", text) if in_file else None
    line = f":{text.count(chr(10), 0, long.start()) + 1}" if long else ""
    return ScenarioError(f"{where}{line}: an integer of more than {digits} digits; expected a "
                         "number a scenario can use")


def parse_value(text: str, where: str) -> Any:
    """One TOML value (``3``, ``[1, 2]``, ``"tanh"``); text that is not TOML (a bare word) is
    taken as a string. ``where`` (``--set KEY``) names it in errors."""
    try:
        table = tomllib.loads(f"value = {text}")
    except tomllib.TOMLDecodeError:
        return text
    except (RecursionError, ValueError) as err:
        raise refusal(err, text, where, in_file=False) from None
    if list(table) != ["value"]:
        raise ScenarioError(f"{where}: {describe(text)}: expected one value, got several "
                            "lines of TOML")
    return table["value"]


def check_value(key: Any, value: Any, option: str = "--set", origin: str = "") -> None:
    """An override (``--set``, ``--vary``, the API's ``overrides``): its dotted key and its value
    obey the text rule. Errors read ``origin (option KEY): field: ...``, as
    ``sim.validation.Source.error`` writes them."""
    where = f"{origin} ({option} {show_key(key)})" if origin else f"{option} {show_key(key)}"
    if not isinstance(key, str):
        raise ScenarioError(f"{where}: expected a dotted key (a string)")
    problem = key_problem(key)
    if problem:
        raise ScenarioError(f"{where}: {problem}")
    tokens = tuple(int(part) if part.isdigit() else part for part in key.split("."))

    def fail(path: tuple[str | int, ...], message: str) -> ScenarioError:
        return ScenarioError(f"{where}: {field_path(path)}: {message}")

    check_tree(value, tokens, fail)


def apply_overrides(data: dict, overrides: dict[str, Any], path: str) -> None:
    """Set dotted paths (``model.levels.1.size``: list items by their index) in the raw
    scenario table ``data``; a path through something that is not a table, or past a list's
    end, is a one-line ``ScenarioError`` naming ``path`` (the scenario's file)."""
    for key, value in overrides.items():
        parts = key.split(".")
        node: Any = data
        for depth, part in enumerate(parts):
            last = depth == len(parts) - 1
            where = ".".join(parts[: depth + 1])
            if isinstance(node, list):
                if not part.isdigit() or int(part) >= len(node):
                    raise ScenarioError(
                        f"{path}: --set {key}: {where}: expected an index below {len(node)}"
                    )
                part = int(part)
            elif not isinstance(node, dict):
                raise ScenarioError(f"{path}: --set {key}: {where}: is not a table")
            if last:
                node[part] = value
            else:
                if isinstance(node, dict) and part not in node:
                    node[part] = {}
                node = node[part]
