"""A result's headline numbers: what its scenario declares (``[[report.headline]]``,
``sim.report.headline_spec``), read from the file, with units and the stored reference.

``headlines(result)`` gives the rows (a Python user calls it on ``sim.load(path)``);
``headline_lines(result)`` the short table that ``pcsim run`` ends with and ``pcsim show``
prints. A scenario that declares none gets its family's default: F and the top level's belief
at the end of each trial (hierarchical); Q of the three most probable causes against the exact
posterior, and F against the surprise -ln p(o) (discrete; per factor against the exact
marginal, and the gap KL, for a mean-field Q). More than ``LISTED`` trials shown one per trial
are shown per condition (their means) when the trials were generated from conditions, else the
first and last ``ENDS``. Every number is a dataset of the file, or the mean, count or peak of
one (a derived number, such as the bars matched, is stored by the readout that computes it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.errors import ResultError
from sim.io.reader import Result
from sim.report.headline_spec import HeadlineSpec, from_described

LISTED = 20  # more trials than this are summarised: per condition, or the first and last few
ENDS = 3
SHOWN_ELEMENTS = 8  # a value of more elements (no ``unit`` chosen) is shown up to this many
CONVERSIONS = {("s", "ms"): 1e3}  # dataset units -> units asked for: factor


@dataclass(frozen=True)
class Headline:
    """One row of the table: ``quantity`` (the name, and the element shown) ``over`` which
    trials (a trial's name, a condition, ``repetition 2``, ``trials 500-999``; "" for a
    dataset that is not per trial), its ``value`` (a number, or an array of the elements of
    one row, or words as a dataset of words stores them), ``units``, and the ``reference``
    with its name (None: none stored)."""

    quantity: str
    over: str
    value: float | np.ndarray | str
    units: str
    reference: float | np.ndarray | None = None
    reference_name: str = ""


def declared(result: Result) -> list[HeadlineSpec]:
    """The result's headline declarations (its scenario's ``[report]``), or its family's
    default."""
    report = result.parameters.get("report")
    if isinstance(report, dict) and report.get("headline"):
        return [from_described(table) for table in report["headline"]]
    return default_specs(result)


def default_specs(result: Result) -> list[HeadlineSpec]:
    """The headlines of a scenario that declares none (see the module's docstring)."""
    if result.kind == "hierarchical" and result.level_names:
        return [HeadlineSpec("trials/final_free_energy", name="F"),
                HeadlineSpec(f"trials/final_belief/{result.level_names[-1]}", name="top belief")]
    if result.kind != "discrete":
        return []
    free_energy = HeadlineSpec("trials/final_free_energy", name="F",
                               reference="trials/surprise", reference_name="-ln p(o)")
    if "causes" in result.group_attrs:
        return [HeadlineSpec("trials/final_belief", name="Q", top=3,
                             reference="trials/exact_posterior",
                             reference_name="exact posterior"), free_energy]
    factors = sorted(path.split("/")[1] for path in result.group_attrs
                     if path.startswith("factors/"))
    return [*(HeadlineSpec(f"trials/final_belief/{name}", name=f"Q {name}", top=1,
                           reference=f"trials/exact_marginal/{name}",
                           reference_name="exact marginal") for name in factors),
            free_energy, HeadlineSpec("trials/kl", name="KL")]


def headlines(result: Result) -> list[Headline]:
    """Every headline row of ``result`` (``KeyError`` naming a dataset the file lacks)."""
    return [row for spec in declared(result) for row in headline_rows(result, spec)]


def headline_lines(result: Result, indent: str = "") -> list[str]:
    """The table ``pcsim run`` ends with and ``pcsim show`` prints (empty: no headline), each
    line after ``indent``."""
    try:
        rows = headlines(result)
    except (KeyError, ValueError, IndexError, TypeError, ResultError) as err:
        return [f"{indent}headlines: cannot be read from this file ({err})"]
    if not rows:
        return []
    table = [("quantity", "over", "value", "units", "reference"),
             *((row.quantity, row.over, _number(row.value), row.units,
                "" if row.reference is None else f"{_number(row.reference)} "
                                                 f"({row.reference_name})") for row in rows)]
    widths = [max(len(line[k]) for line in table) for k in range(4)]
    return [f"{indent}headlines:", *(
        f"{indent}  {q:<{widths[0]}}  {o:<{widths[1]}}  {v:>{widths[2]}}  {u:<{widths[3]}}  "
        f"{r}".rstrip() for q, o, v, u, r in table)]


def _number(value: float | np.ndarray | str) -> str:
    if isinstance(value, str):
        return value
    values = np.atleast_1d(np.asarray(value, dtype=float))
    text = ", ".join(f"{v:.6g}" for v in values[:SHOWN_ELEMENTS])
    return text + (", ..." if values.size > SHOWN_ELEMENTS else "")


def condition_rows(result: Result) -> dict[str, np.ndarray]:
    """The rows of each condition, conditions in their scenario's order (that of the trials'
    ``index``); empty when the trials were not generated from conditions."""
    if "condition" not in result.trials:
        return {}
    conditions = result.trials["condition"]
    first = np.argsort(result.trials["index"], kind="stable")
    return {str(name): np.flatnonzero(conditions == name)
            for name in dict.fromkeys(conditions[first])}


# --- one declaration -> rows ------------------------------------------------------------------

def headline_rows(result: Result, spec: HeadlineSpec) -> list[Headline]:
    """The rows of one declaration."""
    for path in (spec.value, spec.labels, spec.at_peak_of, spec.reference):
        if path is not None and path not in result:
            raise KeyError(f"/{path}: not in the file (declared in [[report.headline]])")
    stored = np.asarray(result[spec.value])
    if stored.dtype.kind in "OSU":  # words, such as a decision's sentence: shown as stored
        return _text_rows(result, spec, stored)
    units, scale = _units(result, spec)
    value = np.asarray(stored, dtype=float) * scale
    if spec.at_peak_of is not None:  # the value where another dataset peaks
        peak = int(np.nanargmax(np.asarray(result[spec.at_peak_of], dtype=float)))
        return [Headline(spec.label, f"peak of /{spec.at_peak_of}", float(value[peak]), units)]
    reference = (np.asarray(result[spec.reference], dtype=float)
                 if spec.reference is not None else None)
    groups = _groups(result, spec, len(value))
    names = _element_names(result, spec.value)
    chosen = _chosen_units(spec, names, value)
    numbers = (np.broadcast_to(np.asarray(spec.reference_value, dtype=float),
                               (len(chosen or [0]),))
               if spec.reference_value is not None else None)
    reference_name = spec.reference_name or (
        spec.reference.rsplit("/", 1)[-1] if spec.reference is not None else "stated")
    rows = []
    for over, members in groups:
        row = _row_mean(value, members)
        known = _row_mean(reference, members) if reference is not None else None
        if spec.count_at_least is not None:
            picked = row if chosen is None else row[[k for k, _ in chosen]]
            rows.append(Headline(spec.label, over, float(np.sum(picked >= spec.count_at_least)),
                                 f"of {picked.size} at >= {spec.count_at_least:g}"))
            continue
        elements = chosen if chosen is not None else None
        if spec.top is not None:
            ranked = known if known is not None else row
            elements = [(int(k), _shown(names, int(k)))
                        for k in np.argsort(ranked, kind="stable")[::-1][:spec.top]]
        if elements is None:
            rows.append(Headline(spec.label, over, row if row.size > 1 else float(row[0]),
                                 units, *_reference(known, None, numbers, 0), reference_name))
            continue
        for place, (k, shown) in enumerate(elements):
            rows.append(Headline(f"{spec.label}{shown}", over, float(row[k]), units,
                                 *_reference(known, k, numbers, place), reference_name))
    return rows


def _text_rows(result: Result, spec: HeadlineSpec, stored: np.ndarray) -> list[Headline]:
    """The rows of a dataset of words (``decision_text``): one trial's each, as stored; a
    group of several trials has no mean of words (``ValueError``)."""
    rows = []
    for over, members in _groups(result, spec, len(stored)):
        if members is None or len(members) != 1:
            raise ValueError(f"/{spec.value} holds words: shown one trial a row, not "
                             f"{'all' if members is None else len(members)} together")
        rows.append(Headline(spec.label, over, str(stored[members[0]]), ""))
    return rows


def _reference(known: np.ndarray | None, element: int | None, numbers: np.ndarray | None,
               place: int) -> tuple[float | np.ndarray | None]:
    """The reference of one row's ``element`` (None: of the whole row): from the reference
    dataset's row ``known``, else the scenario's ``numbers`` (one per element shown)."""
    if known is not None:
        if element is not None:
            return (float(known[element]),)
        return (known if known.size > 1 else float(known[0]),)
    if numbers is not None:
        return (float(numbers[place]),)
    return (None,)


def _units(result: Result, spec: HeadlineSpec) -> tuple[str, float]:
    stored = result.units(spec.value)
    if spec.units is None or spec.units == stored:
        return stored, 1.0
    if (stored, spec.units) in CONVERSIONS:
        return spec.units, CONVERSIONS[stored, spec.units]
    if stored in ("1", ""):  # a dimensionless dataset takes the scenario's units (deg/s)
        return spec.units, 1.0
    raise ValueError(f"/{spec.value} is in {stored}, not convertible to {spec.units}")


def _row_mean(values: np.ndarray, members: np.ndarray | None) -> np.ndarray:
    """The elements of one row: the dataset whole (``members`` None) or the mean over the rows
    ``members`` of its first axis, flattened."""
    if members is None:
        return values.reshape(-1)
    picked = values[members].reshape(len(members), -1)
    return np.nanmean(picked, axis=0) if len(members) > 1 else picked[0]


def _element_names(result: Result, path: str) -> list[str]:
    """Names of the elements of a trial column over causes (a factor's causes for
    ``.../<factor>``), else none."""
    factor = f"factors/{path.rsplit('/', 1)[-1]}"
    for group in (factor, "causes"):
        if group in result.group_attrs and "names" in result.group_attrs[group]:
            return [str(name) for name in result.group_attrs[group]["names"]]
    return []


def _chosen_units(spec: HeadlineSpec, names: list[str],
                  value: np.ndarray) -> list[tuple[int, str]] | None:
    """(index, shown name) of the elements ``spec.unit`` picks; None: all, shown together."""
    if spec.unit is None:
        return None
    width = int(np.prod(value.shape[1:])) if spec.trial_axis or spec.labels else value.size
    picked = []
    for unit in spec.unit if isinstance(spec.unit, list) else [spec.unit]:
        if isinstance(unit, str):
            if unit not in names:
                raise ValueError(f"/{spec.value} has no element {unit!r} (its names: "
                                 f"{', '.join(names) or 'none'})")
            picked.append((names.index(unit), f" {unit}"))
        elif unit >= width:
            raise IndexError(f"/{spec.value} has {width} element(s) per row, not {unit + 1}")
        else:
            picked.append((unit, _shown(names, unit)))
    if not isinstance(spec.unit, list):  # one element: the headline's name says which
        return [(picked[0][0], "")]
    return picked


def _shown(names: list[str], element: int) -> str:
    """How an element is named after its quantity: `` cat`` (a cause), ``[1]`` (a unit)."""
    return f" {names[element]}" if names else f"[{element}]"


def _groups(result: Result, spec: HeadlineSpec,
            length: int) -> list[tuple[str, np.ndarray | None]]:
    """(label, rows of the first axis) of each row of the table; rows None: the whole
    dataset."""
    if spec.labels is not None:
        labels = [str(label) for label in result[spec.labels]]
        return [(label, np.array([k])) for k, label in enumerate(labels)]
    if not spec.trial_axis:
        return [("", None)]
    trials = result.trials
    kept = np.arange(length)
    if spec.span is not None:
        kept = kept[slice(*spec.span)]
    for column, wanted in (spec.where or {}).items():
        values = np.asarray(trials[column])
        allowed = wanted if isinstance(wanted, list) else [wanted]
        kept = kept[np.isin(values[kept].astype(str), [str(v) for v in allowed])]
    if len(kept) == 0:
        raise ValueError(f"/{spec.value}: no trial is left by where/span")
    per = spec.per or "trial"
    if per == "all":
        return [(_span_label(kept), kept)]
    if per == "trial":
        names = np.asarray(trials["name"]).astype(str)
        if len(kept) <= LISTED or length != len(names):
            return [(names[k] if length == len(names) else f"row {k}", np.array([k]))
                    for k in kept]
        by_condition = condition_rows(result)
        if by_condition:
            return [(f"{name} (mean of {len(rows)})", rows)
                    for name, rows in ((name, np.intersect1d(rows, kept))
                                       for name, rows in by_condition.items()) if len(rows)]
        ends = [*kept[:ENDS], *kept[-ENDS:]]
        return [(f"trial {k} {names[k]}", np.array([k])) for k in ends]
    if per == "condition":
        by_condition = condition_rows(result)
        if not by_condition:
            raise ValueError(f"/{spec.value}: per = 'condition', but the trials were not "
                             "generated from conditions")
        return [(name, np.intersect1d(rows, kept)) for name, rows in by_condition.items()
                if len(np.intersect1d(rows, kept))]
    column = np.asarray(trials[per])
    values = column[kept]
    return [(f"{per} {_plain(value)}", kept[values == value])
            for value in (np.unique(values) if values.dtype.kind != "O"
                          else dict.fromkeys(values))]


def _span_label(kept: np.ndarray) -> str:
    if len(kept) == 1:
        return f"trial {kept[0]}"
    if np.array_equal(kept, np.arange(kept[0], kept[-1] + 1)):
        return f"mean of trials {kept[0]}-{kept[-1]}"
    return f"mean of {len(kept)} trials"


def _plain(value: object) -> str:
    number = float(value) if isinstance(value, int | float | np.number) else None
    return f"{number:g}" if number is not None else str(value)
