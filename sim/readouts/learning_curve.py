"""Learning curves: per trial, how well the network has learned its world.

On (hierarchical) whenever a mechanism learns (``Mechanism.learns``). Columns, read at each
trial's end:

- ``reconstruction_error``: the mean over input units of (x - g_1(mu_1))^2, the input against
  the prediction of level 1 from its final beliefs and the current weights;
- ``learned``: the parameters this trial learned, comma-separated (``""``: a test trial);
- ``weight_angle`` (degrees), where the weights learn and a trial's stimulus draws from a
  known linear generative model (``linear_gaussian``): the largest principal angle between
  the column space of the learned W_1 and that of W_true (the weights are identifiable only up
  to an invertible mixing of the causes, so subspaces are compared;
  ``scipy.linalg.subspace_angles``); NaN in trials without a known W_true;
- ``covariance_error``, where a mechanism claims to learn the input level's covariance Sigma
  (``circuits.claims``: ``circuits.covariance``) and the trial's input is drawn with a known
  ``trial_covariance`` C: ||Sigma - C||_F / ||C||_F, the distance to the value Sigma learns
  when the prediction is the input's mean (``learning/variance``); NaN in trials without a
  known C.

F at the trial's end is ``final_free_energy`` (``sim.readouts.final_state``).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import scipy.linalg
import scipy.sparse

from circuits.generative import GenerativeMap
from sim import registry
from sim.families.hierarchical.stimulus import LinearGaussian
from sim.protocol import learned_parameters
from sim.readouts import Readout


def largest_angle_deg(learned: Any, true: np.ndarray) -> float:
    """The largest principal angle between span(learned) and span(true), in degrees."""
    dense = learned.toarray() if scipy.sparse.issparse(learned) else np.asarray(learned)
    return float(np.degrees(np.max(scipy.linalg.subspace_angles(dense, true))))


def true_weights(trial: Any) -> np.ndarray | None:
    """The world's W where the trial's input comes from a known linear-Gaussian model."""
    generator = trial.settings.stimulus.generator
    return generator.weights if isinstance(generator, LinearGaussian) else None


class LearningCurve(Readout):
    name = "learning_curve"
    family = "hierarchical"
    units: ClassVar[dict[str, str]] = {"weight_angle": "degree"}

    nan_means: ClassVar[dict[str, str]] = {
        "weight_angle": "the trial's stimulus has no known generative weights (it is not "
                        "linear_gaussian)",
        "covariance_error": "the trial's input has no known covariance (no trial_covariance)"}

    def enabled(self, scenario: Any) -> bool:
        return bool(learned_parameters(scenario.model))

    def row(self, simulation: Any, trial: Any) -> dict[str, Any]:
        model = simulation.model
        weights = simulation.coupling.weights(copy=False)[0]
        level = model.belief_levels[0]
        gmap = GenerativeMap(weights, level.generative.nonlinearity, level.generative.site)
        belief = np.asarray(simulation.beliefs[0].variables["belief"].get_value(), dtype=float)
        error = np.asarray(simulation.sensory, dtype=float) - gmap.predict(belief)
        learned = [name for name in simulation.learned if simulation.learns(trial, name)]
        row: dict[str, Any] = {"reconstruction_error": float(np.mean(error**2)),
                               "learned": ",".join(learned)}
        if "weights" in simulation.learned and any(
                true_weights(t) is not None for t in simulation.scenario.trials):
            true = true_weights(trial)
            row["weight_angle"] = (float("nan") if true is None
                                   else largest_angle_deg(weights, true))
        row.update(covariance_error(simulation, trial))
        return row


def learned_covariance(simulation: Any) -> np.ndarray | None:
    """Sigma of the input level, from the mechanism that claims to learn it
    (``circuits.claims``), as its ``snapshot`` gives it (``levels/<input>/covariance``);
    None when none does."""
    model = simulation.model
    name = model.levels[0].name
    for mechanism, claim in registry.claims(model):
        if (claim.action, claim.parameter, claim.level) == ("learns", "covariance", name):
            snapshot = mechanism.snapshot(model.mechanisms[mechanism.name], simulation.context)
            return snapshot[f"levels/{name}/covariance"]
    return None


def covariance_error(simulation: Any, trial: Any) -> dict[str, float]:
    """The input level's learned Sigma against its inputs' known covariance (see above)."""
    learned = learned_covariance(simulation)
    if learned is None:
        return {}
    factor = trial.settings.stimulus.trial_factor
    if factor is None:
        return {"covariance_error": float("nan")}
    true = factor @ factor.T
    learned = np.asarray(learned, dtype=float)
    return {"covariance_error": float(np.linalg.norm(learned - true) / np.linalg.norm(true))}


READOUT = LearningCurve()
