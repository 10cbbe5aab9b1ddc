"""Timing a simulation case: pcsim against its reference, and start-up in fresh processes.

Repeats alternate reference and pcsim in one process and the best of each counts; ``ratio`` =
pcsim time / reference time for the same number of steps, over the time-step loop only (the
engine's progress callback marks its start and end). A fresh process per case
(``sim.bench.child``) gives the start-up (scenario file to first step, compiled code cached),
the cold start-up (empty Brian2 code cache, imports included) and the peak resident memory.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from sim.bench.cases import (
    DT_MS,
    Case,
    hierarchy_reference,
    hierarchy_states,
    hierarchy_table,
    reference_states,
)
from sim.bench.cores import on_cores
from sim.bench.records import Record
from sim.scenario_writer import write_scenario

REPEATS = 3
QUICK_REPEATS = 2


class Probe:
    """The engine's progress callback: marks the first step and the end of the last trial."""

    def __init__(self) -> None:
        self.first: float | None = None
        self.last: float | None = None

    def __call__(self, fraction: float) -> None:
        now = time.perf_counter()
        if self.first is None:
            self.first = now
        if fraction >= 1.0 - 1e-12 and self.last is None:
            self.last = now


def run_pcsim(path: Path, output: Path, family) -> tuple[float, float, dict, str]:
    """(start-up s, loop s, final states, coupling) of one run through the public engine."""
    import h5py

    from sim.engine import run_scenario
    from sim.scenario import load_scenario

    probe = Probe()
    started = time.perf_counter()
    scenario = load_scenario(path)
    run_scenario(scenario, output, probe)
    with h5py.File(output, "r") as file:
        states = family(file, scenario)
    output.unlink()
    return probe.first - started, probe.last - probe.first, states, coupling_of(scenario)


def coupling_of(scenario) -> str:
    """The coupling a hierarchical run builds (``auto`` resolved); "" for other families."""
    from circuits.coupling import choose_coupling

    if scenario.kind.name != "hierarchical":
        return ""
    return choose_coupling(scenario.model.coupling,
                           [level.generative for level in scenario.model.belief_levels])


