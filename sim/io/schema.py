"""The layout of a result file, declared once: what every result holds, by model family where
the families differ, and how the shapes relate (docs/results.md, docs/discrete.md).

``SCHEMA_VERSION`` is what the writer writes and the newest the reader reads (bumped when the
layout changes in a way an older reader cannot follow). ``ROOT_ATTRIBUTES``, ``GROUPS`` and
``DATASETS`` declare the layout; ``sim.io.schema_check.check`` compares a file's metadata with
them (names, ranks, dtypes, shapes and attributes: no dataset value is read) and returns each
problem as one line. ``sim.load`` refuses a file with problems; ``pcsim show`` lists them.

A path holds ``<name>`` for one path segment (a level, factor or modality name) and may end in
``**`` (anything below). Axes name a length (``AXES``): ``samples`` is len(/time), ``trials``
len(/trials/name), ``size`` the level's ``size`` attribute, and so on; ``*`` is any length and a
last axis ``...`` allows more axes. A dataset's first matching declaration decides; datasets
that match none are not checked (a readout's own output may be added without a schema change).
"""

from __future__ import annotations

from dataclasses import dataclass

from sim.io.spikes import SIGNS

SCHEMA_VERSION = 2  # 2: free_energy may hold NaN where the Laplace term was not computed

FAMILIES = ("hierarchical", "discrete")
STATUSES = ("running", "complete", "interrupted", "diverged")

# kinds of values: a dataset's dtype or an attribute's value
NUMBER, INTEGER, TEXT, TEXTS, ANY = "number", "integer", "text", "list of text", "any"
ACCEPTS = {NUMBER: {"integer", "float", "bool"}, INTEGER: {"integer"}, TEXT: {"text"},
           TEXTS: {"texts"}, ANY: {"integer", "float", "bool", "text", "texts", "other"}}

ALWAYS, COMPLETE = "always", "complete"  # required: in every result; in every complete one


@dataclass(frozen=True)
class Attribute:
    name: str
    kind: str
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class Group:
    """A group and the attributes it must have (when present; ``required``: when it must be)."""

    path: str
    attributes: tuple[Attribute, ...]
    required: str = ""
    family: str = ""


@dataclass(frozen=True)
class Dataset:
    """A dataset: its kind of values, its axes (``AXES``), when it must be present (``ALWAYS``,
    ``COMPLETE``; "" where the run made it), the family it belongs to ("" every family), the
    ``[record] variables`` entry that records it ("always": recorded whatever the entry), the
    group it belongs to (``each``: one per such group, and only where it is; default: its
    parent where the path holds ``<name>``), the level roles that have it (``role``
    attribute of that group) and the datasets or groups it is written with (``given``:
    required only where one of them is present)."""

    path: str
    kind: str
    axes: tuple[str, ...]
    required: str = ""
    family: str = ""
    recorded: str = ""
    roles: tuple[str, ...] = ()
    each: str = ""
    given: tuple[str, ...] = ()


# the lengths an axis may be declared to have (sim.io.schema_check computes each in a file)
AXES = {
    "samples": "len(/time)",
    "trials": "len(/trials/name)",
    "size": "the size attribute of its level (/levels/<name>)",
    "below": "the size of the level below",
    "causes": "the group's number of names",
    "column_size": "the size attribute of the level the trial column names",
    "column_causes": "the number of /causes names (a trial column over the causes)",
    "outcomes": "the group's number of outcomes",
    "observations": "len(time) beside it",
    "spikes": "len(time) beside it",
    "snapshots": "len(/snapshots/trial)",
    "erp_samples": "len(/erp/time)",
    "conditions": "len(/decision/condition)",
    "*": "any length",
}

ROOT_ATTRIBUTES = (
    Attribute("schema_version", INTEGER),
    Attribute("status", TEXT, STATUSES),
    Attribute("pcsim_version", TEXT), Attribute("brian2_version", TEXT),
    Attribute("numpy_version", TEXT), Attribute("h5py_version", TEXT),
    Attribute("python_version", TEXT), Attribute("created_utc", TEXT),
    Attribute("scenario_name", TEXT), Attribute("model_kind", TEXT, FAMILIES),
    Attribute("seed", INTEGER), Attribute("dt", NUMBER), Attribute("dt_units", TEXT),
    Attribute("method", TEXT), Attribute("duration", NUMBER),
)

