"""Forward scaled-dot-product attention: ``O = softmax(Q K^T / sqrt(D) [+ causal mask]) V``.

Layout as PyTorch's SDPA takes it: ``q``, ``k``, ``v`` and the output are [B, H, S, D] (batch,
heads, sequence, head dim), one dtype (fp16 or bf16). Causal means top-left aligned: query ``i``
sees keys ``j <= i``, as ``scaled_dot_product_attention(..., is_causal=True)``.

The ``causal`` option reaches everyone the way SDPA itself takes it, as an argument: the inputs
are ``(q, k, v, is_causal)``, where ``is_causal`` is a 0-d bool tensor on the CPU (reading it
never waits for the GPU). So :meth:`Attention.reference`, :meth:`Attention.truth` and every
launcher ``launch_<structure>(q, k, v, is_causal, *, out, **config)`` see the same flag as the
problem, with no state kept anywhere else, and the verifier's input check covers it too.

Structures (all Flash-Attention-2 style: one program per (query block, batch * head), K and V
walked in blocks with an online softmax: running row max, rescaled row sum, fp32 accumulator;
``exp2`` with ``log2(e) / sqrt(D)`` folded into one scale; P cast to the input dtype for P @ V):
    flash        pointer loads (cp.async pipelining); one loop over key blocks that stops at
                 the diagonal when causal; a block is masked only where it reaches past the
                 diagonal (or the sequence end), decided by a uniform branch per block.
    flash_split  pointer loads; the loop split in two (Triton tutorial 06): unmasked blocks left
                 of the diagonal block, then the masked diagonal (or sequence-end) blocks, so the
                 hot loop carries no mask and no branch.
    flash_tma    as flash_split, with Q, K and V moved by tensor descriptors (the TMA engine on
                 Hopper) and the output stored by one.
    flash_wgmma  sm_90 only, in Gluon (``attention_gluon.py``): the softmax overlapped with the
                 wgmmas, warp specialization and a persistent grid, which ``tl.dot`` cannot
                 express (Triton waits for each Q K^T wgmma, and the P V before it, at once).

(``tl.range(..., warp_specialize=True)`` on the key loop was tried and left out: Triton 3.6
emits the same PTX with and without it for sm_90.)

Program order (``HEAVY_FIRST``): the 1-D grid walks the query blocks of one head before the next
head, so the programs in flight share a few heads' K and V in L2; with HEAVY_FIRST a head's
query blocks run from the last (the longest causal loop) to the first, so short programs fill
the tail of the grid.

Edges: S need not be a multiple of any block. Pointer loads past S are masked (only in the
masked stage, and only when S is not a multiple of BLOCK_N); scores of keys past S are -inf.
The descriptors of K and V view [B * H * S, D], so a block past S reads the next head's rows:
their scores are masked and the V rows zeroed, so they contribute exactly nothing. Query rows
past S are computed from whatever was read and never stored.
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from eggsearch.errors import UsageError
from eggsearch.ops.attention_gluon import launch_flash_wgmma
from eggsearch.ops.base import OpSpec, OptionValue, Problem, torch_dtype
from eggsearch.ops.operands import check_attention_operands

HEAD_DIMS = (64, 128)
LOG2E = 1.4426950408889634
# Largest fp64 score block the truth materializes (elements; 2**25 * 8 bytes = 256 MiB).
TRUTH_CHUNK_ELEMS = 1 << 25
# Masking modes of _attention_blocks.
MASK_NONE = tl.constexpr(0)      # no key past S, none above the diagonal: nothing masked
MASK_ALL = tl.constexpr(1)       # every block masked
MASK_CROSSING = tl.constexpr(2)  # only blocks reaching past `mask_from` (a uniform branch)


# ---- shared device helpers ----------------------------------------------------------------
@triton.jit
def _attention_tile(num_m, HEAVY_FIRST: tl.constexpr):
    """(start_m, bh) of this program: the query blocks of one head are adjacent in the grid."""
    pid = tl.program_id(0)
    bh = pid // num_m
    start_m = pid % num_m
    if HEAVY_FIRST:
        start_m = num_m - 1 - start_m
    return start_m, bh


@triton.jit
def _attention_mask(qk, offs_m, cols, S, CAUSAL: tl.constexpr):
    """Scores of keys a query may not see set to -inf: keys after it (causal), else keys past
    S. (Causally, valid rows never see a key past S, since key <= query < S.)"""
    if CAUSAL:
        keep = offs_m[:, None] >= cols[None, :]
    else:
        keep = (cols < S)[None, :]
    return tl.where(keep, qk, float("-inf"))


@triton.jit
def _attention_load_kt(k_src, kv_row, start_n, cols, S, stride_kn, stride_kd,
                       HEAD_DIM: tl.constexpr, TMA: tl.constexpr, LOAD_MASK: tl.constexpr):
    """K^T [HEAD_DIM, BLOCK_N] of the key block at ``start_n`` (the transposed view feeds
    tl.dot directly)."""
    if TMA:
        kt = k_src.load([kv_row + start_n, 0]).T
    else:
        ptrs = k_src + tl.arange(0, HEAD_DIM)[:, None] * stride_kd + cols[None, :] * stride_kn
        if LOAD_MASK:
            kt = tl.load(ptrs, mask=(cols < S)[None, :], other=0.0)
        else:
            kt = tl.load(ptrs)
    return kt


@triton.jit
def _attention_load_v(v_src, kv_row, start_n, cols, S, stride_vn, stride_vd,
                      HEAD_DIM: tl.constexpr, TMA: tl.constexpr, LOAD_MASK: tl.constexpr):
    """V [BLOCK_N, HEAD_DIM] of the key block at ``start_n``; rows past S are zero."""
    if TMA:
        v = v_src.load([kv_row + start_n, 0])
        if LOAD_MASK:  # rows past S are the next head's: zero them, so 0 * v stays 0
            v = tl.where((cols < S)[:, None], v, 0.0)
    else:
        ptrs = v_src + cols[:, None] * stride_vn + tl.arange(0, HEAD_DIM)[None, :] * stride_vd
        if LOAD_MASK:
            v = tl.load(ptrs, mask=(cols < S)[:, None], other=0.0)
        else:
            v = tl.load(ptrs)
    return v


@triton.jit
def _attention_blocks(acc, l_i, m_i, q, k_src, v_src, kv_row, lo, hi, mask_from, offs_m, S,
                      qk_scale, stride_kn, stride_kd, stride_vn, stride_vd,
                      BLOCK_N: tl.constexpr, HEAD_DIM: tl.constexpr, CAUSAL: tl.constexpr,
                      MASK: tl.constexpr, EVEN_N: tl.constexpr, TMA: tl.constexpr):
    """Online softmax over the key blocks [lo, hi) (lo a multiple of BLOCK_N): returns the
    updated fp32 accumulator ``acc`` [BLOCK_M, HEAD_DIM], row sums ``l_i`` and row maxima
    ``m_i`` (in log2 units of the scaled scores).

    k_src, v_src: this head's K and V base pointers, or descriptors of [B*H*S, D] with this
    head's first row at ``kv_row`` (TMA). MASK: MASK_NONE (no block needs a mask: loads and
    scores unmasked), MASK_ALL, or MASK_CROSSING (blocks ending past ``mask_from`` masked).
    EVEN_N: S % BLOCK_N == 0 (no block reaches past S, so loads are never masked).
    """
    LOAD_MASK: tl.constexpr = MASK != MASK_NONE and not EVEN_N
    offs_n = tl.arange(0, BLOCK_N)
    for start_n in range(lo, hi, BLOCK_N):
        start_n = tl.multiple_of(start_n, BLOCK_N)
        cols = start_n + offs_n
        kt = _attention_load_kt(k_src, kv_row, start_n, cols, S, stride_kn, stride_kd,
                                HEAD_DIM, TMA, LOAD_MASK)
        qk = tl.dot(q, kt)
        if MASK == MASK_NONE:
            m_ij = tl.maximum(m_i, tl.max(qk, 1) * qk_scale)
            qk = qk * qk_scale - m_ij[:, None]
        else:
            qk = qk * qk_scale
            if MASK == MASK_ALL:
                qk = _attention_mask(qk, offs_m, cols, S, CAUSAL)
            elif start_n + BLOCK_N > mask_from:
                qk = _attention_mask(qk, offs_m, cols, S, CAUSAL)
            # Finite: the first block walked holds key 0, which every row sees.
            m_ij = tl.maximum(m_i, tl.max(qk, 1))
            qk = qk - m_ij[:, None]
        p = tl.math.exp2(qk)
        alpha = tl.math.exp2(m_i - m_ij)
        l_ij = tl.sum(p, 1)
        acc = acc * alpha[:, None]
        v = _attention_load_v(v_src, kv_row, start_n, cols, S, stride_vn, stride_vd,
                              HEAD_DIM, TMA, LOAD_MASK)
        acc = tl.dot(p.to(v.dtype), v, acc)
        l_i = l_i * alpha + l_ij  # after the dot: shorter live ranges
        m_i = m_ij
    return acc, l_i, m_i


@triton.jit
def _attention_split_loops(acc, l_i, m_i, q, k_src, v_src, kv_row, start_m, offs_m, S,
                           qk_scale, stride_kn, stride_kd, stride_vn, stride_vd,
                           BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                           HEAD_DIM: tl.constexpr, CAUSAL: tl.constexpr,
                           EVEN_N: tl.constexpr, TMA: tl.constexpr):
    """Unmasked blocks first, then the masked ones: causal, the blocks left of the query block
    and then its diagonal blocks (needs BLOCK_M % BLOCK_N == 0); otherwise the whole blocks
    and then the partial block at the end of the sequence."""
    if CAUSAL:
        split = start_m * BLOCK_M
        end = min(split + BLOCK_M, S)
    else:
        split = S - S % BLOCK_N
        end = S
    acc, l_i, m_i = _attention_blocks(acc, l_i, m_i, q, k_src, v_src, kv_row, 0, split, 0,
                                      offs_m, S, qk_scale, stride_kn, stride_kd, stride_vn,
                                      stride_vd, BLOCK_N, HEAD_DIM, CAUSAL, MASK_NONE, EVEN_N,
                                      TMA)
    acc, l_i, m_i = _attention_blocks(acc, l_i, m_i, q, k_src, v_src, kv_row, split, end, 0,
                                      offs_m, S, qk_scale, stride_kn, stride_kd, stride_vn,
                                      stride_vd, BLOCK_N, HEAD_DIM, CAUSAL, MASK_ALL, EVEN_N,
                                      TMA)
    return acc, l_i, m_i


@triton.jit
def _attention_ptr_q(q_ptr, bh, H, start_m, S, stride_qb, stride_qh, stride_qs, stride_qd,
                     BLOCK_M: tl.constexpr, HEAD_DIM: tl.constexpr, EVEN_M: tl.constexpr):
    """Q [BLOCK_M, HEAD_DIM] of query block ``start_m`` of head ``bh`` (rows past S zero)."""
    offs_m = start_m * BLOCK_M + tl.arange(0, BLOCK_M)
    base = q_ptr + (bh // H).to(tl.int64) * stride_qb + (bh % H).to(tl.int64) * stride_qh
    ptrs = base + offs_m[:, None] * stride_qs + tl.arange(0, HEAD_DIM)[None, :] * stride_qd
    if EVEN_M:
        return tl.load(ptrs)
    return tl.load(ptrs, mask=(offs_m < S)[:, None], other=0.0)


@triton.jit
def _attention_ptr_store(o_ptr, acc, bh, H, offs_m, S, stride_ob, stride_oh, stride_os,
                         stride_od, HEAD_DIM: tl.constexpr, EVEN_M: tl.constexpr):
    """Store ``acc`` as the output rows ``offs_m`` of head ``bh`` (rows past S dropped)."""
    base = o_ptr + (bh // H).to(tl.int64) * stride_ob + (bh % H).to(tl.int64) * stride_oh
    ptrs = base + offs_m[:, None] * stride_os + tl.arange(0, HEAD_DIM)[None, :] * stride_od
    out = acc.to(o_ptr.dtype.element_ty)
    if EVEN_M:
        tl.store(ptrs, out)
    else:
        tl.store(ptrs, out, mask=(offs_m < S)[:, None])


# ---- flash and flash_split: pointer loads ---------------------------------------------------
@triton.jit
def _attention_flash_kernel(q_ptr, k_ptr, v_ptr, o_ptr, H, S, qk_scale,
                            stride_qb, stride_qh, stride_qs, stride_qd,
                            stride_kb, stride_kh, stride_ks, stride_kd,
                            stride_vb, stride_vh, stride_vs, stride_vd,
                            stride_ob, stride_oh, stride_os, stride_od,
                            HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr,
                            BLOCK_N: tl.constexpr, CAUSAL: tl.constexpr, SPLIT: tl.constexpr,
                            EVEN_M: tl.constexpr, EVEN_N: tl.constexpr,
                            HEAVY_FIRST: tl.constexpr):
    """One [BLOCK_M, HEAD_DIM] block of the output per program; 1-D grid of
    cdiv(S, BLOCK_M) * B * H programs.

    q_ptr, k_ptr, v_ptr, o_ptr: [B, H, S, HEAD_DIM] tensors (fp16 or bf16, any strides);
    stride_<tensor><dim> their element strides. H: heads; S: sequence length; qk_scale:
    log2(e) / sqrt(HEAD_DIM). HEAD_DIM: D, a power of two >= 16. BLOCK_M, BLOCK_N: query and key
    block sizes (powers of two >= 16). CAUSAL: mask keys after the query. SPLIT: the
    flash_split loops (needs BLOCK_M % BLOCK_N == 0) rather than flash's single loop. EVEN_M,
    EVEN_N: S is a multiple of BLOCK_M, BLOCK_N (drops masks). HEAVY_FIRST: program order.
    """
    start_m, bh = _attention_tile(tl.cdiv(S, BLOCK_M), HEAVY_FIRST)
    offs_m = start_m * BLOCK_M + tl.arange(0, BLOCK_M)
    q = _attention_ptr_q(q_ptr, bh, H, start_m, S, stride_qb, stride_qh, stride_qs, stride_qd,
                         BLOCK_M, HEAD_DIM, EVEN_M)
    k_src = k_ptr + (bh // H).to(tl.int64) * stride_kb + (bh % H).to(tl.int64) * stride_kh
    v_src = v_ptr + (bh // H).to(tl.int64) * stride_vb + (bh % H).to(tl.int64) * stride_vh
    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)
    if SPLIT:
        acc, l_i, m_i = _attention_split_loops(acc, l_i, m_i, q, k_src, v_src, 0, start_m,
                                               offs_m, S, qk_scale, stride_ks, stride_kd,
                                               stride_vs, stride_vd, BLOCK_M, BLOCK_N,
                                               HEAD_DIM, CAUSAL, EVEN_N, False)
    else:
        if CAUSAL:  # stop at the diagonal; mask the blocks that reach past its first column
            hi = min((start_m + 1) * BLOCK_M, S)
            mask_from = start_m * BLOCK_M
        else:
            hi = S
            mask_from = S
        acc, l_i, m_i = _attention_blocks(acc, l_i, m_i, q, k_src, v_src, 0, 0, hi, mask_from,
                                          offs_m, S, qk_scale, stride_ks, stride_kd,
                                          stride_vs, stride_vd, BLOCK_N, HEAD_DIM, CAUSAL,
                                          MASK_CROSSING, EVEN_N, False)
    acc = acc / l_i[:, None]
    _attention_ptr_store(o_ptr, acc, bh, H, offs_m, S, stride_ob, stride_oh, stride_os,
                         stride_od, HEAD_DIM, EVEN_M)


# ---- flash_tma: tensor descriptors -----------------------------------------------------------
@triton.jit
def _attention_flash_tma_kernel(q_desc, k_desc, v_desc, o_desc, S, qk_scale,
                                HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr,
                                BLOCK_N: tl.constexpr, CAUSAL: tl.constexpr,
                                EVEN_N: tl.constexpr, HEAVY_FIRST: tl.constexpr):
    """As :func:`_attention_flash_kernel` with SPLIT, through tensor descriptors.

    q_desc, k_desc, v_desc: descriptors of the contiguous q, k, v viewed as [B*H*S, HEAD_DIM],
    blocks [BLOCK_M, HEAD_DIM] (q) and [BLOCK_N, HEAD_DIM] (k, v). o_desc: the output viewed as
    [B*H, S, HEAD_DIM], block [1, BLOCK_M, HEAD_DIM], so the store stops at the end of the
    head. Other arguments as in :func:`_attention_flash_kernel`.
    """
    start_m, bh = _attention_tile(tl.cdiv(S, BLOCK_M), HEAVY_FIRST)
    offs_m = start_m * BLOCK_M + tl.arange(0, BLOCK_M)
    kv_row = bh * S
    q = q_desc.load([kv_row + start_m * BLOCK_M, 0])
    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)
    acc, l_i, m_i = _attention_split_loops(acc, l_i, m_i, q, k_desc, v_desc, kv_row, start_m,
                                           offs_m, S, qk_scale, 0, 0, 0, 0, BLOCK_M, BLOCK_N,
                                           HEAD_DIM, CAUSAL, EVEN_N, True)
    acc = acc / l_i[:, None]
    o_desc.store([bh, start_m * BLOCK_M, 0], acc.to(o_desc.dtype)[None, :, :])


# ---- launchers -------------------------------------------------------------------------------
def _launch_pointers(q, k, v, is_causal, out, *, split, BLOCK_M, BLOCK_N, num_warps,
                     num_stages, HEAVY_FIRST):
    B, H, S, D, causal = check_attention_operands(q, k, v, is_causal, out)
    if split and BLOCK_M % BLOCK_N:
        raise ValueError(f"flash_split: BLOCK_N {BLOCK_N} must divide BLOCK_M {BLOCK_M}")
    grid = (triton.cdiv(S, BLOCK_M) * B * H,)
    _attention_flash_kernel[grid](
        q, k, v, out, H, S, LOG2E / math.sqrt(D),
        *q.stride(), *k.stride(), *v.stride(), *out.stride(),
        HEAD_DIM=D, BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N, CAUSAL=causal, SPLIT=split,
        EVEN_M=S % BLOCK_M == 0, EVEN_N=S % BLOCK_N == 0, HEAVY_FIRST=HEAVY_FIRST,
        num_warps=num_warps, num_stages=num_stages)


def launch_flash(q, k, v, is_causal, *, out, BLOCK_M, BLOCK_N, num_warps, num_stages,
                 HEAVY_FIRST):
    _launch_pointers(q, k, v, is_causal, out, split=False, BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N,
                     num_warps=num_warps, num_stages=num_stages, HEAVY_FIRST=HEAVY_FIRST)


def launch_flash_split(q, k, v, is_causal, *, out, BLOCK_M, BLOCK_N, num_warps, num_stages,
                       HEAVY_FIRST):
    _launch_pointers(q, k, v, is_causal, out, split=True, BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N,
                     num_warps=num_warps, num_stages=num_stages, HEAVY_FIRST=HEAVY_FIRST)


def launch_flash_tma(q, k, v, is_causal, *, out, BLOCK_M, BLOCK_N, num_warps, num_stages,
                     HEAVY_FIRST):
    from triton.tools.tensor_descriptor import TensorDescriptor

    B, H, S, D, causal = check_attention_operands(q, k, v, is_causal, out)
    if BLOCK_M % BLOCK_N:
        raise ValueError(f"flash_tma: BLOCK_N {BLOCK_N} must divide BLOCK_M {BLOCK_M}")
    if not all(t.is_contiguous() for t in (q, k, v, out)):
        raise ValueError("flash_tma: q, k, v and out must be contiguous (descriptors view "
                         "them as [B*H*S, D])")
    rows = B * H * S
    grid = (triton.cdiv(S, BLOCK_M) * B * H,)
    _attention_flash_tma_kernel[grid](
        TensorDescriptor.from_tensor(q.view(rows, D), [BLOCK_M, D]),
        TensorDescriptor.from_tensor(k.view(rows, D), [BLOCK_N, D]),
        TensorDescriptor.from_tensor(v.view(rows, D), [BLOCK_N, D]),
        TensorDescriptor.from_tensor(out.view(B * H, S, D), [1, BLOCK_M, D]),
        S, LOG2E / math.sqrt(D),
        HEAD_DIM=D, BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N, CAUSAL=causal,
        EVEN_N=S % BLOCK_N == 0, HEAVY_FIRST=HEAVY_FIRST,
        num_warps=num_warps, num_stages=num_stages)


# ---- the float64 truth -----------------------------------------------------------------------
def attention_float64(q, k, v, causal: bool, chunk_elems: int = TRUTH_CHUNK_ELEMS):
    """SDPA computed in float64, a few heads and query rows at a time.

    A whole fp64 score matrix is B*H*S*S*8 bytes (34 GB at 8x32x4096); here at most
    ``chunk_elems`` scores exist at once (three such buffers at the peak: scores, weights,
    mask), and causal row chunks only multiply the keys they can see.
    """
    B, H, S, D = q.shape
    q3, k3, v3 = (t.reshape(B * H, S, D) for t in (q, k, v))
    out = torch.empty((B * H, S, D), dtype=torch.float64, device=q.device)
    rows = max(1, min(S, chunk_elems // S))
    heads = max(1, chunk_elems // (rows * S))
    scale = 1.0 / math.sqrt(D)
    for h0 in range(0, B * H, heads):
        kh, vh = k3[h0:h0 + heads].double(), v3[h0:h0 + heads].double()
        for r0 in range(0, S, rows):
            r1 = min(S, r0 + rows)
            n = r1 if causal else S
            scores = q3[h0:h0 + heads, r0:r1].double() @ kh[:, :n].transpose(1, 2) * scale
            if causal:
                above = (torch.arange(r0, r1, device=q.device)[:, None]
                         < torch.arange(n, device=q.device)[None, :])
                scores.masked_fill_(above, float("-inf"))
            out[h0:h0 + heads, r0:r1] = torch.softmax(scores, dim=-1) @ vh[:, :n]
    return out.reshape(B, H, S, D)


class Attention(OpSpec):
    name = "attention"
    summary = "forward scaled-dot-product attention, [B, H, S, D] (--option causal=0|1)"
    dims = ("B", "H", "S", "D")
    tensor_cores = True
    dtypes = ("fp16", "bf16")
    default_shape = (8, 32, 4096, 128)
    interpreter_shape = (1, 2, 67, 64)  # S prime: a partial block at every block size
    options = {"causal": True}
    structures = {"flash": launch_flash, "flash_split": launch_flash_split,
                  "flash_tma": launch_flash_tma, "flash_wgmma": launch_flash_wgmma}

    def problem(self, shape, dtype, allow_tf32=False, interpreter=False,
                options: dict[str, OptionValue | str] | None = None) -> Problem:
        problem = super().problem(shape, dtype, allow_tf32=allow_tf32, interpreter=interpreter,
                                  options=options)
        D = problem.sizes["D"]
        if D not in HEAD_DIMS:
            raise UsageError(f"attention: head dim D={D} is not supported; choose one of "
                             f"{', '.join(map(str, HEAD_DIMS))}")
        return problem

    def make_inputs(self, problem: Problem, seed: int, device: str):
        g = torch.Generator(device=device).manual_seed(seed)
        dt = torch_dtype(problem.dtype)
        q, k, v = (torch.randn(problem.shape, generator=g, device=device).to(dt)
                   for _ in range(3))
        return q, k, v, torch.tensor(bool(problem.option("causal")))

    def output_shape(self, problem: Problem):
        return problem.shape

    def reference(self, q, k, v, is_causal):
        return torch.nn.functional.scaled_dot_product_attention(q, k, v,
                                                                is_causal=bool(is_causal))

    def truth(self, q, k, v, is_causal):
        return attention_float64(q, k, v, bool(is_causal))

    def flops(self, problem: Problem) -> float:
        B, H, S, D = problem.shape
        full = 4.0 * B * H * S * S * D  # Q K^T and P V, 2 * S * S * D each per head
        return full / 2 if problem.option("causal") else full

    def min_bytes(self, problem: Problem) -> float:
        B, H, S, D = problem.shape
        return float(4 * B * H * S * D * problem.elem_bytes)  # q, k, v read; out written


OP = Attention()
