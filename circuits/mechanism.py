"""What a mechanism is: a module that adds to a model family's circuits, registered by name.

A family builds its core populations (beliefs, errors, coupling); a *mechanism* (learned
precision, weight plasticity, and the attention and learning mechanisms to come) adds to them
without the family knowing it by name. One mechanism is one module in ``circuits/`` that
defines a ``Mechanism`` subclass and exposes an instance as ``MECHANISM``; ``sim.registry``
lists the module (a user's or a test's mechanism registers itself with
``sim.registry.register_mechanism``). The parts, each optional but ``parse``:

- scenario fields: ``section`` names the table under ``[model]`` its fields live in (several
  mechanisms may share one, as ``learning`` is shared); ``parse`` reads them and returns the
  mechanism's settings, or None when the scenario leaves it off; ``describe`` gives the fields
  as resolved (for ``scenario/parameters``, also when off);
- equation pieces: ``pieces`` returns the ``Piece`` it adds to one population's equations
  (``circuits.equations`` gathers them before the ``NeuronGroup`` is made);
- ``build``: the Brian2 objects it adds once the populations exist (``BuildContext``);
- ``bounds``: the step bounds of the flows it integrates (``FlowBound``), which the stability
  preflight checks; ``changes`` says which run-time state it changes (``weights``,
  ``precision``), which nothing before the run can predict: the runtime guard (``sim.guard``)
  watches every integrated variable of a population against ``[numerics] rate_limit``, and
  ``watch`` names the arrays outside the populations it changes (the NumPy weights);
- ``streams``: what it records every sample (``Stream``, each declaring its variable:
  ``circuits.variables``); ``outputs``: the arrays it leaves
  in the result at the end of the run (by HDF5 path; a scipy.sparse matrix is stored as CSR);
- ``energy``: its own terms of the free energy (a prior on a state it adds, or on the
  beliefs), added to the recorded F; ``curvature``: the diagonal its energy adds to the
  Hessian of F over the beliefs (F's Laplace term), and ``max_curvature`` the most it can add
  there (the stability preflight adds it to the belief flow's stiffness);
  ``precision_matrices``: the full precision matrices it puts in force on some levels (F and
  its Hessian then use them; ``initial_precision_matrices``: those at the start, for the
  stability preflight); ``sampled_terms``: the same three for many recorded samples at
  once (a compiled run's replay); ``start_trial``: what it does when a trial starts (reset a fast
  state);
- ``changes`` may also name ``posterior``: its energy acts on the beliefs, so that the
  posterior is no longer the Gaussian model's (readouts with Gaussian references leave off);
- learning (slow inference over a parameter): ``learns`` names the parameter it learns
  (``weights``, ``prior``, ``precision``, ``covariance``), which a trial's ``learn`` field
  switches on or off (phases, ``sim.simulation``): the flows it ``integrates`` are then
  multiplied by a shared ``learning_<parameter>`` set to 1 or 0 (so off leaves the parameter
  bitwise unchanged), and ``learning`` switches what it runs outside the equations (a NumPy
  update); ``snapshot`` gives the learned values (by path under ``snapshots/``),
  ``snapshot_shapes`` their shapes before the run (the preflight estimates the snapshots'
  size from them);
- claims (``circuits.claims``): ``claims`` says, per level it acts on, what it does to that
  level's ``precision``, ``covariance``, ``weights`` or ``prior``: ``replaces``, ``learns``
  (the parameter named by ``learns``), ``multiplies`` or ``constrains`` it. The family's check
  (``sim.registry.check_mechanisms``) refuses incompatible claims on one level (one that
  replaces a parameter beside any other claim on it, two that learn it, one that constrains
  what nothing learns), and a readout finds who learns what from them; no mechanism names
  another.
- checkpoints (``sim.checkpoint``): Brian2's state is saved whole; ``checkpoint`` gives what
  else the mechanism keeps from one trial to the next (NumPy arrays outside Brian2, counts,
  lists), at a trial boundary, as plain data (arrays, numbers, lists, dicts), and ``resume``
  puts it back into a freshly built run.
- ``memory``: the memory it holds beyond the family's populations (``MemoryPart``: a learned
  matrix, what it keeps per trial), known before the run (``sim.memory`` sums the parts).

Nothing here imports Brian2: the registry and the report side read these declarations.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from circuits.claims import Claim
from circuits.variables import Variable, declaration_attrs


@dataclass
class Piece:
    """A mechanism's contribution to one population's equations.

    ``equations``: lines declaring the mechanism's own variables. ``terms``: a term added to a
    named sum of the population (the belief population's ``drive``). ``integrates``: a
    parameter of the population that the mechanism turns into a flow, with the equation that
    replaces its declaration (learned precision integrates ``precision``). ``replaces``: a
    flow of the population that the mechanism's own circuit replaces (the interneuron
    circuit of ``circuits.covariance`` replaces the error units' ``error``).
    """

    equations: str = ""
    terms: dict[str, str] = field(default_factory=dict)
    integrates: dict[str, str] = field(default_factory=dict)
    replaces: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Population:
    """Which population a piece is asked for: its ``role`` (``belief``, ``error``,
    ``generative_synapses``), its level's index and name, and for the generative synapses the
    map g they implement."""

    role: str
    level: int
    name: str
    generative: Any = None
    top: bool = False  # the population belongs to the top level
    # error units: the variable holding the configured part of the precision ("precision",
    # or "precision_configured" once a mechanism adds a log contribution, circuits.precision)
    configured_precision: str = "precision"


@dataclass(frozen=True)
class Stream:
    """A recorded time series: written every recorded sample (``[record] every_ms``).

    ``read`` returns the current value (a number, or an array of ``width``); ``variable`` is
    the ``[record] variables`` name that switches it on (None: always recorded). ``rows``, for
    a batched run (``sim.batch``): the values of the given copies at once, one row each (None:
    read copy by copy, ``read`` after the simulation's ``use_lane``). ``state``: the
    (population, variable) whose value ``read`` returns unchanged, so that a compiled run's
    replay (``sim.compiled.replay``) writes its recorded samples at once; ``("", "t")`` is the
    network time. ``declares``: the state variable it records (``circuits.variables``),
    whose declaration the recorder writes beside it (figures and ``pcsim show`` read it).
    """

    path: str
    width: int | None
    read: Callable[[], Any]
    units: str = "1"
    variable: str | None = None
    attrs: dict[str, Any] = field(default_factory=dict)
    rows: Callable[[np.ndarray], Any] | None = None
    state: tuple[str, str] | None = None
    declares: Variable | None = None

    def dataset_attrs(self) -> dict[str, Any]:
        """The attributes written on its dataset: its own, then its variable's declaration."""
        return {**self.attrs, **(declaration_attrs(self.declares) if self.declares else {})}


@dataclass(frozen=True)
class SampledTerms:
    """A mechanism's part of F over S recorded samples (``Mechanism.sampled_terms``):
    ``energy`` (S,) or None for none; ``curvature`` by belief level an (S, n_l) diagonal;
    ``precision_matrices`` by level index an (S, n_l, n_l) stack of the matrices in force."""

    energy: Any = None
    curvature: dict[int, Any] = field(default_factory=dict)
    precision_matrices: dict[int, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FlowBound:
    """A first-order flow's step bound: a deviation decays at ``rate / tau_ms`` (1/ms) and is
    integrated by ``method``; ``bound`` and ``detail`` explain it in messages."""

    rate: float
    tau_ms: float
    method: str
    bound: str
    detail: str


@dataclass(frozen=True)
class MemoryPart:
    """Memory a run will hold, estimated before it (``sim.memory``): ``what`` it is, in
    words, its ``size`` in bytes, and the scenario ``key`` that shrinks it (for the message
    that refuses a run too large; empty for what no key shrinks). A recorded stream's buffer
    also says what each sample adds to the file (``sample_bytes``); a part that is state the
    run's checkpoints keep (``sim.checkpoint``), what a checkpoint holds of it
    (``checkpointed``, bytes: its numbers once, where ``size`` counts every copy)."""

    what: str
    size: float
    key: str
    sample_bytes: int = 0
    checkpointed: float = 0.0


@dataclass
class BuildContext:
    """What a mechanism is built in: the scenario, its model, the network's clock and the
    family's populations, by level (``beliefs[l - 1]`` for level l, ``errors[l]``), and the
    coupling between them (``circuits.coupling.Coupling``)."""

    scenario: Any
    model: Any
    clock: Any
    beliefs: Sequence[Any]
    errors: Sequence[Any]
    coupling: Any
    state: dict[str, Any] = field(default_factory=dict)  # a mechanism's own objects, by name


@dataclass(frozen=True)
class StartState:
    """What the stability preflight knows before a run: the generative maps g_l (l = 1..L),
    the starting beliefs, the precisions in force in one trial (levels 0..L), dt and method."""

    maps: Sequence[Any]
    beliefs: Sequence[Any]
    precisions: Sequence[Any]
    dt_ms: float
    method: str


class Mechanism:
    """Base of every mechanism: the defaults (no pieces, no objects, no bounds, no streams)."""

    name: ClassVar[str]
    family: ClassVar[str]
    section: ClassVar[str]
    changes: ClassVar[tuple[str, ...]] = ()
    record_variables: ClassVar[tuple[str, ...]] = ()
    learns: ClassVar[str | None] = None  # the parameter it learns (phases switch it)
    # the field of its section whose presence switches it on (a refusal that needs the
    # mechanism names it: "[model.learning] tau_weights_ms"); empty: the section itself
    switched_on_by: ClassVar[str] = ""
    # True: it keeps nothing from one trial to the next and acts unit by unit through its
    # pieces alone (no objects, streams, energy or outputs), so B copies of the populations
    # run B independent trials; a scenario that switches on one that is not refuses
    # ``[protocol] batch`` (``sim.batch``)
    batch_safe: ClassVar[bool] = False

    def parse(self, fields: Any) -> Any | None:
        """Read this mechanism's fields from its ``section`` (a ``sim.validation.Fields``);
        None when the scenario leaves it off."""
        raise NotImplementedError

    def describe(self, settings: Any | None) -> dict:
        return {}

    def check(self, settings: Any, model: Any, fail: Any) -> None:
        """Check the settings against the parsed model; ``fail(key, message)`` makes the
        one-line error for a field of this mechanism's section."""

    def pieces(self, settings: Any, population: Population) -> Piece | None:
        return None

    def build(self, settings: Any, context: BuildContext) -> list:
        return []

    def compiled(self, settings: Any, context: Any) -> list | None:
        """What ``build``'s objects do every step, as Brian2 objects without Python (for the
        ``cpp_standalone`` device, ``sim.compiled``; ``context`` a ``CompiledContext``), or
        None: no compiled form (a run on that device is refused). Asked only of a mechanism
        whose ``build`` gave objects."""
        return None

    def bounds(self, settings: Any, state: StartState) -> list[FlowBound]:
        return []

    def streams(self, settings: Any, context: BuildContext) -> list[Stream]:
        return []

    def watch(self, settings: Any, context: BuildContext) -> list[tuple]:
        """(owner, variable, 1-D array[, every_steps]) the runtime guard checks, besides the
        populations' own integrated variables (``sim.guard.Watched``)."""
        return []

    def outputs(self, settings: Any, context: BuildContext) -> dict[str, Any]:
        """Arrays written to the result at the end of the run, by HDF5 path."""
        return {}

    def energy(self, settings: Any, context: BuildContext) -> float:
        """Its terms of the free energy's energy part at the current state (nat)."""
        return 0.0

    def curvature(self, settings: Any, context: BuildContext) -> dict[int, Any]:
        """d^2/dmu^2 of its energy where it is diagonal in the beliefs, at the current state:
        an array per belief level it acts on, by the level's index (1..L)."""
        return {}

    def max_curvature(self, settings: Any, model: Any) -> dict[int, float]:
        """The largest value ``curvature`` can take, over all beliefs, by level index (1..L)."""
        return {}

    def precision_matrices(self, settings: Any, context: BuildContext
                           ) -> dict[int, Callable[[], Any]]:
        """By level index, the full precision matrix (n x n) it puts in force there now, for
        the free energy and its Hessian (``circuits.covariance``); levels absent keep their
        per-unit precision."""
        return {}

    def initial_precision_matrices(self, settings: Any) -> dict[int, Any]:
        """The same at the start of the run, for the stability preflight."""
        return {}

    def sampled_terms(self, settings: Any, context: BuildContext,
                      recorded: dict[str, dict[str, Any]]) -> SampledTerms | None:
        """``energy``, ``curvature`` and ``precision_matrices`` for many recorded samples at
        once (a compiled run's replay, ``sim.compiled.replay``): ``recorded`` is each
        population's state at S samples (population name -> variable -> (S, units)). None:
        it cannot (the replay then takes F sample by sample). The default: nothing, for a
        mechanism that defines none of the three; None for one that defines any."""
        base = Mechanism
        kind = type(self)
        if (kind.energy is base.energy and kind.curvature is base.curvature
                and kind.precision_matrices is base.precision_matrices):
            return SampledTerms()
        return None

    def start_trial(self, settings: Any, context: BuildContext, reset: bool) -> None:
        """A trial starts; ``reset``: it resets the beliefs."""

    def learning(self, settings: Any, context: BuildContext, on: bool) -> None:
        """Switch its learning on or off for the coming trial, beyond its ``integrates``
        flows (which the simulation scales by ``learning_<parameter>``): e.g. a NumPy update's
        ``active``."""

    def claims(self, settings: Any, model: Any) -> list[Claim]:
        """What it does to each level's parameters once ``check`` has passed (the model's
        levels by name; ``circuits.claims.claims_on`` makes one claim per level). A claim
        that ``learns`` names the parameter of ``learns``; a mechanism switched on for some
        levels claims those alone."""
        return []

    def snapshot_shapes(self, settings: Any, model: Any) -> dict[str, tuple[int, ...]]:
        """The shape of each learned array ``snapshot`` gives, known before the run."""
        return {}

    def memory(self, settings: Any, scenario: Any) -> list[MemoryPart]:
        """What it holds beyond the family's populations, estimated before the run."""
        return []

    def snapshot(self, settings: Any, context: BuildContext) -> dict[str, Any]:
        """The learned parameter's values now, by path (a copy is made by the writer)."""
        return {}

    def checkpoint(self, settings: Any, context: BuildContext) -> dict[str, Any]:
        """What it keeps across trials outside Brian2's state, as plain data (saved at once)."""
        return {}

    def resume(self, settings: Any, context: BuildContext, kept: dict[str, Any]) -> None:
        """Put back what ``checkpoint`` gave, into a run built afresh (before its next trial)."""


def unknown_name(names: Sequence[str], choices: Sequence[str], what: str = "level",
                 where: str = "") -> str | None:
    """What is wrong with the first of ``names`` not among ``choices`` (None: all are):
    "no level 'x'{where}; expected some of a, b (did you mean 'y'?)". For a mechanism's
    ``check`` of the levels it names, and ``Fields.names`` (``sim.validation``)."""
    for name in names:
        if name not in choices:
            hint = difflib.get_close_matches(name, list(choices), n=1)
            suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
            return (f"no {what} {name!r}{where}; expected some of {', '.join(choices)}"
                    f"{suggestion}")
    return None


def state_array(group: Any, name: str, copies: int = 1) -> np.ndarray:
    """Brian2's own storage for a state variable of ``group`` (runtime devices), written and
    read in place; with several ``copies`` of the network (a batched run, ``sim.batch``), its
    (copies, n) view, one copy per row."""
    values = group.variables[name].get_value()
    return values if copies == 1 else values.reshape(copies, -1)
