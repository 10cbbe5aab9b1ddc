r"""Learned covariance: error units with inhibitory interneurons whose weights are Sigma.

Bogacz (2017, section 5): a level's prediction error d = s - p (signal minus prediction) has
covariance Sigma, and its term of F is

.. math::

    F_l = \tfrac12 d^\top \Sigma^{-1} d + \tfrac12 \ln|\Sigma| + \tfrac{n}{2}\ln 2\pi

(``sim.families.hierarchical.free_energy`` with the full precision Pi = Sigma^{-1}). As for the
plain error units (``circuits.error``), 1/2 d' Sigma^{-1} d = max_eps eps' d - 1/2 eps' Sigma
eps, whose gradient in eps is d - Sigma eps. Each error unit is paired with an inhibitory
interneuron e that computes the product Sigma eps through its lateral weights Sigma (so no unit
divides by a variance): the error units ascend the bracket with e in place of Sigma eps, and
the interneurons relax to Sigma eps,

.. math::

    \tau_\varepsilon \frac{d\varepsilon}{dt} = s - p - e, \qquad
    \tau_\varepsilon \frac{de}{dt} = \Sigma\,\varepsilon - e

(Bogacz's d eps/dt = phi - g - e, de/dt = Sigma eps - e, time in units of tau_eps). At the
fixed point e = s - p and eps = Sigma^{-1} (s - p): the level's precision-weighted error with
the full precision matrix Sigma^{-1}, another circuit for the same precision.

**Learning Sigma.** -dF/dSigma = 1/2 (Sigma^{-1} d d' Sigma^{-1} - Sigma^{-1})
= 1/2 (eps eps' - Sigma^{-1}) at the fixed point. Multiplied on the right by 2 Sigma (positive
definite: the direction still descends F, tr(G G Sigma) >= 0 for symmetric G) and with
eps' Sigma = e' there,

.. math::

    \tau_\Sigma \frac{d\Sigma}{dt} = \varepsilon\, e^\top - I

Bogacz's rule dSigma = alpha (eps e - 1): local, the product of the error unit's and the
interneuron's rates, minus a constant decay. Over trials it settles where <eps e'> = I, i.e.
Sigma^{-1} <d d'> = I: Sigma = <d d'>, the second moment of the errors about the prediction
(their covariance when the prediction is their mean). Sigma is symmetric only on average
(eps e' is not), and any asymmetry decays at the same rate as the rest (linearised around
Sigma = C, d(dSigma)/dt = -C^{-1} dSigma / tau_Sigma); F takes Pi = Sigma^{-1}'s symmetric part.

Sigma learns in continuous time, while eps and e move (Bogacz's exercise applies
alpha (eps e - 1) once per trial, from the trial's end state): over a trial of duration T
(state reset at its start) Sigma changes by about T / tau_Sigma (eps e - 1), so
**tau_Sigma = T / alpha** gives his learning rate alpha per trial. The transient at the trial's
start enters the average: with 20 tau_eps per trial and Sigma near 2, the mean of eps e over
the trial is 1.3% above its end value (the interneuron loop overshoots), so Sigma settles 1-2%
above <d d'> (learning/variance, seed 5: mean Sigma over trials 500-1000 2.302, Bogacz's
per-trial loop on the same draws 2.256).

The interneurons are a relaxing circuit: the scenario's errors must be ``relaxing``. Sigma
lives in a population of its own, ``covariance_<level>`` (n x n units, entry (i, j) at unit
i n + j: ``covariance``), with the learning switch of the trial running (``learning``: 1, or 0
in a phase that does not learn Sigma, ``learning(settings, context, on)``). On the runtime
device two NumPy operations work on that population's arrays in place: the product Sigma eps
(``lateral`` is delivered before the error units move, ``circuits.schedule.DELIVER_TO_ERRORS``)
and the learning (``COVARIANCE_ORDER``, after the error units moved), which persists across
trials and, switched off, leaves Sigma bitwise unchanged. On the compiled device
(``sim.compiled``) the same two steps are compiled code (``circuits.covariance_compiled``) and
Sigma's population is cloned, recorded and replayed like the family's own, so F, the streams,
the trial rows and the outputs read the same arrays on both devices.

Scenario: ``[model.covariance]`` with ``levels`` (names of levels below the top; required),
``tau_ms`` (tau_Sigma; absent: Sigma is held at its initial value) and ``initial`` (Sigma at
the start: a number times the identity, or an n x n symmetric positive definite matrix;
default: the level's configured 1 / precision on the diagonal). Recorded:
``levels/<name>/covariance`` (trials x n x n, Sigma at each trial's end), and the level's
``precision`` shows the diagonal of Sigma^{-1}.

Step bounds: the interneuron loop's largest step at each eigenvalue of Sigma, per integration
method (``circuits.covariance_bound``); the learning flow relaxes at rate 1/sigma_min per
tau_Sigma.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.linalg import blas

from circuits import schedule
from circuits.claims import Claim, claims_on
from circuits.covariance_bound import loop_step_bound
from circuits.mechanism import (
    BuildContext,
    FlowBound,
    Mechanism,
    MemoryPart,
    Piece,
    Population,
    SampledTerms,
    StartState,
    unknown_name,
)
from circuits.naming import level_key

ERROR_FLOW = "derror/dt = (signal - prediction - interneuron) / tau_error : 1"
INTERNEURON = """
dinterneuron/dt = (lateral - interneuron) / tau_error : 1
lateral : 1
"""
STATE = """
covariance : 1  # Sigma, entry (i, j) at unit i n + j
learning : 1  # 1 while the trial learns Sigma, 0 in a phase that does not
"""
COVARIANCE_ORDER = schedule.ERRORS + 1  # Sigma learns once the error units have moved
WORKING_MATRICES = 6  # n x n matrices in use beside those kept: Sigma, Pi, F's Hessian, ...


@dataclass(frozen=True)
class Settings:
    levels: tuple[str, ...]
    tau_ms: float | None  # None: Sigma held at its initial value
    initial: np.ndarray | None  # a number (times I) or a matrix; None: 1 / precision
    # what ``check`` resolves against the model: Sigma at the start by level index, tau_eps
    resolved: dict = field(default_factory=dict, compare=False)


@dataclass
class Circuit:
    """One level's interneuron circuit: the population that holds its Sigma and learning
    switch (``state``; ``covariance`` is its n x n view, ``learning`` its switch array), the
    error group's arrays it reads, and Sigma's learning rate per step (None: held)."""

    index: int
    name: str
    state: Any
    error: np.ndarray
    interneuron: np.ndarray
    lateral: np.ndarray
    rate: float | None
    snapshots: list = field(default_factory=list)
    trials: int = 0
    covariance: np.ndarray = field(init=False)
    learning: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        n = len(self.error)
        self.covariance = self.state.variables["covariance"].get_value().reshape(n, n)
        self.learning = self.state.variables["learning"].get_value()

    def deliver(self) -> None:
        np.dot(self.covariance, self.error, out=self.lateral)

    def learn(self, rate: float) -> None:
        """Sigma += rate (eps e' - I), in place (BLAS ger on Sigma', which is Fortran-ordered)."""
        ger = blas.dger if self.covariance.dtype == np.float64 else blas.sger
        ger(rate, self.interneuron, self.error, a=self.covariance.T, overwrite_a=True)
        self.covariance.flat[::len(self.error) + 1] -= rate

    def precision(self) -> np.ndarray:
        """Pi = Sigma^{-1}, symmetrised (Sigma is symmetric on average only)."""
        return symmetric_inverse(self.covariance)


def symmetric_inverse(covariance: np.ndarray) -> np.ndarray:
    """Sigma^{-1} symmetrised, (inv + inv') / 2: of one matrix, or of each of a stack."""
    inverse = np.linalg.inv(np.asarray(covariance, dtype=float))
    return (inverse + np.swapaxes(inverse, -1, -2)) / 2


def initial_covariance(settings: Settings, level) -> np.ndarray:
    if settings.initial is None:
        return np.diag(1.0 / np.asarray(level.precision, dtype=float))
    if settings.initial.ndim == 0:
        return float(settings.initial) * np.eye(level.size)
    return np.array(settings.initial, dtype=float)


class LearnedCovariance(Mechanism):
    name = "covariance"
    family = "hierarchical"
    section = "covariance"
    changes = ("precision",)
    learns = "covariance"  # the parameter a trial's learning phase switches (``learning``)

    def parse(self, fields) -> Settings | None:
        if not fields.table:
            return None
        levels = fields.names("levels")
        tau = fields.number("tau_ms", default=None, positive=True)
        raw = fields.raw("initial", default=None)
        initial = None
        if isinstance(raw, list):
            rows = len(raw)
            from_rows = fields.error("initial", "expected a positive number or a symmetric "
                                                "positive definite matrix (a list of rows)")
            square = raw and all(isinstance(row, list) and len(row) == rows for row in raw)
            if not square or not all(isinstance(v, int | float) and not isinstance(v, bool)
                                     for row in raw for v in row):
                raise from_rows
            initial = np.array(raw, dtype=float)
            if (not np.all(np.isfinite(initial)) or not np.array_equal(initial, initial.T)
                    or np.linalg.eigvalsh(initial)[0] <= 0):
                raise from_rows
        elif raw is not None:
            initial = np.array(fields.number("initial", positive=True), dtype=float)
        return Settings(levels, tau, initial)

    def describe(self, settings: Settings | None) -> dict:
        if settings is None:
            return {}
        initial = None if settings.initial is None else settings.initial.tolist()
        return {"levels": list(settings.levels), "tau_ms": settings.tau_ms, "initial": initial}

    def check(self, settings: Settings, model, fail) -> None:
        """Named levels below the top, relaxing errors, an initial matrix of the level's size
        (no other mechanism acting on the same precision: its ``claims``)."""
        names = [level.name for level in model.levels[:-1]]
        problem = unknown_name(settings.levels, names, where=" with error units below the top")
        if problem:
            raise fail("levels", problem)
        for name in settings.levels:
            size = model.levels[names.index(name)].size
            if settings.initial is not None and settings.initial.ndim == 2 and (
                    len(settings.initial) != size):
                raise fail("initial", f"a {len(settings.initial)} x {len(settings.initial)} "
                                      f"matrix for level {name!r} of {size} units")
        if model.errors != "relaxing":
            raise fail("levels", "the interneuron circuit relaxes: it needs [model] errors = "
                                 "\"relaxing\"")
        settings.resolved["initial"] = {
            index: initial_covariance(settings, level)
            for index, level in enumerate(model.levels) if level.name in settings.levels}
        settings.resolved["tau_error_ms"] = model.tau_error_ms

    def claims(self, settings: Settings, model) -> list[Claim]:
        """On each of its levels it replaces the precision (Sigma^-1, a full matrix) and
        learns Sigma (held where ``tau_ms`` is absent)."""
        return [*claims_on(settings.levels, "replaces", "precision", "levels"),
                *claims_on(settings.levels, "learns", "covariance", "levels")]

    def pieces(self, settings: Settings, population: Population) -> Piece | None:
        if population.role != "error" or population.name not in settings.levels:
            return None
        return Piece(equations=INTERNEURON, replaces={"error": ERROR_FLOW})

    def build(self, settings: Settings, context: BuildContext) -> list:
        """Per level, Sigma's population (``STATE``) and the NumPy product Sigma eps; one
        operation learning every level's Sigma (where ``tau_ms`` is set)."""
        from brian2 import NetworkOperation, NeuronGroup, ms

        rate = (None if settings.tau_ms is None
                else float(context.clock.dt / (settings.tau_ms * ms)))
        circuits = context.state[self.name] = []
        objects = []
        for index, (level, group) in enumerate(zip(context.model.levels, context.errors,
                                                   strict=True)):
            if level.name not in settings.levels:
                continue
            arrays = {name: group.variables[name].get_value()
                      for name in ("error", "interneuron", "lateral")}
            state = NeuronGroup(level.size**2, STATE, clock=context.clock,
                                name=f"covariance_{level_key(index)}")
            state.variables["covariance"].set_value(
                np.ravel(settings.resolved["initial"][index]))
            state.variables["learning"].set_value(1.0)
            circuit = Circuit(index, level.name, state, rate=rate, **arrays)
            circuits.append(circuit)
            objects += [state, NetworkOperation(circuit.deliver, when=schedule.SLOT,
                                                order=schedule.DELIVER_TO_ERRORS,
                                                clock=context.clock,
                                                name=f"covariance_{level_key(index)}_lateral")]
        if rate is not None:
            def learn() -> None:
                for circuit in circuits:
                    if circuit.learning[0]:
                        circuit.learn(rate)

            objects.append(NetworkOperation(learn, when=schedule.SLOT, order=COVARIANCE_ORDER,
                                            clock=context.clock, name="covariance_learning"))
        return objects

    def compiled(self, settings: Settings, context) -> list:
        """The product Sigma eps and the learning as compiled code on the cloned populations
        (``circuits.covariance_compiled``)."""
        from circuits.covariance_compiled import compiled_circuit

        return [obj for circuit in self.circuits(context.simulation.context)
                for obj in compiled_circuit(circuit, context)]

    def learning(self, settings: Settings, context: BuildContext, on: bool) -> None:
        """Switch Sigma's learning on or off (from the next step on); off leaves every Sigma
        bitwise unchanged. The hook for per-trial learning phases: it writes the switch into
        Sigma's population, so that a compiled run plays it back at each trial's start
        (``sim.compiled.trial_starts``)."""
        for circuit in self.circuits(context):
            circuit.learning[:] = 1.0 if on else 0.0

    def circuits(self, context: BuildContext) -> list[Circuit]:
        return context.state[self.name]

    def start_trial(self, settings: Settings, context: BuildContext, reset: bool) -> None:
        """Sigma at the previous trial's end is kept (the run's first trial: none); a reset
        sets the interneurons to 0 with the errors."""
        for circuit in self.circuits(context):
            if circuit.trials:
                circuit.snapshots.append(np.array(circuit.covariance, dtype=float))
            circuit.trials += 1
            if reset:
                circuit.interneuron[:] = 0.0

    def checkpoint(self, settings: Settings, context: BuildContext) -> dict:
        """Each level's Sigma, the Sigmas kept at trials' ends and the count of trials
        started, as copies (a compiled run's build checkpoints, starts trials and resumes)."""
        return {circuit.name: {"covariance": circuit.covariance.copy(),
                               "snapshots": list(circuit.snapshots), "trials": circuit.trials}
                for circuit in self.circuits(context)}

    def resume(self, settings: Settings, context: BuildContext, kept: dict) -> None:
        for circuit in self.circuits(context):
            saved = kept[circuit.name]
            circuit.covariance[...] = saved["covariance"]  # in place: the operations share it
            circuit.snapshots = list(saved["snapshots"])
            circuit.trials = int(saved["trials"])

    def outputs(self, settings: Settings, context: BuildContext) -> dict:
        """Sigma at each trial's end (trials x n x n): the kept ones and the one now."""
        return {f"levels/{circuit.name}/covariance":
                np.stack([*circuit.snapshots, np.array(circuit.covariance, dtype=float)])
                for circuit in self.circuits(context)}

    def snapshot_shapes(self, settings: Settings, model) -> dict[str, tuple[int, ...]]:
        """Sigma of each level it runs on, for ``[record] snapshots_every``."""
        return {f"levels/{level.name}/covariance": (level.size, level.size)
                for level in model.levels if level.name in settings.levels}

    def memory(self, settings: Settings, scenario) -> list[MemoryPart]:
        """Per level, Sigma at every trial's end (kept, then stacked for the file: twice) and
        the matrices in use (Sigma, its inverse Pi, F's Hessian and their temporaries)."""
        copies = 2 * len(scenario.trials) + WORKING_MATRICES
        return [MemoryPart(f"the learned covariance of level {level.name!r} ({level.size} x "
                           f"{level.size}, kept at each of {len(scenario.trials)} trial ends)",
                           copies * level.size**2 * 8, "model.covariance.levels",
                           checkpointed=(len(scenario.trials) + 1) * level.size**2 * 8)
                for level in scenario.model.levels if level.name in settings.levels]

    def snapshot(self, settings: Settings, context: BuildContext) -> dict:
        return {f"levels/{circuit.name}/covariance": circuit.covariance
                for circuit in self.circuits(context)}

    def precision_matrices(self, settings: Settings, context: BuildContext) -> dict:
        return {circuit.index: circuit.precision for circuit in self.circuits(context)}

    def sampled_terms(self, settings: Settings, context: BuildContext,
                      recorded: dict) -> SampledTerms:
        """The precision matrices at S recorded samples at once: ``symmetric_inverse`` of
        each recorded Sigma (one stacked inverse), as ``Circuit.precision`` does of one."""
        found = {}
        for circuit in self.circuits(context):
            n = len(circuit.error)
            found[circuit.index] = symmetric_inverse(
                np.reshape(recorded[circuit.state.name]["covariance"], (-1, n, n)))
        return SampledTerms(precision_matrices=found)

    def initial_precision_matrices(self, settings: Settings) -> dict:
        return {index: np.linalg.inv(covariance)
                for index, covariance in settings.resolved["initial"].items()}

    def watch(self, settings: Settings, context: BuildContext) -> list[tuple]:
        return [(f"covariance_{circuit.name}", "covariance", circuit.covariance.reshape(-1))
                for circuit in self.circuits(context)]

    def bounds(self, settings: Settings, state: StartState) -> list[FlowBound]:
        """The interneuron loop at the initial Sigma, given as a first-order Euler flow with
        the same largest step (its margin is dt / dt_max), and Sigma's learning flow."""
        tau_error = settings.resolved["tau_error_ms"]
        found = []
        for covariance in settings.resolved["initial"].values():
            sigmas = np.linalg.eigvalsh((covariance + covariance.T) / 2)
            largest_h = min(loop_step_bound(float(sigma), state.method) for sigma in sigmas)
            found.append(FlowBound(
                2.0 / largest_h, tau_error, "euler",
                f"dt/tau_error < {largest_h:.4g} for the error-interneuron loop "
                f"(Euler: dt/tau_error * sigma_max < 1)",
                f"sigma in [{sigmas[0]:.4g}, {sigmas[-1]:.4g}], the eigenvalues of the "
                "initial Sigma, learned by tau dSigma/dt = eps e' - I"))
            if settings.tau_ms is not None:
                found.append(FlowBound(
                    1.0 / float(sigmas[0]), settings.tau_ms, "euler",
                    "dt/tau_covariance / sigma_min < 2",
                    f"sigma_min = {sigmas[0]:.4g}, the smallest eigenvalue of the initial "
                    "Sigma"))
        return found


MECHANISM = LearnedCovariance()
