"""``pcsim show``: a readable summary of a result file, read lazily (h5py and NumPy only).

Shapes and units come from the file's metadata; of the datasets only the last sample time, the
small per-trial columns (of a long trial table, only the rows shown, or the ``condition`` and
``index`` columns when the trials were generated from conditions) and the scenario's
parameters (which streams were recorded) are read. A damaged file (``damage``) is summarised as
far as its parts allow, and what is missing or malformed is listed last.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sim.errors import ResultError
from sim.io.reader import Result, declared
from sim.report.headlines import ENDS, LISTED, condition_rows, headline_lines


def damage(result: Result) -> list[str]:
    """What is missing or malformed in ``result``, one line each: its departures from the
    schema, then the parts its scenario names and the streams its ``[record] variables``
    recorded that it lacks (empty: none)."""
    try:
        more = result.missing_parts()
    except ResultError as err:  # /scenario/parameters unreadable: say so and list the rest
        text = str(err).removeprefix(f"{result.path}: ").removeprefix("damaged pcsim result: ")
        more = [text if text.startswith("/scenario/parameters: ")
                else f"/scenario/parameters: {text}"]
    named = {line.partition(":")[0] for line in result.problems}
    return [*result.problems, *(line for line in more if line.partition(":")[0] not in named)]


def show_lines(result: Result, problems: list[str] | None = None) -> list[str]:
    """What ``pcsim show`` prints: the run, its software, its trials, its headline numbers
    (``sim.report.headlines``) and its datasets; then
    ``problems`` (default: ``damage(result)``), the parts left out of the summary for them."""
    problems = damage(result) if problems is None else problems
    broken = {line.partition(":")[0] for line in problems}
    attrs = result.attrs
    lines = [
        f"{result.path}: pcsim result (schema {attrs.get('schema_version')}), "
        f"status {attrs.get('status')}",
        f"  scenario {attrs.get('scenario_name')} ({attrs.get('model_kind')}), seed "
        f"{attrs.get('seed')}, dt {_milliseconds(attrs.get('dt'))} ms, {_samples(result, broken)}",
    ]
    if "failure" in attrs:
        lines.append(f"  {attrs.get('status')}: {attrs['failure']}")
    for note in str(attrs.get("readouts_off", "")).splitlines():  # sim.memory
        lines.append(f"  readout off: {note}")
    if "compiled_build" in attrs:  # sim.compiled.run
        lines.append(f"  compiled build: {attrs['compiled_build']}")
    if "compiled_coupling" in attrs:  # sim.families.hierarchical.compiled
        lines.append(f"  compiled coupling: {attrs['compiled_coupling']}")
    if "resumed_at_trials" in attrs:  # sim.checkpoint
        done = ", then ".join(str(n) for n in np.atleast_1d(attrs["resumed_at_trials"]))
        lines.append(f"  resumed from a checkpoint with {done} trial(s) done")
    lines.append(f"  pcsim {attrs.get('pcsim_version')}, brian2 {attrs.get('brian2_version')}, "
                 f"numpy {attrs.get('numpy_version')}, written {attrs.get('created_utc')}")
    lines += provenance_lines(attrs)
    if not any(path.startswith("/trials/") for path in broken):
        lines += trial_lines(result)
        lines += headline_lines(result, indent="  ") if not problems else [
            "  headlines: not shown for a damaged file"]
    lines.append("  datasets:")
    for path in sorted(result.datasets):
        if not path.startswith("scenario/"):
            what = " ".join(declared(result, path, key) for key in ("label", "symbol"))
            lines.append(f"    /{path:40s} {result.shape(path)!s:14s} {result.units(path)}"
                         + (f"  ({what.strip()})" if what.strip() else ""))
    if problems:
        lines.append(f"  damaged: {len(problems)} part(s) missing or malformed:")
        lines += [f"    {line}" for line in problems]
    return lines


def provenance_lines(attrs: dict[str, Any]) -> list[str]:
    """Where the run was computed (``sim.io.provenance``): the BLAS and the CPU, and the pcsim
    commit when it ran from a git checkout; none for a file that predates them."""
    lines = []
    if "blas" in attrs or "cpu_model" in attrs:
        threads = attrs.get("blas_threads")
        kernels = ", ".join(part for part in (
            attrs.get("blas_core") and f"{attrs['blas_core']} kernels",
            threads is not None and f"{threads} thread{'' if threads == 1 else 's'}") if part)
        lines.append(f"  BLAS {attrs.get('blas', 'unknown')}{f' ({kernels})' if kernels else ''}"
                     f", CPU {attrs.get('cpu_model', 'unknown')}")
    if "git_commit" in attrs:
        dirty = " with uncommitted changes" if attrs.get("git_dirty") else ""
        lines.append(f"  pcsim from git commit {attrs['git_commit']}{dirty}")
    return lines


def _milliseconds(seconds: Any) -> str:
    try:
        return f"{float(seconds) * 1e3:g}"
    except (TypeError, ValueError):
        return "?"


def _samples(result: Result, broken: set[str]) -> str:
    """``N samples to T ms``, from the shape of /time and its last value."""
    if "/time" in broken or "time" not in result:
        return "no usable /time"
    samples = result.shape("time")[0]
    end_ms = result.read("time", samples - 1) * 1e3 if samples else 0
    return f"{samples} samples to {end_ms:g} ms"


def trial_lines(result: Result) -> list[str]:
    """One line per trial; more than ``LISTED``: the count per condition, or the first and
    last ``ENDS`` trials."""
    if "name" not in result.trials:
        return []
    count = result.shape("trials/name")[0]
    if count <= LISTED:
        return [trial_line(result, index) for index in range(count)]
    groups = condition_rows(result)
    if groups:
        return [f"  {count} trials in {len(groups)} conditions: "
                + ", ".join(f"{name} {len(rows)}" for name, rows in groups.items())]
    return [*(trial_line(result, index) for index in range(ENDS)),
            f"  ... {count - 2 * ENDS} more trials",
            *(trial_line(result, index) for index in range(count - ENDS, count))]


def trial_line(result: Result, index: int) -> str:
    """Row ``index`` of the trial table (reads that row only)."""
    line = (f"  trial {index} {result.read('trials/name', index)}: "
            f"{result.read('trials/t_start', index) * 1e3:g}-"
            f"{result.read('trials/t_stop', index) * 1e3:g} ms")
    if "final_free_energy" in result.trials:
        line += f", final F {result.read('trials/final_free_energy', index):.4f} nat"
    return line
