"""Triton source for each kind of fused group, with its host launcher.

* pointwise: one program per ``BLOCK`` elements of the flat output.
* gemm: tiled ``tl.dot`` (grouped program order, fp32 accumulator; fp32 operands at
  ``PRECISION`` "tf32x3", three TF32 products of fp32 grade, or "ieee"), then the epilogue on
  the accumulator tile; ``bmm`` batches over the grid's second axis.
* row: ``BLOCK_R`` rows per program, in one pass (``BLOCK_C >= C``: the row stays in
  registers) or looped (see :mod:`eggsearch.problems.rowkernel`).

Each launcher is ``_g<i>(cfg, *tensors, **sizes)``: ``cfg`` holds the tunables
(``g<i>_BLOCK``...), ``sizes`` the run-time sizes its caller computes from the input shapes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sympy
from torch.fx import Node

from eggsearch.problems.codegen import Body, Index, KernelArgs
from eggsearch.problems.exprs import Var
from eggsearch.problems.fusion import Group
from eggsearch.problems.graph import hint, op_name, size_expr, val
from eggsearch.problems.launch import run_call
from eggsearch.problems.spaces import gemm_space, pointwise_space


@dataclass
class GroupCode:
    """A group's kernels and launcher, and what its call site passes and receives."""

    gid: int
    kind: str
    source: str
    tensors: list[Node]                          # passed positionally after cfg
    sizes: list[tuple[str, object]]              # keyword sizes: sympy expression or tuple
    outputs: list[Node]
    tunables: dict = field(default_factory=dict)  # name -> search-space entry
    seeds: list[dict] = field(default_factory=list)
    constraints: list[dict] = field(default_factory=list)
    helpers: list[str] = field(default_factory=list)  # module-level source it needs (shared)


def prod(sizes) -> object:
    out = sympy.Integer(1)
    for s in sizes:
        out = out * size_expr(s)
    return out


def ops_of(g: Group) -> str:
    return " ".join(op_name(m).split(".")[-1] for m in g.members)


def header(name: str, args: KernelArgs, named: list[str], constexprs: list[str],
           first: list[str] = (), extra_ptrs: list[str] = ()) -> str:
    """``first`` pointers, input and output pointers, ``extra_ptrs``, sizes, constexprs."""
    params = (list(first) + [n for n, _ in args.tensors] + [n for n, _ in args.outputs]
              + list(extra_ptrs) + named + [n for n, _ in args.sizes]
              + [f"{c}: tl.constexpr" for c in constexprs])
    return f"@triton.jit\ndef {name}({', '.join(params)}):"


def indent(lines: list[str], n: int = 4) -> list[str]:
    return [" " * n + ln for ln in lines]


def out_sizes(outputs: list[Node]) -> list[tuple[str, object]]:
    return [(f"o{k}_shape", tuple(size_expr(s) for s in val(o).shape))
            for k, o in enumerate(outputs)]


def kernel_call(args: KernelArgs, named: list[str], extra: list[str] = ()) -> list[str]:
    """Positional arguments of a kernel launch: tensors, outputs, extras, named sizes, pattern
    sizes (as in :func:`header`)."""
    return ([f"t{i}" for i in range(len(args.tensors))]
            + [f"o{k}" for k in range(len(args.outputs))] + list(extra) + named
            + [n for n, _ in args.sizes])


def _same_layout(t: Node, o: Node) -> bool:
    vt, vo = val(t), val(o)
    return (vt.dtype == vo.dtype
            and tuple(map(size_expr, vt.shape)) == tuple(map(size_expr, vo.shape)))


def launcher(gid: int, tensors: list[Node], outputs: list[Node], sizes: list[str],
             body: list[str], first: list[str] = ()) -> str:
    """``_g<gid>(cfg, *first, t0, t1..., *, sizes..., o<k>_shape...)``; the ``t`` tensors
    are made contiguous (a no-op when they are), ``first`` ones (GEMM operands) keep their
    strides. An output of a ``t`` tensor's (symbolic) shape and dtype is allocated with
    ``torch.empty_like``, which costs the host less than ``torch.empty``."""
    params = ["cfg", *first] + [f"t{i}" for i in range(len(tensors))]
    kw = sizes + [f"o{k}_shape" for k in range(len(outputs))]
    lines = [f"def _g{gid}({', '.join(params)}, *, {', '.join(kw)}):"]
    lines += [f"    t{i} = t{i}.contiguous()" for i in range(len(tensors))]
    device = (list(first) or ["t0"])[0]
    for k, o in enumerate(outputs):
        like = next((i for i, t in enumerate(tensors) if _same_layout(t, o)), None)
        if like is not None:
            lines.append(f"    o{k} = torch.empty_like(t{like})")
        else:
            lines.append(f"    o{k} = torch.empty(o{k}_shape, device={device}.device, "
                         f"dtype={val(o).dtype})")
    lines += body
    lines.append(f"    return {', '.join(f'o{k}' for k in range(len(outputs)))},")
    return "\n".join(lines)


