"""LayerNorm over the last dimension: ``y = (x - mean) / sqrt(var + eps) * w + b``.

Structures:
    one_pass  one row per program, the whole row in registers: read once, mean (of x shifted by
              x[row, 0]), then variance of the centred registers (two passes over registers, no
              cancellation), write.
              ``CTAS_PER_SM`` caps registers per thread (Triton's ``maxnreg``) so that that many
              programs fit on an SM: more rows in flight per SM, at the price of a few spills.
              (A persistent variant holding w and b in registers across rows measured slower on
              an H200 at 8192x8192 fp16: at most 3.14 vs 3.75 TB/s, register-bound.)
    looped    one row per program in column blocks, for rows too long for registers: a first loop
              accumulates shifted sums and sums of squares, a second loop normalizes and writes.
              x is read twice; the second read mostly hits L2.

All arithmetic is fp32; offsets are int64 (``row * stride_xm`` overflows int32 past 2^31 elements).
"""

from __future__ import annotations

import functools

import torch
import triton
import triton.language as tl

from eggsearch.ops.base import Problem, RowNormOp, next_pow2

EPS = 1e-5
# 32-bit registers per SM on sm_80 and sm_90; the interpreter, having none, uses this too.
DEFAULT_REGS_PER_SM = 65536


@functools.cache
def _regs_per_sm(device: torch.device) -> int:
    if device.type != "cuda":
        return DEFAULT_REGS_PER_SM
    props = torch.cuda.get_device_properties(device)
    return getattr(props, "regs_per_multiprocessor", DEFAULT_REGS_PER_SM)


def _register_cap(device: torch.device, num_warps: int, ctas_per_sm: int) -> int:
    """Registers per thread that let ``ctas_per_sm`` programs of ``num_warps`` share an SM.

    Registers are allocated per warp in units of 256 (8 a thread); 255 is the hardware maximum.
    """
    return min(255, _regs_per_sm(device) // (ctas_per_sm * num_warps * 32) // 8 * 8)


@triton.jit
def _layernorm_one_pass_kernel(x_ptr, w_ptr, b_ptr, y_ptr, stride_xm, stride_ym, N, eps,
                               BLOCK_N: tl.constexpr, EVICT: tl.constexpr):
    """One row of ``x`` [M, N] (unit column stride) per program; ``y`` [M, N] like x.

    x_ptr, y_ptr: input and output. w_ptr, b_ptr: weight and bias [N], contiguous.
    stride_xm, stride_ym: row strides in elements. eps: added to the variance.
    BLOCK_N: next power of two >= N (the whole row is held in registers).
    EVICT: eviction policy for the read of x ("" or "evict_first": x is read exactly once and
    should not displace w and b in L2).
    """
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK_N)
    mask = cols < N
    x = tl.load(x_ptr + row * stride_xm + cols, mask=mask, other=0.0,
                eviction_policy=EVICT).to(tl.float32)
    # Shifting by x[row, 0] first keeps the fp32 sum small, so the mean stays accurate when
    # |mean| >> std (x[row, 0] shares a cache line with the row: no extra traffic).
    xs = tl.where(mask, x - tl.load(x_ptr + row * stride_xm).to(tl.float32), 0.0)
    xc = tl.where(mask, xs - tl.sum(xs, axis=0) / N, 0.0)
    rstd = tl.rsqrt(tl.sum(xc * xc, axis=0) / N + eps)
    # w and b are loaded only now (L2 hits) so that they do not hold registers through the
    # reductions: registers, not bandwidth, bound how many rows an SM keeps in flight.
    w = tl.load(w_ptr + cols, mask=mask, other=0.0).to(tl.float32)
    b = tl.load(b_ptr + cols, mask=mask, other=0.0).to(tl.float32)
    tl.store(y_ptr + row * stride_ym + cols, (xc * rstd * w + b).to(y_ptr.dtype.element_ty),
             mask=mask)


