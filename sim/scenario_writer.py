"""Write scenario tables as TOML files: used by the benchmark, the tests and users' parameter
sweeps.

``dumps(data)`` turns a dict of tables, arrays of tables and values (numbers, strings, booleans,
lists, NumPy arrays and scalars, inline dicts) into TOML that ``tomllib`` reads back as the same
data; ``write_scenario(path, data)`` writes it to a file. Keys that are not bare TOML keys are
quoted, in headers and inline tables alike.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["dumps", "write_scenario"]

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _string(text: str) -> str:
    # JSON's escapes are TOML basic-string escapes; keep non-ASCII as is (JSON would write
    # characters outside the BMP as surrogate pairs, which TOML rejects) and escape DEL.
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _key(key: Any) -> str:
    key = str(key)
    return key if _BARE_KEY.fullmatch(key) else _string(key)


def _value(value: Any) -> str:
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        return repr(float(value))
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {value!r} as TOML")


def _is_table_array(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def _dumps(data: dict, prefix: str) -> str:
    lines = [f"{_key(key)} = {_value(value)}" for key, value in data.items()
             if not isinstance(value, dict) and not _is_table_array(value)]
    for key, value in data.items():
        name = f"{prefix}{_key(key)}"
        if isinstance(value, dict):
            lines += [f"\n[{name}]", _dumps(value, f"{name}.")]
        elif _is_table_array(value):
            for item in value:
                lines += [f"\n[[{name}]]", _dumps(item, f"{name}.")]
    return "\n".join(line for line in lines if line)


def dumps(data: dict) -> str:
    """``data`` as TOML: values first, then tables (``[a.b]``) and arrays of tables."""
    return _dumps(data, "")


def write_scenario(path: str | Path, data: dict) -> Path:
    """Write ``data`` to ``path`` as TOML (UTF-8) and return the path."""
    path = Path(path)
    path.write_text(dumps(data) + "\n", encoding="utf-8")
    return path
