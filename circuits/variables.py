"""State variables, declared once: what a population or a mechanism records, in words.

A ``Variable`` says what a recorded quantity is (its ``symbol`` and ``label``), its ``role``
(``input``: what the network is given, ``state``, ``error``, ``precision``, ``parameter``,
``energy``: F, a term of it, or the surprise it bounds), its units relative to the
level it belongs to (``units``: ``level`` the level's own units, ``1/level``, ``1/level^2``,
``1`` dimensionless, or any fixed unit such as ``nat``) and how a figure draws it (``plot``:
``lines``, ``log``, ``stacked``: a distribution over the units, as areas stacked to 1 in a panel
of its own, or ``none``; ``panel``: variables of one level with the same panel name
share a panel; ``style``: the line style; ``when``: ``always``, or ``varying``: only where
it changes over the run; ``reference``: the number it is claimed to reach, by a name the
report side computes from the result: ``noise_precision``, 1 / the variance of the input's
noise, ``log_noise_precision`` its log). A ``circuits.mechanism.Stream`` carries the
variable it records (``declares``); the recorder writes the declaration as the dataset's
attributes (``declaration_attrs``), and the report side reads them back: figures, ``pcsim
show`` and the NWB export (``sim.export.nwb``: the role says where a series goes, label and
symbol describe it) follow the declarations, not lists of dataset names. A mechanism defined
anywhere (a test, a user's module) gets its panel, its line in ``show`` and its NWB time
series by declaring its variable; a readout that writes traces declares them too (``ERP``).

Nothing here imports Brian2.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

ROLES = ("input", "state", "error", "precision", "parameter", "energy")
PLOTS = ("lines", "log", "stacked", "none")
REFERENCES = ("", "noise_precision", "log_noise_precision")
WHEN = ("always", "varying")
RELATIVE = {"level": "{u}", "1/level": "1/({u})", "1/level^2": "1/({u})^2"}
# a level's units: letters, digits, ^ / * . ( ) - and spaces; deg/s, mV, Hz, m/s^2, 1/s
LEVEL_UNITS = re.compile(r"^[A-Za-z°µ][A-Za-z0-9°µ^/*.() -]{0,31}$")


@dataclass(frozen=True)
class Variable:
    """One recorded state variable: see the module docstring."""

    name: str
    symbol: str
    label: str
    role: str
    units: str = "level"
    plot: str = "lines"
    panel: str = ""
    style: str = "-"
    when: str = "always"
    reference: str = ""

    def __post_init__(self) -> None:
        if (self.role not in ROLES or self.plot not in PLOTS or self.when not in WHEN
                or self.reference not in REFERENCES):
            raise ValueError(f"variable {self.name!r}: role in {ROLES}, plot in {PLOTS}, "
                             f"when in {WHEN}, reference in {REFERENCES}")

    def units_for(self, level_units: str) -> str:
        """Its units on a level measured in ``level_units`` ("1": dimensionless)."""
        if self.units not in RELATIVE:
            return self.units
        if level_units in ("", "1"):
            return "1"
        simple = re.fullmatch(r"[A-Za-z°µ]+", level_units) is not None
        return RELATIVE[self.units].format(u=level_units).replace(
            f"({level_units})", level_units if simple else f"({level_units})")


DECLARED = "declared_"  # a declaration's dataset attributes: declared_<field>
DECLARED_FIELDS = ("symbol", "label", "role", "plot", "panel", "style", "when", "reference")


def declaration_attrs(variable: Variable) -> dict[str, Any]:
    """The dataset attributes that record ``variable``'s declaration (``declared_*``; read
    back by ``sim.io.reader.declared``)."""
    return {DECLARED + field: getattr(variable, field) for field in DECLARED_FIELDS}


def check_level_units(text: str) -> str | None:
    """What is wrong with a level's ``units`` (None: nothing)."""
    if not LEVEL_UNITS.match(text):
        return (f"expected a unit such as \"deg/s\" or \"mV\" (letters, digits, ^ / * . ( ) -; "
                f"at most 32 characters), got {text!r}")
    return None


# the hierarchical family's variables, per level (circuits.belief, circuits.error)
INPUT = Variable("input", "x", "input", "input", panel="state")
BELIEF = Variable("belief", "mu", "belief", "state", panel="state")
ERROR = Variable("error", "eps", "error", "error", units="1/level", panel="state", style="--")
PRECISION = Variable("precision", "Pi", "precision", "precision", units="1/level^2",
                     plot="log", when="varying")
# the ERP readout's (sim.readouts.erp), per level: its error units summed, each trial's trace
# (and their means by kind) sampled from the trial's start; in the errors' units
ERP = {field: Variable("erp", symbol, f"{field} sum of {ERROR.label}", "error", units=ERROR.units)
       for field, symbol in (("signed", ERROR.symbol), ("rectified", f"|{ERROR.symbol}|"))}
# what both families record once per run: F, and (hierarchical) its energy part, (discrete) the
# surprise it bounds; the figures draw these in panels of their own (plot "none" here)
FREE_ENERGY = Variable("free_energy", "F", "free energy", "energy", units="nat", plot="none")
ENERGY = Variable("energy", "E", "energy part of F", "energy", units="nat", plot="none")
SURPRISE = Variable("surprise", "-ln p(o)", "surprise", "energy", units="nat", plot="none")
# the discrete family's, per factor (circuits.discrete): Q over the causes and its errors;
# per modality the observations delivered (events at their own times: observations/<m>/time)
POSTERIOR = Variable("belief", "Q", "belief", "state", units="1", panel="state",
                     plot="stacked")  # a probability distribution over the causes
LOG_ERROR = Variable("error", "eps", "error", "error", units="nat", plot="none")
OBSERVATION = Variable("observation", "o", "observed outcome", "input", units="1", plot="none")
