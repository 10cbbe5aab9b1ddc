"""The ``pcsim`` command: run, sweep, list, show, plot, diff, new, export (and bench).

Exit codes: 0 done (``diff``: identical); 1 ``diff``: the results differ, ``sweep``: some
points failed (the index says why); 2 a user mistake (scenario, overrides, output path, result
file; a damaged result file: ``show`` lists what is missing or malformed, then exits 2 too),
shown as one line (``--debug`` shows the traceback); 3 the run diverged (the result file
records it); 130 interrupted (Ctrl-C) or 143 terminated (SIGTERM); 141 standard output closed
early (as in ``pcsim show F.h5 | head -1``), quietly.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import signal
import sys
import warnings
from pathlib import Path

from sim.errors import DivergenceError, ResultError, RunInterrupted, ScenarioError

USER_ERROR = 2
DIVERGED = 3
INTERRUPTED = 130
BROKEN_PIPE = 128 + signal.SIGPIPE
RESULT_SUFFIXES = (".h5", ".hdf5")


def parse_sets(pairs: list[str]) -> dict:
    """``--set KEY=VALUE`` options -> dotted key -> value (``sim.toml_input.parse_value``); the
    text rule for keys and values is checked where the overrides meet the scenario."""
    from sim.toml_input import describe, parse_value, show_key

    overrides = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ScenarioError(f"--set {describe(pair)}: expected key=value, e.g. "
                                "model.tau_belief_ms=5")
        key = key.strip()
        overrides[key] = parse_value(value.strip(), f"--set {show_key(key)}")
    return overrides


def check_result_name(output: Path) -> None:
    """A result goes to an HDF5 name: the figure beside it (``.png``) must not be the result."""
    if not output.is_dir() and output.suffix.lower() not in RESULT_SUFFIXES:
        raise ResultError(f"{output}: a result is an HDF5 file; give a name ending in .h5 or "
                          f".hdf5 (the figure is written beside it as .png)")


def check_figure_name(figure: Path, result: Path) -> None:
    """An image name matplotlib can write, and not a result file's."""
    from matplotlib.backend_bases import FigureCanvasBase

    formats = FigureCanvasBase.get_supported_filetypes()
    suffix = figure.suffix.lower()
    if figure.is_dir():
        raise ResultError(f"{figure}: is a folder; give a file name for the figure")
    if suffix in RESULT_SUFFIXES or figure.resolve() == result.resolve():
        raise ResultError(f"{figure}: is a result file name; give an image name such as "
                          f"{figure.with_suffix('.png').name}")
    if suffix[1:] not in formats:
        problem = f"unsupported image format {suffix!r}" if suffix else "no image suffix"
        raise ResultError(f"{figure}: {problem}; expected a name ending in one of "
                          f"{', '.join('.' + name for name in sorted(formats))}")


def write_figure(result, figure: Path) -> Path:
    from sim.report.figures import plot

    try:
        return plot(result, figure)
    except OSError as err:
        raise ResultError(f"{figure}: cannot write the figure: {err.strerror or err}") from err


def own_warnings(args: argparse.Namespace) -> None:
    """Python warnings as one ``pcsim: warning:`` line each (``--debug``: Python's own format).

    Importing Brian2 turns on ``logging.captureWarnings``, which prints every warning as a
    multi-line log block; call this again after anything that may import Brian2.
    """
    logging.captureWarnings(False)
    if not args.debug:
        warnings.showwarning = _show_warning


