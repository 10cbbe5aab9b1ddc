"""Write the scenario tables the benchmark builds as TOML files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np


def _value(value: Any) -> str:
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        return repr(float(value))
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {value!r} as TOML")


def _tables(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def dumps(data: dict, prefix: str = "") -> str:
    lines = [f"{key} = {_value(value)}" for key, value in data.items()
             if not isinstance(value, dict) and not _tables(value)]
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            lines += [f"\n[{name}]", dumps(value, f"{name}.")]
        elif _tables(value):
            for item in value:
                lines += [f"\n[[{name}]]", dumps(item, f"{name}.")]
    return "\n".join(line for line in lines if line)


def write(path: Path, data: dict) -> Path:
    path.write_text(dumps(data) + "\n", encoding="utf-8")
    return path
