"""Reductions in a traced graph: which ops, over which dimensions, and the domain they define.

A reduction over a contiguous block ``[a, b)`` of its input's dimensions defines the row
domain ``O x C x I`` (``O`` the size before the block, ``C`` the block, ``I`` after it); a
reduction of everything uses the last dimension as ``C``.
"""

from __future__ import annotations

import math

from torch.fx import Node

from eggsearch.problems.graph import is_tensor, op_name, val

REDUCE_OPS = {"aten.sum", "prims.sum", "aten.mean", "aten.amax", "aten.amin", "aten.max",
              "aten.min", "aten.argmax", "aten.argmin", "prims.var", "aten.gather"}


def domain_of(shape: tuple[int, ...], dims, everything: bool):
    """(O, C, I, (a, b)) of a reduction of ``shape`` over ``dims``; None if not contiguous."""
    if everything:
        if not shape:
            return None
        return math.prod(shape[:-1]), shape[-1], 1, (len(shape) - 1, len(shape))
    dims = sorted(d % len(shape) for d in dims)
    a, b = dims[0], dims[-1] + 1
    if any(shape[d] != 1 and d not in dims for d in range(a, b)):
        return None
    O, C, I = math.prod(shape[:a]), math.prod(shape[a:b]), math.prod(shape[b:])
    if C == 1:
        return None
    return O, C, I, (a, b)


def parse_reduction(node: Node):
    """(op, source, dims or None for all, correction, index) of a reduction node."""
    name, overload = op_name(node), node.target._overloadname if hasattr(
        node.target, "_overloadname") else ""
    args, kw = list(node.args), dict(node.kwargs)
    src = args[0]
    if not isinstance(src, Node) or not is_tensor(src) or not val(src).dtype.is_floating_point \
            and name not in ("aten.sum", "prims.sum"):
        return None
    if name == "aten.gather":
        dim, index = args[1], args[2]
        return "pick", src, [dim], 0.0, index
    if name == "prims.var":
        return "var", src, list(args[1]), float(args[2] if len(args) > 2
                                               else kw.get("correction", 0.0)), None
    if name in ("aten.max", "aten.min"):
        if overload == "dim":
            return name[5:] + "_dim", src, [args[1]], 0.0, None
        if overload == "default":
            return name[5:], src, None, 0.0, None
        return None
    op = {"aten.sum": "sum", "prims.sum": "sum", "aten.mean": "mean", "aten.amax": "max",
          "aten.amin": "min", "aten.argmax": "argmax", "aten.argmin": "argmin"}[name]
    dims = args[1] if len(args) > 1 else kw.get("dim")
    if overload == "default" and name in ("aten.sum", "aten.mean"):
        dims = None
    if isinstance(dims, int):
        dims = [dims]
    if dims is not None and len(dims) == 0:
        dims = None
    return op, src, dims, 0.0, None
