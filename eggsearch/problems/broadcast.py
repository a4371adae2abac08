"""How a fused kernel indexes an operand that broadcasts against the value it is combined with.

Every value a kernel computes is indexed by its flat (row-major) position ``flat`` in some use
shape ``S``. An operand of compact shape ``s`` (1 where it broadcasts) that is full over one
contiguous block of S's dimensions and broadcast elsewhere is read at
``(flat // inner) % size``: ``size`` the block's element count, ``inner`` the count after it.
That covers same-shape tensors (``inner = 1, size = numel``), scalars, biases over the last
dimension (``inner = 1``), per-channel vectors of NCHW tensors (``inner = H * W``) and per-row
values (``size * inner = numel``). Other patterns are not fused.

Views are seen through: :func:`operand_view` follows ``unsqueeze``/``view``/``expand``/
``broadcast_in_dim``... back to the tensor that exists at run time and its compact shape.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch.fx import Node

from eggsearch.problems.graph import hint, op_name, size_expr, val

VIEW_OPS = {"aten.view", "aten._unsafe_view", "aten.reshape", "aten.unsqueeze", "aten.squeeze",
            "aten.alias", "aten.detach", "aten.lift_fresh_copy", "aten.expand",
            "prims.broadcast_in_dim", "aten.clone"}


@dataclass(frozen=True)
class Pattern:
    """An operand's read pattern in a use shape: ``offset = (flat // inner) % size``.

    ``inner`` and ``size`` are sympy expressions; ``inner_is_one`` and ``size_is_all`` (size *
    inner covers the whole use shape, so no ``%`` is needed) are decided symbolically.
    """

    scalar: bool
    inner: object = None
    size: object = None
    inner_is_one: bool = True
    size_is_all: bool = True


def _same(a, b) -> bool:
    """Equal sizes. Trace-time values decide: where an operand's size is not 1 and the use's
    is not 1, broadcasting requires them equal at every valid size (1s are specialized)."""
    return hint(a) == hint(b)


def _prod(sizes) -> object:
    import sympy

    out = sympy.Integer(1)
    for s in sizes:
        out = out * size_expr(s)
    return out


def classify(compact: tuple, use: tuple) -> Pattern | None:
    """The pattern of an operand of compact shape ``compact`` in use shape ``use``."""
    compact = tuple(compact)
    if len(compact) > len(use):
        extra = compact[: len(compact) - len(use)]
        if any(hint(s) != 1 for s in extra):
            return None
        compact = compact[len(extra):]
    compact = (1,) * (len(use) - len(compact)) + compact
    full = []
    for d, (s, u) in enumerate(zip(compact, use)):
        if hint(u) == 1:
            if hint(s) != 1:
                return None
        elif _same(s, u):
            full.append(d)
        elif hint(s) != 1:
            return None
    if not full:
        return Pattern(scalar=True)
    first, last = full[0], full[-1]
    if any(hint(use[d]) != 1 and d not in full for d in range(first, last + 1)):
        return None
    inner = _prod(use[last + 1:])
    size = _prod(use[first:last + 1])
    total = _prod(use)
    return Pattern(False, inner, size, inner_is_one=bool(inner == 1),
                   size_is_all=bool(size * inner == total))


def operand_view(node: Node, fused=()) -> tuple[Node, tuple]:
    """The run-time tensor behind ``node`` and ``node``'s compact shape (1 where it
    broadcasts), following PyTorch view ops (not those in ``fused``: a fused group's values
    exist only where the group stores them) that keep the data contiguous."""
    shape = tuple(val(node).shape)
    name = op_name(node) if node.op == "call_function" else ""
    if name not in VIEW_OPS or not isinstance(node.args[0], Node) or node in fused:
        return node, shape
    base, compact = operand_view(node.args[0], fused)
    src_shape = tuple(val(node.args[0]).shape)
    broadcasting = any(hint(c) != hint(s) for c, s in zip(compact, src_shape))
    if name == "aten.expand":
        pad = len(shape) - len(compact)
        return base, (1,) * pad + tuple(compact)
    if name == "prims.broadcast_in_dim":
        out = [1] * len(shape)
        for i, d in enumerate(node.args[2]):
            out[d] = compact[i]
        return base, tuple(out)
    if not broadcasting:
        return base, shape
    if name == "aten.unsqueeze":
        d = node.args[1] % len(shape)
        return base, compact[:d] + (1,) + compact[d:]
    if name in ("aten.alias", "aten.detach", "aten.lift_fresh_copy", "aten.clone"):
        return base, compact
    return node, shape  # a reshape of a broadcast: the kernel reads the materialized view


def split3(shape: tuple, outer: int, middle: int) -> tuple[int, int] | None:
    """Positions (a, b) with prod(shape[:a]) == outer and prod(shape[a:b]) == middle."""
    sizes = [hint(s) for s in shape]
    for a in range(len(sizes) + 1):
        if math.prod(sizes[:a]) != outer:
            continue
        for b in range(a, len(sizes) + 1):
            if math.prod(sizes[a:b]) == middle:
                return a, b
    return None


def row_compatible(compact: tuple, use: tuple, outer: int, middle: int) -> bool:
    """Whether a per-row value of compact shape ``compact`` broadcasts over the middle (reduced)
    part of ``use`` and is full over the outer and inner parts."""
    split = split3(use, outer, middle)
    if split is None:
        return False
    a, b = split
    compact = (1,) * (len(use) - len(compact)) + tuple(compact)
    if len(compact) != len(use):
        return False
    for d, (s, u) in enumerate(zip(compact, use)):
        if hint(u) == 1:
            continue
        if a <= d < b:
            if hint(s) != 1:
                return False
        elif not _same(s, u):
            return False
    return True
