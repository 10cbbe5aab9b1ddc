"""What a family, a mechanism or a readout gets to build its compiled form from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from brian2 import Clock, NeuronGroup

from sim.compiled.timeline import Timeline


class NotCompiled(Exception):  # noqa: N818 - a refusal with its reason, caught by the engine
    """What the compiled device cannot run, in one line (``device = "runtime"`` can)."""


@dataclass
class CompiledContext:
    """The compiled build in progress: the cloned populations by name (``clones``), the
    clock, where trials and samples fall (``timeline``), and what the readouts' compiled forms
    record for the replay (``readout_state``: readout name -> the group it keeps that in),
    and the TimedArrays every compiled form may read (``namespace``,
    ``sim.compiled.trial_starts``)."""

    simulation: Any
    clones: dict[str, NeuronGroup]
    clock: Clock
    timeline: Timeline
    readout_state: dict[str, Any] = field(default_factory=dict)
    namespace: dict[str, Any] = field(default_factory=dict)  # the run's shared TimedArrays

    def clone(self, runtime_group: Any) -> NeuronGroup:
        """The compiled twin of a runtime population."""
        return self.clones[runtime_group.name]
