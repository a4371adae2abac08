"""Writing the body of a fused kernel: loads, pointwise members, stores.

A :class:`Body` turns a group's members into Triton statements in one *context*: ``full``
values are tiles indexed by ``flat`` (their flat position in the group's full-size shape),
``row`` values are per-row vectors indexed by ``rows`` (used in a full tile as ``v[:, None]``),
``total`` values are scalars (only in the finisher). External tensors become loads whose
offsets follow their broadcast pattern (:mod:`eggsearch.problems.broadcast`); every pattern
parameter is a kernel argument, computed by the caller from the shapes at run time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sympy
from torch.fx import Node

from eggsearch.problems.broadcast import Pattern, classify, operand_view
from eggsearch.problems.exprs import Var, constant, kind_of_dtype, pointwise
from eggsearch.problems.fusion import Group, is_constant
from eggsearch.problems.graph import is_tensor, op_name, size_expr, val


def scalar_expr(node: Node):
    """The sympy expression of a non-tensor graph value (a size, or ``sym_float`` of one)."""
    if op_name(node) == "sym_float":
        return scalar_expr(node.args[0]) if isinstance(node.args[0], Node) else \
            sympy.sympify(node.args[0])
    return size_expr(val(node))


VIEWS = {"view", "_unsafe_view", "reshape", "expand", "unsqueeze", "squeeze",
         "broadcast_in_dim", "alias", "detach", "clone", "lift_fresh_copy"}


@dataclass
class KernelArgs:
    """What a kernel takes besides its constexprs, in order, and how the caller gets it."""

    tensors: list[tuple[str, Node]] = field(default_factory=list)   # (ptr name, base node)
    outputs: list[tuple[str, Node]] = field(default_factory=list)   # (ptr name, member)
    sizes: list[tuple[str, object]] = field(default_factory=list)   # (name, sympy expr)

    def tensor(self, base: Node) -> str:
        for name, b in self.tensors:
            if b is base:
                return name
        name = f"in{len(self.tensors)}_ptr"
        self.tensors.append((name, base))
        return name

    def size(self, expr, stem: str) -> str:
        expr = sympy.sympify(expr)
        for name, e in self.sizes:
            if e == expr:
                return name
        name = f"{stem}{len(self.sizes)}"
        self.sizes.append((name, expr))
        return name


@dataclass
class Index:
    """How a context addresses elements: ``flat`` code, ``mask`` code, and shortcuts for
    patterns that need no division (``last``: the column within C, ``row``: the row)."""

    flat: str
    mask: str
    last: str | None = None          # offset for inner == last_inner, size == last_size
    last_size: object = None
    last_mask: str | None = None
    last_inner: object = 1           # 1: the last extent; a convolution's H * W: its channel
    row: str | None = None           # offset for size * inner == numel, inner == row length
    row_inner: object = None
    row_mask: str | None = None


class Body:
    """Emits the members of ``group`` of one kind, in order, with loads as needed."""

    def __init__(self, group: Group, args: KernelArgs, counter: list[int] | None = None,
                 inherit: dict[Node, Var] | None = None):
        self.g = group
        self.args = args
        self.lines: list[str] = []
        self.vars: dict[Node, Var] = dict(inherit or {})
        self.loads: dict[tuple, Var] = {}
        self.counter = counter if counter is not None else [0]

    def scope(self) -> Body:
        """A nested scope (a loop body): it sees this scope's variables, not its loads."""
        return Body(self.g, self.args, self.counter, self.vars)

    def fresh(self, stem: str = "v") -> str:
        self.counter[0] += 1
        return f"{stem}{self.counter[0]}"

    def emit(self, line: str) -> None:
        self.lines.append(line)

    # -- operands ----------------------------------------------------------------------------
    def load(self, node: Node, use: tuple, index: Index):
        if is_constant(node):
            return constant(op_name(node).split(".")[-1], list(node.args), dict(node.kwargs))
        base, compact = operand_view(node, self.g.fused)
        pattern = classify(compact, use)
        key = (base, pattern, index.flat)
        if key in self.loads:
            return self.loads[key]
        ptr = self.args.tensor(base)
        kind = kind_of_dtype(val(base).dtype)
        name = self.fresh("ld")
        if pattern.scalar:
            code = f"tl.load({ptr})"
        else:
            offset, mask = self._offset(pattern, index)
            code = f"tl.load({ptr} + {offset}, mask={mask}, other=0)"
        if kind == "f":
            code += ".to(tl.float32)"
        elif kind == "i":
            code += ".to(tl.int64)"
        else:
            code = f"({code} != 0)"
        self.emit(f"{name} = {code}")
        self.loads[key] = Var(name, kind)
        return self.loads[key]

    def _offset(self, p: Pattern, index: Index) -> tuple[str, str]:
        if index.last is not None and (p.inner_is_one if index.last_inner == 1 else sympy.simplify(
                p.inner - index.last_inner) == 0) and sympy.simplify(
                p.size - index.last_size) == 0:
            return index.last, index.last_mask
        if index.row is not None and sympy.simplify(p.inner - index.row_inner) == 0:
            # constant along each row (a per-channel bias over rows of H * W): one load per
            # row, no per-element division
            if p.size_is_all:
                return index.row, index.row_mask
            return f"({index.row} % {self.args.size(p.size, 'size')})", index.row_mask
        flat = index.flat
        if not p.inner_is_one:
            flat = f"({flat} // {self.args.size(p.inner, 'inner')})"
        if not p.size_is_all:
            flat = f"({flat} % {self.args.size(p.size, 'size')})"
        return flat, index.mask

    # -- members -----------------------------------------------------------------------------
    def operand(self, a, use_node: Node, context: str, index: Index, use: tuple | None = None):
        """``a`` as a Triton value in ``context``; an external tensor is loaded as indexed in
        ``use`` (default: ``use_node``'s shape)."""
        if not isinstance(a, Node):
            return a
        if not is_tensor(a):  # a size computed from the shapes (SymInt, or float of one)
            expr = scalar_expr(a)
            return Var(self.args.size(expr, "sc"), "s")
        if a in self.vars:
            v = self.vars[a]
            if context == "full" and self.g.kinds.get(a) == "row":
                return Var(f"{v.name}[:, None]", v.kind)
            return v
        return self.load(a, use if use is not None else tuple(val(use_node).shape), index)

    def member(self, node: Node, context: str, index: Index) -> None:
        """Emit one pointwise or view member (reductions are emitted by the kernel)."""
        name = op_name(node).split(".")[-1]
        args = [self.operand(a, node, context, index) for a in node.args]
        expr = pointwise(name, args, dict(node.kwargs), val(node).dtype)
        if expr is None:
            raise NotImplementedError(f"no Triton form for {op_name(node)}")
        kind = kind_of_dtype(val(node).dtype)
        if name in VIEWS and node.args[0] in self.vars:
            self.vars[node] = self.vars[node.args[0]]
            return
        var = self.fresh()
        self.emit(f"{var} = {expr}")
        self.vars[node] = Var(var, kind)

    def store(self, node: Node, ptr: str, index: Index | None) -> None:
        """Store ``node``'s value at ``index`` (None: a scalar, at the pointer itself)."""
        v = self.vars[node]
        code = v.name
        if val(node).dtype.is_floating_point and v.kind != "f":
            code = f"{code}.to(tl.float32)"
        code = f"{code}.to({ptr}.dtype.element_ty)"
        if index is None:
            self.emit(f"tl.store({ptr}, {code})")
        else:
            self.emit(f"tl.store({ptr} + {index.flat}, {code}, mask={index.mask})")