def command_run(args: argparse.Namespace) -> int:
    """Everything that can refuse the run (the output paths, the scenario, ``--set``, the disk
    space, the step's stability, the memory, the checkpoint) is checked before the engine, and
    with it Brian2, is imported (``sim.preflight``, shared with ``sim.run``): a refusal takes a
    fraction of a second."""
    from sim.preflight import preflight_run

    if args.output:  # checked first: it needs no scenario
        check_result_name(Path(args.output))
    scenario, output = preflight_run(
        args.scenario, args.output, overrides=parse_sets(args.set), seed=args.seed,
        overwrite=args.overwrite, resume=args.resume, figure=not args.no_plot,
        warn=lambda message: print(f"pcsim: warning: {message}", file=sys.stderr))
    if args.check:
        print(f"pcsim: {scenario.path}: valid ({scenario.kind.name}, "
              f"{len(scenario.trials)} trial(s), {scenario.duration_ms:g} ms, "
              f"dt {scenario.dt_ms:g} ms)")
        return 0
    from sim.engine import run_scenario, text_progress
    from sim.io.reader import load
    from sim.report.headlines import headline_lines

    own_warnings(args)  # the engine loads Brian2
    print(f"pcsim: running {scenario.name} ({scenario.path}), seed {scenario.seed}, "
          f"{scenario.duration_ms:g} ms in {len(scenario.trials)} trial(s)", file=sys.stderr)
    with text_progress() as progress:  # its line is left once, however the run ends
        run_scenario(scenario, output, progress, overwrite=args.overwrite,
                     keep_partial=args.keep_partial, checked=True, debug=args.debug,
                     resume=args.resume)
    with load(output) as result:
        for line in headline_lines(result):
            print(line)
        print(f"wrote {output}")
        if not args.no_plot:
            print(f"wrote {write_figure(result, output.with_suffix('.png'))}")
    return 0


def command_list(args: argparse.Namespace) -> int:
    from sim.report.scenario_text import list_lines

    lines, shortened = list_lines(verbose=args.verbose)
    print("\n".join(lines))
    if shortened:
        print("pcsim: first sentences shown; pcsim list -v: whole descriptions; pcsim show "
              "NAME: one scenario's description and settings", file=sys.stderr)
    return 0


def command_new(args: argparse.Namespace) -> int:
    from sim.scenario_copy import copy_bundled

    print(f"wrote {copy_bundled(args.source, Path(args.file), overwrite=args.overwrite)}")
    return 0


def command_sweep(args: argparse.Namespace) -> int:
    from sim.sweeps.cli import command_sweep as sweep

    return sweep(args)


def command_show(args: argparse.Namespace) -> int:
    from sim.io.reader import load
    from sim.report.show import damage, show_lines
    from sim.sweeps.detect import is_sweep_index

    given = Path(args.file)
    if given.suffix.lower() == ".toml" or not given.exists():  # a result needs no scenario
        from sim.report.scenario_text import is_scenario_name  # parsing (~30 ms of imports)

        if is_scenario_name(args.file):
            return show_scenario(args.file)
    if not given.exists():
        raise ResultError(f"{args.file}: no such file, nor a bundled scenario of that name "
                          "(pcsim list)")
    if is_sweep_index(args.file):
        from sim.sweeps.report import show_lines as sweep_lines

        print("\n".join(sweep_lines(args.file)))
        return 0
    with load(args.file, allow_incomplete=True, allow_damaged=True) as result:
        problems = damage(result)
        for line in show_lines(result, problems):
            print(line)
    if problems:  # listed above; the exit code and one line say so too
        raise ResultError(f"{args.file}: damaged pcsim result: {len(problems)} part(s) "
                          "missing or malformed (listed above)")
    return 0


def show_scenario(name_or_path: str) -> int:
    """``pcsim show NAME``: a bundled scenario's (or a scenario file's) whole description and
    main settings (``sim.report.scenario_text``)."""
    from sim.report.scenario_text import scenario_lines
    from sim.scenario import bundled_match, find_scenario, load_scenario

    path = find_scenario(name_or_path)  # a file here wins over a bundled name
    bundled = None if Path(name_or_path).is_file() else bundled_match(name_or_path)
    print("\n".join(scenario_lines(load_scenario(path), bundled)))
    return 0