def child(path: Path, output: Path, cache_dir: Path | None = None,
          threads: int = 1) -> dict:
    command = [sys.executable, "-m", "sim.bench.child", str(path), str(output),
               "--threads", str(threads)]
    if cache_dir is not None:
        command += ["--cache-dir", str(cache_dir)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    output.unlink(missing_ok=True)
    if done.returncode:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def max_abs_diff(a: dict, b: dict) -> float:
    worst = 0.0
    for key, value in a.items():
        other = b[key]
        if hasattr(value, "toarray"):
            value = value.toarray()
        if hasattr(other, "toarray"):
            other = other.toarray()
        worst = max(worst, float(np.max(np.abs(np.asarray(value) - np.asarray(other)),
                                        initial=0.0)))
    return worst


def prepare(case: Case, steps: int, workdir: Path) -> tuple[Record, Path | None]:
    """The case's record, and its scenario file written to ``workdir`` (named after the case:
    ``path.stem``); no file where the case cannot run here (``record.note`` says why)."""
    record = Record(case.name, list(case.sizes), steps, target=case.target, label=case.label,
                    tolerance=case.tolerance)
    if case.available:
        record.note = case.available
        return record, None
    slug = "".join(c if c.isalnum() else "_" for c in case.name)
    return record, write_scenario(workdir / f"{slug}.toml", case.table(steps))


def measure(case: Case, steps: int, repeats: int, workdir: Path, cold: bool,
            threads: int) -> Record:
    from sim.scenario import load_scenario

    record, path = prepare(case, steps, workdir)
    if path is None:
        return record
    slug = path.stem
    scenario = load_scenario(path)
    family = case.family
    if family is None:
        run_reference = reference_states(scenario, steps, case.learning)

        def family(file, loaded):
            return hierarchy_states(file, loaded, case.learning)
    else:
        run_reference = family.reference(scenario, steps)
        family = family.states
    del scenario
    reference_times, pcsim_times, startups = [], [], []
    ref_states = pc_states = None
    for repeat in range(repeats):
        for which in ((0, 1) if repeat % 2 == 0 else (1, 0)):
            if which == 0:
                began = time.perf_counter()
                ref_states = run_reference()
                reference_times.append(time.perf_counter() - began)
            else:
                startup, loop, pc_states, record.coupling = run_pcsim(
                    path, workdir / f"{slug}.h5", family)
                pcsim_times.append(loop)
                startups.append(startup)
    record.pcsim_steps_per_s = steps / min(pcsim_times)
    record.reference_steps_per_s = steps / min(reference_times)
    record.ratio = min(pcsim_times) / min(reference_times)
    record.max_abs_diff = max_abs_diff(ref_states, pc_states)
    record.extra["startup_in_process_s"] = min(startups)
    record.extra["pcsim_loop_s"] = pcsim_times
    record.extra["reference_loop_s"] = reference_times
    jax_run = jax_reference(case, path, steps, threads)
    if jax_run is not None:
        record.jax_steps_per_s, jax_states = jax_run
        record.extra["jax_max_abs_diff"] = max_abs_diff(jax_states, pc_states)
    fresh = child(path, workdir / f"{slug}_child.h5", threads=threads)
    record.startup_warm_s = fresh["startup_s"]
    record.import_s = fresh["import_s"]
    record.peak_rss_mb = fresh["peak_rss_mb"]
    if cold:
        with tempfile.TemporaryDirectory(prefix="pcsim-cold-") as cache:
            cold_run = child(path, workdir / f"{slug}_cold.h5", Path(cache), threads=threads)
        record.startup_cold_s = cold_run["import_s"] + cold_run["startup_s"]
        record.extra["cold"] = cold_run
    return record


def jax_reference(case: Case, path: Path, steps: int, cores: int = 1
                  ) -> tuple[float, dict] | None:
    """(steps/s, final beliefs) of a ``jax.lax.scan`` of the same scheme, when JAX is
    installed (dense cases without learning), on as many ``cores`` as BLAS has threads
    (``sim.bench.cores``: XLA would use every core)."""
    if case.learning or case.family is not None or "dense" not in case.name:
        return None
    try:
        from sim.bench import reference_jax
    except ImportError:
        return None
    from sim.scenario import load_scenario

    scenario = load_scenario(path)
    with on_cores(cores):
        rate, beliefs = reference_jax.steps_per_s(hierarchy_reference(scenario), steps)
    return rate, {f"belief/{level.name}": mu
                  for level, mu in zip(scenario.model.belief_levels, beliefs, strict=True)}


def streaming_memory(workdir: Path, quick: bool, threads: int) -> Record:
    """Peak memory of a long run recording every 10th step against a run 100x shorter.

    ``ratio`` is the long run's peak resident memory over the short run's; ``steps``,
    ``peak_rss_mb`` and ``pcsim_steps_per_s`` are the long run's (a fresh process each).
    """
    sizes, every = [64, 16, 4], 10
    long_steps = 10**5 if quick else 10**6
    short_steps = long_steps // 100
    results = {}
    for steps in (short_steps, long_steps):
        table = hierarchy_table("streaming", sizes, steps)
        table["record"] = {"every_ms": every * DT_MS}
        path = write_scenario(workdir / f"streaming_{steps}.toml", table)
        results[steps] = child(path, workdir / f"streaming_{steps}.h5", threads=threads)
    short, long = results[short_steps], results[long_steps]
    return Record(
        "streaming memory", sizes, long_steps, label="-".join(map(str, sizes)),
        pcsim_steps_per_s=long_steps / long["run_s"] if long["run_s"] > 0 else None,
        ratio=long["peak_rss_mb"] / short["peak_rss_mb"], target=1.5, tolerance=None,
        startup_warm_s=long["startup_s"], import_s=long["import_s"],
        peak_rss_mb=long["peak_rss_mb"],
        extra={"record_every_steps": every, "short_steps": short_steps,
               "short_peak_rss_mb": short["peak_rss_mb"],
               "growth_mb": long["peak_rss_mb"] - long["build_rss_mb"],
               "short_growth_mb": short["peak_rss_mb"] - short["build_rss_mb"]},
    )
