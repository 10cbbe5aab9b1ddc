"""The ``discrete`` model family: a categorical hidden cause inferred by a belief circuit.

Reads ``[model]`` (causes, prior D, modalities with likelihoods A and precisions gamma) into a
``DiscreteModel``, each trial's observations and precisions into ``DiscreteTrial``, and builds the
running network: the belief, error and pool populations of ``circuits.discrete``, the delivery
of observations and the streamed recording of Q, eps, F and the surprise. Scenario fields and the
HDF5 layout: docs/discrete.md.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from brian2 import NetworkOperation

from circuits import schedule
from circuits.discrete import CategoricalCircuit, sensory_message
from sim.plots import mark_trials, register
from sim.reference import categorical
from sim.results import ResultWriter, write_array
from sim.scenario import Scenario, Trial
from sim.simulation import Simulation
from sim.stability import analyse_discrete
from sim.validation import Fields, ScenarioError, check_number, describe, to_matrix

SUM_TOLERANCE = 1e-6
MAX_NAMES = 10**6  # causes or outcomes per modality


# --- the model ----------------------------------------------------------------------------------

@dataclass
class Modality:
    name: str
    outcomes: list[str]
    likelihood: np.ndarray  # A: outcomes x causes, columns sum to 1
    precision: float  # gamma, the default for every trial


@dataclass
class DiscreteModel:
    causes: list[str]
    prior: np.ndarray  # D
    modalities: list[Modality]
    tau_belief_ms: float

    def modality(self, name: str) -> int:
        return [m.name for m in self.modalities].index(name)


@dataclass(frozen=True)
class Observation:
    time_ms: float
    modality: int
    outcome: np.ndarray  # a probability vector over the modality's outcomes
    category: int | None  # the outcome index, when the observation is one category

    def describe(self, model: DiscreteModel) -> dict:
        modality = model.modalities[self.modality]
        value = (modality.outcomes[self.category] if self.category is not None
                 else self.outcome.tolist())
        return {"time_ms": self.time_ms, modality.name: value}


@dataclass
class DiscreteTrial:
    observations: list[Observation]
    precision: np.ndarray  # gamma per modality during this trial
    model: DiscreteModel = field(repr=False)

    def describe(self) -> dict:
        return {
            "precision": {m.name: float(g) for m, g in zip(self.model.modalities,
                                                           self.precision, strict=True)},
            "observations": [obs.describe(self.model) for obs in self.observations],
        }


# --- reading ------------------------------------------------------------------------------------

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


def parse_likelihood(fields: Fields, outcomes: list[str], causes: list[str],
                     rng: np.random.Generator) -> np.ndarray:
    shape = (len(outcomes), len(causes))
    max_entries = 5 * 10**7  # 400 MB of float64, as sim.hierarchical.MAX_WEIGHT_ENTRIES
    if shape[0] * shape[1] > max_entries:
        raise fields.error("outcomes", f"{shape[0]} outcomes x {shape[1]} causes make a "
                                       f"likelihood A of {shape[0] * shape[1]:.3g} entries, "
                                       f"over the limit of {max_entries:.0e} per modality; "
                                       "use fewer outcomes or causes")
    raw = fields.raw("likelihood")
    if isinstance(raw, dict):
        spec = fields.sub("likelihood")
        spec.text("kind", choices=("random",))
        concentration = spec.number("concentration", default=1.0, positive=True)
        spec.close()
        return rng.dirichlet(np.full(shape[0], concentration), size=shape[1]).T

    def fail(message: str) -> ScenarioError:
        return fields.error("likelihood", f"{message} (A: one row per outcome "
                                          f"{describe(outcomes)}, one column per cause)")

    likelihood = to_matrix(raw, shape, fail)
    for k, cause in enumerate(causes):
        column = likelihood[:, k]
        if np.any(column <= 0):
            o = int(np.argmax(column <= 0))
            raise fields.error(
                "likelihood", f"A[{o}][{k}] = p({outcomes[o]} | {cause}) is {float(column[o])!r}; "
                "expected a positive probability (ln 0 = -inf has no finite rate; use a small "
                "number such as 1e-6)")
        total = column.sum()
        if abs(total - 1.0) > SUM_TOLERANCE:
            raise fields.error(
                "likelihood", f"column {k} ({cause}) sums to {total:.6g}; each column is "
                f"p(outcome | cause) and must sum to 1 over the {len(outcomes)} outcomes")
        likelihood[:, k] = column / total
    return likelihood


def parse_model(fields: Fields, seed: int) -> DiscreteModel:
    tau = fields.number("tau_belief_ms", default=10.0, positive=True)
    causes = parse_names(fields, "causes", "cause", minimum=2)
    size = len(causes)
    if fields.has("prior"):
        raw = fields.raw("prior")
        if not isinstance(raw, list) or len(raw) != size:
            got = f"a list of {len(raw)}" if isinstance(raw, list) else describe(raw)
            raise fields.error("prior", f"expected a list of {size} probabilities, one per "
                                        f"cause, got {got}")
        prior = fields.vector("prior", size)
        prior = check_distribution(prior, lambda msg: fields.error("prior", msg), "prior D",
                                   strict=True)
    else:
        prior = np.full(size, 1.0 / size)
    modalities: list[Modality] = []
    for index, table in enumerate(fields.subs("modalities")):
        name = table.text("name", default=f"modality{index}")
        if not name.isidentifier() or name == "time_ms" or any(m.name == name
                                                               for m in modalities):
            raise table.error("name", f"expected a unique identifier other than time_ms, "
                                      f"got {name!r}")
        outcomes = parse_names(table, "outcomes", "outcome", minimum=2)
        rng = np.random.default_rng([seed, 3, index])
        likelihood = parse_likelihood(table, outcomes, causes, rng)
        precision = table.number("precision", default=1.0, positive=True)
        table.close()
        modalities.append(Modality(name, outcomes, likelihood, precision))
    return DiscreteModel(causes, prior, modalities, tau)


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
    raw = fields.raw("precision", default={})
    if isinstance(raw, dict):
        table = fields.sub("precision", default={})
        for name in list(raw):
            if name not in names:
                raise table.error(name, f"no modality {name!r}; expected one of "
                                        f"{', '.join(names)}")
            precision[names.index(name)] = table.number(name, positive=True)
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
    return DiscreteTrial(observations, precision, model)


def describe_model(model: DiscreteModel) -> dict:
    return {
        "kind": "discrete",
        "tau_belief_ms": model.tau_belief_ms,
        "causes": model.causes,
        "prior": model.prior.tolist(),
        "modalities": [
            {"name": m.name, "outcomes": m.outcomes, "likelihood": m.likelihood.tolist(),
             "precision": m.precision}
            for m in model.modalities
        ],
    }


# --- running ------------------------------------------------------------------------------------

@dataclass
class Pending:
    step: int
    message: np.ndarray  # ln Ã[o, k] under this trial's precision
    observation: Observation


class DiscreteSimulation(Simulation):
    """The Brian2 objects of one run, the observation schedule and the per-trial results."""

    trial_units: ClassVar[dict[str, str]] = {**Simulation.trial_units, "surprise": "nat"}

    def __init__(self, scenario: Scenario, writer: ResultWriter) -> None:
        super().__init__(scenario, writer, schedule.DISCRETE_RECORD)
        model: DiscreteModel = scenario.model
        self.model = model
        self.circuit = CategoricalCircuit(np.log(model.prior), model.tau_belief_ms, self.clock,
                                          scenario.method)
        self.log_likelihoods = [np.log(m.likelihood) for m in model.modalities]
        self.observe_operation = NetworkOperation(
            self._observe, when=schedule.SLOT, order=schedule.STIMULUS, clock=self.clock,
            name="observations")
        self.objects = [*self.circuit.objects, self.observe_operation, self.record_operation]
        self.evidence: list[categorical.Observation] = []  # since the last reset, for Bayes
        self.surprise = 0.0
        self.delivered: list[tuple[float, int, Observation, float]] = []
        self._setup_recording()

    # recording ---------------------------------------------------------------------------------
    def _setup_recording(self) -> None:
        variables = set(self.scenario.record.variables)
        writer, model, circuit = self.writer, self.model, self.circuit
        names = np.array(model.causes, dtype=object)
        causes = writer.file.require_group("causes")
        causes.attrs["names"] = names
        write_array(causes, "prior", model.prior, names=names)
        if "belief" in variables:
            writer.stream("causes/belief", len(names), lambda: circuit.belief, names=names)
        if "error" in variables:
            writer.stream("causes/error", len(names), lambda: circuit.error, units="nat",
                          names=names)
        if "free_energy" in variables:
            writer.stream("free_energy", None, lambda: circuit.free_energy, units="nat",
                          approximation="exact (categorical)")
        if "surprise" in variables:
            writer.stream("surprise", None, lambda: self.surprise, units="nat")
        for modality in model.modalities:
            group = writer.file.require_group(f"modalities/{modality.name}")
            group.attrs["outcomes"] = np.array(modality.outcomes, dtype=object)
            group.attrs["precision"] = modality.precision
            write_array(group, "likelihood", modality.likelihood, causes=names,
                        outcomes=np.array(modality.outcomes, dtype=object))

    def before_sample(self) -> None:
        self.circuit.readout()

    # observations ------------------------------------------------------------------------------
    def _observe(self) -> None:
        self.until_next -= 1
        if self.until_next:
            return
        step = self.pending[self.next_index].step
        sensory = self.circuit.sensory
        while self.next_index < len(self.pending) and self.pending[self.next_index].step == step:
            item = self.pending[self.next_index]
            sensory += item.message
            obs = item.observation
            gamma = float(self.trial.settings.precision[obs.modality])
            outcome = obs.category if obs.category is not None else obs.outcome
            self.evidence.append((self.model.modalities[obs.modality].likelihood, gamma, outcome))
            self.delivered.append((self.clock_time(), self.trial.index, obs, gamma))
            self.next_index += 1
        self.surprise = categorical.surprise(self.circuit.log_prior + sensory)
        if self.next_index < len(self.pending):
            self.until_next = self.pending[self.next_index].step - step
        else:
            self.observe_operation.active = False

    # trials ------------------------------------------------------------------------------------
    def start_trial(self, trial: Trial) -> None:
        settings: DiscreteTrial = trial.settings
        if trial.reset:
            self.circuit.reset()
            self.evidence = []
            self.surprise = 0.0
        super().start_trial(trial)
        last = self.scenario.steps(trial.duration_ms) - 1
        self.pending = [
            Pending(min(round(obs.time_ms / self.scenario.dt_ms), last),
                    sensory_message(self.log_likelihoods[obs.modality], obs.outcome,
                                    settings.precision[obs.modality]),
                    obs)
            for obs in settings.observations
        ]
        self.next_index = 0
        self.until_next = self.pending[0].step + 1 if self.pending else 0
        self.observe_operation.active = bool(self.pending)

    def end_trial(self, trial: Trial) -> None:
        self.circuit.readout()  # Q, eps and F of the final state
        exact, surprise = categorical.bayes(self.model.prior, self.evidence)
        row = {
            **self.trial_row(trial),
            "final_free_energy": self.circuit.free_energy,
            "surprise": surprise,
            "final_belief": self.circuit.belief.copy(),
            "exact_posterior": exact,
        }
        for modality, gamma in zip(self.model.modalities, trial.settings.precision,
                                   strict=True):
            row[f"precision/{modality.name}"] = float(gamma)
        self.trial_rows.append(row)

    def finish(self) -> None:
        file = self.writer.file
        self.write_trials(names=np.array(self.model.causes, dtype=object))
        for index, modality in enumerate(self.model.modalities):
            rows = [item for item in self.delivered if item[2].modality == index]
            group = file.require_group(f"observations/{modality.name}")
            group.attrs["outcomes"] = np.array(modality.outcomes, dtype=object)
            outcomes = np.array([obs.outcome for _, _, obs, _ in rows]).reshape(
                len(rows), len(modality.outcomes))
            write_array(group, "time", np.array([t for t, _, _, _ in rows], dtype=float),
                        units="s")
            write_array(group, "trial", np.array([i for _, i, _, _ in rows], dtype=np.int64))
            write_array(group, "outcome", outcomes)
            write_array(group, "precision", np.array([g for _, _, _, g in rows], dtype=float))


class DiscreteKind:
    name = "discrete"
    record_variables = ("belief", "error", "free_energy", "surprise")

    parse_model = staticmethod(parse_model)
    parse_trial = staticmethod(parse_trial)
    describe = staticmethod(describe_model)
    stability = staticmethod(analyse_discrete)  # sim.stability.preflight

    def build(self, scenario: Scenario, writer: ResultWriter) -> DiscreteSimulation:
        return DiscreteSimulation(scenario, writer)

    def summary(self, simulation: DiscreteSimulation) -> list[str]:
        causes = simulation.model.causes
        lines = []
        for row in simulation.trial_rows:
            top = np.argsort(row["exact_posterior"])[::-1][:3]
            beliefs = ", ".join(f"{causes[k]} {row['final_belief'][k]:.3f} "
                                f"(exact {row['exact_posterior'][k]:.3f})" for k in top)
            lines.append(f"  {row['name']}: Q = {beliefs}; F = {row['final_free_energy']:.4f} "
                         f"nat, -ln p(o) = {row['surprise']:.4f} nat")
        return lines


KIND = DiscreteKind()


# --- plotting -----------------------------------------------------------------------------------

MAX_SHOWN = 12


def observation_labels(result) -> dict[float, list[str]]:
    """``modality: outcome`` labels of every observation, by time (ms)."""
    labels: dict[float, list[str]] = {}
    for path in sorted(p for p in result.datasets if p.startswith("observations/")
                       and p.endswith("/time")):
        modality = path.split("/")[1]
        outcomes = result.group_attrs[f"observations/{modality}"]["outcomes"]
        for t, outcome in zip(result[path] * 1e3, result[f"observations/{modality}/outcome"],
                              strict=True):
            label = (str(outcomes[int(np.argmax(outcome))]) if outcome.max() == 1.0
                     else "p=" + ",".join(f"{x:.2g}" for x in outcome))
            labels.setdefault(float(t), []).append(f"{modality}: {label}")
    return labels


@register("discrete")
def plot_discrete(result):
    """Q over time as stacked areas, F above the surprise, final Q beside the exact posterior."""
    import matplotlib.pyplot as plt

    names = [str(n) for n in result.group_attrs["causes"]["names"]]
    trials = result.trials
    exact = trials.get("exact_posterior")
    if len(names) > MAX_SHOWN and exact is not None:
        keep = np.sort(np.argsort(-exact.max(axis=0))[: MAX_SHOWN - 1])
    else:
        keep = np.arange(min(len(names), MAX_SHOWN))
    colors = plt.get_cmap("tab20" if len(keep) > 10 else "tab10").colors
    figure = plt.figure(figsize=(12, 8))
    grid = figure.add_gridspec(3, 2, width_ratios=[3, 1.2], height_ratios=[1.5, 1, 0.6])
    time_ms = result.time * 1e3

    axis_q = figure.add_subplot(grid[0, 0])
    if "causes/belief" in result:
        beliefs = result["causes/belief"]
        layers = [beliefs[:, k] for k in keep]
        labels = [names[k] for k in keep]
        if len(keep) < len(names):
            layers.append(np.clip(1.0 - np.sum(layers, axis=0), 0.0, 1.0))
            labels.append(f"{len(names) - len(keep)} others")
        stack = axis_q.stackplot(time_ms, layers, labels=labels, colors=colors, alpha=0.9)
        axis_q.set_ylim(0, 1)
        axis_q.legend(stack[::-1], labels[::-1], loc="upper left", bbox_to_anchor=(1.01, 1.0),
                      fontsize=8, frameon=False)
    marks = observation_labels(result)
    for t, texts in marks.items():
        axis_q.axvline(t, color="black", lw=0.6, alpha=0.5)
        if len(marks) <= 40:
            axis_q.text(t, 1.01, "\n".join(texts), rotation=60, fontsize=7, ha="left",
                        va="bottom", transform=axis_q.get_xaxis_transform())
    axis_q.set_ylabel("belief Q over causes")
    mark_trials(axis_q, result)

    axis_f = figure.add_subplot(grid[1, 0], sharex=axis_q)
    axis_gap = figure.add_subplot(grid[2, 0], sharex=axis_q)
    if "free_energy" in result:
        axis_f.plot(time_ms, result.free_energy, color="black", lw=1.4, label="F")
    if "surprise" in result:
        axis_f.plot(time_ms, result["surprise"], color="tab:red", lw=1.2, ls="--",
                    label="surprise -ln p(o)")
        if "free_energy" in result:
            gap = result.free_energy - result["surprise"]
            axis_gap.semilogy(time_ms, np.maximum(gap, 1e-16), color="tab:purple", lw=1.0)
    axis_f.set_ylabel("nat")
    axis_f.legend(fontsize=8, loc="upper left")
    axis_gap.set_ylabel("F - surprise\n= KL (nat)", fontsize=8)
    axis_gap.set_xlabel("time (ms)")
    for axis in (axis_f, axis_gap):
        mark_trials(axis, result)

    shown_trials = list(range(len(trials.get("name", []))))[-4:]
    if shown_trials and exact is not None:
        bars = grid[:, 1].subgridspec(len(shown_trials), 1, hspace=0.5)
        y = np.arange(len(keep))
        for row, trial in enumerate(shown_trials):
            axis = figure.add_subplot(bars[row, 0])
            axis.barh(y - 0.2, trials["final_belief"][trial][keep], height=0.4,
                      color="tab:blue", label="final Q")
            axis.barh(y + 0.2, exact[trial][keep], height=0.4, color="0.6",
                      label="exact posterior")
            axis.set_yticks(y, [names[k] for k in keep], fontsize=7)
            axis.invert_yaxis()
            axis.set_xlim(0, min(1.0, 1.15 * max(exact[trial][keep].max(),
                                                 trials["final_belief"][trial][keep].max())))
            axis.locator_params(axis="x", nbins=4)
            axis.tick_params(axis="x", labelsize=7)
            axis.set_title(str(trials["name"][trial]), fontsize=9)
            if row == 0:
                axis.legend(fontsize=7, loc="lower right")
    figure.suptitle(f"{result.attrs['scenario_name']} (seed {result.seed})")
    figure.tight_layout()
    return figure
