r"""Top-down attention: a context belief predicts the log-precision of chosen error units.

A higher-level belief mu (a context, "attend left") sets the gain of error units below through
a mapping C given in the scenario (Feldman & Friston 2010, Front Hum Neurosci 4:215):

.. math::

    \ln \Pi_i = \ln \Pi_{\text{configured}, i} + \sum_k c_{ik} \mu_k

a log contribution to precision (``circuits.precision``), recomposed in the error units' own
equations every step. Since the energy holds 1/2 Pi_i e_i^2 - 1/2 ln Pi_i per unit and
dPi_i/dmu_k = c_ik Pi_i, the context beliefs receive, besides their usual drive,

.. math::

    -\frac{\partial F}{\partial \mu_k} \mathrel{+}= -\tfrac12 \sum_i c_{ik}
        \left(\Pi_i e_i^2 - 1\right)

so a context can also be inferred from which channel is reliable (an error smaller than its
precision expects, Pi e^2 < 1, pulls the context towards raising that precision). Both products
(C mu into the error units, C' (Pi e^2 - 1) into the context) are NumPy products between steps'
phases, like the coupling (``circuits.coupling``); the gain itself changes inside the Brian2
equations of the error units. The Laplace term of F keeps its Hessian over the beliefs with the
precisions held (the dependence of Pi on mu is left out of H).

Scenario: ``[model.attention]`` with ``context`` (a belief level), ``target`` (a level whose
error units' gain it sets) and ``mapping`` (C: one row per target unit, one column per context
unit). Recorded: the precision in force, ``levels/<target>/precision``, names
``topdown_precision`` among its ``contributions``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from circuits import schedule
from circuits.claims import Claim
from circuits.mechanism import BuildContext, Mechanism, Piece, Population, state_array
from circuits.precision import LOG_PRECISION


@dataclass(frozen=True)
class Settings:
    context: str
    target: str
    mapping: np.ndarray  # C, (n_target, n_context)


class TopDownPrecision(Mechanism):
    name = "topdown_precision"
    family = "hierarchical"
    section = "attention"
    changes = ("precision",)

    def parse(self, fields) -> Settings | None:
        if not fields.table:
            return None
        context = fields.text("context")
        target = fields.text("target")
        raw = fields.raw("mapping")
        rows_ok = (isinstance(raw, list) and raw
                   and all(isinstance(row, list) and len(row) == len(raw[0]) and row
                           and all(isinstance(v, int | float) and not isinstance(v, bool)
                                   for v in row) for row in raw))
        if not rows_ok:
            raise fields.error("mapping", "expected C as a list of rows of numbers, one row per "
                                          "target unit, one number per context unit")
        return Settings(context, target, np.asarray(raw, dtype=float))

    def describe(self, settings: Settings | None) -> dict:
        if settings is None:
            return {}
        return {"context": settings.context, "target": settings.target,
                "mapping": settings.mapping.tolist()}

    def check(self, settings: Settings, model, fail) -> None:
        levels = {level.name: index for index, level in enumerate(model.levels)}
        if settings.context not in levels or levels[settings.context] == 0:
            raise fail("context", f"no belief level {settings.context!r}; expected one of "
                                  f"{', '.join(level.name for level in model.belief_levels)}")
        if settings.target not in levels or levels[settings.target] == len(model.levels) - 1:
            names = ", ".join(level.name for level in model.levels[:-1])
            raise fail("target", f"no level {settings.target!r} with error units below the "
                                 f"top; expected one of {names}")
        shape = (model.levels[levels[settings.target]].size,
                 model.levels[levels[settings.context]].size)
        if settings.mapping.shape != shape:
            raise fail("mapping", f"expected C with {shape[0]} rows (units of "
                                  f"{settings.target!r}) of {shape[1]} numbers (units of "
                                  f"{settings.context!r}), got "
                                  f"{' x '.join(map(str, settings.mapping.shape))}")
        if not np.all(np.isfinite(settings.mapping)):
            raise fail("mapping", "expected finite numbers")

    def claims(self, settings: Settings, model) -> list[Claim]:
        """It multiplies the precision of its target (a log contribution)."""
        return [Claim("multiplies", "precision", settings.target, "target")]

    def pieces(self, settings: Settings, population: Population) -> Piece | None:
        if population.role == "error" and population.name == settings.target:
            return Piece(equations="log_precision_topdown : 1",
                         terms={LOG_PRECISION: "log_precision_topdown"})
        if population.role == "belief" and population.name == settings.context:
            return Piece(equations="attention_drive : 1", terms={"drive": "attention_drive"})
        return None

    def build(self, settings: Settings, context: BuildContext) -> list:
        from brian2 import NetworkOperation

        names = [level.name for level in context.model.levels]
        errors = context.errors[names.index(settings.target)]
        beliefs = context.beliefs[names.index(settings.context) - 1]

        mapping = settings.mapping.astype(state_array(errors, "precision").dtype)
        belief = state_array(beliefs, "belief")
        log_precision = state_array(errors, "log_precision_topdown")
        drive = state_array(beliefs, "attention_drive")
        precision, signal = state_array(errors, "precision"), state_array(errors, "signal")
        prediction = state_array(errors, "prediction")

        def predict_precision() -> None:  # before the error units recompose Pi
            np.dot(mapping, belief, out=log_precision)

        def carry_back() -> None:  # with this step's errors, before the beliefs move
            error = signal - prediction
            np.dot(mapping.T, 0.5 * (1.0 - precision * error * error), out=drive)

        predict_precision()
        return [NetworkOperation(predict_precision, when=schedule.SLOT,
                                 order=schedule.PRECISION - 1, clock=context.clock,
                                 name="topdown_precision"),
                NetworkOperation(carry_back, when=schedule.SLOT,
                                 order=schedule.DELIVER_TO_BELIEFS, clock=context.clock,
                                 name="topdown_to_context")]

    def compiled(self, settings: Settings, context) -> list:
        """Both products as ``(summed)`` synapses over C's nonzero entries, in the slots of the
        two operations (a summed variable lands just before its target group by default:
        moved to them)."""
        from brian2 import Synapses

        names = [level.name for level in context.simulation.model.levels]
        runtime = context.simulation.context
        errors = context.clone(runtime.errors[names.index(settings.target)])
        beliefs = context.clone(runtime.beliefs[names.index(settings.context) - 1])
        target, source = np.nonzero(settings.mapping)
        weights = settings.mapping[target, source]
        predict = Synapses(beliefs, errors, "c : 1 (constant)\n"
                           "log_precision_topdown_post = c * belief_pre : 1 (summed)",
                           clock=context.clock, name="topdown_precision")
        back = Synapses(errors, beliefs, "c : 1 (constant)\n"
                        "attention_drive_post = 0.5 * c * (1.0 - precision_pre * "
                        "(signal_pre - prediction_pre) * (signal_pre - prediction_pre))"
                        " : 1 (summed)", clock=context.clock, name="topdown_to_context")
        for synapses, pre, post, order in ((predict, source, target, schedule.PRECISION - 1),
                                           (back, target, source, schedule.DELIVER_TO_BELIEFS)):
            synapses.connect(i=pre, j=post)
            synapses.c = weights
            schedule.summed_at(synapses, order)
        return [predict, back]

    def watch(self, settings: Settings, context: BuildContext) -> list[tuple]:
        names = [level.name for level in context.model.levels]
        errors = context.errors[names.index(settings.target)]
        return [(errors.name, "precision", errors.variables["precision"].get_value())]


MECHANISM = TopDownPrecision()
