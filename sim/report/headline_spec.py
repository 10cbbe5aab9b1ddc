"""What a scenario declares as its headline numbers: ``[[report.headline]]`` (docs/scenarios.md).

Each entry names one dataset of the result file and how to read it: which element (``unit``),
which trials and how they are grouped (``per``, ``where``, ``span``), and the reference stored
beside it (a dataset, such as the exact posterior, or a number stated in the scenario). The
numbers themselves are computed from a finished file by ``sim.report.headlines``, which
``pcsim run`` and ``pcsim show`` both call. Nothing here reads a file or imports Brian2, and
the scenario parser (``sim.validation``) is imported only to read a declaration: ``pcsim show``
leaves it out.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sim.validation import Fields

PER_CHOICES = ("trial", "condition", "all")  # or the name of a trial column (``repetition``)
# what ``where`` selects trials by: the protocol's description of each trial (its columns in
# ``trials/``: ``sim.readouts.condition``, the trial's name), known before the run
WHERE_COLUMNS = ("name", "condition", "kind", "repetition")
Unit = int | str


@dataclass(frozen=True)
class HeadlineSpec:
    """One headline: the dataset ``value`` and how to read it.

    ``unit``: one element along the dataset's last axes (an index, or a cause's name), or a
    list of them (a row each); ``top``: per row, the ``top`` elements with the largest
    reference (else value); ``per``: the dataset's first axis is the trials, shown one row
    per ``trial``, per ``condition`` (their mean), one row for ``all`` of them (the mean), or
    one per value of a trial column (``repetition``); ``where``: only the trials whose
    columns hold these values (a value or a list of values each); ``span``: only trials
    ``span[0]`` to ``span[1] - 1``; ``labels``: a dataset of names for the first axis of
    ``value`` (one row each); ``at_peak_of``: the value at the index where that dataset is
    largest (the time of a peak); ``count_at_least``: the number of elements at or above it;
    ``reference``: a dataset read the same way; ``reference_value``: a number stated in the
    scenario instead (a list: one per unit);
    ``units``: the units shown (``ms`` converts a dataset in ``s``).
    """

    value: str
    name: str = ""
    unit: Unit | list[Unit] | None = None
    top: int | None = None
    per: str | None = None
    where: dict[str, Any] | None = None
    span: list[int] | None = None
    labels: str | None = None
    at_peak_of: str | None = None
    count_at_least: float | None = None
    reference: str | None = None
    reference_value: float | list[float] | None = None
    reference_name: str | None = None
    units: str | None = None

    @property
    def label(self) -> str:
        return self.name or self.value.rstrip("/").rsplit("/", 1)[-1]

    @property
    def trial_axis(self) -> bool:
        """Whether the first axis of ``value`` is the trials (one row each, before grouping)."""
        return (self.per is not None or self.where is not None or self.span is not None
                or (self.value.startswith("trials/") and self.labels is None))

    def describe(self) -> dict:
        """The fields given, as plain data (``scenario/parameters``; ``from_described``)."""
        return {key: value for key, value in asdict(self).items() if value is not None
                and (key != "name" or value)}


def from_described(table: dict) -> HeadlineSpec:
    """A spec back from ``describe`` (a result's ``scenario/parameters``); ``ValueError`` if
    the table is not one."""
    known = {field.name for field in fields(HeadlineSpec)}
    if not isinstance(table, dict) or "value" not in table or set(table) - known:
        from sim.toml_input import describe

        raise ValueError(f"not a headline declaration: {describe(table)}")
    if not isinstance(table.get("reference"), str | None):  # a number, as first declared
        table = {**table, "reference_value": table["reference"], "reference": None}
    return HeadlineSpec(**table)


def _unit(value: Any) -> bool:
    return (isinstance(value, str) and bool(value)) or (
        isinstance(value, int) and not isinstance(value, bool) and value >= 0)


def _finite(value: Any) -> bool:
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value))


def _kept(value: Any) -> bool:
    """A value a trial column may hold: a name or a finite number."""
    return isinstance(value, str) or _finite(value)


def _path(fields: Fields, key: str, required: bool = False) -> str | None:
    """A dataset path (``trials/kl``, as ``pcsim show`` lists them), or None when absent."""
    from sim.toml_input import describe

    value = fields.raw(key) if required else fields.raw(key, None)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip("/"):
        raise fields.error(key, f"expected a dataset path such as 'trials/kl' (as pcsim show "
                                f"lists them), got {describe(value)}")
    return value.strip("/")


def element_names(model: Any) -> frozenset[str]:
    """The names a headline's ``unit`` may give: the causes of a discrete model's factors, the
    only elements a result names (``/causes``, ``/factors/<name>``); none for other models."""
    return frozenset(cause for factor in getattr(model, "factors", ()) for cause in factor.causes)


def parse_headline(fields: Fields, names: frozenset[str] = frozenset()) -> HeadlineSpec:
    """One ``[[report.headline]]`` table, checked field by field (one-line errors); ``names``:
    the model's ``element_names``, so that a name no element has is refused before the run."""
    from sim.toml_input import describe

    value = _path(fields, "value", required=True)
    unit = fields.raw("unit", None)
    if unit is not None and not (_unit(unit) or (isinstance(unit, list) and unit
                                                  and all(_unit(u) for u in unit))):
        raise fields.error("unit", f"expected an element's index (>= 0) or name, or a list of "
                                   f"them, got {describe(unit)}")
    unknown = [u for u in (unit if isinstance(unit, list) else [unit])
               if isinstance(u, str) and u not in names]
    if unknown:
        known = (f"or one of this model's names ({', '.join(sorted(names))})" if names
                 else "(this model's elements have no names)")
        raise fields.error("unit", f"expected an element's index (>= 0) {known}, got "
                                   f"{describe(unknown[0])}")
    if isinstance(unit, list) and len({str(u) for u in unit}) < len(unit):
        raise fields.error("unit", f"expected each element once, got {describe(unit)}")
    where = fields.raw("where", None)
    if where is not None and not (isinstance(where, dict) and where and all(
            _kept(v) or (isinstance(v, list) and v and all(_kept(k) for k in v))
            for v in where.values())):
        raise fields.error("where", f"expected a table of trial columns and the values kept "
                                    f"(names or finite numbers), e.g. {{ kind = \"standard\" }}, "
                                    f"got {describe(where)}")
    for column, kept in (where or {}).items():
        wanted = int if column == "repetition" else str  # a trial's place, else names
        if column in WHERE_COLUMNS and not all(
                isinstance(v, wanted) and not isinstance(v, bool)
                for v in (kept if isinstance(kept, list) else [kept])):
            kind = "whole numbers" if wanted is int else "names"
            raise fields.error(f"where.{column}", f"expected {kind}, got {describe(kept)}")
        if column not in WHERE_COLUMNS:
            raise fields.error(f"where.{column}", f"expected one of the columns that describe "
                                                  f"a trial: {', '.join(WHERE_COLUMNS)}")
        if isinstance(kept, list) and len({str(v) for v in kept}) < len(kept):
            raise fields.error(f"where.{column}", f"expected the values kept, each once, got "
                                                  f"{describe(kept)}")
    span = fields.raw("span", None)
    if span is not None and not (isinstance(span, list) and len(span) == 2 and all(
            isinstance(n, int) and not isinstance(n, bool) for n in span)):
        raise fields.error("span", f"expected [first, stop], two trial indices, got "
                                   f"{describe(span)}")
    reference = _path(fields, "reference")
    reference_value = fields.raw("reference_value", None)
    if reference_value is not None and not (
            _finite(reference_value) or (isinstance(reference_value, list) and reference_value
                                         and all(_finite(r) for r in reference_value))):
        raise fields.error("reference_value", f"expected a finite number or a list of them, "
                                              f"got {describe(reference_value)}")
    if isinstance(reference_value, list) and not (isinstance(unit, list)
                                                  and len(reference_value) == len(unit)):
        raise fields.error("reference_value",
                           f"a list gives one per element of 'unit' ({describe(unit)}): "
                           f"expected {len(unit) if isinstance(unit, list) else 'a list of'} "
                           f"numbers, got {describe(reference_value)}")
    if reference is not None and reference_value is not None:
        raise fields.error("reference_value", "a headline has one reference: a dataset "
                                              "('reference') or a number ('reference_value')")
    per = fields.raw("per", None)
    if per is not None and (not isinstance(per, str) or not per):
        raise fields.error("per", f"expected one of {', '.join(PER_CHOICES)} or a trial column's "
                                  f"name, got {describe(per)}")
    spec = HeadlineSpec(
        value=value,
        name=fields.text("name", default=""),
        unit=unit,
        top=fields.number("top", default=None, minimum=1, integer=True),
        per=per,
        where=where,
        span=span,
        labels=_path(fields, "labels"),
        at_peak_of=_path(fields, "at_peak_of"),
        count_at_least=fields.number("count_at_least", default=None),
        reference=reference,
        reference_value=reference_value,
        reference_name=fields.raw("reference_name", None),
        units=fields.raw("units", None),
    )
    for key in ("reference_name", "units"):
        if getattr(spec, key) is not None and not isinstance(getattr(spec, key), str):
            raise fields.error(key, f"expected a string, got {describe(getattr(spec, key))}")
    fields.close()
    return spec


def parse_report(fields: Fields, names: frozenset[str] = frozenset()
                 ) -> tuple[HeadlineSpec, ...]:
    """``[report]``: ``headline``, an array of tables (none: the family's default headlines);
    ``names`` as ``parse_headline``'s."""
    specs = (tuple(parse_headline(item, names) for item in fields.subs("headline"))
             if fields.has("headline") else ())
    fields.close()
    return specs
