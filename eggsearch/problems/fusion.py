"""Recognising what one Triton kernel can carry, in a traced ATen graph.

Groups are grown greedily in graph order:

* ``gemm``: ``mm``/``addmm``/``bmm`` and the chain of pointwise ops on its output (bias,
  activations, scaling, clamps, residual adds...), computed on the accumulator tile.
* ``conv``: a 2-D ``convolution`` as an implicit GEMM, with the same kind of epilogue.
* ``row``: reductions over one contiguous block of dimensions (``O x C x I``: reduce ``C``),
  with the pointwise ops before and after them, including values broadcast back over the row
  (softmax, log-softmax, layer/RMS/group norm, normalize, cross-entropy's pick of the target)
  and reductions of everything (losses: a per-row partial, then a one-program finisher).
* ``pointwise``: chains of elementwise ops.

A node joins a group when one of its inputs is the group's, its shape fits the group's domain,
every other input is a tensor the kernel can index (:mod:`eggsearch.problems.broadcast`) that
does not itself depend on the group, and (for full-size values) no per-total value is needed;
a per-row value computed only from outside tensors (cross-entropy's ``target != ignore_index``)
joins the latest row group with the same rows.
Anything else (a transposed or grouped convolution, a permute...) stays a PyTorch op between
kernels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from torch.fx import Node

from eggsearch.problems.broadcast import (
    VIEW_OPS,
    classify,
    operand_view,
    row_compatible,
    split3,
)
from eggsearch.problems.exprs import Var, constant, pointwise
from eggsearch.problems.graph import Traced, hint, is_tensor, numel_hint, op_name, shape_hint, val
from eggsearch.problems.reductions import REDUCE_OPS, domain_of, parse_reduction

GEMM_OPS = {"aten.mm", "aten.addmm", "aten.bmm"}
RANK = {"total": 0, "row": 1, "full": 2}
# which producer's group a consumer joins first
PREFER = {"row": 0, "gemm": 1, "conv": 1, "pointwise": 2}


@dataclass
class Red:
    """A reduction: ``op`` of ``src`` over the group's C (to "row") or over everything
    (to "total"); ``index`` is the per-row column picked by ``pick`` (a gather)."""

    op: str
    src: Node
    to: str
    correction: float = 0.0
    index: Node | None = None


SIZE_OPS = {"aten.sym_size", "aten.sym_stride", "aten.sym_numel", "aten.sym_storage_offset"}


@dataclass(eq=False)
class Group:
    gid: int
    kind: str                                  # "pointwise", "row", "gemm" or "conv"
    members: list[Node] = field(default_factory=list)
    kinds: dict[Node, str] = field(default_factory=dict)
    eff: dict[Node, tuple] = field(default_factory=dict)
    reds: dict[Node, Red] = field(default_factory=dict)
    full_numel: int = 0
    O: int = 1
    C: int = 1
    I: int = 1
    domain: Node | None = None                 # row: the first reduction's source
    domain_dims: tuple[int, int] = (0, 0)      # row: the reduced block [a, b) of its shape
    anchor: Node | None = None                 # gemm, conv: the mm/addmm/bmm/convolution
    fused: dict = field(default_factory=dict)  # every group's members (shared)

    @property
    def row_numel(self) -> int:
        return self.O * self.I

    def add(self, node: Node, kind: str, eff: tuple | None = None) -> None:
        self.members.append(node)
        self.kinds[node] = kind
        self.eff[node] = tuple(eff if eff is not None else val(node).shape)

    def outputs(self) -> list[Node]:
        """Members needed outside the group (by other nodes or as the graph's outputs). A node
        that reads only a member's size (``sym_size``) does not need its values."""
        inside = set(self.members)
        return [m for m in self.members
                if self.kinds[m] != "tuple" and any(u not in inside and op_name(u) not in SIZE_OPS
                                                    for u in m.users)]

    def externals(self) -> list[Node]:
        """Tensors read from outside, in first-use order (views not seen through)."""
        inside, out = set(self.members), []
        for m in self.members:
            for a in tensor_args(m):
                if a not in inside and a not in out:
                    out.append(a)
        return out


@dataclass
class Plan:
    traced: Traced
    groups: list[Group]
    group_of: dict[Node, Group]


def tensor_args(node: Node) -> list[Node]:
    out = []
    for a in list(node.args) + list(node.kwargs.values()):
        items = a if isinstance(a, (list, tuple)) else [a]
        out += [x for x in items if isinstance(x, Node) and is_tensor(x)]
    return out


def is_constant(node: Node) -> bool:
    return node.op == "call_function" and constant(
        op_name(node).split(".")[-1], list(node.args), dict(node.kwargs)) is not None and \
        numel_hint(node) == 1


def is_compute_pointwise(node: Node) -> bool:
    name = op_name(node)
    if name in VIEW_OPS or not name.startswith(("aten.", "prims.")) or not is_tensor(node):
        return False
    args = [Var("x") if isinstance(a, Node) else a for a in node.args]
    try:
        return pointwise(name.split(".")[-1], args, dict(node.kwargs),
                         val(node).dtype) is not None
    except (TypeError, ValueError, IndexError):
        return False


class Partitioner:
    def __init__(self, traced: Traced):
        self.traced = traced
        self.groups: list[Group] = []
        self.group_of: dict[Node, Group] = {}
        self._anc: dict[Node, set[Node]] = {}

    # -- helpers ---------------------------------------------------------------------------
    def ancestors(self, node: Node) -> set[Node]:
        if node not in self._anc:
            out: set[Node] = set()
            for a in node.all_input_nodes:
                out.add(a)
                out |= self.ancestors(a)
            self._anc[node] = out
        return self._anc[node]

    def _depends(self, node: Node, g: Group) -> bool:
        return bool(self.ancestors(node) & set(g.members))

    def _new(self, kind: str) -> Group:
        g = Group(len(self.groups), kind, fused=self.group_of)
        self.groups.append(g)
        return g

    def _place(self, node: Node, g: Group, kind: str, eff: tuple | None = None) -> None:
        g.add(node, kind, eff)
        self.group_of[node] = g

    def _operand_ok(self, e: Node, use: tuple, context: str) -> bool:
        if is_constant(e):
            return True
        pattern = classify(operand_view(e, self.group_of)[1], use)
        return pattern is not None and (context != "total" or pattern.scalar)

    # -- pointwise and views ---------------------------------------------------------------
    def try_join(self, node: Node, g: Group) -> bool:
        ins = tensor_args(node)
        internal = [a for a in ins if a in g.kinds]
        externals = [a for a in ins if a not in g.kinds]
        if not internal or any(self._depends(e, g) for e in externals):
            return False
        kinds = [g.kinds[a] for a in internal]
        if "tuple" in kinds:
            return False
        lowest = max(RANK[k] for k in kinds)
        name = op_name(node)
        if name in VIEW_OPS:
            return self._join_view(node, g, internal[0], max(kinds, key=RANK.get))
        sizes = {"full": g.full_numel, "row": g.row_numel, "total": 1}
        fits = [k for k in ("total", "row", "full")
                if RANK[k] >= lowest and sizes[k] == numel_hint(node)]
        if not fits:
            return False
        out_kind, expected = fits[0], sizes[fits[0]]
        if g.kind != "row" and out_kind != "full":
            return False
        use = tuple(val(node).shape)
        for a in internal:
            k = g.kinds[a]
            eff = g.eff[a]
            if k == out_kind:
                if math.prod(hint(s) for s in eff) != expected:
                    return False
            elif k == "row" and out_kind == "full":
                if not row_compatible(eff, use, g.O, g.C):
                    return False
            else:
                return False
        if not all(self._operand_ok(e, use, out_kind) for e in externals):
            return False
        self._place(node, g, out_kind)
        return True

    def try_join_row(self, node: Node) -> bool:
        """A per-row value computed from tensors outside every group (cross-entropy's targets:
        ``target != ignore_index``, ``where(...)``) joins the latest row group whose rows it
        matches, instead of becoming a kernel of its own whose output the row kernel then
        reads. Its shape must be the group's domain shape with the reduced dimensions dropped
        or kept as 1 (symbolic sizes compared, so a same-sized vector along another
        dimension does not match)."""
        use = tuple(val(node).shape)
        for g in reversed(self.groups):
            if g.kind != "row" or g.I != 1 or g.domain is None:
                continue
            dom = tuple(val(g.domain).shape)
            a, b = g.domain_dims
            rows = {tuple(map(str, dom[:a] + dom[b:])),
                    tuple(map(str, dom[:a] + (1,) * (b - a) + dom[b:]))}
            if tuple(map(str, use)) not in rows:
                continue
            externals = tensor_args(node)
            if any(self._depends(e, g) for e in externals) or not all(
                    self._operand_ok(e, use, "row") for e in externals):
                continue
            self._place(node, g, "row")
            return True
        return False

    def _join_view(self, node: Node, g: Group, src: Node, kind: str) -> bool:
        name = op_name(node)
        eff = g.eff[src]
        src_shape = shape_hint(src)
        broadcasting = tuple(hint(s) for s in eff) != src_shape
        out_shape = tuple(val(node).shape)
        if name == "aten.expand":
            new = (1,) * (len(out_shape) - len(eff)) + tuple(eff)
        elif name == "prims.broadcast_in_dim":
            new = [1] * len(out_shape)
            for i, d in enumerate(node.args[2]):
                new[d] = eff[i]
            new = tuple(new)
        elif not broadcasting:
            new = out_shape
        elif name == "aten.unsqueeze":
            d = node.args[1] % len(out_shape)
            new = tuple(eff[:d]) + (1,) + tuple(eff[d:])
        elif name in ("aten.alias", "aten.detach", "aten.clone", "aten.lift_fresh_copy"):
            new = eff
        else:
            return False
        self._place(node, g, kind, new)
        return True

    # -- reductions ------------------------------------------------------------------------
    def try_reduce(self, node: Node) -> bool:
        red = parse_reduction(node)
        if red is None:
            return False
        op, src, dims, correction, index = red
        shape = shape_hint(src)
        everything = dims is None or len(shape) == 0 or set(dims) == set(range(len(shape)))
        g = self.group_of.get(src)
        if g is not None and g.kind not in ("gemm", "conv") and self._reduce_into(
                node, g, op, src, dims, everything, correction, index):
            return True
        domain = domain_of(shape, dims, everything)
        if domain is None:
            return False
        for g in reversed(self.groups):  # a second reduction of the same tensor (layer norm)
            if (g.kind == "row" and (g.O, g.C, g.I) == domain[:3] and g.domain is not None
                    and shape_hint(g.domain) == shape and not self._depends(src, g)
                    and (index is None or index not in g.kinds or g.kinds[index] == "row")
                    and self._operand_ok(src, tuple(val(src).shape), "full")):
                self._add_red(node, g, op, src, "total" if everything else "row", correction,
                              index)
                return True
        g = self._new("row")
        g.O, g.C, g.I, g.domain_dims = domain
        g.full_numel = math.prod(shape)
        g.domain = src
        if not self._operand_ok(src, tuple(val(src).shape), "full"):
            self.groups.pop()
            return False
        self._add_red(node, g, op, src, "total" if everything else "row", correction, index)
        return True

    def _reduce_into(self, node, g: Group, op, src, dims, everything, correction, index) -> bool:
        k = g.kinds[src]
        if index is not None and (g.kinds.get(index, "row") != "row"
                                  or index not in g.kinds and self._depends(index, g)):
            return False
        if everything:
            if k == "total" or op in ("argmax", "argmin", "var", "pick"):
                return False
            if g.kind == "pointwise":
                self._to_row(g, src, domain_of(shape_hint(src), None, True))
            self._add_red(node, g, op, src, "total", correction, index)
            return True
        if k != "full":
            return False
        domain = domain_of(shape_hint(src), dims, False)
        if domain is None:
            return False
        if g.kind == "pointwise":
            self._to_row(g, src, domain)
        elif (g.O, g.C, g.I) != domain[:3]:
            return False
        self._add_red(node, g, op, src, "row", correction, index)
        return True

    @staticmethod
    def _to_row(g: Group, src: Node, domain) -> None:
        g.kind = "row"
        g.O, g.C, g.I, g.domain_dims = domain
        g.domain = src

    def _add_red(self, node, g: Group, op, src, to, correction, index) -> None:
        if op in ("max_dim", "min_dim"):  # a (values, indices) pair: one reduction per item
            self._place(node, g, "tuple", eff=())
            base = op[:3]
            for user in list(node.users):
                if op_name(user) == "getitem":
                    self._place(user, g, to)
                    g.reds[user] = Red(base if user.args[1] == 0 else "arg" + base, src, to)
            return
        g.reds[node] = Red(op, src, to, correction, index)
        self._place(node, g, to)

    def _merge_pointwise(self, node: Node, producers: list[Group]) -> None:
        """Two pointwise groups that both feed ``node`` become one (x * sigmoid(x) after
        the decompositions: where(x > 0, x, x * slope)...), when neither depends on the other."""
        same = [g for g in producers
                if g.kind == "pointwise" and g.full_numel == numel_hint(node)]
        if len(same) < 2:
            return
        keep = same[0]
        for other in same[1:]:
            if any(self._depends(e, keep) for e in other.externals()) or any(
                    self._depends(e, other) for e in keep.externals()):
                continue
            for m in other.members:
                keep.add(m, other.kinds[m], other.eff[m])
                self.group_of[m] = keep
            other.members.clear()
            order = {n: i for i, n in enumerate(self.traced.nodes)}
            keep.members.sort(key=order.get)

    # -- the walk --------------------------------------------------------------------------
    def run(self) -> Plan:
        for node in self.traced.nodes:
            if node.op != "call_function" or node in self.group_of:
                continue
            name = op_name(node)
            if (name in GEMM_OPS and _gemm_ok(node)
                    or name == "aten.convolution" and conv_params(node) is not None
                    and conv_pays(node)):
                g = self._new("gemm" if name in GEMM_OPS else "conv")
                g.anchor = node
                g.full_numel = numel_hint(node)
                self._place(node, g, "full")
                continue
            if name in REDUCE_OPS:
                self.try_reduce(node)
                continue
            if not is_tensor(node) or is_constant(node):
                continue
            producers = list(dict.fromkeys(self.group_of[a] for a in tensor_args(node)
                                           if a in self.group_of))
            self._merge_pointwise(node, producers)
            producers = list(dict.fromkeys(self.group_of[a] for a in tensor_args(node)
                                           if a in self.group_of))
            producers.sort(key=lambda g: (PREFER[g.kind], -g.full_numel))
            if any(self.try_join(node, g) for g in producers):
                continue
            if not producers and is_compute_pointwise(node) and self.try_join_row(node):
                continue
            if is_compute_pointwise(node) and all(
                    self._operand_ok(a, tuple(val(node).shape), "full")
                    for a in tensor_args(node)):
                g = self._new("pointwise")
                g.full_numel = numel_hint(node)
                self._place(node, g, "full")
        self.groups = [g for g in self.groups if g.members]
        return Plan(self.traced, self.groups, self.group_of)


def _gemm_ok(node: Node) -> bool:
    if not val(node).dtype.is_floating_point:
        return False
    name = op_name(node)
    a, b = (node.args[1], node.args[2]) if name == "aten.addmm" else node.args[:2]
    if name == "aten.addmm":
        bias = node.args[0]
        if isinstance(bias, Node) and classify(operand_view(bias)[1],
                                               tuple(val(node).shape)) is None:
            return False
    return all(isinstance(x, Node) for x in (a, b))


CONV_DTYPES = {"torch.float32", "torch.float16", "torch.bfloat16"}


def conv_params(node: Node) -> tuple[list[int], list[int], list[int]] | None:
    """(stride, padding, dilation) of a convolution :mod:`eggsearch.problems.convkernel` can
    generate (2-D, ``groups == 1``, not transposed, no bias: :mod:`eggsearch.problems.graph`
    traces a bias as an add after it; integer geometry; fp32, fp16 or bf16), else None."""
    x, w, bias, stride, padding, dilation, transposed, _out_pad, groups = node.args
    if not (isinstance(x, Node) and isinstance(w, Node)) or bias is not None or transposed:
        return None
    if groups != 1 or val(x).dim() != 4 or val(w).dim() != 4:
        return None
    if str(val(x).dtype) not in CONV_DTYPES or val(w).dtype != val(x).dtype:
        return None
    params = [list(stride), list(padding), list(dilation)]
    if not all(len(p) == 2 and all(type(v) is int for v in p) for p in params):
        return None
    return params[0], params[1], params[2]


def conv_pays(node: Node) -> bool:
    """Whether the generated convolution is expected to beat cuDNN's (else the convolution stays
    in PyTorch and what follows it is fused). Measured on the H200 at batch 32-64
    (``experiments/results/2026-11-21-h200-session5-conv-shapes-before-rule.txt``, convolution
    + bias + ReLU, default configuration): it won with at least 16 input channels up to a GEMM
    depth ``C * KH * KW`` of 576 (1.27-1.69x cuDNN fp32; fp16 0.41-1.91x cuDNN's convolution
    alone, 1.40-3.52x eager with the epilogue), and lost at the 3-channel 7x7 stem (0.60x) and
    at depths of 1152 and more (0.31-0.60x: few output pixels, long K loops), so it is used in
    the region where it won."""
    channels, depth = conv_depth(node)
    return channels >= 16 and depth <= 576


def conv_depth(node: Node) -> tuple[int, int]:
    """A convolution's input channels C and its GEMM depth C * KH * KW (traced sizes)."""
    x, w = node.args[:2]
    channels = hint(val(x).shape[1])
    return channels, channels * hint(val(w).shape[2]) * hint(val(w).shape[3])


def partition(traced: Traced) -> Plan:
    return Partitioner(traced).run()


def describe(plan: Plan) -> list[str]:
    """One line per group: its kind and ops (for logs and the run directory)."""
    out = []
    for g in plan.groups:
        ops = [op_name(m).split(".")[-1] for m in g.members]
        extra = f" O={g.O} C={g.C} I={g.I}" if g.kind == "row" else ""
        out.append(f"g{g.gid} {g.kind}{extra}: {' '.join(ops)}")
    return out


__all__ = ["GEMM_OPS", "REDUCE_OPS", "Group", "Plan", "Red", "describe", "partition",
           "split3", "tensor_args"]
