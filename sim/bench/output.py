"""What ``pcsim bench`` prints and writes: the tables, the closing lines and the JSON file."""

from __future__ import annotations

import json
import os
import platform
import tempfile
from pathlib import Path

from sim.bench.records import CommandRecord, Record
from sim.errors import ResultError
from sim.io.provenance import cpu_model


def machine() -> str:
    return f"{os.cpu_count()} cores ({cpu_model()}), {platform.system()}"


def _number(value: float | None, digits: str) -> str:
    return "-" if value is None else format(value, digits)


def _flag(met: bool | None) -> str:
    return {None: "", True: " ok", False: " MISSED"}[met]


def table_lines(records: list[Record]) -> list[str]:
    jax = any(r.jax_steps_per_s for r in records)
    head = (f"{'case':27s} {'sizes':20s} {'steps':>6s} {'coupling':>8s} {'pcsim/s':>9s} "
            f"{'numpy/s':>9s} {'ratio':>6s} {'whole':>6s} {'target':>7s} {'max|diff|':>9s} "
            f"{'warm s':>6s} "
            f"{'cold s':>6s} {'peak MB':>7s}" + (f" {'jax/s':>9s}" if jax else ""))
    lines = [head, "-" * len(head)]
    for r in records:
        if r.note:
            lines.append(f"{r.name:27s} {r.label:20s} {r.note}")
            continue
        flag = _flag(r.met)
        if r.agrees is False:
            flag = f" MISSED: max|diff| > {r.tolerance:g}"
        lines.append(
            f"{r.name:27s} {r.label:20s} {r.steps:6d} {r.coupling:>8s} "
            f"{_number(r.pcsim_steps_per_s, '9.0f')} {_number(r.reference_steps_per_s, '9.0f')} "
            f"{_number(r.ratio, '6.2f')} {_number(r.whole_ratio, '6.2f')} "
            f"{('<= ' + format(r.target, 'g')) if r.target else '':>7s} "
            f"{_number(r.max_abs_diff, '9.1e')} {_number(r.startup_warm_s, '6.2f')} "
            f"{_number(r.startup_cold_s, '6.1f')} {_number(r.peak_rss_mb, '7.0f')}"
            + (f" {_number(r.jax_steps_per_s, '9.0f')}" if jax else "") + flag
        )
    return lines


def streaming_line(memory: Record) -> str:
    return (f"streaming memory ({memory.label}, record every "
            f"{memory.extra['record_every_steps']}th step): {memory.extra['short_steps']} steps "
            f"peak {memory.extra['short_peak_rss_mb']:.0f} MB, {memory.steps} steps peak "
            f"{memory.peak_rss_mb:.0f} MB, ratio {memory.ratio:.2f} (target <= {memory.target:g}"
            f"{'' if memory.met else ', MISSED'}); growth during the run "
            f"{memory.extra['short_growth_mb']:.1f} / {memory.extra['growth_mb']:.1f} MB")


def command_lines(records: list[CommandRecord], scenario: str, repeats: int) -> list[str]:
    """The report commands' table: seconds, their baseline's, and the difference."""
    head = (f"{'report command':16s} {'seconds':>7s}   {'baseline':52s} {'seconds':>7s} "
            f"{'diff':>6s} {'target':>8s}")
    lines = ["", head, "-" * len(head)]
    for r in records:
        if r.note:
            lines.append(f"{r.name:16s} {r.note}")
            continue
        lines.append(f"{r.name:16s} {r.seconds:7.3f}   {r.baseline:52s} {r.baseline_s:7.3f} "
                     f"{r.difference_s:+6.3f} {'<= +' + format(r.target_difference_s, 'g'):>8s}"
                     + _flag(r.met))
    lines.append(f"report commands on the result of {scenario} (run once, untimed): best of "
                 f"{repeats} fresh processes each, interleaved with the baseline's; diff = "
                 f"command - baseline.")
    return lines


def closing_line(seconds: float) -> str:
    return (f"ratio = pcsim time / NumPy reference time over the time-step loop; whole = the "
            f"same over the whole run, scenario file to closed result file (recorded cases: "
            f"default recording on, the target is the whole run's); warm = scenario "
            f"file to first step in a fresh process with compiled code cached (imports apart); "
            f"cold = fresh process with an empty code cache, imports included. "
            f"{seconds:.0f} s in all.")


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


def write_json(path: Path, records: list[Record | CommandRecord]) -> None:
    rows = [r.row() for r in records]
    try:
        path.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    except OSError as err:
        raise ResultError(f"--json {path}: cannot write: {err.strerror or err}") from err
