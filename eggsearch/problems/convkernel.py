"""Convolution groups: a 2-D convolution as an implicit GEMM, with its epilogue.

``out[n, oc, oh, ow] = sum over c, kh, kw of x[n, c, ih, iw] * w[oc, c, kh, kw]`` with
``ih = oh * SH - PH + kh * DH`` (and the same along W) is a GEMM ``C = A @ B`` of
``M = N * OH * OW`` rows (output pixels), ``N = OC`` columns and ``K = C * KH * KW``, where A is
never materialised: each ``[BLOCK_M, BLOCK_K]`` tile is loaded from ``x`` at the pixels' input
positions (im2col on the fly, in registers and shared memory). The K loop runs over the taps
``(kh, kw)`` and, within a tap, over ``BLOCK_K`` input channels: a pixel row's base address is
computed once per tile and each step only adds the tap's offset, so the loop carries no
divisions per element. Without padding every tap of a valid output pixel lies inside the input,
so the loads need no bounds; with padding, the tap's rows are masked.

The accumulator tile then runs the epilogue like a GEMM group's (a bias, activations, scales:
:mod:`eggsearch.problems.fusion`) and is stored in NCHW order: element ``(m, oc)`` of the tile
is ``out[n, oc, p]`` with ``m = n * P + p``, ``P = OH * OW``. A per-channel operand (a bias of
shape ``[OC, 1, 1]``) is loaded once per column, a per-(image, channel) one once per
``(n, oc)``.

fp32 products are three TF32 ones (fp32-grade): by default (``W_SPLIT``) the weight is split into
TF32 high and low parts once per call and only A's tile in the loop; otherwise ``tl.dot`` at
``PRECISION`` "tf32x3" (both tiles split on every step) or "ieee", as in the GEMM groups.
Handled: 4-D input, ``groups == 1``, not transposed, integer stride, padding and dilation
(:func:`eggsearch.problems.fusion.conv_params`); any other convolution stays in PyTorch.
"""

from __future__ import annotations

from eggsearch.problems.codegen import Body, Index, KernelArgs
from eggsearch.problems.fusion import Group, conv_depth, conv_params
from eggsearch.problems.graph import hint, size_expr, val
from eggsearch.problems.kernels import (
    GroupCode,
    epilogue,
    grouped_order,
    header,
    indent,
    kernel_call,
    launcher,
    ops_of,
    out_sizes,
)
from eggsearch.problems.launch import run_call
from eggsearch.problems.spaces import conv_space

CONV_BODY = "    pid = tl.program_id(0)\n" + grouped_order("OC") + '''\
    rm = pid_m.to(IDX) * BLOCK_M + tl.arange(0, BLOCK_M)
    rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    img = rm // P
    pix = rm % P
    # rows past M and columns past OC read a valid pixel / channel (never stored)
    img_in = img % NB
    ih0 = {ih0}
    iw0 = {iw0}
    a_row = a_ptr + img_in * stride_xn + ih0 * stride_xh + iw0 * stride_xw
    b_col = (rn % OC) * stride_wo
    rk = tl.arange(0, BLOCK_K)
    c_blocks = tl.cdiv(C, BLOCK_K)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k in range(0, KH * KW * c_blocks):
        tap = k // c_blocks
        c0 = (k - tap * c_blocks) * BLOCK_K
        kh = tap // KW
        kw = tap - kh * KW
        a_tap = a_row + ({kh} * stride_xh + {kw} * stride_xw)
        b_off = b_col[None, :] + (kh * stride_wh + kw * stride_ww) + (c0 + rk)[:, None] * stride_wc
{loads}
{dot}
    rowid = img[:, None] * OC + rn[None, :]
    flat = rowid * P + pix[:, None]
    mask = (rm < M)[:, None] & (rn < OC)[None, :]
'''

# The loads of one K step. A's tile is read either as [BLOCK_M, BLOCK_K] or, with A_M_FAST, as
# [BLOCK_K, BLOCK_M] then transposed: its pixels (consecutive in an NCHW input) then lie along
# the tile's fast axis, which is how the load is spread over a warp's threads. Channels are
# bounded unless C is a multiple of BLOCK_K, and a tap's input rows where the convolution pads.
_INSIDE = ("        ih = ih0 + {kh}\n"
           "        iw = iw0 + {kw}\n"
           "        inside = (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)\n")


