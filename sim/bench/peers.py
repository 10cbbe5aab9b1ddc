r"""``pcsim bench --peers``: the same case in pcsim and in the JAX predictive-coding libraries.

The case (issue 11): 1000-500-100, g = W tanh(mu), instantaneous errors (the peers compute
errors at their fixed point), a ramp input recomputed every step, 3000 steps, batch 1, in
float64 and float32. Each system runs beside the plain NumPy loop (``sim.bench.reference``) in
this process, interleaved, ``REPEATS`` times; the table shows the best run's steps/s of each and
its ratio to the NumPy loop's best, and each system's final beliefs against the NumPy loop's
(float64: the same work to ``TOLERANCE64``; float32: each in its own rounding, to
``TOLERANCE32``).

Systems: pcsim (scenario file through the public engine, recording off, the time-step loop
timed as in the other cases), pcsim compiled (the same scenario with ``[numerics] device =
"standalone"``, batch 1: the case's instantaneous errors make the dense coupling one pass
over W a step in the compiled program, ``circuits.coupling_compiled``, and its ramp input is
computed there from two rows; built once before it is timed, then timed as pcsim sees the
program: its start, its tables loaded, the steps and its results written), PCX
(``sim.bench.peers_pcx``), ngc-learn (``sim.bench.peers_ngclearn``) and a plain
``jax.lax.scan`` (``sim.bench.reference_jax``), each module imported only when its library is
installed (``pip install ".[peers]"``); a missing one prints a one-line note. The whole process
runs on as many cores as BLAS has threads (``sim.bench.cores``: XLA's CPU runtime would
otherwise split its products over every core, whatever ``XLA_FLAGS`` say), so every system has
the same one core by default.

Batched trials (``pcsim bench --peers --batch B``): the peers run B copies (their leading
axis), pcsim the same scenario with B identical trials and ``[protocol] batch = B`` (a note
where this build refuses that field), the plain scan is left out; rates are then trial-steps/s
(B x steps / seconds), still beside the serial NumPy loop of one trial, and beliefs are compared
for the first copy (pcsim: the last trial, the same trial).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sim.bench import reference
from sim.bench.cases import hierarchy_reference, hierarchy_table
from sim.bench.cores import on_cores
from sim.scenario_writer import write_scenario

SIZES = [1000, 500, 100]
STEPS, QUICK_STEPS = 3000, 1000
REPEATS = 5  # the best of them: other work on the machine only slows a run down
PRECISIONS = ("float64", "float32")
TOLERANCE64 = 1e-12
TOLERANCE32 = 1e-5  # measured 2-3e-7 at 3000 steps
TARGETS = {"float64": 1.0, "float32": 0.9}  # pcsim steps/s over PCX's, at batch 1 (issue 23)
COMPILED = "pcsim compiled"  # the row of [numerics] device = "standalone" (batch 1)
PEERS = (("PCX", "sim.bench.peers_pcx", "pcx"), ("ngc-learn", "sim.bench.peers_ngclearn",
                                                 "ngclearn"),
         ("jax.lax.scan", "sim.bench.reference_jax", "jax"))


@dataclass
class Row:
    """One system: per precision the best run's steps/s, the NumPy loop's, the largest difference
    of the final beliefs to the NumPy loop's."""

    system: str
    rates: dict[str, float] = field(default_factory=dict)
    numpy_rates: dict[str, float] = field(default_factory=dict)
    max_abs_diff: dict[str, float] = field(default_factory=dict)
    runs: dict[str, list[float]] = field(default_factory=dict)
    note: str = ""


def peer_table(steps: int, float_type: str, sizes: list[int] = SIZES, batch: int = 1,
               device: str = "runtime") -> dict:
    table = hierarchy_table(f"peers {float_type}", sizes, steps, errors="instantaneous",
                            float_type=float_type)
    table["numerics"] = {"device": device}
    if batch > 1:  # B identical trials, run as one batched network
        protocol = table["protocol"]
        protocol["trials"] = protocol["trials"] * batch
        protocol["batch"] = batch
        protocol["reset"] = "beliefs"  # independent trials, each from the same start
    return table


def load_peer(module: str):
    """The peer's module, or the reason it cannot run (str)."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:
        return f"not installed ({err.name or err}); pip install \".[peers]\""


def pcsim_runner(path: Path, output: Path, warm: bool = False
                 ) -> Callable[[], tuple[float, list[np.ndarray]]]:
    """(loop seconds, final beliefs) of a run through the public engine; ``warm``: one run
    first, untimed (a compiled program is built there). On the compiled device the loop's
    seconds are the program's whole run as pcsim sees it (from its start to its last progress
    line: loading its tables, the steps, writing its results), not its own loop's clock."""
    import h5py

    from sim.bench.measure import Probe
    from sim.engine import run_scenario
    from sim.scenario import load_scenario

    def run():
        probe = Probe()
        scenario = load_scenario(path)
        run_scenario(scenario, output, probe, overwrite=True)
        with h5py.File(output, "r") as file:
            beliefs = [np.asarray(file[f"trials/final_belief/{level.name}"][-1], dtype=float)
                       for level in scenario.model.belief_levels]
        return probe.last - probe.first, beliefs

    if warm:
        run()
    return run


