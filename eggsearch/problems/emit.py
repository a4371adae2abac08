"""Writing the answer file: ``ModelNew`` with its generated Triton kernels.

The file imports only torch and triton. It embeds the problem's own module code with ``Model``
renamed ``_Reference`` (``get_inputs``/``get_init_inputs`` dropped), and ``ModelNew`` subclasses
it: the constructor is the reference's, so the same seed gives the same parameters, and only
``forward`` is replaced. ``_forward(cfg, state, *inputs)`` runs the traced graph: each fused
group is one launcher call, every other op (a convolution, a view) stays a PyTorch op between
them. ``CONFIG`` holds the tunables; ``launch(*inputs_then_state, out, **cfg)`` is the entry
point eggsearch's study calls.
"""

from __future__ import annotations

import ast
import math
import re
from pathlib import Path

import torch
from torch.fx import Node

from eggsearch.problems.exprs import HELPERS
from eggsearch.problems.fusion import Plan, tensor_args
from eggsearch.problems.graph import SizeNames, op_name, print_size, val
from eggsearch.problems.kernels import INDEX_SOURCE, GroupCode
from eggsearch.problems.launch import LAUNCH_SOURCE

DROP = {"get_inputs", "get_init_inputs"}


def reference_source(path: Path) -> str:
    """The problem module's code with ``Model`` renamed and the input factories dropped."""
    tree = ast.parse(Path(path).read_text())
    body = []
    for stmt in tree.body:
        if isinstance(stmt, ast.FunctionDef) and stmt.name in DROP:
            continue
        if isinstance(stmt, ast.ImportFrom) and stmt.module == "__future__":
            continue
        if isinstance(stmt, ast.Expr) and isinstance(getattr(stmt, "value", None),
                                                     ast.Constant) and stmt is tree.body[0]:
            continue
        if isinstance(stmt, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "SMALL"
                                                for t in stmt.targets):
            continue
        body.append(stmt)
    tree.body = body
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == "Model":
            node.name = "_Reference"
        elif isinstance(node, ast.Name) and node.id == "Model":
            node.id = "_Reference"
    return ast.unparse(tree)


def fmt(a, var_of: dict[Node, str]) -> str:
    """Python source for an argument of a graph node."""
    if isinstance(a, Node):
        return var_of[a]
    if isinstance(a, (list, tuple)):
        inner = ", ".join(fmt(x, var_of) for x in a)
        return f"[{inner}]" if isinstance(a, list) else f"({inner}{',' if len(a) == 1 else ''})"
    if isinstance(a, torch.dtype):
        return str(a)
    if isinstance(a, torch.device):
        return "_dev"
    if isinstance(a, torch.layout):
        return str(a)
    if isinstance(a, torch.memory_format):
        return str(a)
    if isinstance(a, float):
        if math.isinf(a) or math.isnan(a):
            return f"float('{a}')"
        return repr(a)
    return repr(a)


_SYM_OPS = {"mul": "*", "add": "+", "sub": "-", "floordiv": "//", "truediv": "/", "mod": "%"}


def leftover_line(node: Node, var_of: dict[Node, str]) -> str:
    """One PyTorch statement for a node outside every group."""
    name = var_of[node]
    target = node.target
    short = getattr(target, "__name__", str(target))
    args = ", ".join([fmt(a, var_of) for a in node.args]
                     + [f"{k}={fmt(v, var_of)}" for k, v in node.kwargs.items()])
    if op_name(node) == "aten.sym_size":
        return f"{name} = {fmt(node.args[0], var_of)}.size({node.args[1]})"
    if short == "getitem":
        return f"{name} = {fmt(node.args[0], var_of)}[{fmt(node.args[1], var_of)}]"
    if short in _SYM_OPS:
        a, b = (fmt(x, var_of) for x in node.args)
        return f"{name} = {a} {_SYM_OPS[short]} {b}"
    if short == "neg":
        return f"{name} = -{fmt(node.args[0], var_of)}"
    if short == "sym_float":
        return f"{name} = float({fmt(node.args[0], var_of)})"
    packet = getattr(target, "overloadpacket", None)
    if packet is None:
        raise NotImplementedError(f"cannot emit {target}")
    ns = "prims" if str(packet).startswith("prims.") else "aten"
    return (f"{name} = torch.ops.{ns}.{str(packet).split('.', 1)[1]}."
            f"{target._overloadname}({args})")


def _size_value(expr, sizes: SizeNames) -> str:
    if isinstance(expr, tuple):
        return "(" + "".join(print_size(e, sizes.code) + ", " for e in expr) + ")"
    return print_size(expr, sizes.code)


def group_call(code: GroupCode, var_of: dict[Node, str], sizes: SizeNames) -> str:
    outs = "".join(f"{var_of[o]}, " for o in code.outputs)
    tensors = "".join(f", {var_of[t]}" for t in code.tensors)
    kw = "".join(f", {n}={_size_value(e, sizes)}" for n, e in code.sizes)
    return f"{outs}= _g{code.gid}(cfg{tensors}{kw})"


