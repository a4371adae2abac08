"""Tracing a problem's reference into an ATen graph with symbolic shapes.

``make_fx`` (symbolic tracing, functionalized) over ``functional_call(Model, state, inputs)``
gives one flat graph of ATen ops whose placeholders are the model's parameters and buffers, then
the tensor inputs. PyTorch's own decompositions reduce composites (softmax, layer norm, losses,
variance, log-sum-exp, ...) to a small vocabulary of pointwise ops and reductions, which is all
:mod:`eggsearch.problems.fusion` has to recognise. Shapes stay symbolic (``s0``, ``s1``...), so
the code emitted from the graph works at any size: :func:`size_code` prints a shape expression as
Python over the placeholders' runtime sizes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.fx import GraphModule, Node

from eggsearch.problems.loader import ProblemModule

aten = torch.ops.aten
prims = torch.ops.prims


def decompositions() -> dict:
    from torch._decomp import core_aten_decompositions, get_decompositions

    extra = get_decompositions([
        aten._softmax, aten._log_softmax, aten.native_layer_norm, aten.var.correction,
        aten.var_mean.correction, aten.std.correction, aten.logsumexp,
        aten.linalg_vector_norm, aten.native_group_norm, aten._fused_rms_norm, aten.rms_norm,
        aten.silu, aten.softplus, aten.mish, aten.hardswish, aten.hardsigmoid, aten.elu,
        aten.leaky_relu, aten.hardtanh, aten.mse_loss, aten.smooth_l1_loss, aten.huber_loss,
        aten.l1_loss, aten.binary_cross_entropy, aten.nll_loss_forward, aten.kl_div,
    ])
    return {**core_aten_decompositions(), **extra, aten.convolution.default: _conv_then_bias}


def _conv_then_bias(x, weight, bias, stride, padding, dilation, transposed, output_padding,
                    groups):
    """A convolution with a bias as the convolution without it, then the bias added.

    PyTorch adds a convolution's bias in a kernel of its own (a broadcast add over the whole
    output); traced this way, the add is an ordinary pointwise node that fuses into whatever
    reads the convolution, and the output makes one trip through memory fewer. Without a bias
    the convolution is traced as it is (``NotImplemented`` falls back).
    """
    if bias is None:
        return NotImplemented
    out = aten.convolution.default(x, weight, None, stride, padding, dilation, transposed,
                                   output_padding, groups)
    return out + bias.view([1, -1] + [1] * (out.dim() - 2))


@dataclass
class Traced:
    """The graph, the names of its state placeholders (parameters, then buffers) and the
    constants among the forward's arguments (Python scalars are baked into the graph)."""

    gm: GraphModule
    state_names: list[str]
    n_inputs: int
    placeholders: list[Node]
    output_kind: str = "tensor"     # what Model returns: "tensor", "tuple" or "list"

    @property
    def nodes(self) -> list[Node]:
        return list(self.gm.graph.nodes)


def trace(problem: ProblemModule) -> Traced:
    """Trace ``problem``'s reference at its current sizes, on the meta device (no memory)."""
    import torch.fx.experimental._config  # noqa: F401 - the duck-shape switch below
    from torch.fx.experimental.proxy_tensor import make_fx

    with torch.device("meta"):
        model = problem.build(0, "meta")
        raw = problem.inputs(0, "meta")
    state = {**dict(model.named_parameters()), **dict(model.named_buffers())}
    tensor_pos = [i for i, x in enumerate(raw) if isinstance(x, torch.Tensor)]

    def forward(state, *tensors):
        args = list(raw)
        for i, t in zip(tensor_pos, tensors):
            args[i] = t
        return torch.func.functional_call(model, state, tuple(args))

    # No duck shaping: two sizes that happen to be equal (batch 64 and 64 channels) must stay
    # two symbols, or the emitted code would read one where the other is meant.
    with torch.no_grad(), torch.fx.experimental._config.patch(use_duck_shape=False):
        gm = make_fx(torch.func.functionalize(forward, remove="mutations"),
                     tracing_mode="symbolic", decomposition_table=decompositions())(
            state, *[raw[i] for i in tensor_pos])
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    with torch.no_grad():
        out = model(*raw)
    kind = "tensor" if isinstance(out, torch.Tensor) else type(out).__name__
    if kind not in ("tensor", "tuple", "list"):
        raise ValueError(f"Model returns a {kind}; a tensor, tuple or list is expected")
    return Traced(gm, list(state), len(tensor_pos), placeholders, kind)


# ---- node facts --------------------------------------------------------------------------
def op_name(node: Node) -> str:
    """``aten.add`` for ``aten.add.Tensor``; ``getitem``, ``mul``... for Python callables."""
    target = node.target
    packet = getattr(target, "overloadpacket", None)
    if packet is not None:
        return str(packet)
    return getattr(target, "__name__", str(target))


def val(node) -> object:
    return node.meta.get("val") if isinstance(node, Node) else None


def is_tensor(node) -> bool:
    return isinstance(val(node), torch.Tensor)


def hint(x) -> int:
    """The trace-time value of a size (an int or a SymInt)."""
    if isinstance(x, torch.SymInt):
        h = x.node.hint
        return int(h) if h is not None else int(x.node.expr)
    return int(x)


def shape_hint(node: Node) -> tuple[int, ...]:
    return tuple(hint(s) for s in val(node).shape)


def numel_hint(node: Node) -> int:
    return math.prod(shape_hint(node))


def size_expr(x):
    """The sympy expression of a size (an int becomes a sympy Integer)."""
    import sympy

    return x.node.expr if isinstance(x, torch.SymInt) else sympy.Integer(int(x))


class SizeNames:
    """Python code for symbolic sizes: each free symbol is read off a placeholder's shape."""

    def __init__(self, placeholders: list[Node], var_of: dict[Node, str]):
        self.code: dict[object, str] = {}
        for p in placeholders:
            v = val(p)
            if not isinstance(v, torch.Tensor):
                continue
            for d, s in enumerate(v.shape):
                if isinstance(s, torch.SymInt) and s.node.expr.is_Symbol:
                    self.code.setdefault(s.node.expr, f"{var_of[p]}.shape[{d}]")

    def __call__(self, x) -> str:
        return print_size(size_expr(x), self.code)


def print_size(expr, names: dict) -> str:
    """Python source for a sympy size expression (+, *, //, %, integer powers)."""
    import sympy

    if expr in names:
        return names[expr]
    if expr.is_Integer:
        return str(int(expr))
    if expr.is_Add:
        return "(" + " + ".join(print_size(a, names) for a in expr.args) + ")"
    if expr.is_Mul:
        return "(" + " * ".join(print_size(a, names) for a in expr.args) + ")"
    if expr.is_Pow and expr.exp.is_Integer and int(expr.exp) > 0:
        return "(" + " * ".join([print_size(expr.base, names)] * int(expr.exp)) + ")"
    fname = type(expr).__name__
    if fname == "FloorDiv":
        a, b = expr.args
        return f"({print_size(a, names)} // {print_size(b, names)})"
    if fname in ("Mod", "PythonMod"):
        a, b = expr.args
        return f"({print_size(a, names)} % {print_size(b, names)})"
    if isinstance(expr, sympy.Symbol):
        raise ValueError(f"size symbol {expr} is not the size of any input")
    raise ValueError(f"cannot print size expression {expr}")
