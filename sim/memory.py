"""How much memory a run will take, estimated before Brian2 is imported, and refused past a limit.

A run's memory is the sum of parts (``circuits.mechanism.MemoryPart``), each declared where it
lives:

- the interpreter with NumPy, SciPy, SymPy, h5py, Brian2 and pcsim loaded (``BASELINE_BYTES``);
- the model family's (``kind.memory(scenario)``): its populations, the coupling between them,
  the trial table, and the recording buffers (``recording_buffer``: one band of tiles per
  recorded stream, ``sim.io.writer.tile_shape``; a stream's memory does not grow with the run);
- each switched-on mechanism's (``Mechanism.memory``): a learned matrix, what it keeps per trial;
- one snapshot of the learned parameters (``[record] snapshots_every``; the snapshots are
  written one at a time: their size in the file is ``sim.learning.check_snapshots``'s concern);
- each readout's reference (``Readout.memory``): the reference posterior's grid and covariances;
- with checkpoints (``[record] checkpoint_every``, ``sim.checkpoint``), the run's state twice
  while one is written: Brian2's copy (``Network._full_state``) and its pickle. The state is
  what the model's parts say a checkpoint holds of them (``MemoryPart.checkpointed``, summed by
  ``state_bytes``: ``STATE_NUMBERS`` a unit, each weight and trial table entry once).

The limit is ``[numerics] memory_limit_mb``, by default ``DEFAULT_FRACTION`` of the machine's
physical memory. A readout whose parts would take the run past it is turned off
(``switched_off``; the result file says so in its ``readouts_off`` attribute); if the rest is
still past it, ``check_memory`` refuses the run with one line naming the biggest part and the
key that shrinks it. The per-unit figures the families declare were measured (peak RSS of runs
of 10^4 to 10^7 units, ``tests/test_memory.py`` checks the estimate against a run's peak).

The recording buffers also say what a sample writes: ``check_disk`` refuses a recording larger
than the free space where the result goes (``pcsim run``, once the output path is known). With
checkpoints the disk holds, while one is written, the result so far, the previous checkpoint and
the new one, each checkpoint a copy of the result so far and the state (``written_bytes``).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from circuits.mechanism import MemoryPart
from sim import learning, registry
from sim.io.snapshots import snapshot_bytes
from sim.io.writer import tile_shape
from sim.validation import Source

DEFAULT_FRACTION = 0.5  # of the machine's physical memory, without [numerics] memory_limit_mb
BASELINE_BYTES = 200e6  # a pcsim process with Brian2 loaded, before the model (measured ~185 MB)
NUMBER_BYTES = 8  # float64: parsed arrays, recorded samples and readouts are float64
UNIT_NUMBERS = 14  # numbers a unit of a population costs, its recording apart (measured:
# sim.families.hierarchical.memory)
TRIAL_NUMBERS = 4  # numbers per unit and trial: the trial table's rows, kept to the run's end
STATE_NUMBERS = 8  # numbers per unit in a checkpoint's state (measured: a pickle of 60 MB for
# perception/single_cause with 10^6 input units, 8 MB of it their weights: 6.5 a unit)
CHECKPOINT_STATES = 2  # copies of the state while a checkpoint is written: Brian2's, its pickle
CHECKPOINT_FILES = 2  # checkpoints on the disk while one is written: the previous one, the new
MB = 1e6


def size_text(size: float) -> str:
    """``416 MB``, ``2.36 GB``, ``3.84 TB``: three significant figures at most."""
    unit, scale = next(((unit, scale) for unit, scale in (("TB", 1e12), ("GB", 1e9))
                        if size >= scale), ("MB", MB))
    return f"{size / scale:.3g} {unit}"


def physical_memory() -> int:
    """The machine's physical memory in bytes (0 where the system does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


def memory_limit(scenario: Any) -> float:
    """The limit in bytes: ``[numerics] memory_limit_mb``, else a fraction of the machine's."""
    configured = scenario.numerics.memory_limit_mb
    if configured is not None:
        return configured * MB
    return DEFAULT_FRACTION * physical_memory() or float("inf")


def recording_buffer(path: str, width: int | None) -> MemoryPart:
    """The buffer the writer keeps for one recorded stream (``sim.io.writer``): one band of
    tiles across every unit, at most ~8 MiB unless one sample of every unit is more."""
    rows = tile_shape(width, NUMBER_BYTES)[0]
    return MemoryPart(f"the recording buffer of {path} ({width or 1} units)",
                      rows * (width or 1) * NUMBER_BYTES, "record.variables",
                      sample_bytes=(width or 1) * NUMBER_BYTES)


def model_parts(scenario: Any) -> list[MemoryPart]:
    """The family's parts and the switched-on mechanisms'."""
    family = getattr(scenario.kind, "memory", None)
    parts = list(family(scenario)) if family is not None else []
    for name, settings in getattr(scenario.model, "mechanisms", {}).items():
        parts.extend(registry.mechanism(name).memory(settings, scenario))
    return parts


def state_bytes(scenario: Any) -> float:
    """The run's state, as a checkpoint keeps it (``sim.checkpoint``): what the model's parts
    say it holds of them (``MemoryPart.checkpointed``)."""
    return sum(part.checkpointed for part in model_parts(scenario))


