"""Pointwise ATen ops as Triton expressions.

Floating values are computed in fp32 whatever their storage type (fp16 and bf16 are widened on
load and rounded on store); integer values in int64; booleans as Triton's int1. Transcendental
helpers (``_sigmoid``, ``_tanh``, ...) are small ``@triton.jit`` functions emitted once per file
(:data:`HELPERS`): Triton's CPU interpreter has no ``libdevice``, and these agree with PyTorch
to a few ulp.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

HELPERS = '''
@triton.jit
def _sigmoid(x):
    return 1.0 / (1.0 + tl.exp(-x))


@triton.jit
def _tanh(x):
    # tanh(|x|) = (1 - e) / (1 + e) with e = exp(-2|x|); a Taylor series near 0, where 1 - e
    # would lose the low bits.
    a = tl.abs(x)
    e = tl.exp(-2.0 * a)
    big = (1.0 - e) / (1.0 + e)
    a2 = a * a
    small = a * (1.0 - a2 * (0.3333333333333333 - a2 * (0.13333333333333333
                                                         - a2 * 0.05396825396825397)))
    t = tl.where(a < 0.0625, small, big)
    return tl.where(x < 0.0, -t, t)


@triton.jit
def _erf(x):
    return tl.math.erf(x)
'''


@dataclass(frozen=True)
class Var:
    """A Triton variable and its compute type: "f" (fp32), "i" (int64), "b" (int1) or "s" (a
    size argument of the kernel)."""

    name: str
    kind: str = "f"

    def __str__(self) -> str:
        return self.name


def literal(x) -> str:
    if isinstance(x, bool):
        return "1" if x else "0"
    if isinstance(x, int):
        return str(x)
    if isinstance(x, float):
        if math.isinf(x):
            return 'float("inf")' if x > 0 else '-float("inf")'
        if math.isnan(x):
            return 'float("nan")'
        return repr(x)
    raise TypeError(f"not a pointwise constant: {x!r}")


def _f(x) -> str:
    """An operand as fp32 code (a literal is written as a float). A size argument ("s") is
    multiplied, not cast: Triton passes an int argument equal to 1 as a constant."""
    if isinstance(x, Var):
        if x.kind == "s":
            return f"({x.name} * 1.0)"
        return x.name if x.kind == "f" else f"{x.name}.to(tl.float32)"
    return literal(float(x)) if not isinstance(x, bool) else literal(float(x))


def _any(x) -> str:
    return x.name if isinstance(x, Var) else literal(x)


def kind_of_dtype(dtype: torch.dtype) -> str:
    if dtype == torch.bool:
        return "b"
    return "f" if dtype.is_floating_point else "i"


TRITON_DTYPE = {torch.float32: "tl.float32", torch.float16: "tl.float16",
                torch.bfloat16: "tl.bfloat16", torch.int64: "tl.int64", torch.int32: "tl.int32",
                torch.int8: "tl.int8", torch.uint8: "tl.uint8", torch.bool: "tl.int1"}

UNARY = {
    "abs": "tl.abs({a})", "neg": "(-{a})", "relu": "tl.maximum({a}, 0.0)",
    "sigmoid": "_sigmoid({a})", "tanh": "_tanh({a})", "exp": "tl.exp({a})",
    "exp2": "tl.exp2({a})", "log": "tl.log({a})", "log2": "tl.log2({a})",
    "sqrt": "tl.sqrt({a})", "rsqrt": "tl.rsqrt({a})", "reciprocal": "(1.0 / {a})",
    "sin": "tl.sin({a})", "cos": "tl.cos({a})", "erf": "_erf({a})",
    "log1p": "tl.log(1.0 + {a})", "expm1": "(tl.exp({a}) - 1.0)", "floor": "tl.floor({a})",
    "ceil": "tl.ceil({a})", "square": "({a} * {a})",
    "sign": "tl.where({a} > 0.0, 1.0, tl.where({a} < 0.0, -1.0, 0.0))",
}
COMPARE = {"eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}
IDENTITY = {"clone", "alias", "detach", "lift_fresh_copy", "contiguous", "view", "_unsafe_view",
            "reshape", "expand", "unsqueeze", "squeeze", "broadcast_in_dim", "view_of"}


def _pow(a, e) -> str:
    if isinstance(e, Var):
        return f"tl.exp({_f(e)} * tl.log({_f(a)}))"
    e = float(e)
    if e == int(e) and 0 <= e <= 4:
        return "(" + " * ".join([_f(a)] * int(e)) + ")" if e else "1.0"
    if e == 0.5:
        return f"tl.sqrt({_f(a)})"
    if e == -1:
        return f"(1.0 / {_f(a)})"
    if e == -0.5:
        return f"(1.0 / tl.sqrt({_f(a)}))"
    return f"tl.exp({literal(e)} * tl.log({_f(a)}))"


def _gelu(a, approximate="none") -> str:
    x = _f(a)
    if approximate == "tanh":
        return (f"(0.5 * {x} * (1.0 + _tanh(0.7978845608028654 * ({x} + 0.044715 * {x} * {x}"
                f" * {x}))))")
    return f"(0.5 * {x} * (1.0 + _erf({x} * 0.7071067811865476)))"


def _clamp(a, lo=None, hi=None) -> str:
    out = _f(a)
    if lo is not None:
        out = f"tl.maximum({out}, {_f(lo)})"
    if hi is not None:
        out = f"tl.minimum({out}, {_f(hi)})"
    return out


BINARY = {"add": "+", "sub": "-", "mul": "*", "div": "/"}


def _binary(name: str, args: list, kwargs: dict, out_dtype: torch.dtype) -> str:
    a, b = args[0], args[1]
    alpha = kwargs.get("alpha", args[2] if len(args) > 2 else 1)
    if name in ("add", "sub") and alpha != 1:
        b = Var(f"({_f(b)} * {literal(float(alpha))})")
    if name == "div":
        q = f"({_f(a)} / {_f(b)})"
        return {"floor": f"tl.floor({q})", "trunc": f"({q}).to(tl.int64).to(tl.float32)"
                }.get(kwargs.get("rounding_mode"), q)
    if kind_of_dtype(out_dtype) != "f":
        return f"({_any(a)} {BINARY[name]} {_any(b)})"
    return f"({_f(a)} {BINARY[name]} {_f(b)})"


def pointwise(name: str, args: list, kwargs: dict, out_dtype: torch.dtype) -> str | None:
    """Triton code for op ``name`` (``aten.add`` without the prefix) applied to ``args``
    (:class:`Var` or Python constants), or None when the op is not pointwise or not supported.
    """
    a = args[0] if args else None
    if name in UNARY:
        return UNARY[name].format(a=_f(a))
    if name in IDENTITY:
        return _any(a)
    if name in COMPARE:
        return f"({_any(a)} {COMPARE[name]} {_any(args[1])})"
    if name in BINARY:
        return _binary(name, args, kwargs, out_dtype)
    if name == "rsub":
        alpha = kwargs.get("alpha", args[2] if len(args) > 2 else 1)
        return f"({_f(args[1])} - {_f(a)} * {literal(float(alpha))})"
    if name in ("maximum", "minimum"):
        return f"tl.{name}({_f(a)}, {_f(args[1])})"
    if name == "where":
        c = args[0]
        cond = c.name if isinstance(c, Var) else literal(bool(c))
        if kind_of_dtype(out_dtype) == "f":
            return f"tl.where({cond}, {_f(args[1])}, {_f(args[2])})"
        return f"tl.where({cond}, {_any(args[1])}, {_any(args[2])})"
    if name == "pow":
        if not isinstance(a, Var):  # pow.Scalar: base ** tensor
            return f"tl.exp({_f(args[1])} * {literal(math.log(float(a)))})"
        return _pow(a, args[1])
    if name == "gelu":
        return _gelu(a, kwargs.get("approximate", args[1] if len(args) > 1 else "none"))
    if name in ("clamp", "hardtanh"):
        lo = kwargs.get("min", args[1] if len(args) > 1 else None)
        hi = kwargs.get("max", args[2] if len(args) > 2 else None)
        return _clamp(a, lo, hi)
    if name == "clamp_min":
        return _clamp(a, lo=args[1])
    if name == "clamp_max":
        return _clamp(a, hi=args[1])
    if name in ("logical_and", "logical_or"):
        op = "&" if name == "logical_and" else "|"
        return f"(({_any(a)} != 0) {op} ({_any(args[1])} != 0))"
    if name in ("logical_not", "bitwise_not") and isinstance(a, Var) and a.kind == "b":
        return f"({a.name} == 0)"
    if name in ("_to_copy", "to", "_to_dtype", "convert_element_type"):
        dtype = kwargs.get("dtype", args[1] if len(args) > 1 else out_dtype)
        target = kind_of_dtype(dtype)
        if target == "f":
            return _f(a)
        if target == "b":
            return f"({_any(a)} != 0)"
        return f"{_any(a)}.to(tl.int64)"
    return None


def constant(name: str, args: list, kwargs: dict) -> float | int | bool | None:
    """The value of a constant-producing op (``scalar_tensor``, ``full``...), else None."""
    if name == "scalar_tensor":
        return args[0]
    if name in ("full", "full_like", "new_full"):
        return args[1] if len(args) > 1 else kwargs.get("fill_value")
    if name in ("zeros_like", "new_zeros", "zeros"):
        return 0.0
    if name in ("ones_like", "new_ones", "ones"):
        return 1.0
    return None
