"""A result file's metadata against the schema (``sim.io.schema``): ``check(layout)`` lists
every departure, one line each, from names, shapes, dtypes and attributes alone (no dataset
value is read, so a 10 GB result is checked as fast as a small one). ``expected_streams`` and
``expected_groups`` say what a file should hold given its scenario's parameters (read by
``Result.missing_parts``, for ``pcsim show``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sim.io.schema import (
    ACCEPTS,
    ALWAYS,
    AXES,
    COMPLETE,
    DATASETS,
    FAMILIES,
    FAMILY_ATTRIBUTES,
    FAMILY_PARTS,
    GROUPS,
    LEVELS,
    NAMED_PARTS,
    PROVENANCE_ATTRIBUTES,
    ROOT_ATTRIBUTES,
    Attribute,
    Dataset,
    Group,
)


@dataclass
class Layout:
    """A file's metadata: root attributes, each dataset's shape and kind of values
    (``value_kind``), each group's attributes."""

    attrs: Mapping[str, Any]
    datasets: Mapping[str, tuple[tuple[int, ...], str]]
    groups: Mapping[str, Mapping[str, Any]]
    family: str = field(init=False, default="")

    def __post_init__(self) -> None:
        kind = self.attrs.get("model_kind")
        self.family = kind if kind in FAMILIES else ""

    def length(self, path: str) -> int | None:
        """The first axis of dataset ``path`` (None: absent or of no axes)."""
        shape = self.datasets.get(path, ((), ""))[0]
        return shape[0] if shape else None


def _level(path: str) -> str:
    """The level a dataset belongs to: the segment after ``levels`` (``levels/<name>/...``,
    ``rate_reference/levels/<name>/...``)."""
    segments = path.split("/")
    return segments[segments.index("levels") + 1] if "levels" in segments[:-1] else ""


def _beside(layout: Layout, path: str) -> int | None:
    """The length of the ``time`` dataset in the same group."""
    return layout.length(f"{_parent(path)}/time")


def _level_size(layout: Layout, level: str) -> int | None:
    size = layout.groups.get(f"levels/{level}", {}).get("size")
    return int(size) if value_kind(size) == "integer" else None


def _below(layout: Layout, path: str) -> int | None:
    index = layout.groups.get(f"levels/{_level(path)}", {}).get("index")
    if value_kind(index) != "integer":
        return None
    for name, attrs in layout.groups.items():
        if name.count("/") == 1 and name.startswith("levels/") and attrs.get("index") == index - 1:
            return _level_size(layout, name.split("/")[1])
    return None


def _count(layout: Layout, group: str, attribute: str) -> int | None:
    value = layout.groups.get(group, {}).get(attribute)
    return len(value) if value_kind(value) == "texts" else None


def _parent(path: str) -> str:
    return path.rpartition("/")[0]


# axis name (schema.AXES) -> its length in a file: (layout, dataset path) -> int, None if unknown
LENGTHS: dict[str, Callable[[Layout, str], int | None]] = {
    "samples": lambda layout, path: layout.length("time"),
    "trials": lambda layout, path: layout.length("trials/name"),
    "size": lambda layout, path: _level_size(layout, _level(path)),
    "below": _below,
    "causes": lambda layout, path: _count(layout, _parent(path), "names"),
    "column_size": lambda layout, path: _level_size(layout, path.split("/")[-1]),
    "column_causes": lambda layout, path: _count(layout, "causes", "names"),
    "outcomes": lambda layout, path: _count(layout, _parent(path), "outcomes"),
    "observations": _beside,
    "spikes": _beside,
    "snapshots": lambda layout, path: layout.length("snapshots/trial"),
    "erp_samples": lambda layout, path: layout.length("erp/time"),
    "conditions": lambda layout, path: layout.length("decision/condition"),
    "*": lambda layout, path: None,
}


def value_kind(value: Any) -> str:
    """``integer``, ``float``, ``bool``, ``text``, ``texts`` (a list of text) or ``other`` of
    an attribute's (decoded) value."""
    if isinstance(value, str):
        return "text"
    if isinstance(value, bool | np.bool_):
        return "bool"
    if isinstance(value, int | np.integer):
        return "integer"
    if isinstance(value, float | np.floating):
        return "float"
    if isinstance(value, np.ndarray) and value.ndim == 1 and all(isinstance(v, str)
                                                                 for v in value):
        return "texts"
    return "other"


