"""A safe evaluator for the constraint and selection expressions written in YAML.

Expressions are parsed with :mod:`ast` and checked against a whitelist once, at load time: names,
numbers, strings, arithmetic, comparisons, ``and``/``or``/``not``, ``x if c else y``, list and
tuple literals (for ``in``), and a few named functions. Nothing is ever passed to ``eval``:
search spaces may come from an LLM, so attribute access, subscripts, lambdas, comprehensions and
calls to anything outside :data:`FUNCTIONS` are refused.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Mapping
from dataclasses import dataclass, field

from eggsearch.errors import ExpressionError


def _next_pow2(n):
    n = int(n)
    return 1 if n <= 1 else 1 << (n - 1).bit_length()


def _cdiv(a, b):
    return -(-int(a) // int(b))


FUNCTIONS = {
    "min": min,
    "max": max,
    "abs": abs,
    "next_pow2": _next_pow2,
    "cdiv": _cdiv,
    "log2": math.log2,
}

_BINOPS = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_CMPOPS = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
    ast.Gt: operator.gt, ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b, ast.NotIn: lambda a, b: a not in b,
}
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Not: operator.not_}
_MAX_POW_EXPONENT = 64
_MAX_LENGTH = 1000


@dataclass(frozen=True)
class Expression:
    """A checked expression; call :meth:`evaluate` with a mapping of variable values."""

    source: str
    names: frozenset[str] = field(compare=False)
    _tree: ast.Expression = field(compare=False, repr=False)

    def evaluate(self, variables: Mapping[str, object]):
        return _eval(self._tree.body, variables, self.source)


def parse(source: str, where: str = "expression") -> Expression:
    """Parse and whitelist-check ``source``; raises :class:`ExpressionError`."""
    if not isinstance(source, str) or not source.strip():
        raise ExpressionError(f"{where}: expected a non-empty expression string")
    if len(source) > _MAX_LENGTH:
        raise ExpressionError(f"{where}: expression longer than {_MAX_LENGTH} characters")
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"{where}: cannot parse '{source}': {exc.msg}") from None
    names: set[str] = set()
    for node in ast.walk(tree):
        _check_node(node, source, where, names)
    return Expression(source, frozenset(names), tree)


def _check_node(node: ast.AST, source: str, where: str, names: set[str]) -> None:
    allowed = (ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.BinOp, ast.UnaryOp, ast.Compare,
               ast.IfExp, ast.Constant, ast.Name, ast.Load, ast.Call, ast.List, ast.Tuple,
               *_BINOPS, *_CMPOPS, *_UNARY)
    if not isinstance(node, allowed):
        raise ExpressionError(f"{where}: '{source}' uses {type(node).__name__}, "
                              "which constraint expressions do not allow")
    if isinstance(node, ast.Constant) and not isinstance(node.value, (int, float, str, bool)):
        raise ExpressionError(f"{where}: '{source}' has a constant of type "
                              f"{type(node.value).__name__}")
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            raise ExpressionError(f"{where}: '{source}' calls something other than "
                                  f"{', '.join(sorted(FUNCTIONS))}")
        if node.keywords:
            raise ExpressionError(f"{where}: '{source}' passes keyword arguments")
    elif isinstance(node, ast.Name) and node.id not in FUNCTIONS:
        if node.id.startswith("_"):
            raise ExpressionError(f"{where}: '{source}' names '{node.id}'; names may not "
                                  "start with an underscore")
        names.add(node.id)


def _eval(node: ast.AST, env: Mapping[str, object], source: str):
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        try:
            return env[node.id]
        except KeyError:
            raise ExpressionError(f"'{source}' names unknown variable '{node.id}'") from None
    if isinstance(node, ast.BinOp):
        left, right = _eval(node.left, env, source), _eval(node.right, env, source)
        if not all(isinstance(v, (int, float)) for v in (left, right)):
            # Arithmetic on strings or lists ('a' * 10**9) is never a constraint, and can be a
            # memory bomb.
            raise ExpressionError(f"'{source}': arithmetic on non-numbers")
        if isinstance(node.op, ast.Pow) and abs(right) > _MAX_POW_EXPONENT:
            raise ExpressionError(f"'{source}': exponent {right} is too large")
        try:
            return _BINOPS[type(node.op)](left, right)
        except (ZeroDivisionError, TypeError, OverflowError) as exc:
            raise ExpressionError(f"'{source}': {exc}") from None
    if isinstance(node, ast.UnaryOp):
        return _UNARY[type(node.op)](_eval(node.operand, env, source))
    if isinstance(node, ast.BoolOp):
        if isinstance(node.op, ast.And):
            value = True
            for v in node.values:
                value = _eval(v, env, source)
                if not value:
                    return value
            return value
        value = False
        for v in node.values:
            value = _eval(v, env, source)
            if value:
                return value
        return value
    if isinstance(node, ast.Compare):
        left = _eval(node.left, env, source)
        for op, comp in zip(node.ops, node.comparators):
            right = _eval(comp, env, source)
            try:
                if not _CMPOPS[type(op)](left, right):
                    return False
            except TypeError as exc:
                raise ExpressionError(f"'{source}': {exc}") from None
            left = right
        return True
    if isinstance(node, ast.IfExp):
        branch = node.body if _eval(node.test, env, source) else node.orelse
        return _eval(branch, env, source)
    if isinstance(node, (ast.List, ast.Tuple)):
        return tuple(_eval(e, env, source) for e in node.elts)
    if isinstance(node, ast.Call):
        args = [_eval(a, env, source) for a in node.args]
        try:
            return FUNCTIONS[node.func.id](*args)
        except (TypeError, ValueError) as exc:
            raise ExpressionError(f"'{source}': {exc}") from None
    raise ExpressionError(f"'{source}': cannot evaluate {type(node).__name__}")  # unreachable
