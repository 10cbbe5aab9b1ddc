"""Checkpoints of a run of many trials, and resuming from one (``pcsim run --resume``).

A run with ``[record] checkpoint_every = N`` (N > 0) saves, after every N-th trial (between it
and the next; never after the last), everything the remaining trials depend on, in one file
beside its result ``OUT.h5``: ``OUT.h5.checkpoint``.

- **Brian2's state**: every variable of every object of the network (``Network._full_state``:
  beliefs, errors, precisions, what the equations learn, the synapses' weights), the clock's
  time step, and Brian2's random generator (NumPy's global one and Brian2's buffers).
- **What lives outside Brian2** (``Simulation.checkpoint``): the NumPy couplings' weights
  (learned in place), what the mechanisms keep (``Mechanism.checkpoint``: a learned
  covariance), what the readouts keep (``Readout.checkpoint``: ERP traces), the family's own
  (the lanes' overrides, the discrete family's evidence), the trial table's rows so far and
  the recorder's cadence.
- **Which readouts are off** (``sim.memory.switched_off``: a reference too large for the
  memory limit, by default a fraction of the machine's memory): the run resumed keeps the
  readouts its start turned off, and no others, on a machine with more or less memory.
- **The result so far**: a copy of every dataset of the partial result file (the samples, the
  snapshots, the scenario) under ``result/``.

The random numbers a trial draws come from streams of its own (``[seed, 2, trial]``,
``[seed, 6, trial]``, ``sim.protocol``), made when it starts, and the trial order is drawn when
the scenario is read: a trial boundary needs no generator state beyond Brian2's.

**On disk**: a checkpoint is written whole to a temporary file beside it
(``.OUT.h5.checkpoint.HOST-PID.partial``, ``sim.io.partials``), flushed to the disk, and renamed
onto ``OUT.h5.checkpoint`` in one step: a SIGKILL at any moment leaves the previous checkpoint
whole (the next run in that folder removes the temporary file). Its cost is a copy of the
partial result and of the state (``learning/bars``: docs/scenarios.md).

**Signals**: in a run that writes checkpoints, SIGINT and SIGTERM let the running trial finish,
write a checkpoint at its end (the run completes instead when it was the last), then stop
(exit 130 or 143). A second signal stops at once; the last checkpoint written stays.

**Resume** (``resume=True``; ``pcsim run SCENARIO -o OUT.h5 --resume``, with the same ``--set``
and ``--seed``): the scenario is read and the network built as for a new run, then the
checkpoint's state is put back (``resume``) and the trials go on from the first not done. The
finished file equals an uninterrupted run's in every dataset and attribute but the wall-clock
ones, and its root attribute ``resumed_at_trials`` lists where it was resumed
(docs/results.md). Refused, with one line, when there is no checkpoint, it cannot be read,
its scenario differs (source text or any parameter after ``--set`` and ``--seed``), or other
versions of pcsim, Brian2, NumPy, h5py or Python wrote it. The checkpoint is removed once the
result is written (complete or diverged).

Batched runs (``[protocol] batch`` > 1) take no checkpoints: ``checkpoint_every`` is refused.
"""

from __future__ import annotations

import contextlib
import datetime
import io
import json
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from sim.errors import ResultError
from sim.io.partials import temporary_name
from sim.parameters import differing_keys

FORMAT = 3  # 2: ``readouts_off`` recorded; 3: Brian2 groups named by level index (circuits.naming)
SUFFIX = ".checkpoint"
BRIAN_STATE = "pcsim_checkpoint"  # the name of the state given to ``Network.restore``
COPY_ROWS = 1 << 16  # rows of a dataset copied back at once on resume
LIBVER = ("v110", "latest")
NUMPY_NAMES = frozenset({"_reconstruct", "scalar", "dtype", "ndarray", "_frombuffer"})
BUILTIN_NAMES = frozenset({"set", "frozenset", "complex", "slice"})


def checkpoint_path(output: Path) -> Path:
    """Where the run writing ``output`` keeps its checkpoint."""
    output = Path(output)
    return output.with_name(output.name + SUFFIX)


def fingerprint(scenario: Any) -> dict:
    """What must be the same for a run to resume from a checkpoint: the scenario's text and
    every parameter after ``--set`` and ``--seed``."""
    return {"source": scenario.source_text, "parameters": scenario.resolved()}


class _Unpickler(pickle.Unpickler):
    """Reads back only what a checkpoint holds: NumPy arrays and scalars in plain containers
    (a damaged or foreign file cannot run code)."""

    def find_class(self, module: str, name: str) -> Any:
        if (module.startswith("numpy") and (name in NUMPY_NAMES or name.endswith("DType"))) or (
                module == "builtins" and name in BUILTIN_NAMES):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"unexpected {module}.{name} in a checkpoint")


