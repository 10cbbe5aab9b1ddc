"""``pcsim bench``: pcsim's speed against independent NumPy loops of the same equations.

Each case is a scenario table written to a TOML file and run through the public engine
(``sim.scenario.load_scenario`` + ``sim.engine.run_scenario``) with recording all but off.
Its reference (``sim.bench.reference``) takes the same numbers from the parsed scenario and
integrates the same update scheme in plain NumPy / scipy.sparse; both final states must agree
to ``TOLERANCE``, which proves that the two did the same work. Stimuli change every step (a
ramp), so a missed or extra step would show in the difference.

Timing: repeats alternate reference and pcsim in one process and the best of each counts;
``ratio`` = pcsim time / reference time for the same number of steps, over the time-step loop
only (the engine's progress callback marks its start and end). A fresh process per case
(``sim.bench.child``) gives the start-up (scenario file to first step, compiled code cached),
the cold start-up (empty Brian2 code cache, imports included) and the peak resident memory.
BLAS runs on one thread for everything (``set_blas_threads``), so that other work on a small
machine does not decide the result.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sim.bench import reference
from sim.errors import ResultError
from sim.io.reader import read_matrix
from sim.scenario_writer import write_scenario

DT_MS = 0.1
TOLERANCE = 1e-9
REPEATS = 3
QUICK_REPEATS = 2


# --- the cases ------------------------------------------------------------------------------

def ramp_input(size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(0.0, 1.0, size), rng.normal(0.0, 1.0, size)


def hierarchy_table(name: str, sizes: list[int], steps: int, *, learning: bool = False,
                    errors: str = "relaxing", shapes: list | None = None,
                    weights: dict | None = None, coupling: str = "auto",
                    float_type: str | None = None) -> dict:
    """A continuous hierarchy with tanh before random weights, driven by a ramp."""
    rng = np.random.default_rng(sum(sizes))
    levels: list[dict] = []
    for index, size in enumerate(sizes):
        level: dict[str, Any] = {"name": "input" if index == 0 else f"level{index}",
                                 "size": size}
        if shapes is not None:
            level["shape"] = list(shapes[index])
        if index < len(sizes) - 1:
            level["precision"] = rng.uniform(0.5, 2.0, size)
        if index > 0:
            level["weights"] = weights or {"kind": "random", "scale": 1.0}
            level["nonlinearity"] = "tanh"
        levels.append(level)
    model: dict[str, Any] = {"errors": errors, "tau_belief_ms": 5.0, "tau_error_ms": 1.0,
                             "coupling": coupling, "levels": levels,
                             "prior": {"mean": rng.normal(0.0, 0.5, sizes[-1]).tolist()}}
    if learning:
        model["learning"] = {"tau_weights_ms": 200.0}
    start, stop = ramp_input(sizes[0], len(sizes))
    duration = round(steps * DT_MS, 9)
    table = {
        "name": name.replace(" ", "_").replace("=", "").replace(",", ""),
        "seed": 5,
        "dt_ms": DT_MS,
        "model": model,
        "protocol": {"trials": [{"duration_ms": duration,
                                 "stimulus": {"kind": "ramp", "start": start, "stop": stop}}]},
        "record": {"every_ms": duration, "variables": []},
    }
    if float_type:
        table["float"] = float_type
    return table


def hierarchy_reference(scenario) -> reference.Hierarchy:
    """The reference's copy of a parsed hierarchical scenario's numbers."""
    model = scenario.model
    maps = [level.generative for level in model.belief_levels]
    names = {gmap.nonlinearity.name for gmap in maps}
    sites = {gmap.site for gmap in maps}
    if len(names) != 1 or len(sites) != 1:
        raise ValueError("the benchmark reference needs one nonlinearity and site for all levels")
    trial = scenario.trials[0]
    stimulus = trial.settings.stimulus
    ramp = stimulus.interpolate and list(stimulus.times_ms) == [0.0, trial.duration_ms]
    if len(scenario.trials) != 1 or np.any(stimulus.noise_std) or not (
            ramp or stimulus.is_constant):
        raise ValueError("the benchmark reference needs one trial with a constant or ramp input")
    return reference.Hierarchy(
        weights=[gmap.weights.copy() for gmap in maps],
        precisions=[np.array(level.precision, dtype=float) for level in model.levels],
        prior_mean=np.array(model.prior_mean, dtype=float),
        x=stimulus.values[0].copy(),
        x_stop=stimulus.values[-1].copy(),
        duration_ms=trial.duration_ms,
        nonlinearity=names.pop(),
        site=sites.pop(),
        errors=model.errors,
        dt_ms=scenario.dt_ms,
        tau_belief_ms=model.tau_belief_ms,
        tau_error_ms=model.tau_error_ms,
        tau_weights_ms=model.learning.tau_weights_ms,
    )


def hierarchy_states(file, scenario, learning: bool) -> dict[str, np.ndarray]:
    states = {}
    for level in scenario.model.belief_levels:
        states[f"belief/{level.name}"] = np.asarray(file[f"trials/final_belief/{level.name}"][-1])
        if learning:
            states[f"weights/{level.name}"] = read_matrix(file[f"levels/{level.name}"],
                                                          "weights_final")
    return states


def reference_states(scenario, steps: int, learning: bool) -> Callable[[], dict]:
    model = hierarchy_reference(scenario)

    def run() -> dict[str, np.ndarray]:
        beliefs, weights = reference.run_hierarchy(model, steps)
        states = {f"belief/{level.name}": mu
                  for level, mu in zip(scenario.model.belief_levels, beliefs, strict=True)}
        if learning:
            states.update({f"weights/{level.name}": w
                           for level, w in zip(scenario.model.belief_levels, weights,
                                               strict=True)})
        return states

    return run


@dataclass
class Case:
    name: str
    sizes: list[int]  # units per level (discrete: [causes])
    label: str  # the sizes as the table shows them
    steps: int  # full suite
    quick_steps: int | None  # None: not in --quick
    target: float | None
    table: Callable[[int], dict]
    learning: bool = False
    available: str = ""  # why the case cannot run, if it cannot
    cold: bool = False  # measure a cold start-up in --quick too
    family: Any = None  # reference and final states; None: the continuous hierarchy
    tolerance: float = TOLERANCE  # the largest max|diff| that counts as the same work


def local_shapes() -> list[tuple[int, int]]:
    return [(128, 128), (64, 64), (32, 32)]


def cases() -> list[Case]:
    dense = [
        ("dense small", [64, 16, 4], 20000, 10000, 3.0),
        ("dense medium", [1000, 500, 100], 3000, 1500, 1.25),
        ("dense large", [4000, 2000, 500], 150, None, 1.25),
    ]
    out = [
        Case(name, sizes, "-".join(map(str, sizes)), steps, quick, target,
             lambda n, name=name, sizes=sizes: hierarchy_table(name, sizes, n),
             cold=name == "dense small")
        for name, sizes, steps, quick, target in dense
    ]
    out += [
        Case("dense medium + plasticity", [1000, 500, 100], "1000-500-100", 3000, 1500, 1.25,
             lambda n: hierarchy_table("dense medium plastic", [1000, 500, 100], n,
                                       learning=True), learning=True),
        Case("dense large + plasticity", [4000, 2000, 500], "4000-2000-500", 150, None, 1.25,
             lambda n: hierarchy_table("dense large plastic", [4000, 2000, 500], n,
                                       learning=True), learning=True),
        Case("sparse local 5x5", [128 * 128, 64 * 64, 32 * 32], "128x128-64x64-32x32",
             2000, 1000, 1.5,
             lambda n: hierarchy_table(
                 "sparse local", [128 * 128, 64 * 64, 32 * 32], n, shapes=local_shapes(),
                 weights={"kind": "local", "field": 5, "scale": 1.0})),
    ]
    return out + discrete_cases()


def discrete_cases() -> list[Case]:
    try:
        from sim.bench import discrete
    except ImportError as err:
        why = f"not available: {err}"
        return [Case(f"discrete K={k}", [k], f"K={k}", 0, 0, target, lambda n: {},
                     available=why)
                for k, target in ((6, None), (2000, 1.5))]
    return discrete.cases(Case)


# --- measuring ------------------------------------------------------------------------------

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


@dataclass
class Record:
    name: str
    sizes: list[int]
    steps: int
    pcsim_steps_per_s: float | None = None
    reference_steps_per_s: float | None = None
    ratio: float | None = None
    target: float | None = None
    max_abs_diff: float | None = None
    startup_warm_s: float | None = None
    startup_cold_s: float | None = None
    import_s: float | None = None
    peak_rss_mb: float | None = None
    coupling: str = ""
    jax_steps_per_s: float | None = None
    label: str = ""
    tolerance: float | None = TOLERANCE
    note: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def agrees(self) -> bool | None:
        """Whether pcsim and the reference ended within the tolerance (None: not compared)."""
        if self.max_abs_diff is None or self.tolerance is None:
            return None
        return self.max_abs_diff <= self.tolerance

    @property
    def met(self) -> bool | None:
        if self.ratio is None or self.target is None:
            return None
        return self.ratio <= self.target and self.agrees is not False

    def row(self) -> dict:
        """The JSON record (the keys are listed in the README's Performance section)."""
        row = {key: value for key, value in self.__dict__.items() if key != "extra"}
        row.update(self.extra)
        row["within_tolerance"] = self.agrees
        row["target_met"] = self.met
        return row


def run_pcsim(path: Path, output: Path, family) -> tuple[float, float, dict, str]:
    """(start-up s, loop s, final states, coupling) of one run through the public engine."""
    import h5py

    from sim.engine import run_scenario
    from sim.scenario import load_scenario

    probe = Probe()
    started = time.perf_counter()
    scenario = load_scenario(path)
    simulation = run_scenario(scenario, output, probe)
    with h5py.File(output, "r") as file:
        states = family(file, scenario)
    output.unlink()
    coupling = getattr(getattr(simulation, "coupling", None), "kind", "")
    return probe.first - started, probe.last - probe.first, states, coupling


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


def measure(case: Case, steps: int, repeats: int, workdir: Path, cold: bool,
            threads: int) -> Record:
    from sim.scenario import load_scenario

    record = Record(case.name, list(case.sizes), steps, target=case.target, label=case.label,
                    tolerance=case.tolerance)
    if case.available:
        record.note = case.available
        return record
    slug = "".join(c if c.isalnum() else "_" for c in case.name)
    path = write_scenario(workdir / f"{slug}.toml", case.table(steps))
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
    jax_run = jax_reference(case, path, steps)
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


def jax_reference(case: Case, path: Path, steps: int) -> tuple[float, dict] | None:
    """(steps/s, final beliefs) of a ``jax.lax.scan`` of the same scheme, when JAX is
    installed (dense cases without learning)."""
    if case.learning or case.family is not None or "dense" not in case.name:
        return None
    try:
        from sim.bench import reference_jax
    except ImportError:
        return None
    from sim.scenario import load_scenario

    scenario = load_scenario(path)
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


# --- reporting ------------------------------------------------------------------------------

def machine() -> str:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores{f' ({model})' if model else ''}, {platform.system()}"


def _number(value: float | None, digits: str) -> str:
    return "-" if value is None else format(value, digits)


def table_lines(records: list[Record]) -> list[str]:
    jax = any(r.jax_steps_per_s for r in records)
    head = (f"{'case':27s} {'sizes':20s} {'steps':>6s} {'coupling':>8s} {'pcsim/s':>9s} "
            f"{'numpy/s':>9s} {'ratio':>6s} {'target':>7s} {'max|diff|':>9s} {'warm s':>6s} "
            f"{'cold s':>6s} {'peak MB':>7s}" + (f" {'jax/s':>9s}" if jax else ""))
    lines = [head, "-" * len(head)]
    for r in records:
        if r.note:
            lines.append(f"{r.name:27s} {r.label:20s} {r.note}")
            continue
        flag = {None: "", True: " ok", False: " MISSED"}[r.met]
        if r.agrees is False:
            flag = f" MISSED: max|diff| > {r.tolerance:g}"
        lines.append(
            f"{r.name:27s} {r.label:20s} {r.steps:6d} {r.coupling:>8s} "
            f"{_number(r.pcsim_steps_per_s, '9.0f')} {_number(r.reference_steps_per_s, '9.0f')} "
            f"{_number(r.ratio, '6.2f')} {('<= ' + format(r.target, 'g')) if r.target else '':>7s} "
            f"{_number(r.max_abs_diff, '9.1e')} {_number(r.startup_warm_s, '6.2f')} "
            f"{_number(r.startup_cold_s, '6.1f')} {_number(r.peak_rss_mb, '7.0f')}"
            + (f" {_number(r.jax_steps_per_s, '9.0f')}" if jax else "") + flag
        )
    return lines


def check_json_target(name: str) -> Path:
    """The ``--json`` file: a file name in an existing, writable folder (checked before any
    benchmarking, so that a long run does not end on a name it cannot write)."""
    path = Path(name)
    if not name or path.is_dir():
        raise ResultError(f"--json {name or repr(name)}: is a folder; give a file name for the "
                          "JSON records")
    folder = path.parent
    if not folder.exists():
        raise ResultError(f"--json {name}: the folder {folder} does not exist")
    if not folder.is_dir():
        raise ResultError(f"--json {name}: {folder} is not a folder")
    try:
        if path.exists():
            with path.open("a", encoding="utf-8"):
                pass
        else:
            handle, probe = tempfile.mkstemp(prefix=".pcsim-bench-", dir=folder)
            os.close(handle)
            os.unlink(probe)
    except OSError as err:
        raise ResultError(f"--json {name}: cannot write there: {err.strerror or err}") from err
    return path


def main(args) -> int:
    json_path = check_json_target(args.json) if getattr(args, "json", None) is not None else None

    import brian2

    from sim.bench.blas import set_blas_threads

    quick = bool(getattr(args, "quick", False))
    threads = int(getattr(args, "threads", None) or 1)
    repeats = QUICK_REPEATS if quick else REPEATS
    blas = set_blas_threads(threads)
    print(f"pcsim bench{' --quick' if quick else ''}: {machine()}; BLAS threads "
          f"{threads if blas else 'unchanged (no OpenBLAS found)'}; numpy {np.__version__}, "
          f"brian2 {brian2.__version__}; best of {repeats} interleaved repeats", flush=True)
    records: list[Record] = []
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="pcsim-bench-") as tmp:
        workdir = Path(tmp)
        for case in cases():
            steps = case.quick_steps if quick else case.steps
            if steps is None:
                continue
            record = measure(case, steps, repeats, workdir, cold=case.cold or not quick,
                             threads=threads)
            records.append(record)
            print(table_lines([record])[-1] if records[1:] else "\n".join(table_lines(records)),
                  flush=True)
        memory = streaming_memory(workdir, quick, threads)
    print(f"streaming memory ({memory.label}, record every "
          f"{memory.extra['record_every_steps']}th step): {memory.extra['short_steps']} steps "
          f"peak {memory.extra['short_peak_rss_mb']:.0f} MB, {memory.steps} steps peak "
          f"{memory.peak_rss_mb:.0f} MB, ratio {memory.ratio:.2f} (target <= {memory.target:g}"
          f"{'' if memory.met else ', MISSED'}); growth during the run "
          f"{memory.extra['short_growth_mb']:.1f} / {memory.extra['growth_mb']:.1f} MB")
    print(f"ratio = pcsim time / NumPy reference time over the time-step loop; warm = scenario "
          f"file to first step in a fresh process with compiled code cached (imports apart); "
          f"cold = fresh process with an empty code cache, imports included. "
          f"{time.perf_counter() - began:.0f} s in all.")
    if json_path is not None:
        rows = [r.row() for r in [*records, memory]]
        try:
            json_path.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
        except OSError as err:
            raise ResultError(f"--json {json_path}: cannot write: {err.strerror or err}") from err
        print(f"wrote {json_path}")
    wrong = [r for r in records if r.agrees is False]
    if wrong:
        print("pcsim bench: pcsim and its reference differ by more than the tolerance in "
              + ", ".join(f"{r.name} (max|diff| {r.max_abs_diff:.1e} > {r.tolerance:g})"
                          for r in wrong), file=sys.stderr)
        return 1
    return 0