def _k_major(b) -> bool:
    """B ([..., K, N]) is contiguous along K, as a transposed ``nn.Linear`` weight is."""
    return hint(b.stride(-2)) == 1 and hint(b.shape[-1]) > 1


# ---- index width ----------------------------------------------------------------------------
INDEX_SOURCE = '''
# ---- index width: int32 offsets wherever every one fits ----
_INT32_NUMEL = 2 ** 31 - 2 ** 24


def _idx(numel):
    """The type of a kernel's element offsets over ``numel`` elements: int32 (cheaper address
    and ``//``/``%`` arithmetic) unless an offset, or one a block past the end, could overflow."""
    return tl.int32 if numel <= _INT32_NUMEL else tl.int64
'''.strip()


# ---- pointwise ------------------------------------------------------------------------------
def pointwise_code(g: Group) -> GroupCode:
    args = KernelArgs()
    outputs = g.outputs()
    args.outputs = [(f"out{k}_ptr", o) for k, o in enumerate(outputs)]
    body = Body(g, args)
    index = Index("flat", "mask")
    for m in g.members:
        body.member(m, "full", index)
    for ptr, o in args.outputs:
        body.store(o, ptr, index)
    name = f"_g{g.gid}_kernel"
    src = [header(name, args, ["NUMEL"], ["BLOCK", "IDX"]),
           f'    """Pointwise group {g.gid}: {ops_of(g)}."""',
           "    flat = tl.program_id(0).to(IDX) * BLOCK + tl.arange(0, BLOCK)",
           "    mask = flat < NUMEL", *indent(body.lines)]
    p = f"g{g.gid}_"
    sizes = ["NUMEL"] + [n for n, _ in args.sizes]
    run = launcher(g.gid, [b for _, b in args.tensors], outputs, sizes, [
        f"    grid = (triton.cdiv(NUMEL, cfg['{p}BLOCK']),)",
        "    IDX = _idx(NUMEL)",
        "    " + run_call(name, "grid", kernel_call(args, ["NUMEL"]),
                         [("BLOCK", f"cfg['{p}BLOCK']"), ("IDX", "IDX")],
                         [("num_warps", f"cfg['{p}num_warps']")])])
    numel = prod(val(g.members[-1]).shape)
    return GroupCode(
        g.gid, "pointwise", "\n".join(src) + "\n\n\n" + run, [b for _, b in args.tensors],
        [("NUMEL", numel)] + args.sizes + out_sizes(outputs), outputs,
        *pointwise_space())


# ---- gemm -----------------------------------------------------------------------------------
def grouped_order(n: str) -> str:
    """Kernel lines: program ``pid`` as tile ``(pid_m, pid_n)`` of an ``M x n`` output, in
    groups of ``GROUP_M`` tile rows (neighbouring programs share A's rows and B's columns in
    L2)."""
    return f'''    num_pid_m = tl.cdiv(M, BLOCK_M)
    num_pid_n = tl.cdiv({n}, BLOCK_N)
    group = GROUP_M * num_pid_n
    first_m = (pid // group) * GROUP_M
    size_m = min(num_pid_m - first_m, GROUP_M)
    pid_m = first_m + (pid % group) % size_m
    pid_n = (pid % group) // size_m
'''


GEMM_BODY = '''    pid = tl.program_id(0)
    bt = tl.program_id(1).to(tl.int64)
''' + grouped_order("N") + '''    rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    ram = (rm % M).to(tl.int64)
    rbn = (rn % N).to(tl.int64)
    rk = tl.arange(0, BLOCK_K)
    a_ptrs = a_ptr + bt * stride_ab + ram[:, None] * stride_am + rk[None, :] * stride_ak
    b_ptrs = b_ptr + bt * stride_bb + rk[:, None] * stride_bk + rbn[None, :] * stride_bn
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k in range(0, tl.cdiv(K, BLOCK_K)):
        if EVEN_K:
            a = tl.load(a_ptrs)
            b = tl.load(b_ptrs)
        else:
            k_left = K - k * BLOCK_K
            a = tl.load(a_ptrs, mask=rk[None, :] < k_left, other=0.0)
            b = tl.load(b_ptrs, mask=rk[:, None] < k_left, other=0.0)
        acc = {dot}
        a_ptrs += BLOCK_K * stride_ak
        b_ptrs += BLOCK_K * stride_bk
    rowid = bt * M + rm.to(tl.int64)
    flat = rowid[:, None] * N + rn[None, :]
    mask = (rm < M)[:, None] & (rn < N)[None, :]
'''


GEMM_SIZES = ["M", "N", "K", "sab", "ta.stride(-2)", "ta.stride(-1)", "sbb", "tb.stride(-2)",
              "tb.stride(-1)"]


