"""The compiled programs a sweep's points run, said before the sweep starts.

A point runs on the compiled device when its scenario's ``[numerics] device`` chooses it
(``sim.compiled.choice``); points of one program shape (``sim.compiled.shape``) run one
program, compiled once and kept: the values a sweep varies within a shape are data the program
reads when it starts, so a point compiles nothing. A shape not built yet is compiled by the
first point that needs it, while the others of that shape wait for it (10-60 s on 2 cores).
A shape is "compiled before" when any scenario of that shape built it (they share a build,
``sim.compiled.shape``); where that scenario's code differs in what the shape does not hold
(the ERP's signed or rectified sum), the first point recompiles those sources alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class ProgramPlan:
    """Of ``points`` to run, ``compiled`` on the compiled device, in these program shapes
    (key -> built before)."""

    points: int
    compiled: int = 0
    shapes: dict[str, bool] = field(default_factory=dict)

    def line(self) -> str | None:
        """The announcement (None: no point runs compiled)."""
        if not self.compiled:
            return None
        new = sum(1 for done in self.shapes.values() if not done)
        count = len(self.shapes)
        shapes = f"{count} program shape{'s' if count > 1 else ''}"
        built = (f"{new} to compile first (10-60 s each on 2 cores), then kept" if new else
                 "compiled before")
        return (f"pcsim: {self.compiled} of {self.points} points run compiled "
                f"([numerics] device): {shapes}, {built}; the values varied within a shape "
                "compile nothing")


def program_plan(tasks: list[dict[str, Any]]) -> ProgramPlan:
    """The plan of the sweep points ``tasks`` (``sim.sweeps.run``: scenario, overrides, seed);
    a point whose scenario does not load is left to report itself. Points that differ only in
    their seed share a device and a shape: each scenario and overrides is loaded once."""
    import json

    from sim.compiled.shape import built

    plan = ProgramPlan(len(tasks))
    found: dict[str, str | None] = {}
    for task in tasks:
        settings = json.dumps([task["scenario"], task["overrides"]], sort_keys=True,
                              default=str)
        if settings not in found:
            found[settings] = _compiled_shape(task)
        key = found[settings]
        if key is not None:
            plan.compiled += 1
            if key not in plan.shapes:
                plan.shapes[key] = built(key)
    return plan


def _compiled_shape(task: dict[str, Any]) -> str | None:
    """The program shape the point runs on the compiled device, or None (the runtime device,
    or a scenario that does not load)."""
    from sim.compiled.choice import DeviceRefused, choose
    from sim.compiled.shape import shape_key
    from sim.errors import ScenarioError
    from sim.scenario import load_scenario

    try:
        scenario = load_scenario(task["scenario"], overrides=task["overrides"],
                                 seed=task["seed"])
        if getattr(scenario, "numerics", None) is None or \
                choose(scenario, resuming=False) != "standalone":
            return None
    except (ScenarioError, DeviceRefused):
        return None
    return shape_key(scenario)