def command_plot(args: argparse.Namespace) -> int:
    from sim.io.reader import load
    from sim.sweeps.detect import index_path, is_sweep_index

    own_warnings(args)
    sweep = is_sweep_index(args.file)
    source = index_path(args.file) if sweep else Path(args.file)
    output = Path(args.output) if args.output else source.with_suffix(".png")
    check_figure_name(output, source)
    if sweep:
        from sim.sweeps.report import plot_sweep

        print(f"wrote {plot_sweep(source, output)}")
        return 0
    with load(args.file, allow_incomplete=True) as result:
        print(f"wrote {write_figure(result, output)}")
    return 0


def command_diff(args: argparse.Namespace) -> int:
    from sim.io.reader import load
    from sim.report.diff import Tolerance, diff_lines
    from sim.sweeps.detect import is_sweep_index

    tolerance = Tolerance(args.rtol, args.atol)
    sweeps = [is_sweep_index(path) for path in (args.first, args.second)]
    if all(sweeps):
        from sim.sweeps.diff import sweep_diff_lines

        lines, differ = sweep_diff_lines(args.first, args.second, tolerance)
    elif any(sweeps):
        sweep, other = (args.first, args.second) if sweeps[0] else (args.second, args.first)
        raise ResultError(f"{sweep}: is a sweep's index and {other} is not; diff compares two "
                          "results or two sweeps")
    else:
        with load(args.first, allow_incomplete=True) as first, \
                load(args.second, allow_incomplete=True) as second:
            lines, differ = diff_lines(first, second, tolerance)
    print("\n".join(lines))
    return 1 if differ else 0


def command_export(args: argparse.Namespace) -> int:
    """``pcsim export R.h5 --nwb R.nwb`` (``sim.export.nwb``; pynwb: the ``nwb`` extra)."""
    from sim.export.nwb import export_nwb

    try:
        written = export_nwb(args.file, args.nwb, overwrite=args.overwrite)
    except ModuleNotFoundError as err:
        if err.name != "pynwb" or args.debug:
            raise
        print(f"pcsim: error: {err}", file=sys.stderr)
        return USER_ERROR
    print(f"wrote {written}")
    return 0


