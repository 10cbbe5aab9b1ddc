"""Name -> implementation tables: model families, mechanisms and readouts.

Families are modules (``KIND``), imported when a scenario names them. Mechanisms
(``circuits.mechanism``) and readouts (``sim.readouts``) are objects: the modules listed here
expose theirs as ``MECHANISM`` / ``READOUT`` and are imported on first use; code outside pcsim
(a user's model, a test) adds its own with ``register_mechanism`` / ``register_readout``, with no
edit here. Order is registration order: it fixes the order of sections in
``scenario/parameters`` and of columns in the trial table. Nothing here imports Brian2.
"""

from __future__ import annotations

import importlib
from typing import Any

from circuits.claims import Claim, incompatible
from circuits.mechanism import Mechanism

FAMILIES = {"hierarchical": "sim.families.hierarchical", "discrete": "sim.families.discrete"}
MECHANISM_MODULES = ("circuits.plasticity", "circuits.precision_learned",
                     "circuits.precision_inferred", "circuits.precision_topdown",
                     "circuits.prior_learning", "circuits.sparse_prior",
                     "circuits.weight_constraint", "circuits.covariance")
READOUT_MODULES = ("sim.readouts.condition", "sim.readouts.final_state",
                   "sim.readouts.exact_posterior", "sim.readouts.modality_precision",
                   "sim.readouts.precision_snapshot",
                   "sim.readouts.reference_posterior", "sim.readouts.ideal_observer",
                   "sim.readouts.erp",
                   "sim.readouts.learning_curve", "sim.readouts.bars_match",
                   "sim.readouts.decision", "sim.readouts.spike_rates",
                   "sim.readouts.rate_reference")

_mechanisms: dict[str, Mechanism] = {}
_readouts: dict[str, Any] = {}
_loaded = False


def family(name: str) -> Any:
    """The model family called ``name`` (its module's ``KIND``)."""
    return importlib.import_module(FAMILIES[name]).KIND


def _load() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in MECHANISM_MODULES:
        register_mechanism(importlib.import_module(module).MECHANISM)
    for module in READOUT_MODULES:
        register_readout(importlib.import_module(module).READOUT)


def _register(table: dict[str, Any], item: Any, what: str) -> Any:
    _load()
    known = table.get(item.name)
    if known is not None and known is not item:
        raise ValueError(f"a {what} called {item.name!r} is already registered")
    table[item.name] = item
    return item


def register_mechanism(mechanism: Mechanism) -> Mechanism:
    """Add a mechanism (an instance of a ``circuits.mechanism.Mechanism`` subclass)."""
    return _register(_mechanisms, mechanism, "mechanism")


def unregister_mechanism(name: str) -> None:
    _mechanisms.pop(name, None)


def mechanisms(family_name: str) -> list[Mechanism]:
    """The mechanisms that act in a model family, in registration order."""
    _load()
    return [m for m in _mechanisms.values() if m.family == family_name]


def mechanism(name: str) -> Mechanism:
    _load()
    return _mechanisms[name]


def register_readout(readout: Any) -> Any:
    """Add a readout (an instance of a ``sim.readouts.Readout`` subclass)."""
    return _register(_readouts, readout, "readout")


def unregister_readout(name: str) -> None:
    _readouts.pop(name, None)


def readout(name: str) -> Any:
    _load()
    return _readouts[name]


def readouts(family_name: str) -> list[Any]:
    """The readouts that apply to a model family's trials, in registration order."""
    _load()
    return [r for r in _readouts.values() if r.family in (None, family_name)]


# --- scenario fields of the mechanisms -----------------------------------------------------

def read_mechanisms(model_fields: Any, family_name: str) -> dict[str, Any]:
    """The settings of the mechanisms a scenario's ``[model]`` switches on, by name.

    Each section (``[model.<section>]``) is opened once and closed after every mechanism that
    reads it has taken its fields, so an unknown key there is still refused.
    """
    settings: dict[str, Any] = {}
    for section, members in _sections(family_name).items():
        fields = model_fields.sub(section, default={})
        for member in members:
            value = member.parse(fields)
            if value is not None:
                settings[member.name] = value
        fields.close()
    return settings


def check_mechanisms(model_fields: Any, model: Any, family_name: str) -> None:
    """Each switched-on mechanism checks its settings against the parsed model; then their
    claims on the levels (``circuits.claims``) must combine: the first that cannot is refused
    at the field that placed it, in one line naming both mechanisms, the level and why."""
    for member in mechanisms(family_name):
        if member.name in model.mechanisms:
            def fail(key: str, message: str, section: str = member.section):
                return model_fields.error(f"{section}.{key}", message)

            member.check(model.mechanisms[member.name], model, fail)
    found = incompatible((member.name, claim) for member, claim in claims(model))
    if found:
        name, claim, message = found
        owner = mechanism(name)
        if claim.action == "constrains":
            learners = [m for m in mechanisms(family_name) if m.learns == claim.parameter]
            if learners:
                message += "; expected one that does, e.g. " + ", ".join(
                    f"{m.name} ([model.{m.section}]"
                    + (f" {m.switched_on_by})" if m.switched_on_by else ")")
                    for m in learners)
        field = f"{owner.section}.{claim.key}" if claim.key else owner.section
        raise model_fields.error(field, message)


def claims(model: Any) -> list[tuple[Mechanism, Claim]]:
    """The claims of the mechanisms ``model`` switches on (``Mechanism.claims``), in
    registration order, each with its mechanism. A claim that ``learns`` must name the
    parameter of the mechanism's ``learns`` (what a trial's ``learn`` switches)."""
    _load()
    found = []
    for member in [m for m in _mechanisms.values() if m.name in model.mechanisms]:
        for claim in member.claims(model.mechanisms[member.name], model):
            if claim.action == "learns" and claim.parameter != member.learns:
                raise TypeError(f"mechanism {member.name!r} claims to learn "
                                f"{claim.parameter!r} but declares learns = {member.learns!r}")
            found.append((member, claim))
    return found


def describe_mechanisms(family_name: str, settings: dict[str, Any]) -> dict[str, dict]:
    """Every mechanism's fields as resolved, by section (a mechanism left off may describe
    itself by its defaults, or by nothing; an empty section is left out)."""
    out: dict[str, dict] = {}
    for section, members in _sections(family_name).items():
        fields: dict = {}
        for member in members:
            fields.update(member.describe(settings.get(member.name)))
        if fields:
            out[section] = fields
    return out


def _sections(family_name: str) -> dict[str, list[Mechanism]]:
    sections: dict[str, list[Mechanism]] = {}
    for member in mechanisms(family_name):
        sections.setdefault(member.section, []).append(member)
    return sections


def record_variables(kind: Any, model: Any = None) -> tuple[str, ...]:
    """What ``[record] variables`` may name: the family's, then its mechanisms' (with
    ``model``: only the mechanisms it switches on, the default of ``[record]``)."""
    extra = [v for m in mechanisms(kind.name) for v in m.record_variables
             if model is None or m.name in model.mechanisms]
    return tuple(dict.fromkeys([*kind.record_variables, *extra]))
