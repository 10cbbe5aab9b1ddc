"""``pcsim diff SWEEP_A SWEEP_B``: two sweeps compared point by point (h5py, NumPy; no Brian2).

A point of one sweep is the same point of the other when it sets the same values (its
``overrides``, the dotted keys with wildcards expanded) and runs with the same seed: its file
name may differ (it hashes the scenario's text too). Each pair whose two files are there
(``done`` or ``diverged``) is compared as ``pcsim diff`` compares two results
(``sim.report.diff``: parameters, attributes, datasets, within a ``Tolerance``); a pair whose
statuses differ (one done, the other failed or missing) differs; a pair where neither has a
file (failed, running or missing both) is not compared. Points only one sweep has differ.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from sim.report.diff import EXACT, Tolerance, compare, detail_lines, verdict
from sim.sweeps.index import SweepIndex, read_index
from sim.sweeps.report import label

WITH_FILE = ("done", "diverged")


@dataclass
class SweepDifference:
    """Per point: what differs (``lines``, indented under the point), and the points each
    sweep alone has."""

    pairs: int = 0
    compared: int = 0
    differing: list[tuple[str, list[str]]] = field(default_factory=list)  # point, its lines
    only_first: list[str] = field(default_factory=list)
    only_second: list[str] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return not (self.differing or self.only_first or self.only_second)


def point_identity(index: SweepIndex, row: int) -> str:
    """What makes a point the same point in another sweep: its values and its seed."""
    return json.dumps({"overrides": index.overrides[row], "seed": int(index.point_seeds[row])},
                      sort_keys=True, default=str)


def point_name(index: SweepIndex, row: int) -> str:
    """``model.tau_belief_ms=2.0, seed 0`` (the point's axis values as ``pcsim show`` gives
    them, else its overrides)."""
    values = index.values(row) if index.axes else index.overrides[row]
    return ", ".join([*(f"{key}={label(value)}" for key, value in values.items()),
                      f"seed {index.point_seeds[row]}"])


def compare_sweeps(first: SweepIndex, second: SweepIndex,
                   tolerance: Tolerance = EXACT) -> SweepDifference:
    """Every difference between the points of two sweeps (their files read one pair at a
    time)."""
    from sim.io.reader import load

    rows = {point_identity(second, row): row for row in range(len(second.files))}
    matched: set[int] = set()
    found = SweepDifference()
    for row in range(len(first.files)):
        other = rows.get(point_identity(first, row))
        name = point_name(first, row)
        if other is None:
            found.only_first.append(f"{name} ({first.status[row]})")
            continue
        matched.add(other)
        found.pairs += 1
        statuses = (first.status[row], second.status[other])
        if statuses[0] not in WITH_FILE and statuses[1] not in WITH_FILE:
            continue  # neither ran to a file: nothing to compare
        if statuses[0] != statuses[1]:
            found.differing.append((name, [f"status {statuses[0]} -> {statuses[1]}"]))
            continue
        found.compared += 1
        with load(first.folder / first.files[row], allow_incomplete=True) as a, \
                load(second.folder / second.files[other], allow_incomplete=True) as b:
            difference = compare(a, b, tolerance)
            if not difference.identical:
                found.differing.append((name, [verdict(difference, tolerance),
                                               *detail_lines(difference, str(a.path),
                                                             str(b.path), tolerance)]))
    found.only_second = [f"{point_name(second, row)} ({second.status[row]})"
                         for row in range(len(second.files)) if row not in matched]
    return found


def sweep_diff_lines(first: str | Path, second: str | Path,
                     tolerance: Tolerance = EXACT) -> tuple[list[str], bool]:
    """What ``pcsim diff`` prints for two sweeps (index files or folders), and whether they
    differ."""
    a, b = read_index(first), read_index(second)
    found = compare_sweeps(a, b, tolerance)
    names = f"{a.path} and {b.path}"
    within = "" if tolerance.exact else f" within {tolerance.describe()}"
    if found.identical:
        return [f"{names}: equal{within} ({found.pairs} points in both, {found.compared} "
                f"compared file by file, {found.pairs - found.compared} with no file in "
                "either)"], False
    lines = [f"{names}: differ ({len(found.differing)} of {found.pairs} points in both"
             f"{within}, {len(found.only_first)} only in the first, {len(found.only_second)} "
             "only in the second)"]
    for name, how in found.differing:
        lines.append(f"  point {name}: {how[0]}")
        lines += [f"  {line}" for line in how[1:]]
    for label_, points in ((a.path, found.only_first), (b.path, found.only_second)):
        if points:
            lines.append(f"  only in {label_}: " + "; ".join(points))
    return lines, True