def tolerance_value(text: str) -> float:
    """A ``--rtol``/``--atol`` value: a number >= 0."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def command_bench(args: argparse.Namespace) -> int:
    from sim.bench.suite import main as bench_main

    return bench_main(args)


def build_parser() -> argparse.ArgumentParser:
    from sim._version import __version__

    parser = argparse.ArgumentParser(prog="pcsim", description=plain_text(__doc__),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"pcsim {__version__}",
                        help="print pcsim's version and exit")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for user errors")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run a scenario and write an HDF5 result")
    run.add_argument("scenario", nargs="?", default="perception/hierarchy",
                     help="a scenario file or bundled name (default: perception/hierarchy), "
                          "or a result file (.h5): its stored scenario, run again")
    run.add_argument("-o", "--output", help="result file (default: outputs/<name>-...h5)")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="override a scenario field by dotted path, e.g. model.tau_belief_ms=5")
    run.add_argument("--seed", type=int, help="override the scenario's seed")
    run.add_argument("--overwrite", action="store_true", help="replace an existing result")
    run.add_argument("--no-plot", action="store_true", help="do not write the PNG figure")
    run.add_argument("--keep-partial", action="store_true",
                     help="on Ctrl-C keep what was simulated, marked status 'interrupted'")
    run.add_argument("--resume", action="store_true",
                     help="continue an interrupted run from its checkpoint (-o OUT.h5: "
                          "OUT.h5.checkpoint; the same scenario, --set and --seed)")
    run.add_argument("--check", action="store_true",
                     help="only validate the scenario and its step size; run nothing")
    run.set_defaults(handler=command_run)

    from sim.sweeps.cli import add_parser as add_sweep

    add_sweep(commands, command_sweep)

    listing = commands.add_parser("list", help="list bundled scenarios, each with the first "
                                  "sentence of its description")
    listing.add_argument("-v", "--verbose", action="store_true",
                         help="print each scenario's whole description")
    listing.set_defaults(handler=command_list)

    show = commands.add_parser("show", help="summarise a result file (or a sweep's index), or "
                                            "describe a bundled scenario")
    show.add_argument("file", metavar="FILE|NAME",
                      help="a result file (.h5), a sweep's folder or index, or a bundled "
                           "scenario's name (its whole description and main settings)")
    show.set_defaults(handler=command_show)

    plot = commands.add_parser("plot", help="plot beliefs, errors and F of a result file (or "
                                            "a sweep's summary against its axes)")
    plot.add_argument("file", metavar="FILE", help="a result file (.h5), or a sweep's folder "
                                                   "or index")
    plot.add_argument("-o", "--output",
                      help="image path, .png, .pdf, .svg, ... (default: a PNG beside the file)")
    plot.set_defaults(handler=command_plot)

    diff = commands.add_parser("diff", help="which parameters and datasets of two results "
                               "(or of each point of two sweeps) differ (exit 0 identical, "
                               "1 different)")
    diff.add_argument("first", metavar="A.h5", help="a result, or a sweep's index or folder")
    diff.add_argument("second", metavar="B.h5", help="a result, or a sweep's index or folder")
    diff.add_argument("--rtol", type=tolerance_value, default=0.0, metavar="R",
                      help="floats a and b count as equal where |a - b| <= max(T, R max(|a|, "
                           "|b|)) (default 0: exact)")
    diff.add_argument("--atol", type=tolerance_value, default=0.0, metavar="T",
                      help="... or where |a - b| <= T (default 0: exact)")
    diff.set_defaults(handler=command_diff)

    new = commands.add_parser("new", help="write an editable copy of a bundled scenario")
    new.add_argument("file", metavar="FILE.toml", help="the scenario file to write")
    new.add_argument("--from", dest="source", required=True, metavar="NAME",
                     help="the bundled scenario to copy (pcsim list shows their names)")
    new.add_argument("--overwrite", action="store_true", help="replace an existing FILE.toml")
    new.set_defaults(handler=command_new)

    export = commands.add_parser("export", help="write a result in another format: NWB "
                                 "(needs pip install 'pcsim[nwb]')")
    export.add_argument("file", metavar="RESULT.h5", help="a complete result file")
    export.add_argument("--nwb", required=True, metavar="FILE.nwb",
                        help="the NWB file to write (time series, trials, spikes, metadata)")
    export.add_argument("--overwrite", action="store_true", help="replace an existing FILE.nwb")
    export.set_defaults(handler=command_export)

    from sim.bench.cli import add_parser as add_bench

    add_bench(commands, command_bench)
    return parser


def plain_text(text: str) -> str:
    """A docstring as help text: reST's ``literal`` and :role:`target` marks taken away."""
    return re.sub(r"``(.+?)``|:[a-z]+:`(.+?)`", lambda m: m.group(1) or m.group(2), text)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"pcsim: warning: {message}", file=sys.stderr)


COMPILING = ("run", "sweep", "bench")  # the commands that may import Brian2 and compile


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command not in COMPILING:  # show, plot, diff, list: no temporary files to own
        return _main(args)
    from sim import temp_folder

    with temp_folder.inside():  # before Brian2 is imported: its temporary files go there
        return _main(args)


def _main(args: argparse.Namespace) -> int:
    try:
        with warnings.catch_warnings():
            own_warnings(args)
            code = args.handler(args)
            sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
            return code
    except BrokenPipeError:
        # the reader went away (``| head``): stop quietly, and let the exit flush go nowhere
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return BROKEN_PIPE
    except (ScenarioError, ResultError) as err:
        if args.debug:
            raise
        print(f"pcsim: error: {err}", file=sys.stderr)
        return USER_ERROR
    except DivergenceError as err:
        if args.debug:
            raise
        print(f"pcsim: error: {err} [kept in {err.path}, status diverged]", file=sys.stderr)
        return DIVERGED
    except RunInterrupted as err:
        print(f"pcsim: {err.message}", file=sys.stderr)
        return 128 + signal.SIGTERM if "SIGTERM" in err.message else INTERRUPTED
    except KeyboardInterrupt:
        print("pcsim: interrupted; nothing written", file=sys.stderr)
        return INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
