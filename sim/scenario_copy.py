"""``pcsim new FILE --from NAME``: a bundled scenario copied to a file of one's own, to edit.

The copy is the bundled file's text, comments and all, with two changes that do not touch the
numbers: a first comment line saying where it came from, and its ``name`` set to the new
file's stem (when that is a valid scenario name), so its results are named after it
(``outputs/<stem>-seed<seed>-....h5``). ``pcsim run FILE`` then runs exactly what the bundled
scenario runs. The file appears whole or not at all (written beside it, then renamed), and an
existing file is replaced only with ``overwrite``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from sim._version import __version__
from sim.errors import ScenarioError
from sim.scenario import NAME_PATTERN, bundled_match, bundled_scenarios

TOP_NAME = re.compile(r'^name\s*=\s*"[^"\n]*"[ \t]*$', re.MULTILINE)  # a basic string on a line


def bundled_name(name: str) -> str:
    """The full name of a bundled scenario (``creak`` or ``perception/creak``), or a one-line
    ``ScenarioError`` listing the names."""
    try:
        full = bundled_match(name)
    except ScenarioError as err:  # several have it
        raise ScenarioError(f"--from {err}") from None
    if full is None:
        raise ScenarioError(f"--from {name}: no bundled scenario of that name; expected one of "
                            f"{', '.join(bundled_scenarios())} (pcsim list)")
    return full


def copy_text(name: str, new_name: str | None) -> str:
    """The bundled scenario ``name``'s text as the copy has it (see the module docstring)."""
    text = bundled_scenarios()[name].read_text("utf-8")
    header = f"# made by `pcsim new` from the bundled scenario {name} (pcsim {__version__})\n"
    if new_name is not None and NAME_PATTERN.fullmatch(new_name):
        first_table = re.search(r"^\s*\[", text, re.MULTILINE)
        end = first_table.start() if first_table else len(text)
        line = TOP_NAME.search(text, 0, end)
        if line is not None:
            text = text[:line.start()] + f'name = "{new_name}"' + text[line.end():]
    return header + text


def copy_bundled(name: str, target: Path, overwrite: bool = False) -> Path:
    """Write an editable copy of bundled scenario ``name`` to ``target`` (a ``.toml`` name);
    returns ``target``. A mistake (an unknown name, a name not ending in ``.toml``, an
    existing file without ``overwrite``, a folder that is not there or not writable) is a
    one-line ``ScenarioError`` and writes nothing."""
    full = bundled_name(name)
    if target.suffix.lower() != ".toml":
        raise ScenarioError(f"{target}: a scenario file's name ends in .toml, e.g. "
                            f"{target.with_suffix('.toml').name}")
    if target.is_dir():
        raise ScenarioError(f"{target}: is a folder; give a file name ending in .toml")
    if target.exists() and not overwrite:
        raise ScenarioError(f"{target}: exists; give --overwrite to replace it")
    if not target.parent.is_dir():
        raise ScenarioError(f"{target}: no folder {target.parent}; make it first")
    text = copy_text(full, target.stem)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, target)
    except OSError as err:
        temporary.unlink(missing_ok=True)
        raise ScenarioError(f"{target}: cannot write: {err.strerror or err}") from None
    return target
