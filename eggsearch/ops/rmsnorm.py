"""RMSNorm over the last dimension: ``y = x / sqrt(mean(x^2) + eps) * w``.

Structures:
    one_pass  one row per program; the whole row sits in registers, read once.
    looped    one row per program, looping over column blocks twice (sum of squares, then
              normalize); for rows too long to hold in registers.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from eggsearch.ops.base import Problem, RowNormOp, next_pow2

EPS = 1e-6


@triton.jit
def _rmsnorm_one_pass_kernel(x_ptr, w_ptr, y_ptr, stride_xm, stride_ym, N, eps,
                             BLOCK_N: tl.constexpr, EVICT: tl.constexpr):
    """One row of ``x`` [M, N] per program; ``w`` [N]; ``y`` [M, N] like ``x``.

    BLOCK_N: next power of two >= N (the whole row). EVICT: eviction policy for the read of x
    ("" or "evict_first": x is read once and should not displace w in L2).
    """
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK_N)
    mask = cols < N
    x = tl.load(x_ptr + row * stride_xm + cols, mask=mask, other=0.0,
                eviction_policy=EVICT).to(tl.float32)
    rstd = tl.rsqrt(tl.sum(x * x, axis=0) / N + eps)
    w = tl.load(w_ptr + cols, mask=mask, other=0.0).to(tl.float32)
    tl.store(y_ptr + row * stride_ym + cols, (x * rstd * w).to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _rmsnorm_looped_kernel(x_ptr, w_ptr, y_ptr, stride_xm, stride_ym, N, eps,
                           BLOCK_N: tl.constexpr):
    """One row of ``x`` [M, N] per program, in column blocks of BLOCK_N (any power of two)."""
    row = tl.program_id(0).to(tl.int64)
    x_row = x_ptr + row * stride_xm
    y_row = y_ptr + row * stride_ym
    acc = tl.zeros((BLOCK_N,), dtype=tl.float32)
    for start in range(0, N, BLOCK_N):
        cols = start + tl.arange(0, BLOCK_N)
        x = tl.load(x_row + cols, mask=cols < N, other=0.0).to(tl.float32)
        acc += x * x
    rstd = tl.rsqrt(tl.sum(acc, axis=0) / N + eps)
    for start in range(0, N, BLOCK_N):
        cols = start + tl.arange(0, BLOCK_N)
        mask = cols < N
        x = tl.load(x_row + cols, mask=mask, other=0.0).to(tl.float32)
        w = tl.load(w_ptr + cols, mask=mask, other=0.0).to(tl.float32)
        tl.store(y_row + cols, (x * rstd * w).to(y_ptr.dtype.element_ty), mask=mask)


def launch_one_pass(x, w, *, out, num_warps, EVICT="", num_stages=1):
    M, N = x.shape
    _rmsnorm_one_pass_kernel[(M,)](x, w, out, x.stride(0), out.stride(0), N, EPS,
                                   BLOCK_N=next_pow2(N), EVICT=EVICT,
                                   num_warps=num_warps, num_stages=num_stages)


def launch_looped(x, w, *, out, BLOCK_N, num_warps, num_stages=1):
    M, N = x.shape
    _rmsnorm_looped_kernel[(M,)](x, w, out, x.stride(0), out.stride(0), N, EPS,
                                 BLOCK_N=BLOCK_N, num_warps=num_warps, num_stages=num_stages)


class RMSNorm(RowNormOp):
    name = "rmsnorm"
    summary = "RMS normalization over the last dimension, with weight"
    interpreter_shape = (37, 300)
    structures = {"one_pass": launch_one_pass, "looped": launch_looped}

    def reference(self, x, w):
        return torch.nn.functional.rms_norm(x, (x.shape[-1],), w, eps=EPS)

    def flops(self, problem: Problem) -> float:
        M, N = problem.shape
        return 4.0 * M * N  # square, sum, scale by rstd, scale by w

    def min_bytes(self, problem: Problem) -> float:
        M, N = problem.shape
        return float((2 * M * N + N) * problem.elem_bytes)


OP = RMSNorm()
