"""Scenario files (TOML): the experiment a run performs, validated into plain objects.

Top level: ``name``, ``description``, ``seed``, ``dt_ms``, ``method`` (Brian2 state-update
method of the local dynamics), ``float`` (``float64`` or ``float32`` state variables),
``[model]`` (its ``kind`` picks the model family: ``hierarchical`` by default, or
``discrete``), ``[protocol]`` with ``[[protocol.trials]]`` or ``[[protocol.conditions]]``
(``sim.protocol``) and ``[record]``.
The full field reference is docs/scenarios.md. Each model family is a package in
``sim/families/`` named in ``sim.registry``; this module reads only what all families share.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from sim import batch, registry, toml_input
from sim.errors import ScenarioError
from sim.protocol import (
    MAX_STEPS,
    MAX_TRIALS,
    Trial,
    TrialProtocol,
    learned_parameters,
    parse_protocol,
)
from sim.report.headline_spec import HeadlineSpec, element_names, parse_report
from sim.validation import Fields, Source, describe, read_toml

METHODS = ("euler", "exponential_euler", "rk2", "rk4", "heun", "milstein")
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,99}")  # it becomes part of file names
STABILITY_CHECKS = ("refuse", "warn")
DEVICES = ("runtime", "standalone", "auto")  # [numerics] device (sim.compiled.run)
DEVICE_ENVIRONMENT = "PCSIM_DEVICE"  # the device of scenarios that name none (default auto)


def default_device() -> str:
    """``[numerics] device`` where a scenario names none: ``$PCSIM_DEVICE``, else ``auto``."""
    device = os.environ.get(DEVICE_ENVIRONMENT, "auto")
    if device not in DEVICES:
        raise ScenarioError(f"{DEVICE_ENVIRONMENT}={device!r}: expected one of "
                            f"{', '.join(DEVICES)}")
    return device
RATE_LIMIT = 1e8
FLOAT_TYPES = ("float64", "float32")
LAPLACE_CHOICES = ("auto", "every", "trial_end")
SNAPSHOTS_LIMIT_MB = 1000.0


class ModelKind(Protocol):
    """What a model family provides to the engine (see sim.hierarchical for the reference one)."""

    name: str
    record_variables: tuple[str, ...]

    def parse_model(self, fields: Fields, seed: int) -> Any: ...

    def parse_trial(self, fields: Fields, model: Any, duration_ms: float) -> Any: ...

    def describe(self, model: Any) -> dict: ...

    def build(self, scenario: Scenario, writer: Any,
              readouts_off: dict[str, str] | None = None) -> Any:
        """The run's network (a ``sim.simulation.Simulation``); ``readouts_off``: the readouts
        turned off, when decided already (a resumed run's checkpoint), else None."""
        ...


@dataclass
class Recording:
    every_steps: int
    variables: tuple[str, ...]
    laplace: str | int = "auto"  # how often F's Laplace term is computed (hierarchical)
    snapshots_every: int = 0  # learned parameters after every N-th trial (0: none)
    snapshots_limit_mb: float = SNAPSHOTS_LIMIT_MB  # the preflight refuses more (sim.learning)
    checkpoint_every: int = 0  # a checkpoint after every N-th trial (0: none; sim.checkpoint)


@dataclass
class Numerics:
    """``[numerics]``: what happens when the integration step looks unsafe (``sim.stability``).

    ``stability``: an Euler step beyond the stability bound is refused (``refuse``) or only
    reported (``warn``). ``rate_limit``: a running state variable whose magnitude exceeds it
    (or turns NaN/Inf) stops the run as diverged (``sim.guard``). ``memory_limit_mb``: a
    run estimated to take more is refused before anything is built (``sim.memory``; None: a
    fraction of the machine's memory). ``device``: ``runtime``, ``standalone`` (the whole
    protocol as one compiled program) or ``auto`` (standalone where it can; the default, or
    ``$PCSIM_DEVICE``), ``sim.compiled.run``.
    """

    stability: str = "refuse"
    rate_limit: float = RATE_LIMIT
    memory_limit_mb: float | None = None
    device: str = "auto"


@dataclass
class Scenario:
    name: str
    description: str
    path: str
    source_text: str
    seed: int
    dt_ms: float
    method: str
    kind: ModelKind
    model: Any
    trials: list[Trial]
    record: Recording
    overrides: dict[str, Any] = field(default_factory=dict)
    numerics: Numerics = field(default_factory=Numerics)
    shuffle: bool = False  # trials run in a seeded random order (``protocol.shuffle``)
    float_type: str = "float64"  # Brian2 state variables and coupling arrays
    protocol: TrialProtocol | None = None  # as read: conditions, the order's seed
    readouts: dict[str, Any] = field(default_factory=dict)  # ``[readouts.<name>]`` settings
    headlines: tuple[HeadlineSpec, ...] = ()  # ``[[report.headline]]`` (sim.report.headlines)

    @property
    def has_conditions(self) -> bool:
        """Whether the trials were generated from ``[[protocol.conditions]]``."""
        return self.protocol is not None and self.protocol.conditions is not None

    @property
    def duration_ms(self) -> float:
        return sum(trial.duration_ms for trial in self.trials)

    def steps(self, duration_ms: float) -> int:
        return round(duration_ms / self.dt_ms)

    def resolved(self) -> dict:
        """Every parameter after defaults and overrides, as plain JSON-able data."""
        return {
            "name": self.name,
            "seed": self.seed,
            "dt_ms": self.dt_ms,
            "method": self.method,
            "float": self.float_type,
            "model": self.kind.describe(self.model),
            "trials": describe_trials(self.trials),
            "record": {"every_steps": self.record.every_steps,
                       "variables": list(self.record.variables),
                       **({"laplace": self.record.laplace}
                          if self.record.laplace != "auto" else {}),
                       **({"snapshots_every": self.record.snapshots_every,
                           "snapshots_limit_mb": self.record.snapshots_limit_mb}
                          if self.record.snapshots_every else {}),
                       **({"checkpoint_every": self.record.checkpoint_every}
                          if self.record.checkpoint_every else {})},
            "protocol": (self.protocol.describe() if self.protocol is not None else
                         {"shuffle": self.shuffle, "order": [t.index for t in self.trials]}),
            "numerics": {"stability": self.numerics.stability,
                         "rate_limit": self.numerics.rate_limit,
                         **({"memory_limit_mb": self.numerics.memory_limit_mb}
                            if self.numerics.memory_limit_mb is not None else {}),
                         # the device that ran is the file's ``device`` attribute
                         **({"device": self.numerics.device}
                            if self.numerics.device == "standalone" else {})},
            **({"readouts": {name: registry.readout(name).describe(settings)
                             for name, settings in self.readouts.items()}}
               if self.readouts else {}),
            **({"report": {"headline": [spec.describe() for spec in self.headlines]}}
               if self.headlines else {}),
            "overrides": self.overrides,
        }


def describe_settings(settings: Any) -> dict:
    return settings.describe() if hasattr(settings, "describe") else {}


def describe_trials(trials: list[Trial]) -> list[dict]:
    """Every trial as run, in running order (a condition's trials share one settings object,
    described once)."""
    described: dict[int, dict] = {}
    out = []
    for t in trials:
        if id(t.settings) not in described:
            described[id(t.settings)] = describe_settings(t.settings)
        condition = {"condition": t.condition} if t.condition is not None else {}
        if t.kind is not None:  # a trial of a sequence (sim.sequence)
            condition.update(kind=t.kind, repetition=t.repetition)
        learn = {"learn": sorted(t.learn)} if t.learn is not None else {}
        out.append({"name": t.name, **condition, "duration_ms": t.duration_ms, "reset": t.reset,
                    **learn, **described[id(t.settings)]})
    return out


# --- finding scenario files ---------------------------------------------------------------

def bundled_dir() -> Path:
    """The folder of the bundled scenarios: ``sim/scenarios`` in an installed pcsim (setup.py
    installs the repository's top-level ``scenarios/`` folder there, not as a top-level package),
    else that folder itself, beside ``sim/``, in a source checkout (an editable install, or
    ``PYTHONPATH``)."""
    package = Path(__file__).resolve().parent
    installed = package / "scenarios"
    return installed if installed.is_dir() else package.parent / "scenarios"


def bundled_scenarios() -> dict[str, Path]:
    """Bundled scenarios by name (``perception/single_cause``) -> path."""
    root = bundled_dir()
    return {
        path.relative_to(root).with_suffix("").as_posix(): path
        for path in sorted(root.rglob("*.toml"))
    }


def bundled_match(key: str | Path) -> str | None:
    """The bundled scenario that ``key`` names, by its whole name (``perception/creak``) or
    its last part (``creak``), with or without ``.toml``: its whole name, or None when none
    has it. A key that several have is a one-line ``ScenarioError`` naming them."""
    key = str(key).removesuffix(".toml")
    matches = [name for name in bundled_scenarios() if key in (name, name.split("/")[-1])]
    if len(matches) > 1:
        raise ScenarioError(f"{key}: names {len(matches)} bundled scenarios "
                            f"({', '.join(matches)}); give the whole name")
    return matches[0] if matches else None


def find_scenario(name_or_path: str | Path) -> Path:
    """The scenario file ``name_or_path`` names: a file there, else a bundled scenario
    (``bundled_match``)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    name = bundled_match(name_or_path)
    if name is not None:
        return bundled_scenarios()[name]
    names = ", ".join(bundled_scenarios())
    raise ScenarioError(f"{name_or_path}: no such scenario file or bundled scenario ({names})")


# --- reading ----------------------------------------------------------------------------

def load_scenario(
    name_or_path: str | Path, overrides: dict[str, Any] | None = None, seed: int | None = None
) -> Scenario:
    """Read, override and validate a scenario; raise ScenarioError on any mistake."""
    return override_and_parse(*read_toml(find_scenario(name_or_path)), overrides, seed)


def override_and_parse(data: dict, source: Source, overrides: dict[str, Any] | None,
                       seed: int | None) -> Scenario:
    """A scenario's table (read from ``source``) with ``overrides`` and ``seed`` applied,
    validated (``load_scenario``; ``sim.rerun``: the text a result stores)."""
    path = source.path
    overrides = dict(overrides or {})
    if seed is not None:
        overrides["seed"] = seed
    for key, value in overrides.items():  # the text rule, whether from --set or the API
        toml_input.check_value(key, value, origin=path)
    toml_input.apply_overrides(data, overrides, path)
    source = dataclasses.replace(source, overrides=tuple(overrides))
    return parse_scenario(data, source, overrides)


def parse_scenario(data: dict, source: Source, overrides: dict[str, Any]) -> Scenario:
    top = Fields(data, "", source)
    name = top.text("name")
    if not NAME_PATTERN.fullmatch(name):
        raise top.error("name", f"got {describe(name)}, expected 1-100 letters, digits or _ . + - "
                                "(it names the result file)")
    description = top.text("description", default="")
    seed = top.number("seed", default=0, minimum=0, maximum=2**32 - 1, integer=True)
    dt_ms = top.number("dt_ms", default=0.1, positive=True, maximum=1000.0)
    method = top.text("method", default="euler", choices=METHODS)
    float_type = top.text("float", default="float64", choices=FLOAT_TYPES)

    model_fields = top.sub("model")
    kind_name = model_fields.text("kind", default="hierarchical",
                                  choices=tuple(registry.FAMILIES))
    kind: ModelKind = registry.family(kind_name)
    model = kind.parse_model(model_fields, seed)
    model_fields.close()

    protocol = parse_protocol(top.sub("protocol"), kind, model, seed, dt_ms)

    record_fields = top.sub("record", default={})
    every_ms = record_fields.number("every_ms", default=dt_ms, positive=True,
                                    maximum=MAX_STEPS * dt_ms)
    every_steps = max(1, round(every_ms / dt_ms))
    if abs(every_steps * dt_ms - every_ms) > 1e-9 * max(every_ms, dt_ms):
        raise record_fields.error("every_ms", f"got {every_ms!r}, expected a multiple of "
                                              f"dt_ms = {dt_ms}")
    laplace = record_fields.raw("laplace", default="auto")
    if not (laplace in LAPLACE_CHOICES or (isinstance(laplace, int)
                                           and not isinstance(laplace, bool) and laplace >= 1)):
        raise record_fields.error("laplace", f"got {describe(laplace)}, expected one of "
                                             f"{', '.join(map(repr, LAPLACE_CHOICES))} or a "
                                             "positive integer (every k-th sample)")
    recordable = registry.record_variables(kind)
    variables = record_fields.raw("variables",
                                  default=list(registry.record_variables(kind, model)))
    if not isinstance(variables, list) or not all(isinstance(v, str) for v in variables):
        raise record_fields.error("variables", f"expected a list of names, got "
                                               f"{describe(variables)}")
    variables = list(dict.fromkeys(variables))
    for variable in variables:
        if variable not in recordable:
            raise record_fields.error(
                "variables",
                f"unknown variable {variable!r}; expected some of "
                f"{', '.join(recordable)}",
            )
    snapshots_every = record_fields.number("snapshots_every", default=None, minimum=1,
                                           maximum=MAX_TRIALS, integer=True)
    if snapshots_every is not None and not learned_parameters(model):
        raise record_fields.error("snapshots_every", "nothing is learned in this scenario; "
                                                     "snapshots need a [model.learning] "
                                                     "mechanism")
    snapshots_limit_mb = record_fields.number("snapshots_limit_mb", default=SNAPSHOTS_LIMIT_MB,
                                              positive=True)
    checkpoint_every = record_fields.number("checkpoint_every", default=0, minimum=0,
                                            maximum=MAX_TRIALS, integer=True)
    if checkpoint_every and protocol.batch > 1:
        raise record_fields.error("checkpoint_every", f"a batched run ([protocol] batch = "
                                                      f"{protocol.batch}) writes no checkpoints; "
                                                      "expected 0, or batch = 1")
    record_fields.close()
    numerics_fields = top.sub("numerics", default={})
    numerics = Numerics(
        stability=numerics_fields.text("stability", default="refuse", choices=STABILITY_CHECKS),
        rate_limit=numerics_fields.number("rate_limit", default=RATE_LIMIT, positive=True,
                                          maximum=1e150),  # squared, it must stay finite
        memory_limit_mb=numerics_fields.number("memory_limit_mb", default=None, positive=True),
        device=numerics_fields.text("device", default=default_device(), choices=DEVICES),
    )
    numerics_fields.close()
    readouts = parse_readouts(top.sub("readouts", default={}), kind, model)
    headlines = parse_report(top.sub("report", default={}), element_names(model))
    top.raw("sweep", default={})  # the grid of ``pcsim sweep``, read by sim.sweep.grid
    top.close()
    scenario = Scenario(
        name=name,
        description=description,
        path=source.path,
        source_text=source.text,
        seed=seed,
        dt_ms=dt_ms,
        method=method,
        kind=kind,
        model=model,
        trials=protocol.trials,
        record=Recording(every_steps, tuple(variables), laplace, snapshots_every or 0,
                         snapshots_limit_mb, checkpoint_every),
        overrides=overrides,
        float_type=float_type,
        numerics=numerics,
        shuffle=protocol.shuffle,
        protocol=protocol,
        readouts=readouts,
        headlines=headlines,
    )
    batch.check(scenario, source)
    if hasattr(kind, "check"):  # a family's checks of the whole scenario
        kind.check(scenario, source)
    return scenario


def parse_readouts(fields: Fields, kind: ModelKind, model: Any) -> dict[str, Any]:
    """``[readouts.<name>]``: the settings of the readouts a scenario switches on (those that
    take settings; the others are always on)."""
    chosen = {readout.name: readout for readout in registry.readouts(kind.name)
              if readout.takes_settings}
    settings: dict[str, Any] = {}
    for name in list(fields.table):
        if name not in chosen:
            known = ", ".join(chosen) or "none"
            raise fields.error(name, f"no readout {name!r} with settings for this model kind; "
                                     f"known: {known}")
        settings[name] = chosen[name].parse(fields.sub(name), model)
    fields.close()
    return settings