# root attributes that say where a result was computed (``sim.io.provenance``): each may be
# absent (older files; a BLAS other than OpenBLAS; pcsim not run from a git checkout), and is of
# its kind where present
PROVENANCE_ATTRIBUTES = (
    Attribute("blas", TEXT), Attribute("blas_core", TEXT), Attribute("blas_threads", INTEGER),
    Attribute("cpu_model", TEXT), Attribute("git_commit", TEXT), Attribute("git_dirty", INTEGER),
)

# root attributes of one family's results only
FAMILY_ATTRIBUTES = {
    "discrete": (Attribute("free_energy_rises", INTEGER),
                 Attribute("free_energy_max_rise", NUMBER)),
}

# a spiking run's populations (``sim.io.spikes``): one group each, by level and population
SPIKES = "spikes/<name>/<name>"
SPIKING_ROLES = ("belief", "error", "activation", "precision_error")
# a spiking run's rate model, run beside it (``sim.readouts.rate_reference``): its group is
# there when the readout ran to the end, and then its trial columns are
RATE_REFERENCE = "rate_reference"

GROUPS = (
    Group("scenario", (Attribute("path", TEXT), Attribute("description", TEXT)), ALWAYS),
    Group("levels/<name>", (Attribute("index", INTEGER), Attribute("size", INTEGER),
                            Attribute("role", TEXT, ("input", "hidden", "top"))),
          family="hierarchical"),
    Group("causes", (Attribute("names", TEXTS),), family="discrete"),
    Group("factors/<name>", (Attribute("names", TEXTS),), family="discrete"),
    Group("modalities/<name>", (Attribute("outcomes", TEXTS), Attribute("precision", NUMBER)),
          family="discrete"),
    Group("observations/<name>", (Attribute("outcomes", TEXTS),), family="discrete"),
    Group(SPIKES, (Attribute("level", TEXT), Attribute("role", TEXT, SPIKING_ROLES),
                   Attribute("sign", TEXT, SIGNS), Attribute("neurons_per_unit", INTEGER),
                   Attribute("unit_count", INTEGER), Attribute("neuron_model", TEXT)),
          family="hierarchical"),
)

# per family, its model's parts: of each tuple of groups, at least one must be present
FAMILY_PARTS = {"hierarchical": (("levels/<name>",),),
                "discrete": (("causes", "factors/<name>"), ("modalities/<name>",))}
LEVELS, BELIEF_LEVELS = "levels/<name>", ("hidden", "top")

LEVEL_STREAMS = (("input", "always", ("input",)), ("belief", "belief", BELIEF_LEVELS),
                 ("error", "error", ()), ("precision", "precision", ()))

# the reference_posterior readout's columns (hierarchical), each written with the others
REFERENCE = tuple(f"trials/{name}" for name in ("surprise", "gaussian_free_energy", "kl",
                                                  "laplace_error"))
REFERENCE_ARRAYS = {  # with N <= 64 belief units the covariances, with N <= 2 the grid too
    "reference_covariance": ("trials/laplace_covariance",),
    "laplace_covariance": ("trials/reference_covariance", "trials/reference_density"),
    "reference_grid": ("trials/reference_density",),
    "reference_density": ("trials/reference_grid",),
}

