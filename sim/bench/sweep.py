"""The sweep case of ``pcsim bench``: 8 points of a small scenario on 1 and 2 local workers,
and on a 2-worker Dask ``LocalCluster``.

Each run goes through ``sim.sweeps.run.run_sweep`` into a fresh folder, so every point runs.
Times are from the first point sent to the last one back; the start-up of the workers (spawned
processes importing Brian2) or of the local cluster is reported apart. The compiled code is
cached by a warm-up point first. Repeats alternate the three and the best of each counts.
``speedup`` = time on 1 worker / time on 2 (target >= 1.8 on 2 free cores);
``dask_overhead`` = time on Dask / time on 2 local workers - 1 (target <= 0.10).
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

SCENARIO = "perception/single_cause"
POINTS = {"model.tau_belief_ms": [1.0, 1.5, 2.0, 2.5], "protocol.trials.0.stimulus.noise_std":
          [0.05], "record.every_ms": [1.0]}
SEEDS = 2
DURATION_MS = {False: 600.0, True: 300.0}  # per point: full suite, --quick
SPEEDUP_TARGET = 1.8
OVERHEAD_TARGET = 0.10


@dataclass
class SweepRecord:
    name: str = "sweep 8 points"
    points: int = 8
    duration_ms: float = 0.0
    serial_s: list[float] = field(default_factory=list)  # -j 1
    parallel_s: list[float] = field(default_factory=list)  # -j 2
    dask_s: list[float] = field(default_factory=list)  # LocalCluster, 2 workers
    start_serial_s: float | None = None
    start_parallel_s: float | None = None
    cluster_start_s: float | None = None  # LocalCluster up, workers prepared
    load_average: float | None = None  # the machine's 1-minute load before the case
    note: str = ""

    @property
    def speedup(self) -> float | None:
        return min(self.serial_s) / min(self.parallel_s) if self.serial_s and \
            self.parallel_s else None

    @property
    def dask_overhead(self) -> float | None:
        return min(self.dask_s) / min(self.parallel_s) - 1 if self.dask_s and \
            self.parallel_s else None

    def row(self) -> dict:
        row = dict(self.__dict__)
        row.update(speedup=self.speedup, speedup_target=SPEEDUP_TARGET,
                   dask_overhead=self.dask_overhead, dask_overhead_target=OVERHEAD_TARGET,
                   target_met=self.met)
        return row

    @property
    def met(self) -> bool | None:
        if self.speedup is None:
            return None
        overhead = self.dask_overhead
        return self.speedup >= SPEEDUP_TARGET and (overhead is None
                                                   or overhead <= OVERHEAD_TARGET)

    def lines(self) -> list[str]:
        if self.speedup is None:
            return [f"{self.name}: {self.note or 'not measured'}"]
        flag = {True: "ok", False: "MISSED", None: ""}
        speed_ok = self.speedup >= SPEEDUP_TARGET
        lines = [f"{self.name} ({SCENARIO}, {self.duration_ms:g} ms each): -j 1 "
                 f"{min(self.serial_s):.2f} s, -j 2 {min(self.parallel_s):.2f} s, speed-up "
                 f"{self.speedup:.2f} (target >= {SPEEDUP_TARGET:g} {flag[speed_ok]})"]
        if self.dask_overhead is not None:
            ok = self.dask_overhead <= OVERHEAD_TARGET
            lines.append(f"  Dask LocalCluster, 2 workers: {min(self.dask_s):.2f} s, overhead "
                         f"{100 * self.dask_overhead:+.1f}% against -j 2 (target <= "
                         f"{100 * OVERHEAD_TARGET:g}% {flag[ok]})")
        else:
            lines.append(f"  Dask: {self.note}")
        lines.append(f"  start-up, not counted: {self.start_serial_s:.2f} s (1 worker), "
                     f"{self.start_parallel_s:.2f} s (2 workers)"
                     + (f", {self.cluster_start_s:.2f} s (LocalCluster)"
                        if self.cluster_start_s is not None else "")
                     + (f"; load average {self.load_average:.1f} on {os.cpu_count()} cores "
                        "(a speed-up needs free cores)" if self.load_average is not None
                        else ""))
        return lines


def _sweep(workdir: Path, name: str, duration_ms: float, **where) -> tuple[float, float]:
    """(start-up s, run s) of the 8 points into a fresh folder."""
    import shutil

    from sim.sweeps.run import run_sweep

    folder = workdir / name
    shutil.rmtree(folder, ignore_errors=True)
    vary = {**POINTS, "protocol.trials.0.duration_ms": [duration_ms]}
    outcome = run_sweep(SCENARIO, vary, SEEDS, output=folder, **where)
    if outcome.counts() != {"done": 8}:
        raise RuntimeError(f"the benchmark sweep did not finish: {outcome.counts()}")
    shutil.rmtree(folder, ignore_errors=True)
    return outcome.start_s, outcome.run_s


def _cluster():
    """A local Dask cluster of 2 single-threaded worker processes, and its start-up (s)."""
    from dask.distributed import Client, LocalCluster

    began = time.perf_counter()
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                           host="127.0.0.1", dashboard_address=None)
    client = Client(cluster)
    from sim.sweeps.worker import prepare_process

    client.run(prepare_process)
    return cluster, client, time.perf_counter() - began


def measure(workdir: Path, quick: bool) -> SweepRecord:
    record = SweepRecord(duration_ms=DURATION_MS[quick])
    with contextlib.suppress(OSError, AttributeError):
        record.load_average = os.getloadavg()[0]
    repeats = 1 if quick else 2
    warm = {**POINTS, "protocol.trials.0.duration_ms": [1.0], "model.tau_belief_ms": [1.0]}
    from sim.sweeps.run import run_sweep

    run_sweep(SCENARIO, warm, 1, jobs=1, output=workdir / "sweep_warm")  # compile once
    try:
        cluster, client, record.cluster_start_s = _cluster()
    except ImportError:
        cluster = client = None
        record.note = "not measured: dask.distributed is not installed (pip install '.[cluster]')"
    try:
        for _ in range(repeats):
            record.start_serial_s, run = _sweep(workdir, "sweep_j1", record.duration_ms, jobs=1)
            record.serial_s.append(run)
            record.start_parallel_s, run = _sweep(workdir, "sweep_j2", record.duration_ms,
                                                  jobs=2)
            record.parallel_s.append(run)
            if client is not None:
                record.dask_s.append(_sweep(workdir, "sweep_dask", record.duration_ms,
                                            client=client)[1])
    finally:
        if client is not None:
            client.close()
            cluster.close()
    return record
