"""A result as an NWB file (Neurodata Without Borders 2): ``pcsim export R.h5 --nwb R.nwb``.

What goes where (pynwb, the optional extra ``pcsim[nwb]``; imported only here, only when asked):

- **time series**: every dataset the result declares (``circuits.variables``: the recorder
  writes each declaration beside its dataset) that is sampled at ``/time`` becomes a
  ``TimeSeries`` with the dataset's ``units`` and a description from its declaration (label,
  symbol, level or factor, column names). Its declared ``role`` says where it goes: ``input``
  (the sensory input) under ``/stimulus/presentation``, as NWB keeps what a subject was given;
  ``energy`` (F, its energy part, the surprise) in the processing module ``misc``, being
  computed from the network's state; every other role (beliefs, errors, precisions, learned
  parameters, population rates, a mechanism's own variable) under ``/acquisition``, the
  simulated network's recording. Stored with a starting time and a rate where ``/time`` is
  regular (every ``[record] every_ms``), else with its timestamps. A time series a file does
  not declare (written before declarations) goes to ``/acquisition``, its path as description.
  Values are copied in blocks (bounded memory), unchanged.
- **events**: a declared dataset with a ``time`` dataset of its own beside it (a discrete
  model's observations, ``observations/<modality>/outcome``) makes its group a table of
  ``/intervals`` (``observations.sound``), one row per event: the step it is delivered in
  (``start_time`` its time, ``stop_time`` one dt later), the group's datasets its columns
  (``outcome``, ``trial``, ``precision``). A
  table, not a ``TimeSeries``: events are few, often fewer than the outcomes each row holds,
  and a few-row series reads as data laid out the wrong way round (the NWB inspector calls
  that critical).
- **trials**: ``/trials`` as NWB trials: ``t_start``/``t_stop`` as ``start_time``/``stop_time``,
  ``index`` as the row id, ``name`` as ``trial_name`` (``name`` is taken in NWB tables), every
  other column by its path with ``/`` as ``.`` (``final_belief.features``): one number per trial,
  or a fixed-shape array per trial (a multidimensional column), with its units and ``nan_means``
  in the column's description. A declared dataset outside ``/trials`` whose first axis is the
  trials' (``sim.io.schema``: the ERP's traces, ``erp/trials/<level>``, trials x samples from
  each trial's start) is a column too, by its path, described from its declaration.
- **spikes** (``/spikes/<level>/<population>``, spiking runs): the ``units`` table, one row per
  neuron, with its spike times and the columns ``level``, ``population``, ``role``, ``sign``,
  ``unit`` (the pcsim unit it belongs to: neuron // ``neurons_per_unit``), ``neuron`` (its index in
  the population) and ``neuron_model``; ``resolution`` is the run's dt.
- **metadata**: ``session_description`` (scenario, family, seed), ``experiment_description`` (the
  scenario's description), ``session_start_time`` (when the run started), ``source_script`` (the
  scenario file's text as run, ``source_script_file_name`` its name), ``was_generated_by``
  (pcsim, Brian2, NumPy, h5py, Python and pynwb with their versions), ``notes`` (status, seed,
  device, dt, method, git commit, BLAS, CPU, the result's path, then every resolved parameter as
  JSON: ``/scenario/parameters``, the ``--set`` overrides among them), ``keywords``.

Not exported: the model's fixed arrays (weights, priors, likelihoods), what readouts compute
from the trials beside the trial table (the ERP's means by kind and mismatch wave, ``/erp/time``:
on an axis of their own, ``/decision``), snapshots; the result file stays the full record.

The NWB file is written to a temporary file beside the target and renamed when whole
(``sim.io.partials``), so a failed or interrupted export leaves no file at the target.
"""

from __future__ import annotations

import datetime
import json
import os
import sys
import tempfile
import uuid
import warnings
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np

from circuits.variables import DECLARED
from sim.errors import ResultError
from sim.export.nwb_units import add_units
from sim.file_lock import locked
from sim.io.lazy import LazyArray
from sim.io.partials import remove_stale_partials, temporary_name
from sim.io.reader import Result, declared, load
from sim.io.schema import AXES
from sim.io.schema_check import declaration
from sim.io.target import check_target

NWB_MISSING = ("pcsim export --nwb needs pynwb, which is not installed: "
               "pip install 'pcsim[nwb]' (or pip install pynwb)")
IMPORT_LOCK = "pcsim-pynwb-import.lock"  # import_pynwb's lock, in the temporary folder
MODULE = "misc"  # the processing module of F and its parts (a standard NWB module name)
BUFFER_GB = 0.0625  # what a time series' copy holds in memory at once
SOFTWARE = (("pcsim", "pcsim_version"), ("brian2", "brian2_version"),
            ("numpy", "numpy_version"), ("h5py", "h5py_version"),
            ("python", "python_version"))