DATASETS = (
    Dataset("time", NUMBER, ("samples",), ALWAYS, recorded="always"),
    Dataset("free_energy", NUMBER, ("samples",), recorded="free_energy"),
    Dataset("scenario/source", TEXT, (), ALWAYS),
    Dataset("scenario/parameters", TEXT, (), ALWAYS),
    Dataset("trials/index", INTEGER, ("trials",), COMPLETE),
    Dataset("trials/name", TEXT, ("trials",), COMPLETE),
    Dataset("trials/t_start", NUMBER, ("trials",), COMPLETE),
    Dataset("trials/t_stop", NUMBER, ("trials",), COMPLETE),
    Dataset("trials/final_free_energy", NUMBER, ("trials",), COMPLETE),
    Dataset("trials/final_belief/<name>", NUMBER, ("trials", "column_size"), COMPLETE,
            family="hierarchical", each=LEVELS, roles=BELIEF_LEVELS),
    *(Dataset(f"trials/{name}/<name>", NUMBER, ("trials", "column_size"), COMPLETE,
              family="hierarchical", each=LEVELS) for name in ("final_precision",
                                                               "precision_share")),
    Dataset("trials/final_belief", NUMBER, ("trials", "column_causes"), COMPLETE,
            family="discrete", each="causes"),
    Dataset("trials/exact_posterior", NUMBER, ("trials", "column_causes"), COMPLETE,
            family="discrete", each="causes"),
    Dataset("trials/final_belief/<name>", NUMBER, ("trials", "..."), COMPLETE,
            family="discrete", each="factors/<name>"),
    Dataset("trials/exact_marginal/<name>", NUMBER, ("trials", "..."), COMPLETE,
            family="discrete", each="factors/<name>"),
    # the exact reference of a hierarchical model (reference_posterior): its columns together
    *(Dataset(path, NUMBER, ("trials",), ALWAYS, family="hierarchical", given=REFERENCE)
      for path in REFERENCE),
    *(Dataset(f"trials/{name}/<name>", NUMBER, ("trials", "column_size"), ALWAYS,
              family="hierarchical", each=LEVELS, roles=BELIEF_LEVELS, given=REFERENCE)
      for name in ("reference_mean", "reference_mode", "reference_variance",
                   "laplace_variance")),
    *(Dataset(f"trials/{name}", NUMBER, ("trials", "..."), ALWAYS, family="hierarchical",
              given=given) for name, given in REFERENCE_ARRAYS.items()),
    Dataset("trials/precision/<name>", NUMBER, ("trials",), COMPLETE, family="discrete",
            each="modalities/<name>"),
    Dataset("trials/surprise", NUMBER, ("trials",), COMPLETE, family="discrete"),
    Dataset("trials/kl", NUMBER, ("trials",), COMPLETE, family="discrete"),
    Dataset("trials/condition", TEXT, ("trials",)),
    Dataset("trials/kind", TEXT, ("trials",)),
    Dataset("trials/learned", TEXT, ("trials",)),
    Dataset("trials/**", ANY, ("trials", "...")),
    Dataset("snapshots/trial", INTEGER, ("snapshots",), ALWAYS, each="snapshots"),
    Dataset("snapshots/**", NUMBER, ("snapshots", "...")),
    Dataset("erp/time", NUMBER, ("erp_samples",), ALWAYS, each="erp"),
    Dataset("erp/trials/<name>", NUMBER, ("trials", "erp_samples")),
    Dataset("erp/<name>/<name>", NUMBER, ("erp_samples",)),
    Dataset("decision/condition", TEXT, ("conditions",), ALWAYS, each="decision"),
    *(Dataset(f"decision/{name}", NUMBER, ("conditions",), ALWAYS, each="decision")
      for name in ("mean_ms", "count", "misses")),
    # hierarchical
    Dataset("energy", NUMBER, ("samples",), family="hierarchical", recorded="free_energy"),
    *(Dataset(f"levels/<name>/{stream}", NUMBER, ("samples", "size"),
              ALWAYS if recorded == "always" else "", family="hierarchical", recorded=recorded,
              roles=roles) for stream, recorded, roles in LEVEL_STREAMS),
    Dataset("levels/<name>/log_precision", NUMBER, ("samples", "size"), family="hierarchical"),
    Dataset("levels/<name>/prior_mean", NUMBER, ("samples", "size"), family="hierarchical"),
    Dataset("levels/<name>/prior_mean_final", NUMBER, ("size",), family="hierarchical"),
    Dataset("levels/<name>/covariance", NUMBER, ("*", "size", "size"), family="hierarchical"),
    Dataset("levels/<name>/weights_initial", NUMBER, ("below", "size"), ALWAYS,
            family="hierarchical", roles=BELIEF_LEVELS),
    Dataset("levels/<name>/weights_final", NUMBER, ("below", "size"), family="hierarchical"),
    Dataset("levels/<name>/weights_initial/<name>", NUMBER, ("*",), family="hierarchical"),
    Dataset("levels/<name>/weights_final/<name>", NUMBER, ("*",), family="hierarchical"),
    # spiking (hierarchical): each decoded population's rate, its spikes, and the rate model
    # run beside them
    *(Dataset(f"levels/<name>/rate_{role}_{sign}", NUMBER, ("samples", "size"),
              family="hierarchical") for role in ("belief", "error") for sign in SIGNS),
    Dataset(f"{SPIKES}/time", NUMBER, ("spikes",), ALWAYS, family="hierarchical", each=SPIKES),
    Dataset(f"{SPIKES}/neuron", INTEGER, ("spikes",), ALWAYS, family="hierarchical",
            each=SPIKES),
    Dataset(f"{RATE_REFERENCE}/free_energy", NUMBER, ("samples",), family="hierarchical",
            recorded="free_energy", given=(RATE_REFERENCE,)),
    Dataset(f"{RATE_REFERENCE}/levels/<name>/belief", NUMBER, ("samples", "size"),
            family="hierarchical", recorded="belief", each=LEVELS, roles=BELIEF_LEVELS,
            given=(RATE_REFERENCE,)),
    Dataset(f"{RATE_REFERENCE}/trials/final_free_energy", NUMBER, ("trials",), ALWAYS,
            family="hierarchical", given=(RATE_REFERENCE,)),
    Dataset(f"{RATE_REFERENCE}/trials/final_belief/<name>", NUMBER, ("trials", "column_size"),
            ALWAYS, family="hierarchical", each=LEVELS, roles=BELIEF_LEVELS,
            given=(RATE_REFERENCE,)),
    # discrete
    Dataset("surprise", NUMBER, ("samples",), family="discrete", recorded="surprise"),
    Dataset("causes/prior", NUMBER, ("causes",), ALWAYS, family="discrete", each="causes"),
    Dataset("causes/belief", NUMBER, ("samples", "causes"), family="discrete",
            recorded="belief", each="causes"),
    Dataset("causes/error", NUMBER, ("samples", "causes"), family="discrete", recorded="error",
            each="causes"),
    Dataset("factors/<name>/prior", NUMBER, ("causes",), ALWAYS, family="discrete"),
    Dataset("factors/<name>/belief", NUMBER, ("samples", "causes"), family="discrete",
            recorded="belief"),
    Dataset("factors/<name>/error", NUMBER, ("samples", "causes"), family="discrete",
            recorded="error"),
    Dataset("modalities/<name>/likelihood", NUMBER, ("outcomes", "..."), ALWAYS,
            family="discrete"),
    # every modality's observations are written, none or more, and only those of a modality
    Dataset("observations/<name>/time", NUMBER, ("observations",), ALWAYS, family="discrete",
            each="modalities/<name>"),
    Dataset("modalities/<name>/likelihood", NUMBER, ("outcomes", "..."), ALWAYS,
            family="discrete", each="observations/<name>"),
    Dataset("observations/<name>/time", NUMBER, ("observations",), ALWAYS, family="discrete"),
    Dataset("observations/<name>/outcome", NUMBER, ("observations", "outcomes"), ALWAYS,
            family="discrete"),
    Dataset("observations/<name>/trial", INTEGER, ("observations",), ALWAYS,
            family="discrete"),
    Dataset("observations/<name>/precision", NUMBER, ("observations",), ALWAYS,
            family="discrete"),
)


# per family, the model's parts a scenario names in its resolved parameters (``model.<key>``,
# a list of tables with a ``name``), the group each is stored in, and whether every scenario
# of the family has the list
NAMED_PARTS = {
    "hierarchical": (("levels", LEVELS, True),),
    "discrete": (("modalities", "modalities/<name>", True),
                 ("factors", "factors/<name>", False)),
}