def matches(pattern: str, path: str) -> bool:
    """Whether ``path`` is one of ``pattern``'s (``<name>``: one segment; ``**``: the rest)."""
    want, have = pattern.split("/"), path.split("/")
    if want[-1] == "**":
        return len(have) >= len(want) and all(
            w == h or w == "<name>" for w, h in zip(want[:-1], have, strict=False))
    return len(want) == len(have) and all(w == h or w == "<name>"
                                          for w, h in zip(want, have, strict=True))


def declaration(path: str, family: str) -> Dataset | None:
    """The first declaration of the family (or of every family) that ``path`` matches."""
    for declared in DATASETS:
        if declared.family in ("", family) and matches(declared.path, path):
            return declared
    return None


def _attribute_problem(where: str, attribute: Attribute, attrs: Mapping[str, Any]) -> str | None:
    if attribute.name not in attrs:
        return f"{where}: no attribute {attribute.name!r}"
    value = attrs[attribute.name]
    if value_kind(value) not in ACCEPTS[attribute.kind]:
        return (f"{where}: attribute {attribute.name!r} is {_shown(value)}, expected "
                f"{attribute.kind}")
    if attribute.choices and value not in attribute.choices:
        return (f"{where}: attribute {attribute.name!r} is {_shown(value)}, expected one of "
                f"{', '.join(attribute.choices)}")
    return None


def _shown(value: Any, most: int = 40) -> str:
    text = " ".join(repr(value).split())
    return text if len(text) <= most else text[: most - 3] + "..."


def _dataset_problem(path: str, shape: tuple[int, ...], kind: str, declared: Dataset,
                     layout: Layout) -> str | None:
    where = f"/{path}"
    if kind not in ACCEPTS[declared.kind]:
        return f"{where}: holds {kind} values, expected {declared.kind}"
    axes = declared.axes
    open_ended = bool(axes) and axes[-1] == "..."
    fixed = axes[:-1] if open_ended else axes
    if len(shape) != len(fixed) and not (open_ended and len(shape) >= len(fixed)):
        names = ", ".join(axes) if axes else "none"
        return (f"{where}: has {len(shape)} axes {shape}, expected "
                f"{'at least ' if open_ended else ''}{len(fixed)} ({names})")
    for axis, (name, length) in enumerate(zip(fixed, shape, strict=False)):
        want = LENGTHS[name](layout, path)
        if want is not None and length != want:
            return (f"{where}: axis {axis} ({name}) has length {length}, expected {want} "
                    f"({AXES[name]})")
    return None


def _given(declared: Dataset | Group, layout: Layout) -> bool:
    """Whether ``declared`` belongs in this file: of its family, and where it is written
    with other parts (``given``), one of them is there."""
    return (declared.family in ("", layout.family)
            and (not getattr(declared, "given", ())
                 or any(path in layout.datasets or path in layout.groups
                        for path in declared.given)))


def _required(declared: Dataset | Group, layout: Layout) -> bool:
    """Whether ``declared`` must be in this file (for each of its groups, ``instances``)."""
    return _given(declared, layout) and (
        declared.required == ALWAYS
        or (declared.required == COMPLETE and layout.attrs.get("status") == "complete"))


def instances(declared: Dataset, layout: Layout) -> list[str]:
    """The paths ``declared`` stands for in this file: one per group it belongs to (``each``,
    of the roles it names), or its path where it belongs to none."""
    each = declared.each or (_parent(declared.path) if "<name>" in declared.path else "")
    if not each:
        return [declared.path]
    found = []
    for group, attrs in layout.groups.items():
        if matches(each, group) and (not declared.roles or attrs.get("role") in declared.roles):
            found.append(_named(declared.path, each, group))
    return found


def _named(path: str, each: str, group: str) -> str:
    """``path`` with its ``<name>`` segments those of ``group`` (an instance of ``each``), in
    order; where ``each`` names fewer, the last of them fills the rest."""
    names = [have for want, have in zip(each.split("/"), group.split("/"), strict=True)
             if want == "<name>"]
    for name in names[:-1]:
        path = path.replace("<name>", name, 1)
    return path.replace("<name>", names[-1]) if names else path