def epilogue(g: Group, body: Body, index: Index) -> None:
    """A GEMM-like group's members after its anchor, on the accumulator tile ``v0`` (already
    emitted), then the stores of its outputs."""
    body.vars[g.anchor] = Var("v0")
    for m in g.members[1:]:
        body.member(m, "full", index)
    for ptr, o in body.args.outputs:
        body.store(o, ptr, index)


def gemm_code(g: Group) -> GroupCode:
    anchor = g.anchor
    name = op_name(anchor)
    a, b = (anchor.args[1], anchor.args[2]) if name == "aten.addmm" else anchor.args[:2]
    args = KernelArgs()
    outputs = g.outputs()
    args.outputs = [(f"out{k}_ptr", o) for k, o in enumerate(outputs)]
    out_shape = tuple(val(anchor).shape)
    n_expr = size_expr(out_shape[-1])
    index = Index("flat", "mask", last="rn[None, :]", last_size=n_expr,
                  last_mask="(rn < N)[None, :]", row="rowid[:, None]", row_inner=n_expr,
                  row_mask="(rm < M)[:, None]")
    body = Body(g, args)
    if name == "aten.addmm":
        bias = body.operand(anchor.args[0], anchor, "full", index)
        beta = float(anchor.kwargs.get("beta", 1))
        alpha = float(anchor.kwargs.get("alpha", 1))
        scaled = (lambda v, f: v if f == 1.0 else f"{v} * {f!r}")
        body.emit(f"v0 = {scaled('acc', alpha)} + {scaled(str(bias), beta)}")
    else:
        body.emit("v0 = acc")
    epilogue(g, body, index)
    fp32 = val(a).dtype.is_floating_point and str(val(a).dtype) == "torch.float32"
    dot = ("tl.dot(a, b, acc, input_precision=PRECISION)" if fp32 else "tl.dot(a, b, acc)")
    kname = f"_g{g.gid}_kernel"
    named = ["M", "N", "K", "stride_ab", "stride_am", "stride_ak", "stride_bb", "stride_bk",
             "stride_bn"]
    consts = ["BLOCK_M", "BLOCK_N", "BLOCK_K", "GROUP_M", "EVEN_K", "PRECISION"]
    src = [header(kname, args, named, consts, first=["a_ptr", "b_ptr"]),
        f'    """GEMM group {g.gid}: {ops_of(g)}; C[bt] = A[bt] @ B[bt] with its epilogue."""',
        GEMM_BODY.format(dot=dot).rstrip("\n"), *indent(body.lines)]
    p = f"g{g.gid}_"
    b_copy = fp32 and not _k_major(val(b))
    # tf32 tensor-core MMAs take B contiguous along K; a B contiguous along N is copied so
    # first when the config asks (the copy is part of the answer's time)
    lines = [f"    if cfg['{p}B_K_MAJOR']:",
             "        tb = tb.transpose(-1, -2).contiguous().transpose(-1, -2)"] if b_copy else []
    lines += [
        "    M, K = ta.shape[-2], ta.shape[-1]",
        "    N = tb.shape[-1]",
        "    BT = ta.shape[0] if ta.dim() == 3 else 1",
        "    sab = ta.stride(0) if ta.dim() == 3 else 0",
        "    sbb = tb.stride(0) if tb.dim() == 3 else 0",
        f"    BM, BN, BK = cfg['{p}BLOCK_M'], cfg['{p}BLOCK_N'], cfg['{p}BLOCK_K']",
        "    grid = (triton.cdiv(M, BM) * triton.cdiv(N, BN), BT)",
        "    " + run_call(kname, "grid", ["ta", "tb"] + kernel_call(args, GEMM_SIZES),
                         [("BLOCK_M", "BM"), ("BLOCK_N", "BN"), ("BLOCK_K", "BK"),
                          ("GROUP_M", f"cfg['{p}GROUP_M']"), ("EVEN_K", "K % BK == 0"),
                          ("PRECISION", f"cfg['{p}PRECISION']")],
                         [("num_warps", f"cfg['{p}num_warps']"),
                          ("num_stages", f"cfg['{p}num_stages']")])]
    run = launcher(g.gid, [x for _, x in args.tensors], outputs, [n for n, _ in args.sizes], lines,
                   first=["ta", "tb"])
    return GroupCode(g.gid, "gemm", "\n".join(src) + "\n\n\n" + run,
                     [a, b] + [x for _, x in args.tensors], args.sizes + out_sizes(outputs),
                     outputs, *gemm_space(val(a).dtype.itemsize, fp32, hint(out_shape[-2]),
                                          hint(out_shape[-1]), hint(val(a).shape[-1]),
                                          b_k_major=_k_major(val(b)), b_copy=b_copy))