NOTED = ("status", "failure", "seed", "device", "dt", "method", "duration", "git_commit",
         "git_dirty", "blas", "blas_core", "blas_threads", "cpu_model", "batched",
         "resumed_at_trials", "readouts_off")


def import_pynwb() -> Any:
    """pynwb, or a one-line ``ModuleNotFoundError`` saying what to install.

    pynwb's first import on a machine writes a cache of its type map in place (in the user's
    cache folder), and an import of another process reading it meanwhile fails
    (``EOFError``: two exports, or test workers, starting at once). The first import of each
    process holds a lock of the machine's temporary folder while it runs (where this user can
    open its file; else it imports as before)."""
    first = "pynwb" not in sys.modules
    try:
        with (locked(Path(tempfile.gettempdir()) / IMPORT_LOCK, required=False) if first
              else nullcontext()):
            import pynwb
    except ImportError:
        raise ModuleNotFoundError(NWB_MISSING, name="pynwb") from None
    return pynwb


def export_nwb(result: Result | str | Path, path: str | Path, overwrite: bool = False) -> Path:
    """Write ``result`` (a ``Result`` or a result file's path) as the NWB file ``path``;
    return ``path``. Refuses (``ResultError``, one line) an existing ``path`` unless
    ``overwrite``, the result file itself, a folder; a file that is not a pcsim result, or a
    damaged one, as ``sim.load`` does (an interrupted or diverged run is exported, its status
    in the metadata). Needs pynwb (``ModuleNotFoundError`` naming it)."""
    output = Path(path)
    if output.suffix.lower() != ".nwb":
        raise ResultError(f"{output}: expected a file name ending in .nwb for the NWB file")
    pynwb = import_pynwb()
    if not isinstance(result, Result):
        with load(result, allow_incomplete=True) as opened:
            return export_nwb(opened, output, overwrite)
    if output.exists() and output.resolve() == result.path.resolve():
        raise ResultError(f"{output}: is the result being exported; give another name for the "
                          "NWB file")
    check_target(output, overwrite, role="the NWB file")
    if not output.parent.is_dir():
        raise ResultError(f"{output}: no folder {output.parent} to write the NWB file in")
    remove_stale_partials(output.parent)
    temporary = temporary_name(output)
    try:
        with warnings.catch_warnings():  # the temporary name does not end in .nwb; the target does
            warnings.filterwarnings("ignore", message=".*does not end in '.nwb'")
            io = pynwb.NWBHDF5IO(str(temporary), "w")
        with io:
            io.write(nwb_file(result, pynwb))
        os.replace(temporary, output)
    finally:
        temporary.unlink(missing_ok=True)
    return output


def nwb_file(result: Result, pynwb: Any) -> Any:
    """The ``pynwb.NWBFile`` of ``result``: metadata, time series, trials, spikes."""
    attrs = result.attrs
    scenario = result.group_attrs.get("scenario", {})
    nwbfile = pynwb.NWBFile(
        session_description=(f"pcsim simulation of scenario {attrs.get('scenario_name')} "
                             f"({attrs.get('model_kind')} model), seed {attrs.get('seed')}"
                             + ("" if attrs.get("status") == "complete"
                                else f", status {attrs.get('status')}")),
        identifier=str(uuid.uuid4()),
        session_start_time=datetime.datetime.fromisoformat(str(attrs["created_utc"])),
        experiment_description=str(scenario.get("description", "")).strip()
        or f"pcsim scenario {attrs.get('scenario_name')} (its file gives no description)",
        source_script=result.scenario_source,
        source_script_file_name=Path(str(scenario.get("path", "scenario.toml"))).name,
        was_generated_by=[[name, str(attrs[key])] for name, key in SOFTWARE if key in attrs]
        + [["pynwb", pynwb.__version__]],
        notes=notes(result),
        keywords=["pcsim", "simulation", "predictive coding", "free energy",
                  str(attrs.get("model_kind"))],
        subject=subject(result, pynwb))
    timing = sampling(result)
    sampled, events, per_trial = recorded(result)
    for path in sampled:
        add_series(nwbfile, pynwb, result, path, timing)
    for group in events:
        add_events(nwbfile, pynwb, result, group)
    add_trials(nwbfile, result, per_trial)
    add_units(nwbfile, result)
    return nwbfile


def subject(result: Result, pynwb: Any) -> Any:
    """The simulated network as NWB's subject (NWB asks every file for one): no species, age
    P0D (it is built when the run starts), sex O (other: not applicable)."""
    name = str(result.attrs.get("scenario_name")).replace("/", "_")
    return pynwb.file.Subject(
        subject_id=f"pcsim-{name}-seed{result.seed}", age="P0D", sex="O",
        description=f"not an animal: the predictive-coding network that pcsim simulated for "
                    f"scenario {result.attrs.get('scenario_name')} (seed {result.seed}); age "
                    "P0D: it is built when the run starts; sex O: not applicable")


