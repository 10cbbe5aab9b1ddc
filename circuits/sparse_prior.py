r"""Sparse prior on the causes: one more term of F on a level's beliefs.

A Gaussian prior on the causes finds only the subspace of the data: any rotation of the causes
explains it as well. A sparse prior (most causes near zero, a few large) breaks that symmetry,
as in sparse coding (Olshausen & Field 1996, Nature 381:607). Per unit i of the chosen level,
the prior density is p(mu_i) = exp(-rho(mu_i)) / Z, so F gains

.. math::

    F_\text{sparse} = \sum_i \rho(\mu_i) + \ln Z

and descending F the beliefs' drive gains one term,

.. math::

    \tau_\mu \frac{d\mu_l}{dt} = J_l^\top \varepsilon_{l-1} - \varepsilon_l - \rho'(\mu_l)

(``circuits.belief``: the term is added to the belief units' ``drive``). Two smooth shapes, each
with a ``strength`` lambda and a ``width`` w:

- ``log_cosh``: rho = lambda w ln cosh(mu / w), rho' = lambda tanh(mu / w),
  rho'' = (lambda / w) sech^2(mu / w): a smoothed Laplace prior (rho -> lambda |mu| as w -> 0;
  within w of zero it is quadratic, so F stays twice differentiable where L1 has a kink);
  Z = w B(lambda w / 2, 1/2) (from the integral of sech^a, B(a/2, 1/2)).
- ``student_t``: rho = lambda ln(1 + (mu / w)^2), rho' = 2 lambda mu / (w^2 + mu^2),
  rho'' = 2 lambda (w^2 - mu^2) / (w^2 + mu^2)^2 (Olshausen & Field's log(1 + x^2); a Student-t
  with nu = 2 lambda - 1 degrees of freedom); Z = w B(1/2, lambda - 1/2), proper for
  lambda > 1/2. It is not convex: rho'' < 0 beyond |mu| = w.

**Laplace term.** F's entropy side is 1/2 ln|H| with H the Hessian of the energy over the
beliefs; the prior adds diag(rho''(mu)) to the level's diagonal block (``curvature``;
``sim.families.hierarchical.free_energy``). Where the Student-t makes H indefinite, ln|det H|
is used, as elsewhere.

**Step bound.** The prior's curvature adds to the belief flow's stiffness: at most lambda / w
(log-cosh) or 2 lambda / w^2 (Student-t), both at mu = 0 (``max_curvature``), which the
stability preflight adds to lambda_max of J' Pi J + Pi.

**With a Gaussian prior too.** At the top level the Gaussian prior of ``[model.prior]`` stays
in F; set its precision to 0 (a flat prior, no term) for a purely sparse prior. Otherwise, as
on a hidden level (whose own error is its empirical prior), the level's prior is the product
of both densities, and F, with each density's own normaliser, is defined up to the constant
that renormalises the product.

Scenario: ``[model.sparse_prior]`` with ``kind`` (``log_cosh`` or ``student_t``), ``strength``
(lambda, nat), ``width`` (w, in the beliefs' units) and ``level`` (a belief level's name,
default the top one). Its energy is part of the recorded F; the readouts with Gaussian
references (exact posterior, ideal observer) leave such a run (``changes`` names
``posterior``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import betaln

from circuits.claims import Claim
from circuits.mechanism import BuildContext, Mechanism, Piece, Population

KINDS = ("log_cosh", "student_t")
EQUATIONS = """
sparse_strength : 1 (shared, constant)
sparse_width : 1 (shared, constant)
"""
GRADIENT = {  # rho'(belief), Brian2 code
    "log_cosh": "sparse_strength * tanh(belief / sparse_width)",
    "student_t": "2 * sparse_strength * belief / (sparse_width**2 + belief**2)",
}


@dataclass
class SparsePrior:
    """The prior's shape, strength lambda, width w, and the level it acts on (None: the top,
    resolved by ``check``)."""

    kind: str
    strength: float
    width: float
    level: str | None = None

    def energy(self, mu: np.ndarray) -> np.ndarray:
        """rho(mu) per unit (nat), without ln Z."""
        lam, w = self.strength, self.width
        x = np.abs(np.asarray(mu, dtype=float)) / w
        if self.kind == "log_cosh":  # ln cosh x = x + ln(1 + e^{-2x}) - ln 2, for any x
            return lam * w * (x + np.log1p(np.exp(-2 * x)) - math.log(2))
        return lam * np.log1p(x**2)

    def gradient(self, mu: np.ndarray) -> np.ndarray:
        """rho'(mu) (the NumPy twin of ``GRADIENT``)."""
        lam, w = self.strength, self.width
        mu = np.asarray(mu, dtype=float)
        if self.kind == "log_cosh":
            return lam * np.tanh(mu / w)
        return 2 * lam * mu / (w**2 + mu**2)

    def curvature(self, mu: np.ndarray) -> np.ndarray:
        """rho''(mu)."""
        lam, w = self.strength, self.width
        mu = np.asarray(mu, dtype=float)
        if self.kind == "log_cosh":  # sech^2 x = 4 e^{-2|x|} / (1 + e^{-2|x|})^2, for any x
            decay = np.exp(-2 * np.abs(mu) / w)
            return lam / w * 4 * decay / (1 + decay) ** 2
        return 2 * lam * (w**2 - mu**2) / (w**2 + mu**2) ** 2

    @property
    def max_curvature(self) -> float:
        """max over mu of rho'' (at mu = 0)."""
        lam, w = self.strength, self.width
        return lam / w if self.kind == "log_cosh" else 2 * lam / w**2

    @property
    def log_normaliser(self) -> float:
        """ln Z, Z = the integral of exp(-rho(mu)) over mu."""
        lam, w = self.strength, self.width
        if self.kind == "log_cosh":
            return math.log(w) + float(betaln(lam * w / 2, 0.5))
        return math.log(w) + float(betaln(0.5, lam - 0.5))


