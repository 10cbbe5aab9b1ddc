r"""Non-negative weights: learned generative weights kept in W >= 0.

A prior on the weights that is flat on W >= 0 and zero elsewhere (-ln p(W) = 0 inside, infinite
outside) adds nothing to F where it allows W, and forbids the rest. Descending F under it is
projected gradient descent: each Hebbian step of ``circuits.plasticity`` is followed by the
projection onto the allowed set, the nearest point in it,

.. math::

    W \leftarrow \max(W, 0) \quad \text{(elementwise)}

which is the MAP estimate of W under that prior as the steps become small. With generative
weights that can only add, each cause predicts a part of the input, never subtracts one: the
parts-based learning of non-negative matrix factorisation (Lee & Seung 1999), as in
non-negative sparse coding (Hoyer 2004) and the non-negative weights of PC/BC-DIM (Spratling
2012). With a sparse prior on the causes (``circuits.sparse_prior``) it lets a network learn
one basis image per bar in Foldiak's bars problem (``scenarios/learning/bars.toml``); without
it, the sparse prior alone does not (the causes and weights can trade signs).

The projection runs once per step just after the weights learn
(``circuits.schedule.WEIGHT_CONSTRAINT``), on the NumPy couplings (``dense`` or ``sparse``:
there on the stored entries); on the compiled device, on the synapses that stand for them.
The weights are not part of the beliefs, so F's Laplace term is unaffected; the projection
never moves a weight farther from where it was, so it adds no step bound.

Scenario field: ``[model.learning] nonnegative_weights = true`` (with ``tau_weights_ms``, and
initial weights >= 0, e.g. ``weights = { kind = "uniform", scale = ... }``).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse

from circuits import schedule
from circuits.claims import Claim, claims_on
from circuits.mechanism import BuildContext, Mechanism


class NonNegativeWeights(Mechanism):
    name = "nonnegative_weights"
    family = "hierarchical"
    section = "learning"
    changes = ("weights",)

    def parse(self, fields) -> bool | None:
        return True if fields.flag("nonnegative_weights", default=False) else None

    def describe(self, settings: bool | None) -> dict:
        return {} if settings is None else {"nonnegative_weights": True}

    def claims(self, settings: bool, model) -> list[Claim]:
        """It constrains the weights of every belief level, which another mechanism must
        learn (``circuits.claims``)."""
        return claims_on([level.name for level in model.belief_levels], "constrains",
                         "weights", "nonnegative_weights")

    def check(self, settings: bool, model, fail) -> None:
        if model.coupling == "synapses":
            raise fail("nonnegative_weights", "acts on the NumPy couplings; expected "
                                              "[model] coupling = 'dense', 'sparse' or 'auto'")
        for index, level in enumerate(model.belief_levels, start=1):
            weights = level.generative.weights
            values = weights.data if scipy.sparse.issparse(weights) else np.asarray(weights)
            if np.any(values < 0):
                raise fail("nonnegative_weights",
                           f"level {level.name!r} (model.levels[{index}]) starts with negative "
                           "weights; expected initial weights >= 0 (e.g. weights = "
                           "{ kind = \"uniform\", scale = ... })")

    def build(self, settings: bool, context: BuildContext) -> list:
        from brian2 import NetworkOperation

        arrays = [link.gmap.weights.data if link.sparse else link.gmap.weights
                  for link in context.coupling.links]

        def project() -> None:
            for weights in arrays:
                np.maximum(weights, 0.0, out=weights)

        return [NetworkOperation(project, when=schedule.SLOT, order=schedule.WEIGHT_CONSTRAINT,
                                 clock=context.clock, name="weight_constraint")]

    def compiled(self, settings: bool, context) -> list:
        """The projection on the compiled coupling's synapses' ``w``, at the same slot."""
        return [synapses.run_regularly("w = clip(w, 0, inf)", when=schedule.SLOT,
                                       order=schedule.WEIGHT_CONSTRAINT,
                                       name=f"{synapses.name}_nonnegative")
                for synapses in context.coupling.synapses]


MECHANISM = NonNegativeWeights()