@dataclass
class Saved:
    """A checkpoint read back: its file, the trials done, the state, the result's attributes."""

    path: Path
    done: int
    state: dict
    attrs: dict
    readouts_off: dict[str, str]  # the readouts the run turned off (``sim.memory``), with why


def check_start(scenario: Any, output: Path, resume: bool, overwrite: bool) -> None:
    """Before a run writing ``output`` starts: with ``resume``, its checkpoint fits
    (``read``); without, no interrupted run's checkpoint is there, unless ``overwrite`` (the
    run replaces it). ResultError, one line, otherwise."""
    path = checkpoint_path(output)
    if resume:
        read(scenario, output, state=False)
    elif path.exists() and not overwrite:
        raise ResultError(f"{path}: already exists (the checkpoint of an interrupted run); "
                          "pass --resume to continue that run, or --overwrite to start again")


def prepare(scenario: Any, output: Path, resume: bool, overwrite: bool) -> Saved | None:
    """As a run writing ``output`` starts: with ``resume``, its checkpoint (``read``); else
    None, once an interrupted run's checkpoint there is removed (``overwrite``; without it,
    refused by ``check_start``)."""
    if resume:
        return read(scenario, output)
    check_start(scenario, output, resume, overwrite)
    stale = checkpoint_path(output)
    if stale.exists():
        stale.unlink()
    return None


def read(scenario: Any, output: Path, state: bool = True) -> Saved:
    """The checkpoint of the run writing ``output``, checked against ``scenario`` and this
    installation; ResultError (one line) when there is none or it does not fit. ``state``
    False: only checked (``Saved.state`` empty)."""
    from sim.io.writer import versions

    path = checkpoint_path(output)
    if scenario.protocol is not None and scenario.protocol.batch > 1:
        raise ResultError(f"{output}: --resume: a batched run ([protocol] batch = "
                          f"{scenario.protocol.batch}) writes no checkpoints")
    if not path.exists():
        raise ResultError(f"{path}: no checkpoint to resume from (a run writes one every "
                          "[record] checkpoint_every trials, and when stopped by a signal)")
    try:
        with h5py.File(path, "r") as file:
            meta = file["state"].attrs
            if int(meta["format"]) != FORMAT:
                raise ResultError(f"{path}: checkpoint format {meta['format']}, expected "
                                  f"{FORMAT}; start the run again")
            saved_print = json.loads(meta["fingerprint"])
            saved_versions = json.loads(meta["versions"])
            done = int(meta["done"])
            readouts_off = json.loads(meta["readouts_off"])
            kept = _Unpickler(io.BytesIO(file["state"][()].tobytes())).load() if state else {}
            attrs = dict(file["result"].attrs)
    except (OSError, KeyError, ValueError, pickle.UnpicklingError, EOFError) as err:
        if isinstance(err, ResultError):
            raise
        raise ResultError(f"{path}: not a readable checkpoint ({err}); start the run "
                          "again without --resume") from err
    differences = differing_keys(saved_print, json.loads(json.dumps(fingerprint(scenario))))
    if differences:
        raise ResultError(f"{path}: the checkpoint is of another scenario ({differences[0][0]} "
                          "differs); resume with the same scenario, --set and --seed")
    for key, value in versions().items():
        if saved_versions.get(key) != value:
            raise ResultError(f"{path}: written with {key} {saved_versions.get(key)}, this is "
                              f"{value}; resume with the same installation")
    return Saved(path, done, kept, attrs, readouts_off)


