"""What a family, a mechanism or a readout gets to build its compiled form from."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from brian2 import Clock, NeuronGroup

from sim.compiled.timeline import Timeline


@dataclass
class Kept:
    """State a compiled form holds outside the cloned populations that pcsim's Python reads
    (learned weights on synapses): ``variables`` of ``group`` (on the standalone device) are
    recorded with the populations' at every sample and trial boundary, and the replay hands
    them to ``put`` (variable -> values) wherever it puts the populations' state back.
    ``watched``: the runtime guard's name for the array ``put`` fills
    (``sim.guard.Watched.population``), whose check the program makes on ``group``."""

    group: Any
    variables: list[str]
    put: Callable[[dict[str, Any]], None]
    watched: str | None = None


class NotCompiled(Exception):  # noqa: N818 - a refusal with its reason, caught by the engine
    """What the compiled device cannot run, in one line (``device = "runtime"`` can)."""


@dataclass
class CompiledContext:
    """The compiled build in progress: the cloned populations by name (``clones``), the
    clock, where trials and samples fall (``timeline``), and what the readouts' compiled forms
    record for the replay (``readout_state``: readout name -> the group it keeps that in),
    the TimedArrays every compiled form may read (``namespace``,
    ``sim.compiled.trial_starts``), the family's compiled coupling (``coupling``, for the
    mechanisms acting on it) and the state the replay puts back into Python (``kept``)."""

    simulation: Any
    clones: dict[str, NeuronGroup]
    clock: Clock
    timeline: Timeline
    readout_state: dict[str, Any] = field(default_factory=dict)
    namespace: dict[str, Any] = field(default_factory=dict)  # the run's shared TimedArrays
    coupling: Any = None
    kept: list[Kept] = field(default_factory=list)

    def clone(self, runtime_group: Any) -> NeuronGroup:
        """The compiled twin of a runtime population."""
        return self.clones[runtime_group.name]