def notes(result: Result) -> str:
    """How the run was made, one ``key: value`` a line, then its resolved parameters."""
    attrs = result.attrs
    lines = [f"pcsim result {result.path}"]
    lines += [f"{key}: {_text(attrs[key])}" for key in NOTED if key in attrs]
    parameters = json.dumps(result.parameters, sort_keys=True)
    return "\n".join([*lines, "", "resolved parameters (/scenario/parameters):", parameters])


# time series ---------------------------------------------------------------------------------
def recorded(result: Result) -> tuple[list[str], list[str], list[str]]:
    """What the result recorded, from its declarations: the time series sampled at ``/time``
    (each declared dataset whose first axis is the samples', and the undeclared time series of
    a file written before declarations), the groups of events (a group whose declared
    dataset has a ``time`` dataset of its own beside it: observations), and the declared
    datasets of one row per trial (their first axis the trials', by ``sim.io.schema``: ERP
    traces). A declared dataset on another axis (an ERP's mean over trials) is none of them."""
    samples = result.shape("time")[:1]
    sampled, events, per_trial = [], [], []
    for path in sorted(result.datasets):
        if path == "time" or path.startswith(("trials/", "scenario/", "spikes/", "snapshots/",
                                              "rate_reference/")):
            continue
        shape, group = result.shape(path), path.rpartition("/")[0]
        if not shape:
            continue
        if declared(result, path, "role"):
            if group and f"{group}/time" in result and \
                    result.shape(f"{group}/time")[:1] == shape[:1]:
                events.append(group)
            elif axes(result, path)[:1] == ("trials",):
                per_trial.append(path)
            elif shape[:1] == samples and axes(result, path)[:1] in ((), ("samples",)):
                sampled.append(path)
        elif shape[:1] == samples and isinstance(result[path], LazyArray):
            sampled.append(path)
    return sampled, list(dict.fromkeys(events)), per_trial


def axes(result: Result, path: str) -> tuple[str, ...]:
    """The axes ``sim.io.schema`` declares for ``path`` (none: a mechanism's own stream)."""
    found = declaration(path, result.kind)
    return found.axes if found is not None else ()


def add_series(nwbfile: Any, pynwb: Any, result: Result, path: str,
               sampled: dict[str, Any]) -> None:
    """The time series ``path`` as a ``TimeSeries`` where its declared role puts it;
    ``sampled``: how ``/time`` goes (``sampling``; its timestamps, where it has them, become a
    link to the first series that stores them)."""
    attrs = result.dataset_attrs[path]
    made = pynwb.TimeSeries(name=path.replace("/", "."), data=_blocks(result[path]),
                            unit=str(attrs.get("units", "1")), description=describe(result, path),
                            comments=comments(result, path), **sampled)
    if isinstance(sampled.get("timestamps"), np.ndarray):
        sampled["timestamps"] = made  # the next ones link to these
    role = declared(result, path, "role")
    if role == "input":
        nwbfile.add_stimulus(made)
    elif role == "energy":
        if MODULE not in nwbfile.processing:
            nwbfile.create_processing_module(
                MODULE, "pcsim: the free energy F, its parts and the surprise it bounds, "
                        "computed from the simulated network's state at each sample")
        nwbfile.processing[MODULE].add(made)
    else:
        nwbfile.add_acquisition(made)


def add_events(nwbfile: Any, pynwb: Any, result: Result, group: str) -> None:
    """A group of events (``observations/<modality>``: ``time`` and one row per event in each
    other dataset) as a table of ``/intervals``, each event the step it is delivered in (from
    its time to one dt later), the group's other datasets its columns."""
    columns = [path for path in sorted(result.datasets)
               if path.rpartition("/")[0] == group and path != f"{group}/time"]
    table = pynwb.epoch.TimeIntervals(
        name=group.replace("/", "."),
        description="events, each in the step it is delivered in (start_time: its time): "
                    + "; ".join(describe(result, path) for path in columns
                                if declared(result, path, "role")))
    for path in columns:
        table.add_column(path.rpartition("/")[2], describe(result, path)
                         + f" ({result.units(path)}; {comments(result, path)})")
    values = {path.rpartition("/")[2]: np.asarray(result[path]) for path in columns}
    for row, time in enumerate(np.asarray(result[f"{group}/time"], dtype=float)):
        table.add_row(start_time=time, stop_time=time + result.dt,
                      **{name: column[row] for name, column in values.items()})
    nwbfile.add_time_intervals(table)


