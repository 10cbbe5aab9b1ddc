"""Gathering a population's equations before its Brian2 group is made.

A circuit gives its equations as a template with named sums (``{drive}`` in
``dbelief/dt = ({drive}) / tau_belief``) and the base terms of each sum; the mechanisms acting
on the population give ``Piece``s (``circuits.mechanism``). ``gather`` returns the complete
text: each sum is its base terms followed by the mechanisms' terms, each parameter a mechanism
integrates has its declaration replaced by the mechanism's flow, and the mechanisms' own
variables are appended; a flow a mechanism ``replaces`` (its own circuit for that variable)
has its equation replaced. With no pieces the text is the template filled with the base sums, so
a population built without mechanisms is exactly what it was before.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from circuits.mechanism import Piece

DECLARATION = re.compile(r"^\s*(?:d(?P<flow>\w+)/dt|(?P<name>\w+))\s*[:=]")


class EquationError(ValueError):
    """Pieces that cannot be combined (a programming error in a mechanism, not a user's)."""


def declared_name(line: str) -> str | None:
    """The variable a line of Brian2 equations declares (``x : 1``, ``x = ...``, ``dx/dt``)."""
    match = DECLARATION.match(line)
    return (match["flow"] or match["name"]) if match else None


def gather(template: str, sums: dict[str, str], pieces: Sequence[tuple[str, Piece]]) -> str:
    """The equations of one population: ``template`` with ``sums`` filled, plus ``pieces``
    (``(owner, piece)`` pairs: the owner names the mechanism in errors)."""
    filled = dict(sums)
    integrated: dict[str, tuple[str, str]] = {}
    replaced: dict[str, tuple[str, str]] = {}
    extra: list[str] = []
    for owner, piece in pieces:
        for name, term in piece.terms.items():
            if name not in filled:
                raise EquationError(f"{owner}: no sum {name!r} in this population "
                                    f"(it has {', '.join(filled) or 'none'})")
            filled[name] = f"{filled[name]} + {term}"
        for name, equation in piece.integrates.items():
            if name in integrated:
                raise EquationError(f"{owner} and {integrated[name][0]} both integrate {name!r}")
            integrated[name] = (owner, equation)
        for name, equation in piece.replaces.items():
            if name in replaced:
                raise EquationError(f"{owner} and {replaced[name][0]} both replace {name!r}")
            replaced[name] = (owner, equation)
        if piece.equations.strip():
            extra.append(piece.equations.strip("\n"))
    lines = template.format(**filled).splitlines()
    for name, (owner, equation) in integrated.items():
        found = [i for i, line in enumerate(lines) if declared_name(line) == name]
        if len(found) != 1 or not re.match(rf"^\s*{name}\s*:", lines[found[0]]):
            raise EquationError(f"{owner}: {name!r} is not a parameter of this population")
        lines[found[0]] = equation.strip()
    for name, (owner, equation) in replaced.items():
        found = [i for i, line in enumerate(lines) if declared_name(line) == name]
        if len(found) != 1 or not re.match(rf"^\s*d{name}/dt\s*=", lines[found[0]]):
            raise EquationError(f"{owner}: {name!r} is not a flow of this population")
        lines[found[0]] = equation.strip()
    text = "\n".join(lines)
    return text + ("\n" + "\n".join(extra) + "\n" if extra else "")