@triton.jit
def _layernorm_looped_kernel(x_ptr, w_ptr, b_ptr, y_ptr, stride_xm, stride_ym, N, eps,
                             BLOCK_N: tl.constexpr):
    """One row of ``x`` [M, N] (unit column stride) per program, in column blocks; ``y`` like x.

    x_ptr, y_ptr: input and output. w_ptr, b_ptr: weight and bias [N], contiguous.
    stride_xm, stride_ym: row strides in elements. eps: added to the variance.
    BLOCK_N: columns per block (any power of two; N need not be a multiple).

    The sums are of ``x - x[row, 0]``: a shift near the mean keeps sum-of-squares minus
    square-of-sum from cancelling when |mean| >> std (the shifted-data variance algorithm).
    """
    row = tl.program_id(0).to(tl.int64)
    x_row = x_ptr + row * stride_xm
    y_row = y_ptr + row * stride_ym
    shift = tl.load(x_row).to(tl.float32)
    acc = tl.zeros((BLOCK_N,), dtype=tl.float32)
    acc_sq = tl.zeros((BLOCK_N,), dtype=tl.float32)
    for start in range(0, N, BLOCK_N):
        cols = start + tl.arange(0, BLOCK_N)
        mask = cols < N
        x = tl.load(x_row + cols, mask=mask, other=0.0).to(tl.float32)
        xs = tl.where(mask, x - shift, 0.0)
        acc += xs
        acc_sq += xs * xs
    mean_s = tl.sum(acc, axis=0) / N
    var = tl.maximum(tl.sum(acc_sq, axis=0) / N - mean_s * mean_s, 0.0)
    mean = shift + mean_s
    rstd = tl.rsqrt(var + eps)
    for start in range(0, N, BLOCK_N):
        cols = start + tl.arange(0, BLOCK_N)
        mask = cols < N
        x = tl.load(x_row + cols, mask=mask, other=0.0).to(tl.float32)
        w = tl.load(w_ptr + cols, mask=mask, other=0.0).to(tl.float32)
        b = tl.load(b_ptr + cols, mask=mask, other=0.0).to(tl.float32)
        y = (x - mean) * rstd * w + b
        tl.store(y_row + cols, y.to(y_ptr.dtype.element_ty), mask=mask)


def launch_one_pass(x, w, b, *, out, num_warps, EVICT="", CTAS_PER_SM=0, num_stages=1):
    M, N = x.shape
    maxnreg = None if CTAS_PER_SM == 0 else _register_cap(x.device, num_warps, CTAS_PER_SM)
    _layernorm_one_pass_kernel[(M,)](x, w, b, out, x.stride(0), out.stride(0), N, EPS,
                                     BLOCK_N=next_pow2(N), EVICT=EVICT, num_warps=num_warps,
                                     num_stages=num_stages, maxnreg=maxnreg)


def launch_looped(x, w, b, *, out, BLOCK_N, num_warps, num_stages=1):
    M, N = x.shape
    _layernorm_looped_kernel[(M,)](x, w, b, out, x.stride(0), out.stride(0), N, EPS,
                                   BLOCK_N=BLOCK_N, num_warps=num_warps, num_stages=num_stages)


class LayerNorm(RowNormOp):
    name = "layernorm"
    summary = "layer normalization over the last dimension, with weight and bias"
    parameters = ("weight", "bias")
    interpreter_shape = (37, 301)
    structures = {"one_pass": launch_one_pass, "looped": launch_looped}

    def reference(self, x, w, b):
        return torch.nn.functional.layer_norm(x, (x.shape[-1],), w, b, eps=EPS)

    def flops(self, problem: Problem) -> float:
        M, N = problem.shape
        return 8.0 * M * N  # about 8 an element: sum, centre, square, sum, rstd, w, b

    def min_bytes(self, problem: Problem) -> float:
        M, N = problem.shape
        return float((2 * M * N + 2 * N) * problem.elem_bytes)


OP = LayerNorm()
