"""Reading a discrete scenario: ``[model]`` into a ``DiscreteModel``, each trial's observations
and precisions into a ``DiscreteTrial`` (field reference: docs/discrete.md)."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import numpy as np

from sim import registry
from sim.errors import ScenarioError
from sim.families.discrete.model import (
    MAX_JOINT_STATES,
    DiscreteModel,
    DiscreteTrial,
    Factor,
    Modality,
    Observation,
)
from sim.timeline import Schedule, parse_schedule
from sim.validation import Fields, check_number, describe, to_matrix

SUM_TOLERANCE = 1e-6
MAX_NAMES = 10**6  # causes or outcomes per modality
MAX_LIKELIHOOD_ENTRIES = 5 * 10**7  # per modality: 400 MB of float64, as a hierarchical W
MAX_PRIOR_PRECISION = 1e3  # beta: keeps beta ln D a rate a unit can hold (|ln D| < 1e5)


def parse_names(fields: Fields, key: str, what: str, minimum: int) -> list[str]:
    """A list of unique names, or a count (names ``<what>0``, ``<what>1``, ...)."""
    raw = fields.raw(key)
    if isinstance(raw, int) and not isinstance(raw, bool):
        count = check_number(raw, lambda msg: fields.error(key, msg), minimum=minimum,
                             maximum=MAX_NAMES, integer=True)
        return [f"{what}{i}" for i in range(count)]
    if (not isinstance(raw, list) or not minimum <= len(raw) <= MAX_NAMES
            or not all(isinstance(name, str) and name for name in raw)):
        raise fields.error(key, f"expected a list of {minimum} to {MAX_NAMES} names (or a "
                                f"count), got {describe(raw)}")
    repeated = sorted(name for name, count in Counter(raw).items() if count > 1)
    if repeated:
        raise fields.error(key, f"names must be unique; {repeated[0]!r} appears twice")
    return list(raw)


def check_distribution(values: np.ndarray, fail, what: str, strict: bool) -> np.ndarray:
    """Entries > 0 (``strict``) or >= 0 that sum to 1 (within 1e-6); returned renormalised."""
    bad = values <= 0 if strict else values < 0
    if bad.any():
        index = int(np.argmax(bad))
        hint = (" (a zero would make ln 0 = -inf: a cause that no evidence can revive; "
                "use a small positive number)" if strict else "")
        raise fail(f"{what} entry {index} is {float(values[index])!r}; expected "
                   f"{'positive' if strict else 'non-negative'} probabilities{hint}")
    total = values.sum()
    if abs(total - 1.0) > SUM_TOLERANCE:
        raise fail(f"{what} sums to {total:.6g}; expected probabilities summing to 1")
    return values / total


def to_tensor(raw: Any, shape: tuple[int, ...], fail) -> np.ndarray:
    """Nested lists of numbers with exactly ``shape`` (outcomes, K_1, ..., K_F)."""
    def check(value: Any, depth: int, where: str) -> None:
        if depth == len(shape):
            check_number(value, lambda msg: fail(f"{where}: {msg}"))
            return
        if not isinstance(value, list) or len(value) != shape[depth]:
            got = f"a list of {len(value)}" if isinstance(value, list) else describe(value)
            raise fail(f"{where or 'A'}: expected a list of {shape[depth]} (A has shape "
                       f"{' x '.join(map(str, shape))}: outcomes, then the causes of each "
                       f"factor), got {got}")
        for index, item in enumerate(value):
            check(item, depth + 1, f"{where or 'A'}[{index}]")

    check(raw, 0, "")
    return np.asarray(raw, dtype=float)


def parse_likelihood(fields: Fields, outcomes: list[str], factors: list[Factor],
                     rng: np.random.Generator) -> np.ndarray:
    """A: p(outcome | joint cause), outcomes x K_1 x ... x K_F (outcomes x causes for one
    factor), every entry positive, summing to 1 over outcomes for every joint cause."""
    shape = (len(outcomes), *(len(factor.causes) for factor in factors))
    entries = math.prod(shape)
    if entries > MAX_LIKELIHOOD_ENTRIES:
        causes = " x ".join(map(str, shape[1:]))
        raise fields.error("outcomes", f"{shape[0]} outcomes x {causes} causes make a likelihood "
                                       f"A of {entries:.3g} entries, over the limit of "
                                       f"{MAX_LIKELIHOOD_ENTRIES:.0e} per modality; use fewer "
                                       "outcomes or causes")
    raw = fields.raw("likelihood")
    if isinstance(raw, dict):
        spec = fields.sub("likelihood")
        spec.text("kind", choices=("random",))
        concentration = spec.number("concentration", default=1.0, positive=True)
        spec.close()
        columns = rng.dirichlet(np.full(shape[0], concentration), size=entries // shape[0]).T
        return columns.reshape(shape)

    def fail(message: str) -> ScenarioError:
        layout = ("one row per outcome, one column per cause" if len(factors) == 1 else
                  "indexed [outcome][" + "][".join(f.name for f in factors) + "]")
        return fields.error("likelihood", f"{message} (A: {layout}; outcomes "
                                          f"{describe(outcomes)})")

    likelihood = (to_matrix(raw, shape, fail) if len(factors) == 1
                  else to_tensor(raw, shape, fail))
    bad = likelihood <= 0
    if bad.any():
        where = np.unravel_index(int(np.argmax(bad)), shape)
        raise fields.error(
            "likelihood", f"A{list(map(int, where))} = p({outcomes[where[0]]} | "
            f"{_joint_name(factors, where[1:])}) is {float(likelihood[where])!r}; expected a "
            "positive probability (ln 0 = -inf has no finite rate; use a small number such "
            "as 1e-6)")
    totals = likelihood.sum(axis=0)
    off = np.abs(totals - 1.0) > SUM_TOLERANCE
    if off.any():
        where = np.unravel_index(int(np.argmax(off)), totals.shape)
        column = where[0] if len(factors) == 1 else list(map(int, where))
        raise fields.error(
            "likelihood", f"column {column} ({_joint_name(factors, where)}) sums to "
            f"{float(totals[where]):.6g}; each column is p(outcome | cause) and must sum to 1 "
            f"over the {len(outcomes)} outcomes")
    return likelihood / totals


def _joint_name(factors: list[Factor], index: tuple) -> str:
    return ", ".join(factor.causes[int(k)] for factor, k in zip(factors, index, strict=True))


def parse_prior(fields: Fields, size: int) -> np.ndarray:
    """D: one positive probability per cause (uniform when absent)."""
    if not fields.has("prior"):
        return np.full(size, 1.0 / size)
    raw = fields.raw("prior")
    if not isinstance(raw, list) or len(raw) != size:
        got = f"a list of {len(raw)}" if isinstance(raw, list) else describe(raw)
        raise fields.error("prior", f"expected a list of {size} probabilities, one per "
                                    f"cause, got {got}")
    prior = fields.vector("prior", size)
    return check_distribution(prior, lambda msg: fields.error("prior", msg), "prior D",
                              strict=True)


def parse_factors(fields: Fields) -> tuple[list[Factor], int]:
    """``causes`` (+ ``prior``): one factor; or ``[[model.factors]]``, each with ``name``,
    ``causes`` and ``prior``. Several factors' joint causes are limited by
    ``max_joint_states`` (exact Bayes over them is stored in every result)."""
    if not fields.has("factors"):
        causes = parse_names(fields, "causes", "cause", minimum=2)
        return [Factor("causes", causes, parse_prior(fields, len(causes)))], MAX_JOINT_STATES
    if fields.has("causes") or fields.has("prior"):
        key = "causes" if fields.has("causes") else "prior"
        raise fields.error(key, "give the causes and prior of each of [[model.factors]], "
                                "not of [model] as well")
    limit = fields.number("max_joint_states", default=MAX_JOINT_STATES, minimum=1,
                          maximum=MAX_LIKELIHOOD_ENTRIES, integer=True)
    factors: list[Factor] = []
    for index, table in enumerate(fields.subs("factors")):
        name = table.text("name", default=f"factor{index}")
        if not name.isidentifier() or any(f.name == name for f in factors):
            raise table.error("name", f"expected a unique identifier, got {name!r}")
        causes = parse_names(table, "causes", "cause", minimum=2)
        factors.append(Factor(name, causes, parse_prior(table, len(causes))))
        table.close()
    joint = math.prod(len(factor.causes) for factor in factors)
    if joint > limit:
        raise fields.error("factors", f"{' x '.join(str(len(f.causes)) for f in factors)} = "
                                      f"{joint} joint causes is over max_joint_states = "
                                      f"{limit} (exact Bayes over them goes in every result); "
                                      "raise [model] max_joint_states to run it")
    return factors, limit


def parse_model(fields: Fields, seed: int) -> DiscreteModel:
    if fields.text("neurons", default="rate") != "rate":  # issue 25: hierarchical only, so far
        raise fields.error("neurons", "the discrete family has no spiking form yet; expected "
                                      "neurons = \"rate\"")
    tau = fields.number("tau_belief_ms", default=10.0, positive=True)
    factors, limit = parse_factors(fields)
    modalities: list[Modality] = []
    for index, table in enumerate(fields.subs("modalities")):
        name = table.text("name", default=f"modality{index}")
        if not name.isidentifier() or name == "time_ms" or any(m.name == name
                                                               for m in modalities):
            raise table.error("name", f"expected a unique identifier other than time_ms, "
                                      f"got {name!r}")
        outcomes = parse_names(table, "outcomes", "outcome", minimum=2)
        rng = np.random.default_rng([seed, 3, index])
        likelihood = parse_likelihood(table, outcomes, factors, rng)
        precision = table.number("precision", default=1.0, positive=True)
        table.close()
        modalities.append(Modality(name, outcomes, likelihood, precision))
    return DiscreteModel(factors, modalities, tau, limit,
                         registry.read_mechanisms(fields, "discrete"))


def parse_outcome(value: Any, modality: Modality, fail) -> tuple[np.ndarray, int | None]:
    """A name, an index (from 0) or a probability vector over the modality's outcomes."""
    count = len(modality.outcomes)
    category = None
    if isinstance(value, str):
        if value not in modality.outcomes:
            raise fail(f"unknown outcome {value!r}; {modality.name} has "
                       f"{', '.join(modality.outcomes)}")
        category = modality.outcomes.index(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        if not 0 <= value < count:
            raise fail(f"outcome index {value} is out of range; {modality.name} has {count} "
                       f"outcomes (0..{count - 1})")
        category = value
    elif isinstance(value, list):
        if len(value) != count:
            raise fail(f"expected a probability for each of the {count} outcomes of "
                       f"{modality.name}, got a list of {len(value)}")
        for item in value:
            check_number(item, fail)
        outcome = np.asarray(value, dtype=float)
        return check_distribution(outcome, fail, "outcome", strict=False), None
    else:
        raise fail(f"expected an outcome name, index or list of probabilities, got "
                   f"{describe(value)}")
    outcome = np.zeros(count)
    outcome[category] = 1.0
    return outcome, category


def parse_trial(fields: Fields, model: DiscreteModel, duration_ms: float) -> DiscreteTrial:
    names = [m.name for m in model.modalities]
    precision = np.array([m.precision for m in model.modalities])
    schedules: dict[int, Schedule] = {}
    raw = fields.raw("precision", default={})
    if isinstance(raw, dict):
        table = fields.sub("precision", default={})
        for name in list(raw):
            if name not in names:
                raise table.error(name, f"no modality {name!r}; expected one of "
                                        f"{', '.join(names)}")
            index = names.index(name)
            if isinstance(raw[name], dict):  # gamma steps within the trial
                schedules[index] = parse_schedule(table.sub(name), 1, duration_ms)
                precision[index] = schedules[index].values[0, 0]
            else:
                precision[index] = table.number(name, positive=True)
    else:
        precision[:] = fields.number("precision", positive=True)

    observations: list[Observation] = []
    if fields.raw("observations", default=[]) != []:
        for table in fields.subs("observations"):
            time_ms = table.number("time_ms", minimum=0.0)
            if time_ms >= duration_ms:
                raise table.error("time_ms", f"{time_ms} ms is not before the trial's end "
                                             f"(duration_ms = {duration_ms})")
            found = 0
            for index, modality in enumerate(model.modalities):
                value = table.raw(modality.name, default=None)
                if value is None:
                    continue
                outcome, category = parse_outcome(
                    value, modality, lambda msg, key=modality.name, t=table: t.error(key, msg))
                observations.append(Observation(time_ms, index, outcome, category))
                found += 1
            table.close()
            if not found:
                raise table.source.error(table.path, f"expected an outcome for at least one "
                                                     f"modality ({', '.join(names)})")
    observations.sort(key=lambda obs: obs.time_ms)
    prior_precision = None
    if fields.has("prior_precision"):
        prior_precision = fields.number("prior_precision", positive=True,
                                        maximum=MAX_PRIOR_PRECISION)
        if model.mean_field:
            raise fields.error("prior_precision", "a tempered prior needs a single-factor "
                                                  "model ([model] causes and prior), not "
                                                  "[[model.factors]]")
    return DiscreteTrial(observations, precision, model, prior_precision, schedules)


def describe_model(model: DiscreteModel) -> dict:
    if model.mean_field:
        causes: dict = {"factors": [{"name": f.name, "causes": f.causes,
                                     "prior": f.prior.tolist()} for f in model.factors],
                        "max_joint_states": model.max_joint_states}
    else:
        causes = {"causes": model.causes, "prior": model.prior.tolist()}
    return {
        "kind": "discrete",
        "tau_belief_ms": model.tau_belief_ms,
        **causes,
        **registry.describe_mechanisms("discrete", model.mechanisms),
        "modalities": [
            {"name": m.name, "outcomes": m.outcomes, "likelihood": m.likelihood.tolist(),
             "precision": m.precision}
            for m in model.modalities
        ],
    }
