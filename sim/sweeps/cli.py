"""``pcsim sweep``: its arguments and what it prints (the work is ``sim.sweeps.run``)."""

from __future__ import annotations

import argparse
import sys


def add_parser(commands, handler) -> None:
    sweep = commands.add_parser(
        "sweep", help="run a scenario over a grid of parameter values and seeds",
        description="Run SCENARIO at every combination of the --vary values (and of its "
                    "[sweep] table), times seeds, one result file per point, plus an index "
                    "FOLDER/sweep.h5. A re-run finishes what is missing.")
    sweep.add_argument("scenario", help="a scenario file or bundled name")
    sweep.add_argument("--vary", action="append", default=[], metavar="KEY=V1,V2,...",
                       help="an axis: a dotted scenario key ('*' for every item of a list, "
                            "e.g. protocol.trials.*.stimulus.noise_std) and its TOML values")
    sweep.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a scenario field in every point, as pcsim run --set "
                            "does ('*' for every item of a list), e.g. "
                            "protocol.trials.*.duration_ms=50")
    sweep.add_argument("--seeds", type=int, metavar="N",
                       help="run each point with the scenario's seed + 0 .. N-1 (default: its "
                            "[sweep] seeds, or 1)")
    sweep.add_argument("-j", "--jobs", type=int, metavar="JOBS",
                       help="local worker processes (default: the number of cores)")
    sweep.add_argument("--scheduler", metavar="ADDRESS",
                       help="run on the Dask scheduler at ADDRESS (tcp://host:8786) instead; "
                            "FOLDER must be shared with its workers (pip install '.[cluster]')")
    sweep.add_argument("-o", "--output", metavar="FOLDER",
                       help="where the points and the index go (default: outputs/sweep-<name>)")
    sweep.set_defaults(handler=handler)


def command_sweep(args: argparse.Namespace) -> int:
    from sim.cli import parse_sets
    from sim.sweeps.grid import parse_vary
    from sim.sweeps.run import run_sweep

    outcome = run_sweep(args.scenario, parse_vary(args.vary), args.seeds, args.jobs,
                        args.scheduler, args.output, progress=True,
                        overrides=parse_sets(args.set),
                        announce=lambda line: print(line, file=sys.stderr, flush=True))
    counts = outcome.counts()
    total = sum(counts.values())
    already = total - len(outcome.ran) - counts.get("running", 0) - counts.get("missing", 0)
    parts = ", ".join(f"{counts[s]} {s}" for s in ("done", "diverged", "failed", "running",
                                                   "missing") if counts.get(s))
    print(f"pcsim: sweep of {total} points: {parts} ({len(outcome.ran)} run now, "
          f"{max(already, 0)} already there) in {outcome.run_s:.1f} s "
          f"(+{outcome.start_s:.1f} s worker start-up); index {outcome.index}", file=sys.stderr)
    print(f"wrote {outcome.index}")
    return 1 if counts.get("failed") else 0