def _load_a(m_fast: bool, padded: bool, even: bool) -> str:
    row, col = ("[None, :]", "[:, None]") if m_fast else ("[:, None]", "[None, :]")
    masks = ([f"inside{row}"] if padded else []) + ([] if even else [f"c_in{col}"])
    mask = f", mask={' & '.join(masks)}, other=0.0" if masks else ""
    load = f"tl.load(a_tap{row} + (c0 + rk){col} * stride_xc{mask})"
    return f"a = tl.trans({load})" if m_fast else f"a = {load}"


def _loads(padded: bool, fp32: bool) -> str:
    lines = [_INSIDE.rstrip("\n")] if padded else []
    for even in (True, False):
        mask = "" if even else ", mask=c_in[:, None], other=0.0"
        lines += ["        if EVEN_C:"] if even else ["        else:",
                                                      "            c_in = (c0 + rk) < C"]
        lines.append(f"            b = tl.load(b_ptr + b_off{mask})")
        if fp32:
            lines += ["            if W_SPLIT:",
                      f"                b_lo = tl.load(blo_ptr + b_off{mask})"]
        lines += ["            if A_M_FAST:", "                " + _load_a(True, padded, even),
                  "            else:", "                " + _load_a(False, padded, even)]
    return "\n".join(lines)


# fp32: Triton's tf32x3 splits both tiles into TF32 high and low parts on every step; with
# W_SPLIT the weight is split once per call (:data:`TF32_SOURCE`) and only A's tile in the loop.
_DOT_SPLIT = """        if W_SPLIT:
            a_hi = _tf32_round(a)
            a_lo = a - a_hi
            acc = tl.dot(a_lo, b, acc, input_precision="tf32")
            acc = tl.dot(a_hi, b_lo, acc, input_precision="tf32")
            acc = tl.dot(a_hi, b, acc, input_precision="tf32")
        else:
            acc = tl.dot(a, b, acc, input_precision=PRECISION)"""

TF32_SOURCE = '''
# ---- fp32 products as three TF32 ones, the weight split once per call ----
@triton.jit
def _tf32_round(x):
    """``x`` rounded to TF32 (10 mantissa bits, to nearest, ties away from zero) as an fp32
    value, so that ``x - _tf32_round(x)`` is exact. Magnitudes within 2**-11 of the largest
    float round to infinity."""
    bits = x.to(tl.uint32, bitcast=True)
    return ((bits + 0x1000) & 0xFFFFE000).to(tl.float32, bitcast=True)


@triton.jit
def _tf32_split_kernel(w_ptr, hi_ptr, lo_ptr, NUMEL, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < NUMEL
    w = tl.load(w_ptr + offs, mask=mask)
    hi = _tf32_round(w)
    tl.store(hi_ptr + offs, hi, mask=mask)
    tl.store(lo_ptr + offs, w - hi, mask=mask)


def _tf32_split(w):
    """``w`` as ``hi + lo`` (two contiguous fp32 tensors; ``hi`` holds TF32 values): a product
    with ``w`` is then ``a_lo * hi + a_hi * lo + a_hi * hi`` in three TF32 products, whose
    error is of fp32's order (tensor cores read the top 10 mantissa bits of ``lo``)."""
    w = w.contiguous()
    hi, lo = torch.empty_like(w), torch.empty_like(w)
    n = w.numel()
    if n:
        _run(_tf32_split_kernel, (triton.cdiv(n, 1024),), (w, hi, lo, n), {"BLOCK": 1024},
             {"num_warps": 4}, (w.data_ptr() & 15, hi.data_ptr() & 15, lo.data_ptr() & 15, n))
    return hi, lo
'''.strip()


def _affine(code: str, scale: int, shift: int) -> str:
    """``code * scale - shift`` without the no-op parts."""
    out = code if scale == 1 else f"{code} * {scale}"
    return out if shift == 0 else f"{out} - {shift}"


CONV_NAMED = ["M", "NB", "OC", "C", "H", "W", "P", "OW", "stride_xn", "stride_xc", "stride_xh",
              "stride_xw", "stride_wo", "stride_wc", "stride_wh", "stride_ww"]
CONV_SIZES = ["M", "NB", "OC", "C", "H", "W", "P", "OW", "ta.stride(0)", "ta.stride(1)",
              "ta.stride(2)", "ta.stride(3)", "tb.stride(0)", "tb.stride(1)", "tb.stride(2)",
              "tb.stride(3)"]


