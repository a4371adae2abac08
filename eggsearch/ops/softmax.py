"""Softmax over the last dimension: ``y[m, :] = exp(x[m, :] - max) / sum(exp(x[m, :] - max))``.

Structures:
    one_pass   one row per program, the whole row in registers: read once, max, exp, sum, write.
               (A persistent variant, programs looping over rows, measured slower on an H200 at
               8192x8192 fp16 for every programs-per-SM tried: at most 3.65 vs 3.86 TB/s.)
    online     one row per program in column blocks, for rows too long for registers: a first loop
               keeps a running max and a rescaled running sum (online softmax), a second loop
               writes ``exp(x - max) / sum``. x is read twice; the second read mostly hits L2.
    multi_row  a [BLOCK_M, next_pow2(N)] tile of rows per program, for short rows.

All arithmetic is fp32; offsets are int64 (``row * stride_xm`` overflows int32 past 2^31 elements).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from eggsearch.ops.base import OpSpec, Problem, next_pow2, torch_dtype

# The running max starts here, not at -inf: exp(-inf - (-inf)) is NaN, exp(-inf - (-3e38)) is 0.
_NEG_BIG = tl.constexpr(-3.0e38)


@triton.jit
def _softmax_one_pass_kernel(x_ptr, y_ptr, stride_xm, stride_ym, N,
                             BLOCK_N: tl.constexpr, EVICT: tl.constexpr):
    """One row of ``x`` [M, N] (unit column stride) per program; ``y`` [M, N] like x.

    x_ptr, y_ptr: input and output. stride_xm, stride_ym: row strides in elements.
    BLOCK_N: next power of two >= N (the whole row is held in registers).
    EVICT: eviction policy for the read of x ("" or "evict_first": x is read exactly once).
    """
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK_N)
    mask = cols < N
    x = tl.load(x_ptr + row * stride_xm + cols, mask=mask, other=-float("inf"),
                eviction_policy=EVICT).to(tl.float32)
    e = tl.exp(x - tl.max(x, axis=0))
    y = e * (1.0 / tl.sum(e, axis=0))
    tl.store(y_ptr + row * stride_ym + cols, y.to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _softmax_online_kernel(x_ptr, y_ptr, stride_xm, stride_ym, N, BLOCK_N: tl.constexpr):
    """One row of ``x`` [M, N] (unit column stride) per program, in column blocks; ``y`` like x.

    x_ptr, y_ptr: input and output. stride_xm, stride_ym: row strides in elements.
    BLOCK_N: columns per block (any power of two; N need not be a multiple).

    Each lane j keeps its own running max ``m`` and sum ``d`` of exp(x - m) over columns
    j, j + BLOCK_N, ...; the lanes are combined once after the loop, so the loop has no
    cross-warp reduction and one exp per element (one of x - m_new, m - m_new is always 0).
    """
    row = tl.program_id(0).to(tl.int64)
    x_row = x_ptr + row * stride_xm
    y_row = y_ptr + row * stride_ym
    m = tl.full((BLOCK_N,), _NEG_BIG, tl.float32)
    d = tl.zeros((BLOCK_N,), dtype=tl.float32)
    for start in range(0, N, BLOCK_N):
        cols = start + tl.arange(0, BLOCK_N)
        x = tl.load(x_row + cols, mask=cols < N, other=-float("inf")).to(tl.float32)
        e = tl.exp(-tl.abs(x - m))
        d = tl.where(x > m, d * e + 1.0, d + e)
        m = tl.maximum(m, x)
    row_max = tl.max(m, axis=0)
    inv_sum = 1.0 / tl.sum(d * tl.exp(m - row_max), axis=0)
    for start in range(0, N, BLOCK_N):
        cols = start + tl.arange(0, BLOCK_N)
        mask = cols < N
        x = tl.load(x_row + cols, mask=mask, other=-float("inf")).to(tl.float32)
        y = tl.exp(x - row_max) * inv_sum
        tl.store(y_row + cols, y.to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _softmax_multi_row_kernel(x_ptr, y_ptr, stride_xm, stride_ym, M, N,
                              BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    """BLOCK_M rows of ``x`` [M, N] (unit column stride) per program; ``y`` like x.

    x_ptr, y_ptr: input and output. stride_xm, stride_ym: row strides in elements.
    BLOCK_M: rows per program (any power of two; M need not be a multiple).
    BLOCK_N: next power of two >= N (whole rows).
    """
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    row_mask = rows < M
    # Rows past M read row M - 1 again (cached) instead of all -inf, so no NaN is ever formed.
    rows_in = tl.minimum(rows, M - 1).to(tl.int64)
    cols = tl.arange(0, BLOCK_N)
    col_mask = cols < N
    x = tl.load(x_ptr + rows_in[:, None] * stride_xm + cols[None, :], mask=col_mask[None, :],
                other=-float("inf")).to(tl.float32)
    e = tl.exp(x - tl.max(x, axis=1)[:, None])
    y = e * (1.0 / tl.sum(e, axis=1))[:, None]
    tl.store(y_ptr + rows.to(tl.int64)[:, None] * stride_ym + cols[None, :],
             y.to(y_ptr.dtype.element_ty), mask=row_mask[:, None] & col_mask[None, :])


def launch_one_pass(x, *, out, num_warps, EVICT="", num_stages=1):
    M, N = x.shape
    _softmax_one_pass_kernel[(M,)](x, out, x.stride(0), out.stride(0), N,
                                   BLOCK_N=next_pow2(N), EVICT=EVICT,
                                   num_warps=num_warps, num_stages=num_stages)


def launch_online(x, *, out, BLOCK_N, num_warps, num_stages=1):
    M, N = x.shape
    _softmax_online_kernel[(M,)](x, out, x.stride(0), out.stride(0), N, BLOCK_N=BLOCK_N,
                                 num_warps=num_warps, num_stages=num_stages)


def launch_multi_row(x, *, out, BLOCK_M, num_warps, num_stages=1):
    M, N = x.shape
    _softmax_multi_row_kernel[(triton.cdiv(M, BLOCK_M),)](
        x, out, x.stride(0), out.stride(0), M, N, BLOCK_M=BLOCK_M, BLOCK_N=next_pow2(N),
        num_warps=num_warps, num_stages=num_stages)


class Softmax(OpSpec):
    name = "softmax"
    summary = "softmax over the last dimension of a 2-D tensor"
    dims = ("M", "N")
    default_shape = (8192, 8192)
    # Attention scores of one layer: heads * queries rows of keys columns (32 heads, 2k/4k ctx).
    named_shapes = {"scores-2k": (65536, 2048), "scores-4k": (131072, 4096)}
    interpreter_shape = (37, 301)
    structures = {"one_pass": launch_one_pass, "online": launch_online,
                  "multi_row": launch_multi_row}

    def make_inputs(self, problem: Problem, seed: int, device: str):
        M, N = problem.shape
        g = torch.Generator(device=device).manual_seed(seed)
        x = torch.randn(M, N, generator=g, device=device).to(torch_dtype(problem.dtype))
        return (x,)

    def output_shape(self, problem: Problem):
        return problem.shape

    def reference(self, x):
        return torch.softmax(x, dim=-1)

    def flops(self, problem: Problem) -> float:
        M, N = problem.shape
        return 5.0 * M * N  # max, subtract, exp, sum, scale

    def min_bytes(self, problem: Problem) -> float:
        M, N = problem.shape
        return float(2 * M * N * problem.elem_bytes)


OP = Softmax()
