"""Elementwise nonlinearities f(mu) of the generative model, with derivatives from sympy.

A level predicts the level below through ``g(mu) = W f(mu)`` (f applied *before* the weights) or
``g(mu) = f(W mu)`` (f applied *after* them). ``f`` is one expression in the symbol ``mu``:
a named one (``identity``, ``tanh``, ``relu_smooth``) or any user expression such as ``mu**2``.
Its first and second derivatives are derived symbolically here, once, so a user never writes
them; the same expression yields NumPy callables (for the dense coupling, free energy and the
Laplace term) and Brian2 code strings (for the ``Synapses`` coupling).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import sympy

NAMED = {
    "identity": "mu",
    "tanh": "tanh(mu)",
    # softplus: a smooth rectifier, log(1 + e^mu)
    "relu_smooth": "log(1 + exp(mu))",
}

_MU = sympy.Symbol("mu", real=True)
_ALLOWED_FUNCTIONS = {
    name: getattr(sympy, name)
    for name in ("exp", "log", "tanh", "sinh", "cosh", "sin", "cos", "sqrt", "Abs")
}


class NonlinearityError(ValueError):
    """A nonlinearity expression that cannot be used (unknown symbols, not differentiable...)."""


@dataclass(frozen=True)
class Nonlinearity:
    """f(mu) with f' and f'' as NumPy callables and Brian2 expressions.

    ``name`` is what the scenario wrote (``tanh`` or ``mu**2``); ``expression`` the sympy form.
    """

    name: str
    expression: sympy.Expr
    f: Callable[[np.ndarray], np.ndarray] = field(repr=False, compare=False)
    df: Callable[[np.ndarray], np.ndarray] = field(repr=False, compare=False)
    d2f: Callable[[np.ndarray], np.ndarray] = field(repr=False, compare=False)

    @property
    def is_identity(self) -> bool:
        return self.expression == _MU

    def brian(self, variable: str, order: int = 0) -> str:
        """Brian2 code for the ``order``-th derivative of f evaluated at ``variable``."""
        expr = sympy.diff(self.expression, _MU, order) if order else self.expression
        return str(expr.subs(_MU, sympy.Symbol(variable, real=True)))


def _vectorised(expr: sympy.Expr) -> Callable[[np.ndarray], np.ndarray]:
    compiled = sympy.lambdify(_MU, expr, modules="numpy")
    if expr.free_symbols:
        return compiled
    constant = float(expr)
    return lambda mu: np.full(np.shape(mu), constant)


def parse_nonlinearity(text: str) -> Nonlinearity:
    """Build f from a named nonlinearity or an expression in ``mu``."""
    source = NAMED.get(text, text)
    try:
        expression = sympy.sympify(source, locals={"mu": _MU, **_ALLOWED_FUNCTIONS})
    except (sympy.SympifyError, SyntaxError, TypeError) as err:
        raise NonlinearityError(f"cannot parse {text!r} as an expression in mu") from err
    if not isinstance(expression, sympy.Expr):
        raise NonlinearityError(f"{text!r} is not an expression in mu")
    unknown = expression.free_symbols - {_MU}
    if unknown:
        names = ", ".join(sorted(str(symbol) for symbol in unknown))
        raise NonlinearityError(
            f"{text!r} uses unknown symbol(s) {names}; write an expression in mu, "
            f"or one of {', '.join(NAMED)}"
        )
    first = sympy.diff(expression, _MU)
    second = sympy.diff(first, _MU)
    return Nonlinearity(
        name=text,
        expression=expression,
        f=_vectorised(expression),
        df=_vectorised(first),
        d2f=_vectorised(second),
    )