def check(layout: Layout) -> list[str]:
    """Every way ``layout`` departs from the schema, one line each (empty: none)."""
    problems = [problem for attribute in (*ROOT_ATTRIBUTES,
                                          *FAMILY_ATTRIBUTES.get(layout.family, ()))
                if (problem := _attribute_problem("root", attribute, layout.attrs))]
    problems += [problem for attribute in PROVENANCE_ATTRIBUTES if attribute.name in layout.attrs
                 and (problem := _attribute_problem("root", attribute, layout.attrs))]
    for group in GROUPS:
        if _required(group, layout) and "<name>" not in group.path \
                and group.path not in layout.groups:
            problems.append(f"/{group.path}: missing (group)")
        for path in layout.groups:
            if group.family in ("", layout.family) and matches(group.path, path):
                problems += [problem for attribute in group.attributes
                             if (problem := _attribute_problem(f"/{path}", attribute,
                                                               layout.groups[path]))]
    for parts in FAMILY_PARTS.get(layout.family, ()):
        if not any(matches(part, path) for part in parts for path in layout.groups):
            problems.append(f"/{parts[0].split('/')[0]}: missing (the {layout.family} "
                            f"model's {' or '.join('/' + p for p in parts)})")
    problems += _level_problems(layout) + _stream_problems(layout)
    for declared in DATASETS:
        if _required(declared, layout):
            # a sparse matrix is a group of its CSR arrays (sim.io.writer.write_matrix)
            problems += [f"/{path}: missing" for path in instances(declared, layout)
                         if path not in layout.datasets and path not in layout.groups]
    for path, (shape, kind) in layout.datasets.items():
        declared = declaration(path, layout.family)
        if declared and (problem := _dataset_problem(path, shape, kind, declared, layout)):
            problems.append(problem)
    return problems


def _stream_problems(layout: Layout) -> list[str]:
    """The time series one ``[record] variables`` entry records come together: where some
    are present, the others must be (``free_energy`` with ``energy``, a level's ``error``
    with the other levels')."""
    problems = []
    variables = {d.recorded for d in DATASETS if d.recorded not in ("", "always")}
    for variable in sorted(variables):
        paths = recorded_by(layout, variable)
        present = [path for path in paths if path in layout.datasets]
        if present:
            problems += [f"/{path}: missing (recorded with /{present[0]}, which is there)"
                         for path in paths if path not in layout.datasets]
    return problems


def _level_problems(layout: Layout) -> list[str]:
    """A hierarchical model's levels: indices 0..L (at least two), the input first, the top
    last, hidden levels between (a level deleted whole shows here)."""
    if layout.family != "hierarchical":
        return []
    levels = {path: attrs for path, attrs in layout.groups.items() if matches(LEVELS, path)}
    indices = sorted(int(attrs["index"]) for attrs in levels.values()
                     if value_kind(attrs.get("index")) == "integer")
    if len(indices) < len(levels):
        return []  # a level without an index: reported with its attributes
    if len(levels) < 2 or indices != list(range(len(levels))):
        return [f"/levels: level indices {indices}, expected 0..L with L >= 1 (a level is "
                "missing)"]
    roles = {int(attrs["index"]): attrs.get("role") for attrs in levels.values()}
    wrong = [index for index, role in roles.items()
             if role != ("input" if index == 0 else "top" if index == len(levels) - 1
                         else "hidden")]
    return [f"/levels: level {index} has role {roles[index]!r}" for index in wrong]


def expected_groups(layout: Layout, model: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """The groups of the parts ``model`` (the parameters' ``model`` table) names, and the
    problems of the lists that name them (one line each)."""
    found, problems = [], []
    for key, group, always in NAMED_PARTS.get(layout.family, ()):
        items = model.get(key)
        if items is None and not always:
            continue
        if not isinstance(items, list) or not all(isinstance(item, Mapping) and "name" in item
                                                  for item in items):
            problems.append(f"/scenario/parameters: model.{key} is not a list of tables with "
                            "a name")
            continue
        found += [group.replace("<name>", str(item["name"])) for item in items]
    return found, problems


def recorded_by(layout: Layout, variable: str) -> list[str]:
    """The time series the ``[record] variables`` entry ``variable`` records ("always": those
    recorded whatever the entries), by path, for the levels, causes or factors the file has."""
    return [path for declared in DATASETS
            if declared.recorded == variable and _given(declared, layout)
            for path in instances(declared, layout)]


def expected_streams(layout: Layout, variables: list[str]) -> list[str]:
    """The time series a run recording ``variables`` (``[record] variables``) wrote."""
    return [path for variable in ("always", *variables) for path in recorded_by(layout, variable)]
