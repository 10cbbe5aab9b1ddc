"""``pcsim bench``: pcsim's speed against independent NumPy loops of the same equations.

Each case (``sim.bench.cases``) is a scenario table written to a TOML file and run through the
public engine (``sim.scenario.load_scenario`` + ``sim.engine.run_scenario``) with recording all
but off. Its reference (``sim.bench.reference``) takes the same numbers from the parsed scenario
and integrates the same update scheme in plain NumPy / scipy.sparse; both final states must
agree to ``TOLERANCE``, which proves that the two did the same work. ``sim.bench.measure``
times them (interleaved repeats in one process, start-up and memory in fresh ones),
``sim.bench.report_commands`` times ``pcsim plot`` and ``pcsim show`` against the imports they
need, ``sim.bench.refusals`` ``pcsim run``'s refusals against importing NumPy,
``sim.bench.sweep`` a sweep on 1 and 2 workers and on Dask, ``sim.bench.scenarios`` every
bundled scenario as users run it, now and before a given revision,
``sim.bench.small_models`` small models on each device against one compiled loop,
``sim.bench.spiking`` the spiking hierarchy against the same network built by hand, and
``sim.bench.output`` prints
the tables and writes the JSON records. BLAS runs on one thread for everything
(``set_blas_threads``), so that other work on a small machine does not decide the result.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from sim.bench import (
    batched,
    measure,
    output,
    recorded,
    refusals,
    report_commands,
    scenarios,
    small_models,
    spiking,
    sweep,
)
from sim.bench.cases import REPORT_SCENARIO, cases, command_cases
from sim.bench.records import Record, SmallModelsRecord
from sim.bench.scenarios_record import tail_lines


def main(args) -> int:
    json_path = (output.check_json_target(args.json)
                 if getattr(args, "json", None) is not None else None)
    quick = bool(getattr(args, "quick", False))
    bundled = scenarios.scenario_names(getattr(args, "scenario", None), quick)  # checked first

    import brian2

    from sim.bench.blas import kernel_note
    from sim.blas import blas_cores, set_blas_threads

    threads = int(getattr(args, "threads", None) or 1)
    repeats = measure.QUICK_REPEATS if quick else measure.REPEATS
    if getattr(args, "peers", False):  # its own repeats, quick or not (sim.bench.peers)
        from sim.bench import peers

        repeats = peers.REPEATS
    command_repeats = report_commands.QUICK_REPEATS if quick else report_commands.REPEATS
    blas = set_blas_threads(threads)
    cores = "/".join(blas_cores())
    print(f"pcsim bench{' --quick' if quick else ''}: {output.machine()}; BLAS threads "
          f"{threads if blas else 'unchanged (no OpenBLAS found)'}"
          f"{f' (OpenBLAS {cores} kernels)' if cores else ''}; numpy {np.__version__}, "
          f"brian2 {brian2.__version__}; best of {repeats} interleaved repeats", flush=True)
    note = kernel_note()
    if note:
        print(note, flush=True)
    if getattr(args, "peers", False):
        return peers_main(quick, int(getattr(args, "batch", None) or 1), threads)
    only = [name.lower() for name in getattr(args, "only", None) or []]

    def chosen(name: str) -> bool:
        return not only or any(part in name.lower() for part in only)

    records: list[Record] = []
    extras: list = []
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="pcsim-bench-") as tmp:
        workdir = Path(tmp)
        for case in cases():
            steps = case.quick_steps if quick else case.steps
            if steps is None or not chosen(case.name):
                continue
            if case.whole_run is not None:
                record = recorded.measure_recorded(case, steps, repeats, workdir)
            else:
                record = measure.measure(case, steps, repeats, workdir,
                                         cold=case.cold or not quick, threads=threads)
            records.append(record)
            lines = output.table_lines(records)
            print(lines[-1] if records[1:] else "\n".join(lines), flush=True)
        if chosen("streaming memory"):
            memory = measure.streaming_memory(workdir, quick, threads)
            print(output.streaming_line(memory), flush=True)
            extras.append(memory)
        if chosen("batched protocol"):
            for batch_record in batched.measure(workdir, quick, repeats):
                print("\n".join(batch_record.lines()), flush=True)
                extras.append(batch_record)
        if chosen("small models"):  # compiled loops of small models (sim.bench.small_models)
            small = small_models.measure(workdir, quick)
            print("\n".join(small.lines()), flush=True)
            extras.append(small)
        if chosen(spiking.SpikingRecord.name):  # the spiking hierarchy (sim.bench.spiking)
            spiked = spiking.measure(workdir, quick)
            print("\n".join(spiked.lines()), flush=True)
            extras.append(spiked)
        if chosen("sweep"):
            sweeps = sweep.measure(workdir, quick)  # local workers and Dask (sim.bench.sweep)
            print("\n".join(sweeps.lines()), flush=True)
            extras.append(sweeps)
        if chosen(scenarios.ScenariosRecord.name):  # now and before (sim.bench.scenarios)
            timed = scenarios.measure(
                workdir / "scenarios", bundled,
                scenarios.QUICK_REPEATS if quick else scenarios.REPEATS,
                getattr(args, "baseline", None) or scenarios.BEFORE_ISSUE_23,
                echo=lambda line: print(line, flush=True))
            print("\n".join(tail_lines(timed)), flush=True)
            extras.append(timed)
        commands = [case for case in command_cases() if chosen(case.name)]
        if commands:
            result = report_commands.report_result(workdir / "report")
            commands = report_commands.measure_commands(commands, result, command_repeats)
            print("\n".join(output.command_lines(commands, REPORT_SCENARIO, command_repeats)))
        refused = [case for case in refusals.refusal_cases()
                   if chosen(f"refusal {case.name}")]
        if refused:  # pcsim run's refusals (sim.bench.refusals)
            refused = refusals.measure_refusals(refused, workdir / "refusals", command_repeats)
            print("\n".join(refusals.refusal_lines(refused, command_repeats)))
    print(output.closing_line(time.perf_counter() - began))
    if json_path is not None:
        output.write_json(json_path, [*records, *extras, *commands, *refused])
        print(f"wrote {json_path}")
    wrong = [r for r in [*records, *extras]
             if isinstance(r, Record | SmallModelsRecord | spiking.SpikingRecord)
             and r.agrees is False]
    if wrong:
        print("pcsim bench: pcsim and its reference differ by more than the tolerance in "
              + ", ".join(f"{r.name} (max|diff| {r.max_abs_diff:.1e} > {r.tolerance:g})"
                          for r in wrong), file=sys.stderr)
        return 1
    return 0


def peers_main(quick: bool, batch: int = 1, threads: int = 1) -> int:
    """``pcsim bench --peers [--batch B]``: the peers' table (``sim.bench.peers``)."""
    from sim.bench import peers
    from sim.bench.cores import can_pin

    began = time.perf_counter()
    steps = peers.QUICK_STEPS if quick else peers.STEPS
    with tempfile.TemporaryDirectory(prefix="pcsim-bench-") as tmp:
        rows = peers.measure_peers(Path(tmp), steps, batch=batch, cores=threads, compiled=True)
    pinned = threads if can_pin() else None
    print("\n".join(peers.table_lines(rows, steps, batch, pinned)))
    print(f"{time.perf_counter() - began:.0f} s in all.")
    wrong = peers.agrees(rows)
    if wrong:
        print("pcsim bench --peers: final beliefs differ from the NumPy loop's in "
              + ", ".join(wrong), file=sys.stderr)
        return 1
    return 0
