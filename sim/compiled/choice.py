"""Which device runs a scenario (``[numerics] device``), decided from the scenario alone,
before Brian2 is imported (``sim.preflight``): what the compiled device refuses whatever the
model (checkpoints, batches, a family without a compiled form). What only the build finds
(a mechanism without a compiled form) is refused when the program is built, before it runs
(``sim.compiled.context.NotCompiled``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sim.errors import ScenarioError
from sim.families.hierarchical.stimulus import noisy_input


class DeviceRefused(Exception):  # noqa: N818 - a refusal with its reason
    """``device = "standalone"`` cannot run this scenario: the reason, one line."""


def refusal(scenario: Any, resuming: bool, megabytes: float) -> str | None:
    """Why this run cannot be compiled, known from the scenario alone (None: try);
    ``megabytes``: its ``tables_mb``."""
    if resuming or scenario.record.checkpoint_every:
        return "checkpoints and --resume run on the runtime device"
    if scenario.protocol is not None and scenario.protocol.batch > 1:
        return "batched trials (protocol.batch > 1) run on the runtime device"
    if scenario.kind.name != "hierarchical":
        return f"the {scenario.kind.name} family has no compiled form yet"
    if getattr(scenario.model, "neurons", "rate") == "spiking":
        return "spiking neurons have no compiled form yet"
    if not compiler():
        return "no C++ compiler found (g++, c++ or $CXX)"
    if megabytes > TABLES_LIMIT_MB:
        return (f"its input table and monitors would take ~{megabytes:.0f} MB (more than "
                f"{TABLES_LIMIT_MB} MB)")
    return None


TABLES_LIMIT_MB = 1024
VARIABLES_PER_UNIT = 8  # per-unit state a population's monitors record, at most (sim.compiled)


def total_steps(scenario: Any) -> int:
    """The steps of the whole protocol."""
    return sum(scenario.steps(trial.duration_ms) for trial in scenario.trials)


def tables_mb(scenario: Any, steps: int | None = None) -> float:
    """What a compiled run holds beside the runtime's: the input of every step where it is
    noisy (noiseless input is each segment's two rows; ``sim.families.hierarchical.
    compiled.stimulus``), and every population's per-unit state at every sample and trial end
    (``sim.compiled.program``); ``steps``: its ``total_steps`` when known."""
    steps = total_steps(scenario) if steps is None else steps
    sizes = [level.size for level in scenario.model.levels]
    samples = steps // scenario.record.every_steps + 1 + len(scenario.trials)
    units = 2 * sum(sizes)  # beliefs and errors
    stimuli = [trial.settings.stimulus for trial in scenario.trials]
    inputs = (steps * sizes[0] if noisy_input(scenario.trials)
              else 2 * steps + 2 * sizes[0] * sum(len(stimulus.times_ms) for stimulus in stimuli))
    return 8 * (inputs + samples * units * VARIABLES_PER_UNIT) / 2**20


def compiler() -> str | None:
    """The C++ compiler Brian2's standalone build would use, if there is one."""
    import os
    import shutil

    return next(filter(None, (shutil.which(name) for name in
                              (os.environ.get("CXX", ""), "g++", "c++") if name)), None)


@dataclass(frozen=True)
class DeviceChoice:
    """The device that runs a scenario, and what its compiled tables take there (0 MB on the
    runtime device)."""

    device: str  # "runtime" or "standalone"
    tables_mb: float = 0.0


def device_choice(scenario: Any, resuming: bool) -> DeviceChoice:
    """``choose``'s answer with the size of the compiled tables, each computed once."""
    device = scenario.numerics.device
    if device == "runtime":
        return DeviceChoice("runtime")
    steps = total_steps(scenario)
    megabytes = (tables_mb(scenario, steps) if scenario.kind.name == "hierarchical"
                 else 0.0)  # a family without a compiled form (refused) has no tables
    reason = refusal(scenario, resuming, megabytes)
    if device == "standalone":
        if reason is not None:
            raise DeviceRefused(reason)
        return DeviceChoice("standalone", megabytes)
    if (reason is None and steps >= AUTO_MIN_STEPS and not learns_weights(scenario)
            and megabytes <= AUTO_TABLES_MB):
        return DeviceChoice("standalone", megabytes)
    return DeviceChoice("runtime")


def choose(scenario: Any, resuming: bool) -> str:
    """``runtime`` or ``standalone`` for this run; an explicit ``standalone`` that cannot be
    is refused (``DeviceRefused``); ``auto`` compiles what it can of ``AUTO_MIN_STEPS`` steps
    or more."""
    return device_choice(scenario, resuming).device


def learns_weights(scenario: Any) -> bool:
    """A mechanism changes the weights: the replay of a compiled run then computes F sample by
    sample with the weights in force, and ``auto`` keeps the runtime device (learning/bars,
    30,000 steps, warm: runtime 0.66 s, standalone 1.10 s)."""
    from sim import registry

    return any("weights" in registry.mechanism(name).changes
               for name in getattr(scenario.model, "mechanisms", {}))


# ``auto`` compiles runs of at least this many steps. A compiled run has a fixed cost (~0.4 s
# warm: the program's sources written and checked, the program started, the replay), the
# runtime device ~15-25 us a step on small models: measured warm on 2 loaded cores, runtime
# against standalone (s): perception/single_cause (2,000 steps) 0.64 / 1.07, hierarchy 64-16-4
# (4,000) 0.35 / 1.00, anxiety_continuous (15,000) 0.22 / 0.57, motion_prior (15,000)
# 0.88 / 0.97, unknown_noise (20,000) 2.0 / 0.36, laplace_gap (24,000) 2.2 / 0.89,
# learning/prior (50,000) 2.7 / 0.45, attention/posner (180,000) ~5 / ~0.7-1.5.
AUTO_MIN_STEPS = 20_000
# ``auto`` keeps a run whose compiled tables (``tables_mb``) would be larger on the runtime
# device, which streams its recording to the file in memory that does not grow with the run:
# a compiled program holds its whole recording until it ends (measured, 10^6 steps of a
# 64-16-4 hierarchy recorded every 10th step: 281 MB peak compiled, 174 MB on the runtime
# device; the bundled scenarios' tables are 0.1-12 MB)
AUTO_TABLES_MB = 64


def device_refused(scenario: Any, reason: str) -> ScenarioError:
    """The one line for a run that ``[numerics] device = "standalone"`` cannot compile."""
    return ScenarioError(f"{scenario.path}: numerics.device: \"standalone\" cannot run this "
                         f"scenario: {reason}; expected device = \"runtime\" (or \"auto\")")


def checked_device(scenario: Any, resuming: bool) -> str:
    """``choose``, with a refusal as the user's one line (``ScenarioError``)."""
    try:
        return choose(scenario, resuming)
    except DeviceRefused as err:
        raise device_refused(scenario, str(err)) from None
