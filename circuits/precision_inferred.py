r"""Inferred precision: how reliable a channel is, inferred within a trial as a fast state.

Each chosen error unit gets a log-precision lambda (a state of the error population, like its
rate), with a Gaussian prior N(lambda_0, 1/p). The unit's precision is
Pi = Pi_configured exp(lambda) (``circuits.precision``: contributions add in log space), and
per unit F holds 1/2 Pi e^2 - 1/2 ln Pi + p/2 (lambda - lambda_0)^2 (+ constants), so

.. math::

    \tau_\lambda \frac{d\lambda}{dt} = -\frac{\partial F}{\partial \lambda}
      = \tfrac12 \left(1 - \Pi e^2\right) - p\,(\lambda - \lambda_0)

Its fixed point solves 1/2 (1 - Pi <e^2>) = p (lambda - lambda_0): with a weak prior (small p)
a channel of noise variance sigma^2 settles near Pi = 1/sigma^2; the prior pulls it towards
Pi_configured exp(lambda_0) (by 23% at p = 0.1, sigma^2 = 0.25, Pi_configured = 1). The free
energy the run records includes the prior's term, sum p/2 (lambda - lambda_0)^2
- 1/2 ln p + 1/2 ln 2 pi over the units; the Laplace term stays over the beliefs (lambda is
treated as a point estimate).

This is inference about the present (which channel is noisy now, e.g. in fog), reset with the
beliefs at a trial's ``reset``; learning a channel's reliability over many trials is a slow
parameter instead (``circuits.precision_learned``).

**Ceiling.** On a noise-free channel e -> 0 and lambda grows until the prior holds it, at
lambda_0 + 1/(2p): a weak prior lets it grow far. lambda is clipped at
``LOG_PRECISION_CEILING`` (exp(20) = 4.9e8) inside the update, so Pi stays finite, and the
runtime guard watches Pi against ``[numerics] rate_limit`` (1e8 by default), which stops such a
run as diverged before it reaches the ceiling.

Scenario: ``[model.precision_inference]`` with ``tau_ms`` (on when present), ``prior_mean``
(lambda_0, default 0), ``prior_precision`` (p, default 1) and ``levels`` (the levels whose
error units get precision units; default every level but the top). Recorded:
``levels/<name>/log_precision`` (``[record] variables`` name ``log_precision``).

Step bound: around its fixed point (Pi e^2 near 1) lambda relaxes at rate (1/2 + p)/tau_lambda.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from circuits import schedule
from circuits.claims import Claim, claims_on
from circuits.mechanism import (
    BuildContext,
    FlowBound,
    Mechanism,
    Piece,
    Population,
    SampledTerms,
    StartState,
    Stream,
    unknown_name,
)
from circuits.naming import level_key
from circuits.precision import LOG_PRECISION, LOG_PRECISION_CEILING
from circuits.variables import Variable

PRECISION_UNITS = """
dlog_precision/dt = (0.5 * (1 - precision * (signal - prediction)**2) - prior_precision * (log_precision - prior_mean)) / tau_log_precision : 1
precision : 1 (linked)
signal : 1 (linked)
prediction : 1 (linked)
prior_mean : 1 (shared, constant)
prior_precision : 1 (shared, constant)
tau_log_precision : second (shared, constant)
"""  # noqa: E501
ERROR_PIECE = "log_precision : 1 (linked)"
# what it records: lambda = ln Pi per error unit (dimensionless whatever the level's units)
INFERRED = Variable("log_precision", "lambda", "inferred log-precision", "precision",
                    units="1", reference="log_noise_precision")


@dataclass(frozen=True)
class Settings:
    tau_ms: float
    prior_mean: float
    prior_precision: float
    levels: tuple[str, ...] | None  # None: every level but the top


@dataclass
class Built:
    """What one run built: the precision units by level name, and the error groups they serve."""

    units: list
    errors: list


class InferredPrecision(Mechanism):
    name = "inferred_precision"
    family = "hierarchical"
    section = "precision_inference"
    changes = ("precision",)
    record_variables = ("log_precision",)

    def parse(self, fields) -> Settings | None:
        tau = fields.number("tau_ms", default=None, positive=True)
        mean = fields.number("prior_mean", default=0.0, minimum=-LOG_PRECISION_CEILING,
                             maximum=LOG_PRECISION_CEILING)
        precision = fields.number("prior_precision", default=1.0, positive=True, maximum=1e12)
        levels = fields.names("levels", default=None)
        if tau is None:
            if fields.table:
                raise fields.error("tau_ms", "is required to switch inferred precision on")
            return None
        return Settings(tau, mean, precision, levels)

    def describe(self, settings: Settings | None) -> dict:
        if settings is None:
            return {}
        return {"tau_ms": settings.tau_ms, "prior_mean": settings.prior_mean,
                "prior_precision": settings.prior_precision,
                "levels": None if settings.levels is None else list(settings.levels)}

    def check(self, settings: Settings, model, fail) -> None:
        """The named levels exist and carry error units below the top."""
        problem = unknown_name(settings.levels or (), [level.name for level in model.levels[:-1]],
                               where=" with error units below the top")
        if problem:
            raise fail("levels", problem)

    def claims(self, settings: Settings, model) -> list[Claim]:
        """It multiplies the precision of its levels (a log contribution)."""
        if settings.levels is None:
            return claims_on([level.name for level in model.levels[:-1]], "multiplies",
                             "precision", "tau_ms")
        return claims_on(settings.levels, "multiplies", "precision", "levels")

    def chosen(self, settings: Settings, population: Population) -> bool:
        if settings.levels is None:
            return not population.top
        return population.name in settings.levels

    def pieces(self, settings: Settings, population: Population) -> Piece | None:
        if population.role != "error" or not self.chosen(settings, population):
            return None
        return Piece(equations=ERROR_PIECE, terms={LOG_PRECISION: "log_precision"})

    def build(self, settings: Settings, context: BuildContext) -> list:
        """One population of precision units per chosen error population, integrating lambda
        after the beliefs moved (``schedule.PRECISION_UNITS``: a recorded sample shows lambda
        and Pi of the same time); the error units recompose Pi at the start of each step."""
        from brian2 import NeuronGroup, linked_var, ms

        built = context.state[self.name] = Built([], [])
        top = len(context.model.levels) - 1
        for index, (errors, level) in enumerate(zip(context.errors, context.model.levels,
                                                    strict=True)):
            if not self.chosen(settings, Population("error", index, level.name,
                                                    top=index == top)):
                continue
            units = NeuronGroup(len(errors), PRECISION_UNITS, method=context.scenario.method,
                                clock=context.clock, name=f"precision_{level_key(index)}",
                                order=schedule.PRECISION_UNITS)
            for name in ("precision", "signal", "prediction"):
                setattr(units, name, linked_var(errors, name))
            units.prior_mean = settings.prior_mean
            units.prior_precision = settings.prior_precision
            units.tau_log_precision = settings.tau_ms * ms
            units.log_precision = settings.prior_mean
            errors.log_precision = linked_var(units, "log_precision")
            built.units.append((level.name, units))
            built.errors.append(errors)
        return [units for _, units in built.units]

    def log_precisions(self, context: BuildContext) -> list:
        return [units.variables["log_precision"].get_value()
                for _, units in context.state[self.name].units]

    def start_trial(self, settings: Settings, context: BuildContext, reset: bool) -> None:
        if reset:
            for values in self.log_precisions(context):
                values[:] = settings.prior_mean

    def energy(self, settings: Settings, context: BuildContext) -> float:
        total = 0.0
        p = settings.prior_precision
        for values in self.log_precisions(context):
            deviation = values - settings.prior_mean
            total += _quadratic(deviation, p)
            total += 0.5 * len(deviation) * (math.log(2 * math.pi) - math.log(p))
        return total

    def sampled_terms(self, settings: Settings, context: BuildContext,
                      recorded: dict) -> SampledTerms:
        """``energy`` at S recorded samples at once: the same sum over the log-precision
        units, a row per sample, each row's quadratic form by ``energy``'s own operations
        (a runtime run's F then equals sampling one by one to the bit:
        ``sim.sample_stretch``; one stacked product differed in the last bit)."""
        total = np.zeros(len(next(iter(next(iter(recorded.values())).values()))))
        p = settings.prior_precision
        for _, units in context.state[self.name].units:
            deviation = recorded[units.name]["log_precision"] - settings.prior_mean
            total += np.array([_quadratic(row, p) for row in deviation])
            total += 0.5 * deviation.shape[1] * (math.log(2 * math.pi) - math.log(p))
        return SampledTerms(energy=total)

    def streams(self, settings: Settings, context: BuildContext) -> list[Stream]:
        return [Stream(f"levels/{name}/log_precision", len(values), lambda v=values: v,
                       variable="log_precision", state=(units.name, "log_precision"),
                       declares=INFERRED)
                for (name, units), values in zip(context.state[self.name].units,
                                                 self.log_precisions(context), strict=True)]

    def watch(self, settings: Settings, context: BuildContext) -> list[tuple]:
        return [(group.name, "precision", group.variables["precision"].get_value())
                for group in context.state[self.name].errors]

    def bounds(self, settings: Settings, state: StartState) -> list[FlowBound]:
        return [FlowBound(0.5 + settings.prior_precision, settings.tau_ms, state.method,
                          "dt/tau_lambda * (1/2 + p) < 2",
                          "the log-precision's rate near its fixed point, "
                          "tau d lambda/dt = (1 - Pi e^2)/2 - p (lambda - lambda_0)")]


def _quadratic(deviation: np.ndarray, p: float) -> float:
    """p/2 |lambda - lambda_0|^2 of one sample's log-precision units."""
    return float(0.5 * p * deviation @ deviation)


MECHANISM = InferredPrecision()
