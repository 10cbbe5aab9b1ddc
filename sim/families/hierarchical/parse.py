"""Reading a hierarchical scenario: ``[model]`` into a ``HierarchicalModel``, each trial's
stimulus and overrides into ``TrialSettings`` (field reference: docs/scenarios.md)."""

from __future__ import annotations

import numpy as np

from circuits.generative import GenerativeMap, local_weights
from circuits.nonlinearity import NAMED, NonlinearityError, parse_nonlinearity
from circuits.variables import check_level_units
from sim import registry
from sim.families.hierarchical.model import HierarchicalModel, Level, TrialSettings
from sim.families.hierarchical.spiking import check_model, parse_neurons
from sim.families.hierarchical.spiking import describe as describe_neurons
from sim.families.hierarchical.stimulus import parse_stimulus
from sim.timeline import parse_schedule
from sim.validation import Fields, to_matrix

WEIGHT_KINDS = ("identity", "random", "constant", "local", "uniform")
MAX_LEVEL_UNITS = 10**7
MAX_WEIGHT_ENTRIES = 5 * 10**7  # 400 MB of float64 per level
MAX_BELIEF_UNITS = 16384  # with dense W, F's Laplace term is a dense N x N Hessian (2 GiB here)


def parse_weights(
    fields: Fields, shape: tuple[int, int], rng: np.random.Generator,
    grids: tuple[tuple[int, int] | None, tuple[int, int] | None] = (None, None),
):
    """W_l (n_below, n_here): a dense array, or scipy.sparse CSR for ``local`` fields.

    ``grids`` are the 2-D shapes of the level below and of this level, which ``local`` needs.
    """
    raw = fields.raw("weights")
    fail = lambda msg: fields.error("weights", msg)  # noqa: E731
    if isinstance(raw, list):
        return to_matrix(raw, shape, fail)
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        value = float(fields.number("weights"))
        check_dense_weights(fields, shape)
        return np.full(shape, value)
    spec = fields.sub("weights")
    kind = spec.text("kind", choices=WEIGHT_KINDS)
    scale = spec.number("scale", default=1.0,
                        minimum=0.0 if kind in ("random", "local", "uniform") else None)
    if kind != "local":
        check_dense_weights(fields, shape)
    if kind == "identity":
        weights = scale * np.eye(*shape)
    elif kind == "constant":
        weights = np.full(shape, scale)
    elif kind == "uniform":  # non-negative: uniform in [0, scale), seeded
        weights = rng.uniform(0.0, scale, size=shape)
    elif kind == "local":
        if grids[0] is None or grids[1] is None:
            raise fail("local weights need a 2-D `shape` on this level and on the one below")
        field = parse_pair(spec, "field", default=5)
        if shape[1] * field[0] * field[1] > MAX_WEIGHT_ENTRIES:
            raise spec.error("field", f"{list(field)} for {shape[1]} units is over "
                                      f"{MAX_WEIGHT_ENTRIES:.0e} weights")
        weights = local_weights(grids[0], grids[1], field, scale, rng)
    else:
        # fan-in scaling keeps predictions O(scale) whatever the size of the level above
        weights = rng.normal(0.0, scale / np.sqrt(shape[1]), size=shape)
    spec.close()
    return weights


def check_dense_weights(fields: Fields, shape: tuple[int, int]) -> None:
    """Refuse, before allocating it, a dense weight matrix that would not fit in memory."""
    entries = shape[0] * shape[1]
    if entries > MAX_WEIGHT_ENTRIES:
        raise fields.error("size", f"a dense {shape[0]} x {shape[1]} weight matrix "
                                   f"({entries * 8 / 2**30:.1f} GiB) is over the limit of "
                                   f"{MAX_WEIGHT_ENTRIES:.0e} weights; use smaller levels or "
                                   "local weights")


def parse_pair(fields: Fields, key: str, default=None) -> tuple[int, int] | None:
    """A positive integer or a list of two (rows, columns)."""
    raw = fields.raw(key, default=default)
    if raw is None:
        return None
    items = raw if isinstance(raw, list) else [raw, raw]
    if len(items) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0
                                  for v in items):
        raise fields.error(key, f"expected a positive integer or [rows, columns], got {raw!r}")
    return int(items[0]), int(items[1])


def parse_size(level: Fields) -> tuple[int, tuple[int, int] | None]:
    """A level's number of units and optional 2-D ``shape`` (``size`` may then be left out)."""
    shape = parse_pair(level, "shape")
    if shape is not None and not level.has("size"):
        if shape[0] * shape[1] > MAX_LEVEL_UNITS:
            raise level.error("shape", f"{list(shape)} is over {MAX_LEVEL_UNITS:.0e} units")
        return shape[0] * shape[1], shape
    size = level.number("size", minimum=1, maximum=MAX_LEVEL_UNITS, integer=True)
    if shape is not None and shape[0] * shape[1] != size:
        raise level.error("shape", f"{list(shape)} has {shape[0] * shape[1]} units, "
                                   f"but size = {size}")
    return size, shape


