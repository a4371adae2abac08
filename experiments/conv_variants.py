"""Which implicit-GEMM convolution is fastest at fp32 accuracy: input layout, tf32x3 form, tiles.

The convolution of problems 21-23 (batch 64, 16 -> 64 channels, 128x128, 3x3, no padding) is an
implicit GEMM of M = 1016064 output pixels, N = 64 output channels, K = 144 (16 channels x 9
taps). This script times one kernel (the generated one's structure:
:mod:`eggsearch.problems.convkernel`, without an epilogue) over

* the input layout: NCHW as given, or channels-last (a copy each call, timed with it, and
  without the copy, as if the model ran channels-last), and the weight's K order;
* the fp32 product: ``tl.dot(..., input_precision="tf32x3")`` (Triton splits both tiles each
  step), or the weight split once per call into TF32 high and low parts outside the loop and
  only A's tile split in the loop (the same three TF32 products);
* tiles, warps and stages;

each checked against a float64 convolution (relative error of the whole output, and the
elementwise 1e-4 test of the problem set) and compared with cuDNN's fp32 convolution.

    python experiments/conv_variants.py --out runs/conv-variants.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import triton  # noqa: E402
import triton.language as tl  # noqa: E402

from eggsearch.timing import bench_cuda  # noqa: E402

torch.backends.cudnn.allow_tf32 = False
BATCH, IC, OC, HW, KS = 64, 16, 64, 128, 3


@triton.jit
def _tf32(x):
    """``x`` rounded to TF32 (10 mantissa bits, to nearest, ties away), as an fp32 value."""
    bits = x.to(tl.uint32, bitcast=True)
    return ((bits + 0x1000) & 0xFFFFE000).to(tl.float32, bitcast=True)


@triton.jit
def conv_kernel(x_ptr, w_ptr, wlo_ptr, out_ptr, M, NB, OC, C, P, OW,
                stride_xn, stride_xc, stride_xh, stride_xw,
                stride_wo, stride_wc, stride_wh, stride_ww,
                KH: tl.constexpr, KW: tl.constexpr, BLOCK_M: tl.constexpr,
                BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr,
                A_M_FAST: tl.constexpr, PRE_SPLIT: tl.constexpr, SMALL_ACC: tl.constexpr):
    pid = tl.program_id(0)
    num_pid_m = tl.cdiv(M, BLOCK_M)
    num_pid_n = tl.cdiv(OC, BLOCK_N)
    group = GROUP_M * num_pid_n
    first_m = (pid // group) * GROUP_M
    size_m = min(num_pid_m - first_m, GROUP_M)
    pid_m = first_m + (pid % group) % size_m
    pid_n = (pid % group) // size_m
    rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    img = rm // P
    pix = rm % P
    a_row = x_ptr + (img % NB) * stride_xn + (pix // OW) * stride_xh + (pix % OW) * stride_xw
    b_col = (rn % OC) * stride_wo
    rk = tl.arange(0, BLOCK_K)
    c_blocks = tl.cdiv(C, BLOCK_K)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k in range(0, KH * KW * c_blocks):
        tap = k // c_blocks
        c0 = (k - tap * c_blocks) * BLOCK_K
        kh = tap // KW
        kw = tap - kh * KW
        a_tap = a_row + (kh * stride_xh + kw * stride_xw)
        b_off = b_col[None, :] + (kh * stride_wh + kw * stride_ww) + (c0 + rk)[:, None] * stride_wc
        if A_M_FAST:
            a = tl.trans(tl.load(a_tap[None, :] + (c0 + rk)[:, None] * stride_xc))
        else:
            a = tl.load(a_tap[:, None] + (c0 + rk)[None, :] * stride_xc)
        if PRE_SPLIT:
            b_hi = tl.load(w_ptr + b_off)
            b_lo = tl.load(wlo_ptr + b_off)
            a_hi = _tf32(a)
            a_lo = a - a_hi
            if SMALL_ACC:  # the two small products summed apart, then added in fp32
                small = tl.dot(a_lo, b_hi, input_precision="tf32")
                small = tl.dot(a_hi, b_lo, small, input_precision="tf32")
                acc = tl.dot(a_hi, b_hi, acc + small, input_precision="tf32")
            else:
                acc = tl.dot(a_lo, b_hi, acc, input_precision="tf32")
                acc = tl.dot(a_hi, b_lo, acc, input_precision="tf32")
                acc = tl.dot(a_hi, b_hi, acc, input_precision="tf32")
        else:
            b = tl.load(w_ptr + b_off)
            acc = tl.dot(a, b, acc, input_precision="tf32x3")
    flat = (img[:, None] * OC + rn[None, :]) * P + pix[:, None]
    mask = (rm < M)[:, None] & (rn < OC)[None, :]
    tl.store(out_ptr + flat, acc, mask=mask)


@triton.jit
def split_kernel(w_ptr, hi_ptr, lo_ptr, NUMEL, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < NUMEL
    w = tl.load(w_ptr + offs, mask=mask)
    hi = _tf32(w)
    tl.store(hi_ptr + offs, hi, mask=mask)
    tl.store(lo_ptr + offs, w - hi, mask=mask)


def conv(x, w, cfg: dict, channels_last: str, w_k_major: bool, pre_split: bool):
    """One call: the layout copies (when asked), the weight split (when asked), the kernel."""
    if channels_last == "copied":
        x = x.contiguous(memory_format=torch.channels_last)
    if w_k_major:
        w = w.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)
    wlo = w
    if pre_split:
        hi, lo = torch.empty_like(w), torch.empty_like(w)
        n = w.numel()
        split_kernel[(triton.cdiv(n, 1024),)](w, hi, lo, n, BLOCK=1024)
        w, wlo = hi, lo
    nb, c, h, wd = x.shape
    oc, _, kh, kw = w.shape
    oh, ow = h - kh + 1, wd - kw + 1
    m = nb * oh * ow
    out = torch.empty((nb, oc, oh, ow), device=x.device)
    grid = (triton.cdiv(m, cfg["BLOCK_M"]) * triton.cdiv(oc, cfg["BLOCK_N"]),)
    conv_kernel[grid](x, w, wlo, out, m, nb, oc, c, oh * ow, ow, *x.stride(), *w.stride(),
                      KH=kh, KW=kw, BLOCK_M=cfg["BLOCK_M"], BLOCK_N=cfg["BLOCK_N"],
                      BLOCK_K=cfg["BLOCK_K"], GROUP_M=8, A_M_FAST=cfg["A_M_FAST"],
                      PRE_SPLIT=pre_split, SMALL_ACC=cfg.get("SMALL_ACC", False),
                      num_warps=cfg["num_warps"],
                      num_stages=cfg["num_stages"])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--quick", action="store_true", help="a few variants only")
    parser.add_argument("--accumulate", action="store_true",
                        help="only the weight-split kernel, its small products accumulated into "
                             "the result or apart")
    args = parser.parse_args()
    torch.manual_seed(0)
    x = torch.randn(BATCH, IC, HW, HW, device="cuda")
    w = torch.randn(OC, IC, KS, KS, device="cuda") / 12
    exact = torch.nn.functional.conv2d(x.double(), w.double())
    flops = 2 * exact.numel() * IC * KS * KS

    def error(out):
        rel = float((out.double() - exact).norm() / exact.norm())
        ok = bool(torch.allclose(out.double(), exact, atol=1e-4, rtol=1e-4))
        return rel, ok

    cudnn = lambda: torch.nn.functional.conv2d(x, w)  # noqa: E731
    rows = [{"variant": "cuDNN fp32", "ms": bench_cuda(cudnn)[0], "rel_err": error(cudnn())[0],
             "allclose_1e-4": error(cudnn())[1]}]
    x_cl = x.contiguous(memory_format=torch.channels_last)
    layouts = [("nchw", False), ("copied", False), ("copied", True), ("given", True)]
    tiles = [(128, 64, 4, 1), (128, 64, 4, 2), (128, 64, 4, 3), (256, 64, 8, 2),
             (64, 64, 4, 2), (128, 64, 8, 3)]
    if args.quick:
        layouts, tiles = layouts[:2], tiles[:2]
    if args.accumulate:
        for small_acc, (bm, bn, warps, stages) in itertools.product(
                (False, True), [(128, 64, 4, 2), (128, 64, 4, 3), (64, 64, 4, 2)]):
            cfg = {"BLOCK_M": bm, "BLOCK_N": bn, "BLOCK_K": 16, "num_warps": warps,
                   "num_stages": stages, "A_M_FAST": False, "SMALL_ACC": small_acc}
            fn = (lambda cfg=cfg: conv(x, w, cfg, "nchw", False, True))
            rel, ok = error(fn())
            rows.append({"variant": f"nchw pre_split=True {bm}x{bn}x16 w{warps} s{stages} "
                                    f"small_apart={small_acc}",
                         "ms": bench_cuda(fn)[0], "rel_err": rel, "allclose_1e-4": ok})
        layouts = []
    for (layout, wk), pre, (bm, bn, warps, stages), m_fast in itertools.product(
            layouts, (False, True), tiles, (False, True)):
        if m_fast and layout != "nchw":
            continue  # channels-last pixels are not consecutive: only the channel-fast load
        cfg = {"BLOCK_M": bm, "BLOCK_N": bn, "BLOCK_K": 16, "num_warps": warps,
               "num_stages": stages, "A_M_FAST": m_fast}
        xin = x_cl if layout == "given" else x
        fn = (lambda xin=xin, cfg=cfg, layout=layout, wk=wk, pre=pre:
              conv(xin, w, cfg, layout, wk, pre))
        name = (f"{layout} w_k_major={wk} pre_split={pre} {bm}x{bn}x16 w{warps} s{stages} "
                f"m_fast={m_fast}")
        try:
            rel, ok = error(fn())
            ms = bench_cuda(fn)[0]
        except Exception as exc:  # noqa: BLE001 - report and go on
            print(f"{name}: {type(exc).__name__}: {str(exc)[:120]}", flush=True)
            continue
        rows.append({"variant": name, "ms": ms, "rel_err": rel, "allclose_1e-4": ok})
        print(f"{name:70} {ms:8.4f} ms  rel {rel:.2e}  ok {ok}", flush=True)
    for r in rows:
        r["tflops"] = flops / (r["ms"] * 1e-3) / 1e12
    report = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__,
              "triton": triton.__version__, "gflop": flops / 1e9, "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(f"\n{report['device']}; torch {report['torch']}, triton {report['triton']}; "
          f"{flops / 1e9:.1f} GFLOP")
    print(f"{'variant':70} {'ms':>8} {'TFLOP/s':>8} {'rel err':>9} 1e-4")
    for r in sorted(rows, key=lambda r: r["ms"]):
        print(f"{r['variant']:70} {r['ms']:8.4f} {r['tflops']:8.1f} {r['rel_err']:9.2e} "
              f"{r['allclose_1e-4']}")


if __name__ == "__main__":
    main()
