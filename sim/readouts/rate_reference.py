"""The rate model's run of a spiking scenario, stored beside its spikes.

A spiking run (``[model] neurons = "spiking"``, docs/spiking.md) realises the rate model of the
same scenario; to lay the two side by side, ``[readouts.rate_reference]`` (an empty table)
runs that rate model once the spiking run has ended: the same scenario text, overrides and
seed (so the same stimulus, its noise included), with ``neurons = "rate"``, without
``[model.spiking]`` and ``[readouts]``, on the runtime device, as the spiking run is. Its
traces are sampled on the same times (the same ``dt_ms`` and ``[record]``) and written under
``/rate_reference`` (docs/results.md):

- ``rate_reference/levels/<level>/belief`` (samples x units) and ``rate_reference/
  free_energy`` (samples);
- ``rate_reference/trials/final_belief/<level>`` and ``rate_reference/trials/
  final_free_energy`` (one row per trial): what a headline names as its ``reference``.

The spiking figure (``sim.report.figures.spiking``) draws the decoded beliefs over these. The
rate run costs what a rate run of the scenario costs (a few seconds for the bundled
``neurons/hierarchy_spiking``), after the spiking run; its memory is counted with the run's
(``memory``), and past the limit the readout is turned off, as every readout is.

In a sweep (``sim.sweeps.worker``), points whose rate twins are the same (they differ only in
what the twin drops: ``[model.spiking]``, its seed included, ``[readouts]``, the device, the
recorded variables beyond belief and F) share one rate run: the first keeps it in the sweep's
folder as ``rate-reference-<key>.h5`` (``key``: a hash of the twin's table, its scenario's
path and the pcsim version, ``twin_key``), and the others copy from it. The group's attribute
``created_utc`` says when the rate run it holds was made: points that share a run share it.
Points that run at the same moment in different workers may each make it (the same file, the
last replacing the first).
"""

from __future__ import annotations

import contextlib
import dataclasses
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from circuits.mechanism import MemoryPart
from sim.io.schema import RATE_REFERENCE
from sim.readouts import Readout

GROUP = RATE_REFERENCE  # the schema's (sim.io.schema)
COPIED = ("free_energy", "trials/final_free_energy")  # with every level's belief traces


_KEPT: list[Path] = []  # the folder of the sweep whose point runs now (``kept_in``)


@contextlib.contextmanager
def kept_in(folder: Path) -> Iterator[None]:
    """While a sweep's point runs: its rate reference is kept in, and read from, ``folder``
    (the sweep's), by ``twin_key``."""
    _KEPT.append(Path(folder))
    try:
        yield
    finally:
        _KEPT.pop()


def rate_twin(scenario: Any) -> Any:
    """``scenario`` (a spiking one) as the rate model: its text with its overrides and seed,
    ``neurons = "rate"``, no ``[model.spiking]``, no ``[readouts]``, the runtime device."""
    from sim.scenario import parse_scenario

    return parse_scenario(*_twin_table(scenario), {})


def twin_key(scenario: Any) -> str:
    """What the rate twin's run depends on, hashed: its table (``rate_twin``), the path its
    scenario was read from (files it names are found from there) and the pcsim version."""
    import hashlib
    import json

    import sim

    table, _ = _twin_table(scenario)
    text = json.dumps([str(scenario.path), table, sim.__version__], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _twin_table(scenario: Any) -> tuple[dict[str, Any], Any]:
    """The rate twin's TOML table and its source (``rate_twin``)."""
    from sim import toml_input
    from sim.validation import toml_table

    data, source = toml_table(scenario.source_text, scenario.path)
    toml_input.apply_overrides(data, dict(scenario.overrides), scenario.path)
    data["seed"] = scenario.seed
    data["model"]["neurons"] = "rate"
    data["model"].pop("spiking", None)
    data.pop("readouts", None)
    data.setdefault("numerics", {})["device"] = "runtime"
    data.setdefault("record", {})["variables"] = [  # only what ``finish`` copies
        name for name in ("belief", "free_energy") if name in scenario.record.variables]
    return data, source


class RateReference(Readout):
    name = "rate_reference"
    family = "hierarchical"
    takes_settings = True

    def parse(self, fields: Any, model: Any) -> None:
        if model.neurons != "spiking":
            raise fields.source.error(fields.path, "runs the rate model beside a spiking one: "
                                                   "expected model.neurons = \"spiking\" "
                                                   "(docs/spiking.md)")
        fields.close()

    def memory(self, scenario: Any) -> list[MemoryPart]:
        """The rate run's own model (populations, coupling, recording buffers), held with the
        spiking network's: past the memory limit the readout is turned off (``sim.memory``)."""
        from sim.memory import model_parts

        return [dataclasses.replace(part, what=f"{part.what} (the rate reference)")
                for part in model_parts(rate_twin(scenario))]

    def row(self, simulation: Any, trial: Any) -> dict[str, Any]:
        return {}

    def finish(self, simulation: Any, settings: Any) -> None:
        """Run the rate twin (``rate_twin``), or in a sweep read the run a point with the same
        twin kept (``kept_in``), and copy its traces into ``/rate_reference``; none for a run
        that stopped early (interrupted or diverged)."""
        from sim.io.writer import write_array

        scenario = simulation.scenario
        if simulation.clock_time() * 1e3 < scenario.duration_ms - scenario.dt_ms / 2:
            return
        group = simulation.writer.file.require_group(GROUP)
        with tempfile.TemporaryDirectory() as folder, _rate_run(scenario, Path(folder)) as rate:
            group.attrs["created_utc"] = rate.attrs["created_utc"]
            candidates = [*COPIED, *(f"levels/{level}/belief" for level in rate.level_names),
                          *(f"trials/final_belief/{level}" for level in rate.level_names)]
            for name in (name for name in candidates if name in rate):
                write_array(group, name, np.asarray(rate[name]),  # units, declared_*, nan_means
                            **rate.dataset_attrs[name])


def _rate_run(scenario: Any, folder: Path) -> Any:
    """The rate twin's result, open: made in ``folder``, or in a sweep the one kept in its
    folder (made there first if none is, or if the kept one does not load)."""
    import sim
    from sim.engine import run_scenario

    if not _KEPT:
        run_scenario(rate_twin(scenario), folder / "rate.h5", checked=True)
        return sim.load(folder / "rate.h5")
    kept = _KEPT[-1] / f"rate-reference-{twin_key(scenario)}.h5"
    if kept.exists():
        try:
            return sim.load(kept)
        except sim.ResultError:  # damaged: made again
            pass
    # overwrite: a point of another worker may have made it meanwhile (the same file)
    run_scenario(rate_twin(scenario), kept, checked=True, overwrite=True)
    return sim.load(kept)


READOUT = RateReference()
