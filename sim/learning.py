"""Learning over trials: phases (which trials learn what) and snapshots (what was learned).

**Phases**: learning switched on or off per trial and per parameter (train, then test).

A trial's ``learn`` field (``sim.protocol.read_learn``) names the parameters it learns; a
mechanism names the parameter it learns (``Mechanism.learns``: ``weights``, ``prior``,
``precision``, ...). For every parameter that some trial does not learn, the flows that
mechanism ``integrates`` are scaled by a shared switch, ``learning_<parameter>``:

    d theta/dt = learning_theta * (its flow)

set to 1 or 0 at every trial's start. With 0 the update is theta + dt * 0 = theta: the
parameter stays bitwise as it was, whatever the integration method. Updates that run outside
the equations (the NumPy weight update) are switched by the mechanism's ``learning``. A
scenario in which every trial learns everything gets no switch, so its equations, and its
numbers, are exactly those without phases.

**Snapshots** (``[record] snapshots_every = N``): the learned parameters after every N-th
trial and the last (``sim.io.snapshots``). Before anything is written the preflight
(``check_snapshots``) estimates their size from the mechanisms' ``snapshot_shapes`` and
refuses a run over ``[record] snapshots_limit_mb``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from circuits.equations import declared_name
from circuits.mechanism import Piece
from sim import registry
from sim.io.snapshots import snapshot_bytes, snapshot_count
from sim.validation import Source


def switch(parameter: str) -> str:
    """The shared variable that turns the flows learning ``parameter`` on (1) or off (0)."""
    return f"learning_{parameter}"


def phased_parameters(learned: list[str], trials: list[Any]) -> list[str]:
    """The learned parameters that at least one trial does not learn."""
    return [name for name in learned
            if any(trial.learn is not None and name not in trial.learn for trial in trials)]


def switched(piece: Piece, parameter: str) -> Piece:
    """``piece`` with each flow it integrates multiplied by the parameter's switch."""
    flows = {}
    for name, equation in piece.integrates.items():
        left, equals, right = equation.partition("=")
        rhs, colon, unit = right.rpartition(":")
        if declared_name(equation) != name or not equals or not colon:
            raise ValueError(f"cannot switch the flow {equation!r}")
        flows[name] = f"{left}= {switch(parameter)} * ({rhs.strip()}) :{unit}"
    return replace(piece, integrates=flows)


def declaration(parameters: list[str]) -> Piece:
    """The switches' declarations (one per parameter, whichever mechanisms share it)."""
    return Piece(equations="\n".join(f"{switch(name)} : 1 (shared)" for name in parameters))


def snapshot_shapes(scenario: Any) -> dict[str, tuple[int, ...]]:
    """The arrays a snapshot holds, by path, from the switched-on mechanisms."""
    shapes: dict[str, tuple[int, ...]] = {}
    for name, settings in getattr(scenario.model, "mechanisms", {}).items():
        shapes.update(registry.mechanism(name).snapshot_shapes(settings, scenario.model))
    return shapes


def check_snapshots(scenario: Any) -> None:
    """Refuse (ScenarioError on ``record.snapshots_every``) snapshots whose estimated size is
    over ``[record] snapshots_limit_mb``."""
    record = scenario.record
    count = snapshot_count(len(scenario.trials), record.snapshots_every)
    if not count:
        return
    size_mb = snapshot_bytes(snapshot_shapes(scenario), count) / 1e6
    if size_mb > record.snapshots_limit_mb:
        source = Source(scenario.path, scenario.source_text, tuple(scenario.overrides))
        raise source.error("record.snapshots_every",
                           f"{record.snapshots_every} gives {count} snapshots of the learned "
                           f"parameters, about {size_mb:.4g} MB, over [record] "
                           f"snapshots_limit_mb = {record.snapshots_limit_mb:g}; take fewer "
                           "(a larger snapshots_every) or raise snapshots_limit_mb")
