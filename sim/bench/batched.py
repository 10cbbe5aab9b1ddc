"""The batched-protocol case of ``pcsim bench``: trials per second of a protocol of independent
trials run one by one and as B copies of the network (``[protocol] batch = B``, ``sim.batch``).

The protocol (issue 11): the dense medium 1000-500-100 tanh network with relaxing errors, four
conditions (each its own input ramp; two of them their own input precision), 16 trials each
(full suite; 4 each with ``--quick``), 20 ms a trial (10 ms), shuffled, beliefs reset at each
trial, with the default recording (every variable at every step), as users run it, and (full
suite) recording every 1 ms. Each run goes through ``sim.run`` (scenario file to closed result
file), serial and batched in turns, best of the repeats; the compiled code is warmed up first,
and the last repeat's file is deleted before the clock starts (replacing a 512 MB file took
0.3 s of the kernel's, in either run).
``speedup`` = serial time / batched time (target >= 2); the trials' final beliefs in the two
files must agree (``max_abs_diff``, to 1e-10 as the tests ask).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sim.bench.cases import hierarchy_table
from sim.scenario_writer import write_scenario

SIZES = [1000, 500, 100]
CONDITIONS = 4
TRIALS = {False: 64, True: 16}  # full suite, --quick
TRIAL_MS = {False: 20.0, True: 10.0}
BATCHES = {False: (16, 64), True: (16,)}
RECORDINGS = {False: (None, 1.0), True: (None,)}  # every_ms; None: the default
TARGET = 2.0
TOLERANCE = 1e-10


@dataclass
class BatchedRecord:
    name: str = "batched protocol"
    trials: int = 0
    trial_ms: float = 0.0
    every_ms: float | None = None  # None: the default recording
    serial_s: list[float] = field(default_factory=list)
    batched_s: dict[int, list[float]] = field(default_factory=dict)
    max_abs_diff: float = 0.0

    def speedup(self, batch: int) -> float:
        return min(self.serial_s) / min(self.batched_s[batch])

    @property
    def met(self) -> bool:
        return all(self.speedup(batch) >= TARGET for batch in self.batched_s) and (
            self.max_abs_diff <= TOLERANCE)

    def row(self) -> dict:
        row = dict(self.__dict__)
        row.update(speedups={batch: self.speedup(batch) for batch in self.batched_s},
                   target=TARGET, target_met=self.met)
        return row

    def lines(self) -> list[str]:
        serial = min(self.serial_s)
        cells = [f"batch {batch} {self.trials / min(seconds):.1f} trials/s "
                 f"(x{self.speedup(batch):.2f}{'' if self.speedup(batch) >= TARGET else ' MISSED'})"
                 for batch, seconds in self.batched_s.items()]
        recording = ("default recording" if self.every_ms is None
                     else f"recording every {self.every_ms:g} ms")
        return [f"{self.name} ({'-'.join(map(str, SIZES))}, {self.trials} trials of "
                f"{self.trial_ms:g} ms, {recording}, whole runs): serial "
                f"{self.trials / serial:.1f} trials/s; " + ", ".join(cells)
                + f" (target x{TARGET:g}); max|diff| {self.max_abs_diff:.1e}"]


def protocol_table(trials: int, trial_ms: float, batch: int, every_ms: float | None = None
                   ) -> dict:
    """The benchmark's protocol: four conditions of ``trials / 4`` trials each, shuffled."""
    table = hierarchy_table("batched protocol", SIZES, round(trial_ms / 0.1))
    rng = np.random.default_rng(len(SIZES))
    conditions = []
    for index in range(CONDITIONS):
        condition = {"name": f"condition{index}", "count": trials // CONDITIONS,
                     "duration_ms": trial_ms,
                     "stimulus": {"kind": "ramp", "start": rng.normal(0, 1, SIZES[0]).tolist(),
                                  "stop": rng.normal(0, 1, SIZES[0]).tolist()}}
        if index % 2:
            condition["precision"] = {"input": 0.5 + index / 4}
        conditions.append(condition)
    table["protocol"] = {"reset": "beliefs", "conditions": conditions}  # shuffled (default)
    if batch > 1:
        table["protocol"]["batch"] = batch
    table["record"] = {} if every_ms is None else {"every_ms": every_ms}
    return table


def _final_beliefs(path: Path) -> np.ndarray:
    import h5py

    with h5py.File(path, "r") as file:
        group = file["trials/final_belief"]
        return np.concatenate([np.asarray(group[name], dtype=float) for name in sorted(group)],
                              axis=1)


def measure(workdir: Path, quick: bool, repeats: int) -> list[BatchedRecord]:
    return [measure_recording(workdir, quick, repeats, every_ms)
            for every_ms in RECORDINGS[quick]]


def measure_recording(workdir: Path, quick: bool, repeats: int, every_ms: float | None
                      ) -> BatchedRecord:
    import sim

    record = BatchedRecord(trials=TRIALS[quick], trial_ms=TRIAL_MS[quick], every_ms=every_ms)
    paths = {batch: write_scenario(workdir / f"batched_{batch}.toml",
                                   protocol_table(record.trials, record.trial_ms, batch,
                                                  every_ms))
             for batch in (1, *BATCHES[quick])}
    short = {f"protocol.conditions.{index}.duration_ms": 0.5 for index in range(CONDITIONS)}
    for path in paths.values():  # compile every code object before the clock runs
        sim.run(path, output=workdir / "batched_warm.h5", overwrite=True, overrides=short)
    outputs = {batch: workdir / f"batched_{batch}.h5" for batch in paths}
    for _ in range(repeats):
        for batch, path in paths.items():
            outputs[batch].unlink(missing_ok=True)  # not the file system's freeing of the last
            began = time.perf_counter()
            sim.run(path, output=outputs[batch], overwrite=True)
            seconds = time.perf_counter() - began
            if batch == 1:
                record.serial_s.append(seconds)
            else:
                record.batched_s.setdefault(batch, []).append(seconds)
    serial = _final_beliefs(outputs[1])
    record.max_abs_diff = max(float(np.max(np.abs(_final_beliefs(outputs[batch]) - serial)))
                              for batch in BATCHES[quick])
    for path in outputs.values():
        path.unlink()
    return record