def run_parts(scenario: Any) -> list[MemoryPart]:
    """Every part but the readouts': the baseline, the family's, the mechanisms', the
    checkpoints' (``[record] checkpoint_every``), a snapshot."""
    parts = [MemoryPart("the interpreter with Brian2 and pcsim loaded", BASELINE_BYTES, ""),
             *model_parts(scenario)]
    if scenario.record.checkpoint_every:
        parts.append(MemoryPart("a checkpoint being written (the run's state, copied and "
                                "pickled)", CHECKPOINT_STATES * state_bytes(scenario),
                                "record.checkpoint_every"))
    compiled = compiled_tables_bytes(scenario)
    if compiled:
        parts.append(MemoryPart("the compiled program's input table and recording of every "
                                "state variable (held until it ends; device = \"runtime\" "
                                "streams the recording)", compiled, "numerics.device"))
    if scenario.record.snapshots_every:
        parts.append(MemoryPart("one snapshot of the learned parameters",
                                snapshot_bytes(learning.snapshot_shapes(scenario), 1),
                                "record.snapshots_every"))
    return parts


def compiled_tables_bytes(scenario: Any) -> float:
    """What a run on the compiled device holds beside the runtime's (``sim.compiled``): 0 for
    a run on the runtime device."""
    from sim.compiled.choice import DeviceRefused, device_choice

    if getattr(scenario, "numerics", None) is None:
        return 0.0
    try:
        return device_choice(scenario, resuming=False).tables_mb * 2**20
    except DeviceRefused:  # refused in its own words before the run (sim.preflight)
        return 0.0


def readout_parts(scenario: Any) -> dict[str, list[MemoryPart]]:
    """The parts of each readout that the scenario switches on and that declares some."""
    found = {}
    for readout in registry.readouts(scenario.kind.name):
        if readout.enabled(scenario):
            parts = readout.memory(scenario)
            if parts:
                found[readout.name] = parts
    return found


def total(parts: list[MemoryPart]) -> float:
    return sum(part.size for part in parts)


def switched_off(scenario: Any) -> dict[str, str]:
    """The readouts turned off because their parts would take the run past the limit, with
    why (for the result file's ``readouts_off``); in registration order, each kept while the
    total stays within the limit."""
    limit = memory_limit(scenario)
    used = total(run_parts(scenario))
    off = {}
    for name, parts in readout_parts(scenario).items():
        size = total(parts)
        if used + size > limit:
            biggest = max(parts, key=lambda part: part.size)
            off[name] = (f"turned off before the run: {biggest.what} would take about "
                         f"{size_text(size)}; with the run's {size_text(used)} that is over "
                         f"the memory limit of {size_text(limit)} ([numerics] "
                         "memory_limit_mb)")
        else:
            used += size
    return off


def estimate(scenario: Any) -> list[MemoryPart]:
    """The parts of the run as it will go: the readouts that stay on included."""
    off = switched_off(scenario)
    return [*run_parts(scenario),
            *(part for name, parts in readout_parts(scenario).items() if name not in off
              for part in parts)]


def check_memory(scenario: Any) -> None:
    """Refuse (ScenarioError) a run whose estimated memory is over the limit, naming the
    biggest part and the key that shrinks it."""
    parts = estimate(scenario)
    size, limit = total(parts), memory_limit(scenario)
    if size <= limit:
        return
    source = Source(scenario.path, scenario.source_text, tuple(scenario.overrides))
    configured = scenario.numerics.memory_limit_mb is not None
    where = ("[numerics] memory_limit_mb" if configured else
             f"{100 * DEFAULT_FRACTION:g}% of this machine's memory; [numerics] memory_limit_mb")
    fixed = total([part for part in parts if not part.key])
    if fixed >= limit:  # no key of the scenario can help: the limit is below pcsim's own
        raise source.error("numerics.memory_limit_mb",
                           f"the run would take about {size_text(size)}, over the limit of "
                           f"{size_text(limit)} ({where}); {size_text(fixed)} of it is "
                           "pcsim itself (the interpreter with Brian2 loaded), whatever the "
                           "model: expected a limit above that")
    biggest = max((part for part in parts if part.key), key=lambda part: part.size)
    raise source.error(biggest.key,
                       f"the run would take about {size_text(size)}, over the limit of "
                       f"{size_text(limit)} ({where}); the biggest part is "
                       f"{biggest.what}, about {size_text(biggest.size)}: shrink "
                       f"{biggest.key}")


def recorded_bytes(scenario: Any) -> float:
    """What the recorded streams will write to the result file: samples x bytes a sample
    (the family's streams but ``time``, ``free_energy`` and ``energy``, which are small)."""
    samples = sum(-(-scenario.steps(trial.duration_ms) // scenario.record.every_steps)
                  for trial in scenario.trials)
    return samples * sum(part.sample_bytes for part in run_parts(scenario))


def written_bytes(scenario: Any) -> float:
    """What the run holds on the disk at most: the recording (``recorded_bytes``); with
    checkpoints, while one is written, also the previous one and the new one, each a copy of
    the result so far (at most the recording) and of the state (``state_bytes``)."""
    recorded = recorded_bytes(scenario)
    if not scenario.record.checkpoint_every:
        return recorded
    return recorded + CHECKPOINT_FILES * (recorded + state_bytes(scenario))


def check_disk(scenario: Any, output: Path) -> None:
    """Refuse (ScenarioError on ``record.every_ms``) a recording larger than the free space
    where the result is written (checked on the nearest folder that exists), its checkpoints
    included (``written_bytes``)."""
    folder = Path(output).absolute().parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return
    size = written_bytes(scenario)
    if size > free:
        source = Source(scenario.path, scenario.source_text, tuple(scenario.overrides))
        checkpoints = (" with its checkpoints (two at a time while one is written, each a copy "
                       "of the result so far)" if scenario.record.checkpoint_every else "")
        fewer = ", or no checkpoints (checkpoint_every = 0)" if checkpoints else ""
        raise source.error("record.every_ms",
                           f"the recording would write about {size_text(size)}{checkpoints}, "
                           f"more than the {size_text(free)} free in {folder}; record less "
                           f"often (a larger every_ms) or fewer [record] variables{fewer}")