def jax_runner(module, model, steps: int, dtype, batch: int = 1):
    """(seconds, final beliefs) of a compiled peer run (compiled and warmed up here)."""
    import jax

    if module.__name__.endswith("reference_jax"):
        run = module.compile_hierarchy(model, steps)
    else:
        run = module.compile_run(model, steps, batch=batch, dtype=dtype)
    for _ in range(2):
        jax.block_until_ready(run())

    def timed():
        began = time.perf_counter()
        beliefs = jax.block_until_ready(run())
        seconds = time.perf_counter() - began
        return seconds, [np.asarray(mu, dtype=float).reshape(-1, np.shape(mu)[-1])[0]
                         for mu in beliefs]

    return timed


def beside_numpy(row: Row, precision: str, run, model, steps: int, repeats: int,
                 batch: int = 1) -> None:
    """``run`` and the NumPy loop in turns; the best runs and the final difference into
    ``row``. The best, not the median: on a shared machine other work slowed single runs of
    one system or another by 2x (PCX's float64 rate at batch 1 on 2026-12-07: 10,572 steps/s
    as the best of 9, 4,854 as a median of 3 three minutes later), and a median of 3 carried
    that into the ratio."""
    numpy_s, system_s, beliefs = [], [], None
    expected = None
    for repeat in range(repeats):
        for which in ("numpy", "system") if repeat % 2 == 0 else ("system", "numpy"):
            if which == "numpy":
                began = time.perf_counter()
                expected = reference.run_hierarchy(model, steps)[0]
                numpy_s.append(time.perf_counter() - began)
            else:
                seconds, beliefs = run()
                system_s.append(seconds)
    row.rates[precision] = batch * steps / min(system_s)
    row.numpy_rates[precision] = steps / min(numpy_s)
    row.runs[precision] = [batch * steps / s for s in system_s]
    row.max_abs_diff[precision] = max(
        float(np.max(np.abs(np.asarray(a, dtype=float) - np.asarray(b, dtype=float))))
        for a, b in zip(expected, beliefs, strict=True))


def measure_peers(workdir: Path, steps: int = STEPS, repeats: int = REPEATS,
                  precisions=PRECISIONS, progress: Callable[[str], None] = print,
                  peers=PEERS, sizes: list[int] = SIZES, batch: int = 1, cores: int = 1,
                  compiled: bool = False) -> list[Row]:
    """Every system in both precisions (``peers``: (name, module, package) of the peers;
    ``batch``: copies run at once, module doc), the whole process on ``cores`` cores;
    ``compiled``: also pcsim on the compiled device (``COMPILED``, batch 1 only: it builds a
    program per precision, 10-60 s each)."""
    with on_cores(cores):
        return _measure_peers(workdir, steps, repeats, precisions, progress, peers, sizes, batch,
                              compiled and batch == 1)


def _measure_peers(workdir: Path, steps: int, repeats: int, precisions, progress, peers,
                   sizes: list[int], batch: int, compiled: bool) -> list[Row]:
    rows = [Row("pcsim"), *([Row(COMPILED)] if compiled else [])]
    modules = {}
    for name, module, _ in peers:
        loaded = load_peer(module) if batch == 1 or name != "jax.lax.scan" else "batch 1 only"
        if isinstance(loaded, str):
            rows.append(Row(name, note=loaded))
            progress(f"{name}: {loaded}")
        else:
            rows.append(Row(getattr(loaded, "NAME", name)))
            modules[rows[-1].system] = loaded
    try:
        for precision in precisions:
            measure_precision(rows, modules, precision, workdir, steps, repeats, sizes, batch,
                              progress)
    finally:
        if modules:  # back as the peers' modules set it on import
            import jax

            jax.config.update("jax_enable_x64", True)
    return rows


