"""Residual add fused with RMSNorm: ``h = x + r``, ``y = h / sqrt(mean(h^2) + eps) * w``.

``x``, ``r`` [M, N], ``w`` [N]; both outputs ``h`` and ``y`` [M, N] in the input dtype. ``h`` is
rounded to the dtype before it is normalised, as eager code (``h = x + r`` then
``rms_norm(h)``) does, so ``y`` is the RMSNorm of the ``h`` that is written.

Structures:
    one_pass  one row per program; x, r and the row of h sit in registers, read once.
    looped    one row per program in column blocks, for rows too long for registers. Pass one
              writes h and sums its squares; pass two needs h again and either re-reads it from
              the output just written (REREAD_H: one read of M*N, and the row is still in L2) or
              re-adds x + r (two reads, but no dependence on its own writes). Re-reading is the
              default seed; the tuner measures both.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from eggsearch.ops.base import Problem, RowNormOp, next_pow2
from eggsearch.ops.rmsnorm import EPS


@triton.jit
def _add_rmsnorm_one_pass_kernel(x_ptr, r_ptr, w_ptr, h_ptr, y_ptr, stride_xm, stride_rm,
                                 stride_hm, stride_ym, N, eps,
                                 BLOCK_N: tl.constexpr, EVICT: tl.constexpr):
    """One row of ``x``, ``r`` [M, N] per program (grid (M,)); ``w`` [N]; writes ``h`` and
    ``y`` [M, N], all one dtype. stride_<tensor>m: row strides (columns contiguous).

    BLOCK_N: next power of two >= N (the whole row). EVICT: eviction policy for the reads of x
    and r ("" or "evict_first": they are read once and should not displace w in L2).
    """
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK_N)
    mask = cols < N
    x = tl.load(x_ptr + row * stride_xm + cols, mask=mask, other=0.0, eviction_policy=EVICT)
    r = tl.load(r_ptr + row * stride_rm + cols, mask=mask, other=0.0, eviction_policy=EVICT)
    h = (x.to(tl.float32) + r.to(tl.float32)).to(h_ptr.dtype.element_ty)
    tl.store(h_ptr + row * stride_hm + cols, h, mask=mask)
    hf = h.to(tl.float32)
    rstd = tl.rsqrt(tl.sum(hf * hf, axis=0) / N + eps)
    w = tl.load(w_ptr + cols, mask=mask, other=0.0).to(tl.float32)
    tl.store(y_ptr + row * stride_ym + cols, (hf * rstd * w).to(y_ptr.dtype.element_ty),
             mask=mask)


@triton.jit
def _add_rmsnorm_looped_kernel(x_ptr, r_ptr, w_ptr, h_ptr, y_ptr, stride_xm, stride_rm,
                               stride_hm, stride_ym, N, eps,
                               BLOCK_N: tl.constexpr, REREAD_H: tl.constexpr):
    """One row per program in column blocks of BLOCK_N (any power of two); pointers and strides
    as in :func:`_add_rmsnorm_one_pass_kernel`. REREAD_H: pass two reads h back from h_ptr
    (else it recomputes x + r, rounded the same way).
    """
    row = tl.program_id(0).to(tl.int64)
    x_row = x_ptr + row * stride_xm
    r_row = r_ptr + row * stride_rm
    h_row = h_ptr + row * stride_hm
    y_row = y_ptr + row * stride_ym
    acc = tl.zeros((BLOCK_N,), dtype=tl.float32)
    for start in range(0, N, BLOCK_N):
        cols = start + tl.arange(0, BLOCK_N)
        mask = cols < N
        x = tl.load(x_row + cols, mask=mask, other=0.0).to(tl.float32)
        r = tl.load(r_row + cols, mask=mask, other=0.0).to(tl.float32)
        h = (x + r).to(h_ptr.dtype.element_ty)
        tl.store(h_row + cols, h, mask=mask)
        hf = h.to(tl.float32)
        acc += hf * hf
    rstd = tl.rsqrt(tl.sum(acc, axis=0) / N + eps)
    if REREAD_H:
        # Every thread reads back the elements it wrote (same block shape, same layout); the
        # barrier also orders them across the block's threads should the layouts ever differ.
        tl.debug_barrier()
    for start in range(0, N, BLOCK_N):
        cols = start + tl.arange(0, BLOCK_N)
        mask = cols < N
        if REREAD_H:
            hf = tl.load(h_row + cols, mask=mask, other=0.0).to(tl.float32)
        else:
            x = tl.load(x_row + cols, mask=mask, other=0.0).to(tl.float32)
            r = tl.load(r_row + cols, mask=mask, other=0.0).to(tl.float32)
            hf = (x + r).to(h_ptr.dtype.element_ty).to(tl.float32)
        w = tl.load(w_ptr + cols, mask=mask, other=0.0).to(tl.float32)
        tl.store(y_row + cols, (hf * rstd * w).to(y_ptr.dtype.element_ty), mask=mask)


def _check_operands(x, r, w, out) -> tuple[int, int]:
    h, y = out
    M, N = x.shape
    shapes = {tuple(t.shape) for t in (x, r, h, y)}
    if (shapes != {(M, N)} or tuple(w.shape) != (N,)
            or len({t.dtype for t in (x, r, w, h, y)}) != 1
            or any(t.stride(-1) != 1 for t in (x, r, h, y))):
        raise ValueError(f"add_rmsnorm: x {tuple(x.shape)}, r {tuple(r.shape)}, w "
                         f"{tuple(w.shape)}, out {[tuple(t.shape) for t in out]} do not fit "
                         "(one dtype, contiguous rows)")
    return M, N


def launch_one_pass(x, r, w, *, out, num_warps, EVICT=""):
    M, N = _check_operands(x, r, w, out)
    h, y = out
    _add_rmsnorm_one_pass_kernel[(M,)](x, r, w, h, y, x.stride(0), r.stride(0), h.stride(0),
                                       y.stride(0), N, EPS, BLOCK_N=next_pow2(N), EVICT=EVICT,
                                       num_warps=num_warps, num_stages=1)


def launch_looped(x, r, w, *, out, BLOCK_N, REREAD_H, num_warps):
    M, N = _check_operands(x, r, w, out)
    h, y = out
    _add_rmsnorm_looped_kernel[(M,)](x, r, w, h, y, x.stride(0), r.stride(0), h.stride(0),
                                     y.stride(0), N, EPS, BLOCK_N=BLOCK_N, REREAD_H=REREAD_H,
                                     num_warps=num_warps, num_stages=1)


class AddRMSNorm(RowNormOp):
    name = "add_rmsnorm"
    summary = "h = x + r, y = rmsnorm(h) * w: residual add fused with RMSNorm"
    activations = 2  # x and the residual r
    interpreter_shape = (37, 300)
    structures = {"one_pass": launch_one_pass, "looped": launch_looped}

    def outputs(self, problem: Problem):
        return [(problem.shape, problem.dtype)] * 2

    def reference(self, x, r, w):
        h = x + r
        return h, torch.nn.functional.rms_norm(h, (h.shape[-1],), w, eps=EPS)

    def truth(self, x, r, w):
        # h exactly rounded to the input dtype (the sum of two such numbers is exact in
        # float64), then the normalisation of that h in float64.
        h = (x.double() + r.double()).to(x.dtype).double()
        return h, torch.nn.functional.rms_norm(h, (h.shape[-1],), w.double(), eps=EPS)

    def flops(self, problem: Problem) -> float:
        M, N = problem.shape
        return 5.0 * M * N  # add, square, sum, scale by rstd, scale by w

    def min_bytes(self, problem: Problem) -> float:
        M, N = problem.shape
        return float((4 * M * N + N) * problem.elem_bytes)  # read x, r, w; write h, y


OP = AddRMSNorm()
