"""Running again the scenario a result stores (``pcsim run RESULT.h5``, ``sim.run(RESULT.h5)``).

A result keeps the scenario's text as read (``/scenario/source``), the path it was read from
(``/scenario`` attribute ``path``) and its resolved parameters, among them the overrides given
with it (``/scenario/parameters``: ``overrides``, the seed there when one was given). The text
parsed again under the same path with the same overrides is the same scenario, and with the
same software (versions, commit) on the same device the run writes the same datasets, bitwise.
The device is the one that ran (the file's ``device`` attribute), whatever ``$PCSIM_DEVICE``
says now: the compiled device's numbers differ from the runtime's in the last bits
(docs/scenarios.md). The file differs only in ``created_utc`` (and, on another machine or
checkout, in the attributes of ``sim.io.provenance``). New overrides (``--set``, ``--seed``)
apply on top of the stored ones, as on a scenario file.

Where the stored software versions differ from the running ones, one line says which
(``version_note``), and the run goes on.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sim.errors import ResultError, ScenarioError

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"  # the first bytes of an HDF5 file written by h5py
SOFTWARE = (("pcsim_version", "pcsim"), ("git_commit", "commit"),
            ("brian2_version", "brian2"), ("numpy_version", "numpy"))


def is_result_file(path: str | Path) -> bool:
    """Whether ``path`` names an HDF5 file (a result to re-run), from its first 8 bytes."""
    path = Path(path)
    try:
        with path.open("rb") as file:
            return file.read(len(HDF5_SIGNATURE)) == HDF5_SIGNATURE
    except OSError:
        return False


@dataclass
class StoredRun:
    """What a result says about the run that wrote it."""

    result: Path
    source: str  # the scenario's text
    scenario_path: str  # where it was read from
    overrides: dict[str, Any]
    device: str | None  # ``[numerics] device`` that chooses the device that ran (None: unknown)
    software: dict[str, str]  # SOFTWARE keys -> what wrote it


def read_stored_run(path: str | Path) -> StoredRun:
    """The stored run of the result at ``path`` (ResultError: not a result, or damaged)."""
    from sim.io.reader import load
    from sim.sweeps.detect import is_sweep_index

    if is_sweep_index(path):
        raise ResultError(f"{path}: is a sweep's index, not a result; re-run a point by its "
                          "file (point-<key>.h5 beside the index) or the sweep with pcsim sweep")
    with load(path, allow_incomplete=True) as result:
        parameters = result.parameters
        overrides = parameters.get("overrides", {})
        if not isinstance(overrides, dict):
            raise ResultError(f"{path}: damaged pcsim result: /scenario/parameters: overrides "
                              "is not a table")
        ran = result.attrs.get("device")
        numerics = parameters.get("numerics")
        stored = numerics.get("device") if isinstance(numerics, dict) else None
        return StoredRun(
            result=Path(path), source=result.scenario_source,
            scenario_path=str(result.group_attrs["scenario"]["path"]), overrides=overrides,
            device=device_setting(stored, None if ran is None else str(ran)),
            software={key: str(result.attrs[key]) for key, _ in SOFTWARE
                      if key in result.attrs})


def device_setting(stored: str | None, ran: str | None) -> str | None:
    """The ``[numerics] device`` that picks the device that ran, and resolves to the stored
    parameters: they name the device only when it was ``standalone`` (``Scenario.resolved``),
    ``runtime`` and ``auto`` leave it out; ``auto`` chose standalone before, and will again."""
    if stored == "standalone":
        return "standalone"
    return {"runtime": "runtime", "standalone": "auto"}.get(ran or "")


def stored_scenario(path: str | Path, overrides: dict[str, Any] | None = None,
                    seed: int | None = None) -> tuple[Any, str | None]:
    """The scenario the result at ``path`` stores, ``overrides`` and ``seed`` applied over its
    own, and the line saying which software versions differ from those that wrote it (None:
    none differ)."""
    from sim.scenario import override_and_parse
    from sim.validation import toml_table

    stored = read_stored_run(path)
    merged = {**stored.overrides, **(overrides or {})}
    try:
        scenario = override_and_parse(*toml_table(stored.source, stored.scenario_path),
                                      merged, seed)
    except ScenarioError as err:
        raise ScenarioError(f"{path} (the scenario it stores): {err}") from None
    if stored.device is not None and "numerics.device" not in (overrides or {}):
        scenario.numerics = dataclasses.replace(scenario.numerics, device=stored.device)
    return scenario, version_note(stored)


def running_software(commit: bool = True) -> dict[str, str]:
    """The SOFTWARE of this process (``sim.io.writer.versions``, read without importing
    Brian2; ``commit``: with the git commit it runs from, one ``git`` call)."""
    from sim.io.provenance import CHECKOUT, git_state
    from sim.io.writer import versions

    found = {key: value for key, value in versions().items() if key in dict(SOFTWARE)}
    commit = git_state(CHECKOUT).get("git_commit") if commit else None
    return {**found, **({"git_commit": commit} if commit else {})}


def version_note(stored: StoredRun) -> str | None:
    """One line naming each software version that differs between the one that wrote the
    result and this one (a commit: when both ran from a git checkout); None when none does."""
    now = running_software(commit="git_commit" in stored.software)  # git only if it can differ
    changed = [(name, *(value[:12] if key == "git_commit" else value
                        for value in (stored.software[key], now[key])))
               for key, name in SOFTWARE
               if key in stored.software and key in now and stored.software[key] != now[key]]
    if not changed:
        return None
    return (f"{stored.result} was written by " + ", ".join(f"{name} {old}" for name, old, _ in
                                                          changed)
            + "; this is " + ", ".join(f"{name} {new}" for name, _, new in changed)
            + ": the re-run may differ from it")