def measure_precision(rows: list[Row], modules: dict, precision: str, workdir: Path, steps: int,
                      repeats: int, sizes: list[int], batch: int,
                      progress: Callable[[str], None]) -> None:
    """Every system in one precision, each beside the NumPy loop (into ``rows``)."""
    from sim.errors import ScenarioError
    from sim.scenario import load_scenario

    if modules:  # JAX's default dtype follows the precision (ngc-learn's zeros do)
        import jax

        jax.config.update("jax_enable_x64", precision == "float64")
    dtype = np.dtype(precision).type
    single = write_scenario(workdir / f"peers_{precision}_1.toml",
                            peer_table(steps, precision, sizes))
    path = write_scenario(workdir / f"peers_{precision}.toml",
                          peer_table(steps, precision, sizes, batch))
    compiled = (write_scenario(workdir / f"peers_{precision}_compiled.toml",
                               peer_table(steps, precision, sizes, device="standalone"))
                if any(row.system == COMPILED for row in rows) else None)  # only when asked
    model = hierarchy_reference(load_scenario(single))
    model.dtype = dtype
    try:
        load_scenario(path)
    except ScenarioError as err:
        rows[0].note = f"not run at batch {batch}: {err}"
    for row in rows:
        if row.note:
            continue
        if row.system == "pcsim":
            run = pcsim_runner(path, workdir / f"peers_{precision}.h5")
        elif row.system == COMPILED:
            try:
                run = pcsim_runner(compiled, workdir / f"peers_{precision}_compiled.h5",
                                   warm=True)
            except ScenarioError as err:  # a refusal of the compiled device: said, not raised
                progress(f"  {row.system} {precision}: not run: {err}")
                continue
        else:
            run = jax_runner(modules[row.system], model, steps, dtype, batch)
        beside_numpy(row, precision, run, model, steps, repeats, batch)
        progress(f"  {row.system} {precision}: {row.rates[precision]:,.0f} steps/s, NumPy "
                 f"{row.numpy_rates[precision]:,.0f}")


def table_lines(rows: list[Row], steps: int, batch: int = 1, cores: int | None = 1
                ) -> list[str]:
    """The side-by-side table; ``cores``: the cores every system ran on (None: not pinned,
    where the platform cannot)."""
    head = (f"{'system':22s} " + " ".join(f"{p + ' steps/s':>16s} {'x NumPy':>7s} "
                                          f"{'max|diff|':>9s}" for p in PRECISIONS))
    lines = [head, "-" * len(head)]
    for row in rows:
        if row.note:
            lines.append(f"{row.system:22s} {row.note}")
            continue
        cells = []
        for p in PRECISIONS:
            if p not in row.rates:
                cells.append(f"{'-':>16s} {'-':>7s} {'-':>9s}")
                continue
            cells.append(f"{row.rates[p]:16,.0f} {row.rates[p] / row.numpy_rates[p]:7.2f} "
                         f"{row.max_abs_diff[p]:9.1e}")
        lines.append(f"{row.system:22s} " + " ".join(cells))
    lines.append(f"{'-'.join(map(str, SIZES))}, tanh, instantaneous errors, ramp input, {steps} "
                 f"steps, batch {batch}{' (trial-steps/s)' if batch > 1 else ''}; best of "
                 f"{REPEATS} runs each, interleaved with the NumPy loop (one trial) in this "
                 f"process, {on_how_many(cores)}; every row's x NumPy and max|diff| are against "
                 "the plain NumPy loop (sim.bench.reference) run beside it: its steps/s over "
                 "that loop's, its final beliefs against that loop's. pcsim compiled: "
                 "[numerics] device = \"standalone\" (one pass over W a step), the program's "
                 "whole run (start, tables loaded, steps, results written).")
    lines += target_lines(rows, batch)
    return lines


def on_how_many(cores: int | None) -> str:
    if cores is None:
        return "on every core (this platform cannot pin a process; XLA may use them all)"
    return f"on {cores} core{'s' if cores > 1 else ''}"


def target_lines(rows: list[Row], batch: int = 1) -> list[str]:
    """Each pcsim row that ran against the peers that ran (issue 23): at batch 1 against PCX,
    ``TARGETS``; batched, ahead of PCX and ngc-learn (a ratio above 1) in both precisions."""
    names = ("PCX",) if batch == 1 else ("PCX", "ngc-learn")
    out = []
    for pcsim in (row for row in rows if row.system in ("pcsim", COMPILED) and not row.note):
        for name in names:
            peer = next((row for row in rows if row.system.startswith(name) and not row.note),
                        None)
            if peer is None:
                continue
            for precision, target in TARGETS.items():
                if precision in pcsim.rates and precision in peer.rates:
                    ratio = pcsim.rates[precision] / peer.rates[precision]
                    met, wanted = ((ratio >= target, f">= {target:g}") if batch == 1
                                   else (ratio > 1.0, "> 1"))
                    out.append(f"{pcsim.system} / {name} in {precision}: {ratio:.2f} (target "
                               f"{wanted}{'' if met else ', MISSED'})")
    return out


def agrees(rows: list[Row]) -> list[str]:
    """The systems whose final beliefs differ from the NumPy loop's beyond the tolerance."""
    limits = {"float64": TOLERANCE64, "float32": TOLERANCE32}
    return [f"{row.system} {p} (max|diff| {d:.1e} > {limits[p]:g})"
            for row in rows for p, d in row.max_abs_diff.items() if d > limits[p]]
