"""Elementwise nonlinearities f(mu) of the generative model, with derivatives from sympy.

A level predicts the level below through ``g(mu) = W f(mu)`` (f applied *before* the weights) or
``g(mu) = f(W mu)`` (f applied *after* them). ``f`` is one expression in the symbol ``mu``:
a named one (``identity``, ``tanh``, ``relu_smooth``) or any user expression such as ``mu**2``.
Its first and second derivatives are derived symbolically here, once, so a user never writes
them; the same expression yields NumPy callables (for the dense coupling, free energy and the
Laplace term) and Brian2 code strings (for the ``Synapses`` coupling).
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property, partial

import numpy as np
import sympy

from circuits import lane_elementwise

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
    # f' as a function of f's value, where it is one (tanh: 1 - f**2; exp: f), else None: the
    # coupling takes f' from the f(mu) it computed for the prediction instead of from mu again
    df_of_f: Callable[[np.ndarray], np.ndarray] | None = field(default=None, repr=False,
                                                               compare=False)

    @cached_property  # read on every step by the coupling; a sympy comparison costs ~10 us
    def is_identity(self) -> bool:
        return self.expression == _MU

    @cached_property
    def is_tanh(self) -> bool:
        """f = tanh(mu), whose f' is 1 - f**2 (``df_of_f``)."""
        return self.expression == sympy.tanh(_MU)

    def f_into(self, mu: np.ndarray, out: np.ndarray, rows: bool = False
               ) -> Callable[[], object]:
        """A call of no arguments that writes f(mu) into ``out``: NumPy's own function with
        ``out=`` where f is one of them applied to mu (tanh(mu): the function ``f`` calls, so
        the same numbers, without a temporary and a copy), else ``f`` and a copy. ``rows``: a
        batched run's (B, n) rows, whose float32 tanh is ``circuits.lane_elementwise``'s
        where it is compiled (not NumPy's bits: within 5 ulp of the correctly rounded)."""
        if rows and self.is_tanh and (call := lane_elementwise.tanh_call(mu, out)) is not None:
            return call
        function = self.expression.func
        if (self.expression.args == (_MU,) and function in _ALLOWED_FUNCTIONS.values()
                and isinstance(getattr(np, function.__name__, None), np.ufunc)):
            return partial(getattr(np, function.__name__), mu, out=out)
        return lambda: np.copyto(out, self.f(mu))

    def brian(self, variable: str, order: int = 0) -> str:
        """Brian2 code for the ``order``-th derivative of f evaluated at ``variable``."""
        expr = sympy.diff(self.expression, _MU, order) if order else self.expression
        return str(expr.subs(_MU, sympy.Symbol(variable, real=True)))

    def brian_slope(self, mu: str, value: str) -> str:
        """Brian2 code for f'(mu), written in f's value held in ``value`` where it can be
        (``df_of_f``: tanh's 1 - value**2, no second tanh a unit), else in ``mu``."""
        first = sympy.diff(self.expression, _MU)
        in_value = _in_value(self.expression, first)
        if in_value is None:
            return self.brian(mu, 1)
        return str(in_value.subs(_VALUE, sympy.Symbol(value, real=True)))


def _vectorised(expr: sympy.Expr) -> Callable[[np.ndarray], np.ndarray]:
    compiled = sympy.lambdify(_MU, expr, modules="numpy")
    if expr.free_symbols:
        return compiled
    constant = float(expr)
    return lambda mu: np.full(np.shape(mu), constant)


_VALUE = sympy.Symbol("f", real=True)


def _in_value(expression: sympy.Expr, first: sympy.Expr) -> sympy.Expr | None:
    """f' written in f's value (the symbol ``_VALUE``) where sympy finds f in it and no mu is
    left (tanh: 1 - f**2); None otherwise (mu**2, softplus) and for the identity."""
    if expression == _MU or not first.free_symbols:
        return None
    in_value = first.subs(expression, _VALUE)
    return None if _MU in in_value.free_symbols else in_value


def _derivative_of_value(expression: sympy.Expr, first: sympy.Expr
                         ) -> Callable[[np.ndarray], np.ndarray] | None:
    """``_in_value`` as a NumPy callable of f's value, or None."""
    in_value = _in_value(expression, first)
    return None if in_value is None else sympy.lambdify(_VALUE, in_value, modules="numpy")


MAX_LENGTH = 200
MAX_EXPONENT = 64.0
_OPERATORS = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow, ast.USub, ast.UAdd)
_CONSTANTS = {"pi": math.pi, "E": math.e}