class Checkpoints:
    """The checkpoints of one run: ``attach`` to the built run, then ``trial_ended`` after
    each trial (``sim.trial_sequence``); ``resume`` puts a ``Saved`` one back; ``remove``
    once the result is written."""

    def __init__(self, scenario: Any, output: Path) -> None:
        self.scenario = scenario
        self.every = scenario.record.checkpoint_every
        self.path = checkpoint_path(output)
        self.total = len(scenario.trials)
        self.steps = np.concatenate([[0], np.cumsum([scenario.steps(trial.duration_ms)
                                                     for trial in scenario.trials])])
        self.resumed: list[int] = []
        self.stopped_between = False  # a signal stopped the run at a trial boundary
        self.written: int | None = None  # trials done at the last checkpoint written

    def attach(self, network: Any, simulation: Any, guard: Any, writer: Any) -> None:
        self.network, self.simulation, self.guard, self.writer = (network, simulation, guard,
                                                                  writer)
        guard.defer_interrupt = bool(self.every) and self.total > 1

    def trial_ended(self, done: int) -> None:
        """The first ``done`` trials are done: a checkpoint when one is due or a signal came
        (then the run stops here)."""
        if done >= self.total:
            return
        signal = self.guard.interrupted if self.guard.defer_interrupt else None
        if (self.every and done % self.every == 0) or signal:
            self.write(done)
        if signal:
            from sim.guard import RunStopped

            self.stopped_between = True
            raise RunStopped("interrupted", f"interrupted by {signal} after trial {done} of "
                             f"{self.total}", float(self.steps[done]) * self.scenario.dt_ms)

    # writing -------------------------------------------------------------------------------------
    def state(self, done: int) -> dict:
        """Everything the trials from ``done`` on depend on (plain data)."""
        from brian2.devices import get_device

        brian = self.network._full_state()
        brian["0_t"] = self.simulation.clock_time()  # Network.t_ is the run's start, mid-run
        brian["_random_generator_state"] = get_device().get_random_state()
        return {"done": done, "step": int(self.steps[done]), "brian": brian,
                "simulation": self.simulation.checkpoint(), "resumed": self.resumed}

    def write(self, done: int) -> None:
        """Write the checkpoint after trial ``done`` atomically (a temporary file, renamed)."""
        from sim.io.writer import versions

        payload = pickle.dumps(self.state(done), protocol=pickle.HIGHEST_PROTOCOL)
        self.writer.flush()
        live = self.writer.file
        temporary = temporary_name(self.path)
        try:
            with h5py.File(temporary, "w", libver=LIBVER) as file:
                result = file.create_group("result")
                for name in live:
                    live.copy(live[name], result, name=name)
                for key, value in live.attrs.items():
                    result.attrs[key] = value
                meta = file.create_dataset("state", data=np.frombuffer(payload, np.uint8)).attrs
                meta["format"] = FORMAT
                meta["done"] = done
                meta["trials"] = self.total
                meta["written_utc"] = datetime.datetime.now(datetime.UTC).isoformat()
                meta["fingerprint"] = json.dumps(fingerprint(self.scenario))
                meta["versions"] = json.dumps(versions())
                meta["readouts_off"] = json.dumps(self.simulation.readouts_off)
            _sync(temporary)
            os.replace(temporary, self.path)
            _sync(self.path.parent)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        self.written = done

    # resuming ------------------------------------------------------------------------------------
    def resume(self, saved: Saved) -> int:
        """Put ``saved`` back into the attached run (built afresh, not yet run): Brian2's
        state, the simulation's, the result's datasets so far; returns the first trial to run."""
        state = saved.state
        self.network._stored_state[BRIAN_STATE] = state["brian"]
        try:
            self.network.restore(BRIAN_STATE, restore_random_state=True)
        finally:
            del self.network._stored_state[BRIAN_STATE]
        self.simulation.resume(state["simulation"])
        self.guard.step = state["step"]
        with h5py.File(saved.path, "r") as file:
            copy_result(file["result"], self.writer)
        self.resumed = [*state["resumed"], saved.done]
        attrs = self.writer.file.attrs
        attrs["created_utc"] = saved.attrs.get("created_utc", attrs["created_utc"])
        attrs["resumed_at_trials"] = np.array(self.resumed, dtype=np.int64)
        return saved.done

    def remove(self) -> None:
        """The result is written: the checkpoint has served."""
        self.path.unlink(missing_ok=True)


def copy_result(source: h5py.Group, writer: Any) -> None:
    """The partial result's datasets into a run's new file (``writer``, a ``ResultWriter``):
    a stream (which the new run made too, empty) gets the rows written so far, checked as the
    recorded ones are (``StreamedDataset.append``: the commit does not read streams back); a
    dataset the new run has not made yet (a snapshot) is copied whole (the commit reads it
    back); the others the new run wrote the same way already."""
    target = writer.file
    streams = {streamed.dataset.name: streamed for streamed in writer.streams}

    def visit(name: str, node: Any) -> None:
        if not isinstance(node, h5py.Dataset):
            return
        if name not in target:
            parent, _, base = name.rpartition("/")
            source.file.copy(node, target.require_group(parent or "/"), name=base)
            return
        streamed = streams.get(target[name].name)
        if streamed is None or streamed.dataset.shape[0]:
            return
        for start in range(0, node.shape[0], COPY_ROWS):
            streamed.append(node[start:start + COPY_ROWS])

    source.visititems(visit)


def _sync(path: Path) -> None:
    """Flush a file (or a folder's entries) to the disk."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        with contextlib.suppress(OSError):  # some file systems cannot sync a folder
            os.fsync(descriptor)
    finally:
        os.close(descriptor)