def conv_code(g: Group) -> GroupCode:
    anchor = g.anchor
    x, w = anchor.args[:2]
    (sh, sw), (ph, pw), (dh, dw) = conv_params(anchor)
    padded = bool(ph or pw)
    args = KernelArgs()
    outputs = g.outputs()
    args.outputs = [(f"out{k}_ptr", o) for k, o in enumerate(outputs)]
    out_shape = tuple(val(anchor).shape)
    channels = size_expr(out_shape[1])
    plane = size_expr(out_shape[2]) * size_expr(out_shape[3])
    index = Index("flat", "mask", last="rn[None, :]", last_size=channels, last_inner=plane,
                  last_mask="(rn < OC)[None, :]", row="rowid", row_inner=plane, row_mask="mask")
    body = Body(g, args)
    body.emit("v0 = acc")
    epilogue(g, body, index)
    fp32 = str(val(x).dtype) == "torch.float32"
    dot = _DOT_SPLIT if fp32 else "        acc = tl.dot(a, b, acc)"
    kname = f"_g{g.gid}_kernel"
    consts = ["KH", "KW", "BLOCK_M", "BLOCK_N", "BLOCK_K", "GROUP_M", "A_M_FAST", "EVEN_C", "IDX",
              "PRECISION"] + (["W_SPLIT"] if fp32 else [])
    geometry = {"ih0": _affine("(pix // OW)", sh, ph), "iw0": _affine("(pix % OW)", sw, pw),
                "kh": _affine("kh", dh, 0), "kw": _affine("kw", dw, 0)}
    loads = _loads(padded, fp32).format(**geometry)
    split_ptrs = ["blo_ptr"] if fp32 else []  # the weight's TF32 low part (W_SPLIT)
    src = [header(kname, args, CONV_NAMED, consts, first=["a_ptr", "b_ptr"] + split_ptrs),
           f'    """Convolution group {g.gid}: {ops_of(g)}; an implicit GEMM over '
           f'stride {sh}x{sw}, padding {ph}x{pw}, dilation {dh}x{dw}, with its epilogue."""',
           CONV_BODY.format(loads=loads, dot=dot, **geometry).rstrip("\n"), *indent(body.lines)]
    p = f"g{g.gid}_"
    split = [f"    tb, tb_lo = _tf32_split(tb) if cfg['{p}W_SPLIT'] else (tb, tb)"] if fp32 else []
    lines = split + [
        "    NB, C, H, W = ta.shape",
        "    OC, KH, KW = tb.shape[0], tb.shape[2], tb.shape[3]",
        f"    OH = (H + {2 * ph} - {dh} * (KH - 1) - 1) // {sh} + 1",
        f"    OW = (W + {2 * pw} - {dw} * (KW - 1) - 1) // {sw} + 1",
        "    P = OH * OW",
        "    M = NB * P",
        "    IDX = _idx(max(ta.numel(), M * OC))",
        f"    BM, BN, BK = cfg['{p}BLOCK_M'], cfg['{p}BLOCK_N'], cfg['{p}BLOCK_K']",
        "    grid = (triton.cdiv(M, BM) * triton.cdiv(OC, BN),)",
        "    " + run_call(kname, "grid", ["ta", "tb"] + (["tb_lo"] if fp32 else [])
                         + kernel_call(args, CONV_SIZES),
                         [("KH", "KH"), ("KW", "KW"), ("BLOCK_M", "BM"), ("BLOCK_N", "BN"),
                          ("BLOCK_K", "BK"), ("GROUP_M", f"cfg['{p}GROUP_M']"),
                          ("A_M_FAST", f"cfg['{p}A_M_FAST']"), ("EVEN_C", "C % BK == 0"),
                          ("IDX", "IDX"),
                          ("PRECISION", f"cfg['{p}PRECISION']")]
                         + ([("W_SPLIT", f"cfg['{p}W_SPLIT']")] if fp32 else []),
                         [("num_warps", f"cfg['{p}num_warps']"),
                          ("num_stages", f"cfg['{p}num_stages']")])]
    run = launcher(g.gid, [t for _, t in args.tensors], outputs, [n for n, _ in args.sizes],
                   lines, first=["ta", "tb"])
    vx = val(x)
    channels_in, depth = conv_depth(anchor)
    return GroupCode(g.gid, "conv", "\n".join(src) + "\n\n\n" + run,
                     [x, w] + [t for _, t in args.tensors], args.sizes + out_sizes(outputs),
                     outputs, *conv_space(vx.dtype.itemsize, fp32,
                                          hint(out_shape[0]) * hint(out_shape[2])
                                          * hint(out_shape[3]),
                                          hint(out_shape[1]), channels_in, depth),
                     helpers=[TF32_SOURCE] if fp32 else [])