def _constant_value(node: ast.AST) -> float | None:
    """The float value of a subtree without ``mu`` (None if it has mu); raises on overflow."""
    if isinstance(node, ast.Constant):
        return float(node.value)
    if isinstance(node, ast.Name):
        return _CONSTANTS.get(node.id)
    if isinstance(node, ast.UnaryOp):
        inner = _constant_value(node.operand)
        return None if inner is None else (-inner if isinstance(node.op, ast.USub) else inner)
    if isinstance(node, ast.BinOp):
        left, right = _constant_value(node.left), _constant_value(node.right)
        if left is None or right is None:
            return None
        operation = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
                     ast.Div: operator.truediv, ast.Pow: operator.pow}[type(node.op)]
        return operation(left, right)
    if isinstance(node, ast.Call):
        inner = _constant_value(node.args[0])
        return None if inner is None else 0.0  # a function of a constant: finite or caught later
    return None


def check_syntax(text: str) -> None:
    """Refuse anything but arithmetic on ``mu``, numbers, ``pi``, ``E`` and the allowed functions.

    sympy parses with Python's ``eval``, so the text is checked first: no attribute access, no
    other names, no huge constant powers (``9**9**9**9`` would keep sympy busy for ever).
    """
    if len(text) > MAX_LENGTH:
        raise NonlinearityError(f"expression longer than {MAX_LENGTH} characters")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError) as err:
        raise NonlinearityError(f"cannot parse {text!r} as an expression in mu") from err
    for node in ast.walk(tree):
        if isinstance(node, (ast.Expression, ast.Load, *_OPERATORS)):
            continue
        if isinstance(node, ast.BinOp | ast.UnaryOp):
            if not isinstance(node.op, _OPERATORS):
                raise NonlinearityError(f"{text!r}: only + - * / ** are allowed")
            continue
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool) or not isinstance(node.value, int | float):
                raise NonlinearityError(f"{text!r}: {node.value!r} is not a number")
            continue
        if isinstance(node, ast.Name):
            if node.id != "mu" and node.id not in _CONSTANTS and node.id not in _ALLOWED_FUNCTIONS:
                raise NonlinearityError(
                    f"{text!r} uses unknown symbol {node.id!r}; write an expression in mu "
                    f"(functions: {', '.join(_ALLOWED_FUNCTIONS)}), or one of {', '.join(NAMED)}")
            continue
        if isinstance(node, ast.Call):
            if (not isinstance(node.func, ast.Name) or node.func.id not in _ALLOWED_FUNCTIONS
                    or len(node.args) != 1 or node.keywords):
                raise NonlinearityError(
                    f"{text!r}: calls are limited to one-argument "
                    f"{', '.join(_ALLOWED_FUNCTIONS)}")
            continue
        raise NonlinearityError(f"{text!r}: {type(node).__name__} is not allowed in an expression")
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in _ALLOWED_FUNCTIONS:
            parents = [p for p in ast.walk(tree) if isinstance(p, ast.Call) and p.func is node]
            if not parents:
                raise NonlinearityError(f"{text!r}: {node.id} must be called, as {node.id}(mu)")
        if isinstance(node, ast.Constant | ast.BinOp | ast.UnaryOp):
            try:
                value = _constant_value(node)
                exponent = (_constant_value(node.right) if isinstance(node, ast.BinOp)
                            and isinstance(node.op, ast.Pow) else None)
            except (OverflowError, ZeroDivisionError, ValueError) as err:
                raise NonlinearityError(f"{text!r}: a constant is not finite ({err})") from err
            if value is not None and not math.isfinite(value):
                raise NonlinearityError(f"{text!r}: a constant is not finite")
            if exponent is not None and abs(exponent) > MAX_EXPONENT:
                raise NonlinearityError(
                    f"{text!r}: constant exponents are limited to {MAX_EXPONENT:g}")


def parse_nonlinearity(text: str) -> Nonlinearity:
    """Build f from a named nonlinearity or an expression in ``mu``."""
    source = NAMED.get(text, text)
    check_syntax(source)
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
    if any(part.has(sympy.zoo, sympy.oo, -sympy.oo, sympy.nan)
           for part in (expression, first, second)):
        raise NonlinearityError(f"{text!r} or its derivatives are infinite or undefined")
    try:
        nonlinearity = Nonlinearity(
            name=text,
            expression=expression,
            f=_vectorised(expression),
            df=_vectorised(first),
            d2f=_vectorised(second),
            df_of_f=_derivative_of_value(expression, first),
        )
        probe = np.array([0.5, 1.5])
        for function in (nonlinearity.f, nonlinearity.df, nonlinearity.d2f):
            np.asarray(function(probe), dtype=float)
    except (TypeError, ValueError, NameError, KeyError, ArithmeticError) as err:
        raise NonlinearityError(f"{text!r} cannot be evaluated numerically ({err})") from err
    return nonlinearity