class SparsePriorMechanism(Mechanism):
    name = "sparse_prior"
    family = "hierarchical"
    section = "sparse_prior"
    changes = ("posterior",)

    def parse(self, fields) -> SparsePrior | None:
        if not fields.table:
            return None
        kind = fields.text("kind", choices=KINDS)
        strength = float(fields.number("strength", positive=True))
        width = float(fields.number("width", positive=True))
        if kind == "student_t" and strength <= 0.5:
            raise fields.error("strength", f"{strength!r} makes the Student-t prior improper "
                                           "(its integral diverges); expected a strength "
                                           "above 0.5")
        level = fields.text("level") if fields.has("level") else None
        return SparsePrior(kind, strength, width, level)

    def check(self, settings: SparsePrior, model, fail) -> None:
        names = [level.name for level in model.belief_levels]
        if settings.level is None:
            settings.level = names[-1]
        elif settings.level not in names:
            raise fail("level", f"no belief level {settings.level!r}; expected one of "
                                f"{', '.join(names)}")

    def claims(self, settings: SparsePrior, model) -> list[Claim]:
        """Its density multiplies the prior of its level (resolved by ``check``)."""
        return [Claim("multiplies", "prior", settings.level, "level")]

    def describe(self, settings: SparsePrior | None) -> dict:
        if settings is None:
            return {}
        return {"kind": settings.kind, "strength": settings.strength, "width": settings.width,
                "level": settings.level}

    def index(self, settings: SparsePrior, model) -> int:
        """The level's index (1..L)."""
        return [level.name for level in model.levels].index(settings.level)

    def pieces(self, settings: SparsePrior, population: Population) -> Piece | None:
        if population.role != "belief" or population.name != settings.level:
            return None
        return Piece(equations=EQUATIONS, terms={"drive": f"(-{GRADIENT[settings.kind]})"})

    def build(self, settings: SparsePrior, context: BuildContext) -> list:
        group = context.beliefs[self.index(settings, context.model) - 1]
        group.sparse_strength = settings.strength
        group.sparse_width = settings.width
        return []

    def beliefs(self, settings: SparsePrior, context: BuildContext) -> np.ndarray:
        group = context.beliefs[self.index(settings, context.model) - 1]
        return group.variables["belief"].get_value()

    def energy(self, settings: SparsePrior, context: BuildContext) -> float:
        mu = self.beliefs(settings, context)
        return float(np.sum(settings.energy(mu))) + len(mu) * settings.log_normaliser

    def curvature(self, settings: SparsePrior, context: BuildContext) -> dict[int, np.ndarray]:
        return {self.index(settings, context.model):
                settings.curvature(self.beliefs(settings, context))}

    def max_curvature(self, settings: SparsePrior, model) -> dict[int, float]:
        return {self.index(settings, model): settings.max_curvature}


MECHANISM = SparsePriorMechanism()