def sampling(result: Result) -> dict[str, Any]:
    """How ``/time`` goes: ``starting_time`` and ``rate`` when its samples are evenly spaced
    (within 1e-9 of a step: a run records every ``[record] every_ms``), else ``timestamps``."""
    time = result.time
    count = len(time)
    if count >= 2:
        start, end = float(time[0]), float(time[count - 1])
        every_ms = result.parameters["record"].get("every_ms")
        step = every_ms * 1e-3 if isinstance(every_ms, int | float) else \
            (end - start) / (count - 1)
        if step > 0 and all(  # read a block at a time: /time of a long run is large
                np.max(np.abs(block - (start + step * np.arange(where.start, where.stop))))
                <= 1e-9 * step for where, block in time.blocks()):
            return {"starting_time": start, "rate": 1.0 / step, "continuity": "continuous"}
    return {"timestamps": np.asarray(time, dtype=float), "continuity": "continuous"}


def describe(result: Result, path: str) -> str:
    """What a series is, in words, from its declaration: ``belief (mu) of level 'features';
    columns: ...``."""
    parts = path.split("/")
    where = {"levels": f" of level '{parts[1]}'", "factors": f" of factor '{parts[1]}'",
             "causes": " over the causes",
             "observations": f" of modality '{parts[1]}'",
             "erp": f" of level '{parts[-1]}'"}.get(parts[0], "") \
        if len(parts) > 1 else ""
    if declared(result, path, "label"):
        text = f"{declared(result, path, 'label')} ({declared(result, path, 'symbol')}){where}"
    else:
        text = f"pcsim's /{path}{where} (not declared in this file)"
    names = column_names(result, path)
    return text + (f"; columns: {', '.join(names)}" if names else "")


def column_names(result: Result, path: str) -> list[str]:
    """What a series' columns are, where the file names them (causes, outcomes)."""
    attrs, group = result.dataset_attrs[path], path.rpartition("/")[0]
    for source in (attrs, result.group_attrs.get(group, {})):
        for key in ("names", "outcomes"):
            if key in source:
                return [str(name) for name in np.atleast_1d(source[key])]
    return []


def comments(result: Result, path: str) -> str:
    """Where the series came from and its other attributes (``nan_means``, ...)."""
    attrs = result.dataset_attrs[path]
    kept = {key: value for key, value in attrs.items() if key != "units"
            and not key.startswith(DECLARED) and key not in ("names", "outcomes")}
    role = declared(result, path, "role")
    return "; ".join([f"pcsim dataset /{path}" + (f", role {role}" if role else ""),
                      *(f"{key}: {_text(value)}" for key, value in kept.items())])


def _blocks(series: LazyArray) -> Any:
    """A time series copied a block at a time (an empty one as it is)."""
    if not series.size:
        return np.asarray(series)
    from hdmf.data_utils import GenericDataChunkIterator

    class Blocks(GenericDataChunkIterator):
        def _get_data(self, selection: tuple) -> np.ndarray:
            return series[selection]

        def _get_maxshape(self) -> tuple[int, ...]:
            return series.shape

        def _get_dtype(self) -> np.dtype:
            return series.dtype

    return Blocks(buffer_gb=BUFFER_GB)


# trials --------------------------------------------------------------------------------------
RENAMED = {"index": None, "t_start": None, "t_stop": None, "name": "trial_name"}


def add_trials(nwbfile: Any, result: Result, per_trial: list[str]) -> None:
    """The trial table as NWB trials, with the declared datasets ``per_trial`` of one row per
    trial as more columns (see the module docstring)."""
    trials = result.trials
    if "t_start" not in trials or not len(trials["t_start"]):
        return
    columns = {}
    for column in sorted(trials):
        if column in RENAMED and RENAMED[column] is None:
            continue
        name = RENAMED.get(column) or column.replace("/", ".")
        attrs = result.dataset_attrs[f"trials/{column}"]
        nan = f"; NaN: {attrs['nan_means']}" if "nan_means" in attrs else ""
        nwbfile.add_trial_column(
            name, f"pcsim /trials/{column} (units {attrs.get('units', '1')}){nan}")
        values = trials[column]
        columns[name] = [str(v) for v in values] if values.dtype == object else values
    for path in per_trial:
        name = path.replace("/", ".")
        along = ", ".join(f"{axis} ({AXES[axis]})" for axis in axes(result, path)[1:])
        nwbfile.add_trial_column(name, f"{describe(result, path)} ({result.units(path)}; "
                                       f"{comments(result, path)}); a row per trial, along "
                                       f"{along}")
        columns[name] = np.asarray(result[path])
    starts, stops = trials["t_start"], trials["t_stop"]
    for row in range(len(starts)):
        nwbfile.add_trial(start_time=float(starts[row]), stop_time=float(stops[row]),
                          id=int(trials["index"][row]) if "index" in trials else row,
                          **{name: values[row] for name, values in columns.items()})


def _text(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return ", ".join(str(v) for v in value.ravel())
    return str(value)