def parse_model(fields: Fields, seed: int) -> HierarchicalModel:
    errors = fields.text("errors", default="relaxing", choices=("relaxing", "instantaneous"))
    tau_belief = fields.number("tau_belief_ms", default=10.0, positive=True)
    tau_error = fields.number("tau_error_ms", default=2.0, positive=True)
    coupling = fields.text("coupling", default="auto",
                           choices=("auto", "dense", "sparse", "synapses"))
    mechanisms = registry.read_mechanisms(fields, "hierarchical")
    neurons, spiking = parse_neurons(fields)

    level_fields = fields.subs("levels")
    if len(level_fields) < 2:
        raise fields.error("levels", "expected at least two levels (the input and one above)")
    levels: list[Level] = []
    names: set[str] = set()
    for index, level in enumerate(level_fields):
        top = index == len(level_fields) - 1
        name = level.text("name", default="input" if index == 0 else f"level{index}")
        if name in names or not name.isidentifier():
            raise level.error("name", f"expected a unique identifier, got {name!r}")
        names.add(name)
        size, shape = parse_size(level)
        precision = (np.zeros(size) if top else
                     level.vector("precision", size, default=1.0, positive=True))
        generative = None
        initial = None
        if index > 0:
            below = levels[-1].size
            rng = np.random.default_rng([seed, 1, index])
            text = level.text("nonlinearity", default="identity")
            try:
                nonlinearity = parse_nonlinearity(text)
            except NonlinearityError as err:
                named = ", ".join(NAMED)
                raise level.error("nonlinearity", f"{err} (named ones: {named})") from err
            generative = GenerativeMap(
                weights=parse_weights(level, (below, size), rng, (levels[-1].shape, shape)),
                nonlinearity=nonlinearity,
                site=level.text("apply", default="before", choices=("before", "after")),
            )
            if level.has("initial_belief"):
                initial = level.vector("initial_belief", size)
        elif level.has("initial_belief"):
            raise level.error("initial_belief", "the input level has no beliefs")
        if top and level.has("precision"):
            raise level.error("precision", "the top level's precision is [model.prior] precision")
        units = level.text("units", default="1")
        problem = None if units == "1" else check_level_units(units)
        if problem:
            raise level.error("units", problem)
        levels.append(Level(name, size, precision, generative, initial, shape, units))
        level.close()

    prior = fields.sub("prior", default={})
    top_size = levels[-1].size
    prior_mean = prior.vector("mean", top_size, default=0.0)
    levels[-1].precision = prior.vector("precision", top_size, default=1.0, minimum=0.0)
    prior.close()
    model = HierarchicalModel(levels, prior_mean, errors, tau_belief, tau_error, coupling,
                              mechanisms, neurons, spiking)
    registry.check_mechanisms(fields, model, "hierarchical")
    check_model(fields, model)
    dense = not all(level.generative.is_sparse for level in model.belief_levels)
    if dense and model.n_beliefs > MAX_BELIEF_UNITS:
        raise fields.error("levels", f"{model.n_beliefs} belief units (levels 1..L) is over "
                                     f"{MAX_BELIEF_UNITS}: the free energy's Laplace term needs "
                                     "a dense N x N Hessian")
    if coupling == "synapses" and any(lv.generative.site == "after" for lv in levels[1:]):
        raise fields.error("coupling", "'synapses' supports apply = 'before' only; use 'dense'")
    return model


# --- reading a trial --------------------------------------------------------------------------

def generate_input(model: HierarchicalModel, cause: np.ndarray) -> np.ndarray:
    """The input pattern the model predicts from a top-level cause (no noise)."""
    state = cause
    for level in reversed(model.belief_levels):
        state = level.generative.predict(state)
    return state


def parse_trial(fields: Fields, model: HierarchicalModel, duration_ms: float) -> TrialSettings:
    stimulus = parse_stimulus(
        fields.sub("stimulus"), model.levels[0].size, duration_ms,
        lambda cause: generate_input(model, cause), model.levels[-1].size,
    )
    settings = TrialSettings(stimulus)
    overrides = fields.sub("precision", default={})
    sizes = {level.name: level.size for level in model.levels[:-1]}
    matrices = {model.levels[index].name: mechanism for mechanism, settings in
                model.mechanisms.items() for index in
                registry.mechanism(mechanism).initial_precision_matrices(settings)}
    for name in list(overrides.table):
        if name not in sizes:
            raise overrides.error(name, f"no level {name!r} with an error precision; "
                                        f"expected one of {', '.join(sizes)}")
        if name in matrices:
            raise overrides.error(name, f"level {name!r} takes its precision from "
                                        f"{matrices[name]} (a full matrix); a trial cannot "
                                        "set it")
        if isinstance(overrides.raw(name), dict):
            settings.precision_schedule[name] = parse_schedule(
                overrides.sub(name), sizes[name], duration_ms)
        else:
            settings.precision[name] = overrides.vector(name, sizes[name], positive=True)
    if fields.has("prior_precision"):
        settings.precision[model.levels[-1].name] = fields.vector(
            "prior_precision", model.levels[-1].size, minimum=0.0)
    if fields.has("prior_mean"):
        settings.prior_mean = fields.vector("prior_mean", model.levels[-1].size)
    return settings


def describe_model(model: HierarchicalModel) -> dict:
    return {
        "kind": "hierarchical",
        "errors": model.errors,
        "tau_belief_ms": model.tau_belief_ms,
        "tau_error_ms": model.tau_error_ms,
        "coupling": model.coupling,
        **describe_neurons(model),
        **registry.describe_mechanisms("hierarchical", model.mechanisms),
        "prior": {"mean": model.prior_mean.tolist(),
                  "precision": model.levels[-1].precision.tolist()},
        "levels": [
            {
                "name": level.name,
                "size": level.size,
                **({"shape": list(level.shape)} if level.shape else {}),
                **({"units": level.units} if level.units != "1" else {}),
                **({"precision": level.precision.tolist()} if i < len(model.levels) - 1 else {}),
                **({"nonlinearity": level.generative.nonlinearity.name,
                    "apply": level.generative.site,
                    "weights_shape": list(level.generative.shape)} if level.generative else {}),
            }
            for i, level in enumerate(model.levels)
        ],
    }