def _units(plan: Plan, codes: dict[int, GroupCode]) -> list:
    """Groups and the leftover nodes something reads, in an order where each comes after
    what it reads."""
    order = {n: i for i, n in enumerate(plan.traced.nodes)}
    units, producer = [], {}
    for node in plan.traced.nodes:
        if node.op != "call_function":
            continue
        g = plan.group_of.get(node)
        if g is None:
            units.append(node)
            producer[node] = node
        elif node is g.members[0]:
            units.append(g)
        if g is not None:
            producer[node] = g

    def reads(u) -> set:
        if isinstance(u, Node):
            return {producer[a] for a in u.all_input_nodes if a in producer}
        code = codes[u.gid]
        needed = set(code.tensors)
        for m in u.members:
            needed |= {a for a in tensor_args(m) if a not in u.kinds}
        return {producer[a] for a in needed if a in producer} - {u}

    deps = {id(u): reads(u) for u in units}
    placed, out = set(), []
    pending = sorted(units, key=lambda u: order[u if isinstance(u, Node) else u.members[0]])
    while pending:
        for u in pending:
            if all(id(d) in placed for d in deps[id(u)]):
                out.append(u)
                placed.add(id(u))
                pending.remove(u)
                break
        else:
            raise NotImplementedError("fused groups depend on each other in a cycle")
    # Leftover ops nothing reads (e.g. a constant a group inlined) cost a launch each: dropped.
    result = [n for n in plan.traced.nodes if n.op == "output"][0]
    live = {id(producer[a]) for a in result.all_input_nodes if a in producer}
    kept = []
    for u in reversed(out):
        if isinstance(u, Node) and id(u) not in live and not u.is_impure():
            continue
        kept.append(u)
        used = u.all_input_nodes if isinstance(u, Node) else codes[u.gid].tensors
        live |= {id(producer[a]) for a in used if a in producer}
    return kept[::-1]


def forward_source(plan: Plan, codes: dict[int, GroupCode]) -> tuple[str, list[str]]:
    """``_forward``'s source and the names of its tensor inputs."""
    traced = plan.traced
    var_of: dict[Node, str] = {}
    n_state = len(traced.state_names)
    inputs = []
    for i, p in enumerate(traced.placeholders):
        var_of[p] = f"p{i}" if i < n_state else f"x{i - n_state}"
        if i >= n_state:
            inputs.append(var_of[p])
    for node in traced.nodes:
        if node.op == "call_function":
            var_of[node] = f"n_{node.name}"
    sizes = SizeNames(traced.placeholders, var_of)
    body = []
    for u in _units(plan, codes):
        if isinstance(u, Node):
            body.append("    " + leftover_line(u, var_of))
        else:
            body.append("    " + group_call(codes[u.gid], var_of, sizes))
    out = [n for n in traced.nodes if n.op == "output"][0]
    result = out.args[0] if isinstance(out.args[0], (list, tuple)) else [out.args[0]]
    if traced.output_kind == "tensor":
        body.append(f"    return {fmt(result[0], var_of)}")
    else:
        body.append(f"    return {traced.output_kind}({fmt(list(result), var_of)})")
    # the device, only where a leftover op takes one (a host cost on every call otherwise)
    used = any(re.search(r"\b_dev\b", ln) for ln in body)
    lines = ["def _forward(cfg, state, " + ", ".join(inputs) + "):",
             f"    {''.join(f'p{i}, ' for i in range(n_state))}= state" if n_state else "",
             f"    _dev = {inputs[0]}.device" if used else "", *body]
    return "\n".join(ln for ln in lines if ln), inputs


def _state_access(name: str, is_param: bool) -> str:
    parts = name.split(".")
    if all(p.isidentifier() for p in parts):
        return "self." + name
    return f"self.get_{'parameter' if is_param else 'buffer'}({name!r})"


def module_source(problem_path: Path, plan: Plan, codes: dict[int, GroupCode], config: dict,
                  tensor_positions: list[int], param_names: set[str], title: str) -> str:
    fwd, inputs = forward_source(plan, codes)
    state = ", ".join(_state_access(n, n in param_names) for n in plan.traced.state_names)
    args = ", ".join(f"args[{i}]" for i in tensor_positions)
    n_in = len(inputs)
    parts = [
        f'"""{title}\n\nGenerated by eggsearch (offline structures); imports only torch and '
        'triton.\n"""',
        "import torch\nimport triton\nimport triton.language as tl",
        "# ---- the reference's module code: the constructor gives the same parameters ----",
        reference_source(problem_path),
        "# ---- fused kernels ----",
        HELPERS.strip(),
        LAUNCH_SOURCE,
        INDEX_SOURCE,
        *dict.fromkeys(h for c in codes.values() for h in c.helpers),
        *[c.source for c in codes.values()],
        "# ---- the tuned configuration ----",
        f"CONFIG = {config!r}",
        fwd,
        f'''class ModelNew(_Reference):

    def forward(self, *args):
        return _forward(CONFIG, [{state}], {args})


def launch(*tensors, out, **cfg):
    """eggsearch's study entry point: the {n_in} input tensor(s), then the state tensors."""
    result = _forward(cfg, list(tensors[{n_in}:]), *tensors[:{n_in}])
    results = result if isinstance(result, (tuple, list)) else (result,)
    outs = out if isinstance(out, (tuple, list)) else (out,)
    for o, r in zip(outs, results):
        o.copy_(r)''',
    ]
    return "\n\n\n".join(parts) + "\n"


__all__ = ["module_source", "reference_source", "val"]
