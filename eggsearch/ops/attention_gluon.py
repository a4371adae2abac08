"""``flash_wgmma``: attention for Hopper (sm_90) written in Gluon, with the softmax overlapped
with the tensor cores.

Why a second language. In Triton's ``tl.dot`` kernels (``attention.py``) Triton 3.6 waits for
every ``Q K^T`` wgmma right after issuing it, and that wait also retires the previous block's
``P V``: the softmax of a block and both its matrix products run one after the other (its
TTGIR shows one ``warp_group_dot_wait {pendings = 0}`` per block; a ``Q K^T`` issued a block
ahead is waited for at once too). Gluon (``triton.experimental.gluon``, shipped with Triton)
exposes the wgmma as asynchronous with explicit waits, TMA copies and mbarriers, so the loop can
be written as FlashAttention-3's intra-warpgroup pipeline (Shah et al., 2024, section 3.2):

    issue S_j = Q K_j^T          (tensor cores)
    issue O  += P_{j-1} V_{j-1}   (tensor cores, queued behind S_j)
    wait until only the P V is in flight; softmax of S_j on the CUDA cores while P V runs
    wait for P V; rescale O by the new row max; refill the freed K/V stage by TMA

K and V blocks stream through a ring of ``STAGES`` shared-memory stages, each with its own
mbarrier (Q K^T needs only K), loaded ``STAGES`` blocks ahead by TMA. All warps of the program
pass a thread barrier before a stage is refilled, so no warpgroup still reads it.

One program computes a [BLOCK_M, D] block of the output; its ``BLOCK_M // 16`` warps each own 16
query rows (one warpgroup per 64 rows). Program order and causal masking as the ``flash``
structures (``HEAVY_FIRST``; only blocks reaching past the query block's first row, or past S,
are masked, by a uniform branch per block).

Edges: Q, K and V are read through descriptors of [B*H*S, D], so a block running past S reads the
next head's rows (or TMA's zero fill past the tensor's end): their scores are set to -inf before
the softmax, so they add nothing, and query rows past S are never stored (the store is masked).
Known limit: those V rows are not zeroed (``flash_tma`` zeroes them), so an inf or NaN in the
first rows of the next head's V turns this head's last rows into NaN (0 * inf); finite inputs
are exact. 3-D descriptors ([B*H, S, D], zero fill past S) would remove it; not done yet.

Gluon compiles only for a real GPU (no CPU interpreter), so this structure is offered on
sm_90 only (``expert_rules/selection.yaml``); its CPU tests compile it for sm_90 and the GPU
tests run it (``tests/ops/test_attention_gluon.py``).

Two kernels: ``_attention_wgmma_kernel`` (all warps do everything; a thread barrier guards each
stage's refill) and ``_attention_wgmma_ws_kernel`` (``WARP_SPECIALIZE``: a loader warp and one
partition per 64 query rows; optionally persistent (tiles in ``SNAKE`` order) and ping-pong).
Measured on an H200 at B8 H32 S4096 D128 causal fp16: 411 and 474-509 TFLOP/s (509: persistent,
SNAKE), against 427 for ``flash_tma`` and 494-502 for SDPA (cuDNN) in the same rounds
(``experiments/attention_variants.py``; results of sessions 6 and 7).
"""

from __future__ import annotations

import math
import os

import torch
from triton.experimental import gluon
from triton.experimental.gluon import language as gl
from triton.experimental.gluon.language.nvidia.hopper import (
    mbarrier,
    tma,
    warpgroup_mma,
    warpgroup_mma_wait,
)

from eggsearch.ops.operands import check_attention_operands

LOG2E = 1.4426950408889634
# Registers a thread of the second consumer warpgroup may hold (setmaxnreg; the loader keeps 24).
WS_CONSUMER_REGS = 232


@gluon.jit
def _wgmma_tile(t, num_m, S, BLOCK_M: gl.constexpr, BLOCK_N: gl.constexpr,
             CAUSAL: gl.constexpr, HEAVY_FIRST: gl.constexpr):
    """Tile ``t`` (the query blocks of one head are adjacent, the longest causal rows first
    with HEAVY_FIRST): its first query row, head, number of key blocks and first masked key
    block."""
    bh = t // num_m
    start_m = t % num_m
    if HEAVY_FIRST:
        start_m = num_m - 1 - start_m
    if CAUSAL:
        n_blocks = gl.cdiv(gl.minimum((start_m + 1) * BLOCK_M, S), BLOCK_N)
        mask_block = (start_m * BLOCK_M) // BLOCK_N
    else:
        n_blocks = gl.cdiv(S, BLOCK_N)
        mask_block = S // BLOCK_N
    return start_m * BLOCK_M, bh, n_blocks, mask_block


@gluon.jit
def _persistent_tile(t, num_tiles, SNAKE: gl.constexpr):
    """The tile a persistent program takes at its step ``t`` (pid, pid + grid, ...): ``t``
    itself, or with SNAKE every other whole round of ``grid`` tiles taken in reverse, so that
    program p meets positions p and grid - 1 - p in turn (a short causal tile, then a long
    one) and all SMs can be used; a last partial round keeps its order."""
    if SNAKE:
        grid = gl.num_programs(0)
        k = t // grid
        rev = ((k % 2) == 1) & ((k + 1) * grid <= num_tiles)
        t = t + rev.to(gl.int32) * (grid - 1 - 2 * (t % grid))
    return t


@gluon.jit
def _wgmma_load_kv(k_desc, v_desc, k_smem, v_smem, k_ready, v_ready, row, stage):
    """Start the TMA copies of the key block at row ``row`` of K and V into stage ``stage``."""
    nbytes: gl.constexpr = k_desc.block_type.nbytes
    mbarrier.expect(k_ready.index(stage), nbytes)
    tma.async_copy_global_to_shared(k_desc, [row, 0], k_ready.index(stage), k_smem.index(stage))
    mbarrier.expect(v_ready.index(stage), nbytes)
    tma.async_copy_global_to_shared(v_desc, [row, 0], v_ready.index(stage), v_smem.index(stage))


@gluon.jit
def _wgmma_softmax(s, m_i, l_i, block, mask_block, rows, S, qk_scale,
                   BLOCK_N: gl.constexpr, CAUSAL: gl.constexpr, s_layout: gl.constexpr):
    """Online softmax of the scores ``s`` of key block ``block``: returns P (fp32, relative to
    the new row max), the rescale factor of the old state, and the new row sums and maxima (log2
    units). Blocks from ``mask_block`` on are masked (causal: keys after the row; else keys past
    S)."""
    if block >= mask_block:
        cols = block * BLOCK_N + gl.arange(0, BLOCK_N, layout=gl.SliceLayout(0, s_layout))
        if CAUSAL:
            keep = rows[:, None] >= cols[None, :]
        else:
            keep = (cols < S)[None, :]
        s = gl.where(keep, s * qk_scale, float("-inf"))
        m_new = gl.maximum(m_i, gl.max(s, 1))  # finite: block 0 holds key 0, seen by every row
        p = gl.exp2(s - m_new[:, None])
    else:
        m_new = gl.maximum(m_i, gl.max(s, 1) * qk_scale)
        p = gl.exp2(s * qk_scale - m_new[:, None])
    alpha = gl.exp2(m_i - m_new)
    l_i = l_i * alpha + gl.sum(p, 1)
    return p, alpha, l_i, m_new


@gluon.jit
def _attention_wgmma_kernel(q_desc, k_desc, v_desc, o_ptr, S, qk_scale,
                            stride_os, HEAD_DIM: gl.constexpr, BLOCK_M: gl.constexpr,
                            BLOCK_N: gl.constexpr, STAGES: gl.constexpr,
                            CAUSAL: gl.constexpr, HEAVY_FIRST: gl.constexpr):
    """One [BLOCK_M, HEAD_DIM] block of the output per program; 1-D grid of
    cdiv(S, BLOCK_M) * B * H programs of BLOCK_M // 16 warps.

    q_desc, k_desc, v_desc: descriptors of the contiguous q, k, v viewed as [B*H*S, HEAD_DIM]
    (blocks [BLOCK_M, HEAD_DIM] for q, [BLOCK_N, HEAD_DIM] for k and v). o_ptr: the contiguous
    output [B, H, S, HEAD_DIM]; stride_os its row stride (HEAD_DIM). S: sequence length;
    qk_scale: log2(e) / sqrt(HEAD_DIM). BLOCK_M: 64 or 128 (one or two warpgroups).
    """
    NUM_WARPS: gl.constexpr = BLOCK_M // 16
    s_layout: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0],
                                                       warps_per_cta=[NUM_WARPS, 1],
                                                       instr_shape=[16, BLOCK_N, 16])
    o_layout: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0],
                                                       warps_per_cta=[NUM_WARPS, 1],
                                                       instr_shape=[16, HEAD_DIM, 16])
    p_layout: gl.constexpr = gl.DotOperandLayout(operand_index=0, parent=o_layout, k_width=2)
    dtype: gl.constexpr = q_desc.dtype

    row0, bh, n_blocks, mask_block = _wgmma_tile(gl.program_id(0), gl.cdiv(S, BLOCK_M), S,
                                                 BLOCK_M, BLOCK_N, CAUSAL, HEAVY_FIRST)
    kv_row = bh * S

    q_smem = gl.allocate_shared_memory(dtype, [BLOCK_M, HEAD_DIM], q_desc.layout)
    k_smem = gl.allocate_shared_memory(dtype, [STAGES, BLOCK_N, HEAD_DIM], k_desc.layout)
    v_smem = gl.allocate_shared_memory(dtype, [STAGES, BLOCK_N, HEAD_DIM], v_desc.layout)
    q_ready = gl.allocate_shared_memory(gl.int64, [1], mbarrier.MBarrierLayout())
    k_ready = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    v_ready = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    mbarrier.init(q_ready, count=1)
    for i in gl.static_range(STAGES):
        mbarrier.init(k_ready.index(i), count=1)
        mbarrier.init(v_ready.index(i), count=1)

    mbarrier.expect(q_ready, q_desc.block_type.nbytes)
    tma.async_copy_global_to_shared(q_desc, [kv_row + row0, 0], q_ready, q_smem)
    for i in gl.static_range(STAGES):
        if i < n_blocks:
            _wgmma_load_kv(k_desc, v_desc, k_smem, v_smem, k_ready, v_ready,
                           kv_row + i * BLOCK_N, i)

    rows = row0 + gl.arange(0, BLOCK_M, layout=gl.SliceLayout(1, s_layout))
    m_i = gl.full([BLOCK_M], float("-inf"), gl.float32, layout=gl.SliceLayout(1, s_layout))
    l_i = gl.full([BLOCK_M], 0.0, gl.float32, layout=gl.SliceLayout(1, s_layout))
    s_zero = gl.zeros([BLOCK_M, BLOCK_N], gl.float32, layout=s_layout)
    acc = gl.zeros([BLOCK_M, HEAD_DIM], gl.float32, layout=o_layout)

    # Block 0: its scores alone, nothing to overlap yet.
    mbarrier.wait(q_ready, 0)
    mbarrier.wait(k_ready.index(0), 0)
    s = warpgroup_mma(q_smem, k_smem.index(0).permute((1, 0)), s_zero, use_acc=False)
    p, alpha, l_i, m_i = _wgmma_softmax(s, m_i, l_i, 0, mask_block, rows, S, qk_scale,
                                        BLOCK_N, CAUSAL, s_layout)
    p_op = gl.convert_layout(p.to(dtype), p_layout)

    for j in range(1, n_blocks):
        stage = j % STAGES
        prev = (j - 1) % STAGES
        mbarrier.wait(k_ready.index(stage), (j // STAGES) & 1)
        s_tok = warpgroup_mma(q_smem, k_smem.index(stage).permute((1, 0)), s_zero,
                              use_acc=False, is_async=True)
        mbarrier.wait(v_ready.index(prev), ((j - 1) // STAGES) & 1)
        acc_tok = warpgroup_mma(p_op, v_smem.index(prev), acc, is_async=True)
        s = warpgroup_mma_wait(num_outstanding=1, deps=[s_tok])
        # The softmax of block j runs while P V of block j - 1 is on the tensor cores.
        p, alpha, l_i, m_i = _wgmma_softmax(s, m_i, l_i, j, mask_block, rows, S, qk_scale,
                                            BLOCK_N, CAUSAL, s_layout)
        acc = warpgroup_mma_wait(num_outstanding=0, deps=[acc_tok])
        # Every warp is past its wgmma reading stage `prev`: refill it.
        gl.thread_barrier()
        if j - 1 + STAGES < n_blocks:
            _wgmma_load_kv(k_desc, v_desc, k_smem, v_smem, k_ready, v_ready,
                           kv_row + (j - 1 + STAGES) * BLOCK_N, prev)
        acc = acc * gl.convert_layout(alpha, gl.SliceLayout(1, o_layout))[:, None]
        p_op = gl.convert_layout(p.to(dtype), p_layout)

    last = (n_blocks - 1) % STAGES
    mbarrier.wait(v_ready.index(last), ((n_blocks - 1) // STAGES) & 1)
    acc = warpgroup_mma(p_op, v_smem.index(last), acc)

    mbarrier.invalidate(q_ready)
    for i in gl.static_range(STAGES):
        mbarrier.invalidate(k_ready.index(i))
        mbarrier.invalidate(v_ready.index(i))

    acc = acc / gl.convert_layout(l_i, gl.SliceLayout(1, o_layout))[:, None]
    out_rows = row0 + gl.arange(0, BLOCK_M, layout=gl.SliceLayout(1, o_layout))
    cols = gl.arange(0, HEAD_DIM, layout=gl.SliceLayout(0, o_layout))
    ptrs = (o_ptr + (kv_row + out_rows).to(gl.int64)[:, None] * stride_os + cols[None, :])
    gl.store(ptrs, acc.to(dtype), mask=(out_rows < S)[:, None])


# ---- warp-specialized and persistent: a loader warp, one partition per 64 query rows -------
@gluon.jit
def _ws_loader(q_desc, k_desc, v_desc, q_smem, k_smem, v_smem, q_ready, q_free, k_ready,
               v_ready, kv_free, S, num_m, num_tiles, BLOCK_N: gl.constexpr,
               STAGES: gl.constexpr, CAUSAL: gl.constexpr, HEAVY_FIRST: gl.constexpr,
               SNAKE: gl.constexpr):
    """The loader warp. Per tile: both halves of Q once both consumers have released the last
    tile's (``q_free``), then its K and V blocks into the ring; a stage is refilled once both
    consumers have released its previous block (``kv_free``). ``count`` numbers the blocks over
    all of this program's tiles, so stage and phase run on across tiles."""
    count = 0
    it = 0
    for t in range(gl.program_id(0), num_tiles, gl.num_programs(0)):
        row0, bh, n_blocks, mask_block = _wgmma_tile(_persistent_tile(t, num_tiles, SNAKE),
                                                  num_m, S, 128, BLOCK_N, CAUSAL, HEAVY_FIRST)
        kv_row = bh * S
        mbarrier.wait(q_free, (it & 1) ^ 1, pred=it > 0)
        mbarrier.expect(q_ready, 2 * q_desc.block_type.nbytes)
        tma.async_copy_global_to_shared(q_desc, [kv_row + row0, 0], q_ready, q_smem.index(0))
        tma.async_copy_global_to_shared(q_desc, [kv_row + row0 + 64, 0], q_ready,
                                        q_smem.index(1))
        for j in range(n_blocks):
            stage = count % STAGES
            mbarrier.wait(kv_free.index(stage), ((count // STAGES) & 1) ^ 1,
                          pred=count >= STAGES)
            _wgmma_load_kv(k_desc, v_desc, k_smem, v_smem, k_ready, v_ready,
                           kv_row + j * BLOCK_N, stage)
            count += 1
        it += 1


@gluon.jit
def _ws_take_turn(turn, issued, HALF: gl.constexpr, PINGPONG: gl.constexpr):
    """Wait for this consumer's turn to issue wgmmas (PINGPONG); returns the turns taken."""
    if PINGPONG:
        mbarrier.wait(turn.index(HALF), issued & 1)
    return issued + 1


@gluon.jit
def _ws_pass_turn(turn, HALF: gl.constexpr, PINGPONG: gl.constexpr):
    """Hand the turn to the other consumer once this one's wgmmas are issued (PINGPONG)."""
    if PINGPONG:
        mbarrier.arrive(turn.index(1 - HALF), count=1)


@gluon.jit
def _ws_consumer(q_smem, k_smem, v_smem, q_ready, q_free, k_ready, v_ready, kv_free, turn,
                 o_ptr, stride_os, S, num_m, num_tiles, qk_scale, HALF: gl.constexpr,
                 HEAD_DIM: gl.constexpr, BLOCK_N: gl.constexpr, STAGES: gl.constexpr,
                 CAUSAL: gl.constexpr, HEAVY_FIRST: gl.constexpr, PINGPONG: gl.constexpr,
                 SNAKE: gl.constexpr):
    """One warpgroup's 64 query rows (half ``HALF`` of each tile): the pipelined loop of the
    unspecialized kernel, releasing Q and each K/V stage by an arrival instead of a CTA-wide
    barrier. Both consumers walk every key block of the tile (the loader counts on two
    releases per block); a block wholly above one half's diagonal adds exactly nothing.

    PINGPONG: the two consumers take turns to issue their wgmmas (``turn``: one mbarrier
    each, the other consumer arrives on it after issuing), so one's softmax meets the other's
    matrix products (FlashAttention-3's schedule) rather than both softmaxes at once."""
    s_layout: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[4, 1],
                                                       instr_shape=[16, BLOCK_N, 16])
    o_layout: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[4, 1],
                                                       instr_shape=[16, HEAD_DIM, 16])
    p_layout: gl.constexpr = gl.DotOperandLayout(operand_index=0, parent=o_layout, k_width=2)
    dtype: gl.constexpr = q_smem.dtype
    q = q_smem.index(HALF)
    s_zero = gl.zeros([64, BLOCK_N], gl.float32, layout=s_layout)
    count = 0
    it = 0
    issued = 0  # wgmma issue turns taken (PINGPONG)
    if PINGPONG and HALF == 1:
        mbarrier.arrive(turn.index(0), count=1)  # the first turn is the first half's
    for t in range(gl.program_id(0), num_tiles, gl.num_programs(0)):
        row0, bh, n_blocks, mask_block = _wgmma_tile(_persistent_tile(t, num_tiles, SNAKE),
                                                  num_m, S, 128, BLOCK_N, CAUSAL, HEAVY_FIRST)
        kv_row = bh * S
        rows = row0 + HALF * 64 + gl.arange(0, 64, layout=gl.SliceLayout(1, s_layout))
        m_i = gl.full([64], float("-inf"), gl.float32, layout=gl.SliceLayout(1, s_layout))
        l_i = gl.full([64], 0.0, gl.float32, layout=gl.SliceLayout(1, s_layout))
        acc = gl.zeros([64, HEAD_DIM], gl.float32, layout=o_layout)

        mbarrier.wait(q_ready, it & 1)
        stage = count % STAGES
        mbarrier.wait(k_ready.index(stage), (count // STAGES) & 1)
        issued = _ws_take_turn(turn, issued, HALF, PINGPONG)
        s_tok = warpgroup_mma(q, k_smem.index(stage).permute((1, 0)), s_zero, use_acc=False,
                              is_async=True)
        _ws_pass_turn(turn, HALF, PINGPONG)
        s = warpgroup_mma_wait(num_outstanding=0, deps=[s_tok])
        p, alpha, l_i, m_i = _wgmma_softmax(s, m_i, l_i, 0, mask_block, rows, S, qk_scale,
                                            BLOCK_N, CAUSAL, s_layout)
        p_op = gl.convert_layout(p.to(dtype), p_layout)
        for j in range(1, n_blocks):
            prev = stage
            prev_phase = ((count + j - 1) // STAGES) & 1
            stage = (count + j) % STAGES
            mbarrier.wait(k_ready.index(stage), ((count + j) // STAGES) & 1)
            mbarrier.wait(v_ready.index(prev), prev_phase)
            issued = _ws_take_turn(turn, issued, HALF, PINGPONG)
            s_tok = warpgroup_mma(q, k_smem.index(stage).permute((1, 0)), s_zero,
                                  use_acc=False, is_async=True)
            acc_tok = warpgroup_mma(p_op, v_smem.index(prev), acc, is_async=True)
            _ws_pass_turn(turn, HALF, PINGPONG)
            s = warpgroup_mma_wait(num_outstanding=1, deps=[s_tok])
            # This block's softmax runs while the previous block's P V is on the tensor cores.
            p, alpha, l_i, m_i = _wgmma_softmax(s, m_i, l_i, j, mask_block, rows, S, qk_scale,
                                                BLOCK_N, CAUSAL, s_layout)
            acc = warpgroup_mma_wait(num_outstanding=0, deps=[acc_tok])
            mbarrier.arrive(kv_free.index(prev), count=1)
            acc = acc * gl.convert_layout(alpha, gl.SliceLayout(1, o_layout))[:, None]
            p_op = gl.convert_layout(p.to(dtype), p_layout)
        # Every Q K^T of the tile has retired: the loader may bring the next tile's Q.
        mbarrier.arrive(q_free, count=1)
        mbarrier.wait(v_ready.index(stage), ((count + n_blocks - 1) // STAGES) & 1)
        issued = _ws_take_turn(turn, issued, HALF, PINGPONG)
        acc_tok = warpgroup_mma(p_op, v_smem.index(stage), acc, is_async=True)
        _ws_pass_turn(turn, HALF, PINGPONG)
        acc = warpgroup_mma_wait(num_outstanding=0, deps=[acc_tok])
        mbarrier.arrive(kv_free.index(stage), count=1)

        acc = acc / gl.convert_layout(l_i, gl.SliceLayout(1, o_layout))[:, None]
        out_rows = row0 + HALF * 64 + gl.arange(0, 64, layout=gl.SliceLayout(1, o_layout))
        cols = gl.arange(0, HEAD_DIM, layout=gl.SliceLayout(0, o_layout))
        ptrs = (o_ptr + (kv_row + out_rows).to(gl.int64)[:, None] * stride_os + cols[None, :])
        gl.store(ptrs, acc.to(dtype), mask=(out_rows < S)[:, None])
        count += n_blocks
        it += 1


@gluon.jit
def _attention_wgmma_ws_kernel(q_desc, k_desc, v_desc, o_ptr, S, qk_scale, stride_os,
                               num_tiles, HEAD_DIM: gl.constexpr, BLOCK_N: gl.constexpr,
                               STAGES: gl.constexpr, CAUSAL: gl.constexpr,
                               HEAVY_FIRST: gl.constexpr, PINGPONG: gl.constexpr,
                               SNAKE: gl.constexpr, CONSUMER_REGS: gl.constexpr):
    """As :func:`_attention_wgmma_kernel` at BLOCK_M = 128, warp-specialized, and persistent
    when launched with fewer programs than ``num_tiles`` (each takes tiles pid, pid + grid,
    ...). The kernel's 4 warps (the default partition) take query rows 0-63 of each tile, a
    4-warp worker rows 64-127, and a 1-warp worker issues the TMA copies, running ahead into
    the next tile while the consumers finish one. The consumers share the K/V ring and run
    decoupled, so one's softmax can overlap the other's wgmma (FlashAttention-3's ping-pong,
    here left to the warp schedulers rather than enforced). q_desc: blocks of [64, HEAD_DIM]."""
    dtype: gl.constexpr = q_desc.dtype
    num_m = gl.cdiv(S, 128)
    q_smem = gl.allocate_shared_memory(dtype, [2, 64, HEAD_DIM], q_desc.layout)
    k_smem = gl.allocate_shared_memory(dtype, [STAGES, BLOCK_N, HEAD_DIM], k_desc.layout)
    v_smem = gl.allocate_shared_memory(dtype, [STAGES, BLOCK_N, HEAD_DIM], v_desc.layout)
    q_ready = gl.allocate_shared_memory(gl.int64, [1], mbarrier.MBarrierLayout())
    q_free = gl.allocate_shared_memory(gl.int64, [1], mbarrier.MBarrierLayout())
    k_ready = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    v_ready = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    kv_free = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    turn = gl.allocate_shared_memory(gl.int64, [2, 1], mbarrier.MBarrierLayout())
    mbarrier.init(q_ready, count=1)
    mbarrier.init(q_free, count=2)
    mbarrier.init(turn.index(0), count=1)
    mbarrier.init(turn.index(1), count=1)
    for i in gl.static_range(STAGES):
        mbarrier.init(k_ready.index(i), count=1)
        mbarrier.init(v_ready.index(i), count=1)
        mbarrier.init(kv_free.index(i), count=2)

    gl.warp_specialize([
        (_ws_consumer, (q_smem, k_smem, v_smem, q_ready, q_free, k_ready, v_ready, kv_free,
                        turn, o_ptr, stride_os, S, num_m, num_tiles, qk_scale, 0, HEAD_DIM,
                        BLOCK_N, STAGES, CAUSAL, HEAVY_FIRST, PINGPONG, SNAKE)),
        (_ws_consumer, (q_smem, k_smem, v_smem, q_ready, q_free, k_ready, v_ready, kv_free,
                        turn, o_ptr, stride_os, S, num_m, num_tiles, qk_scale, 1, HEAD_DIM,
                        BLOCK_N, STAGES, CAUSAL, HEAVY_FIRST, PINGPONG, SNAKE)),
        (_ws_loader, (q_desc, k_desc, v_desc, q_smem, k_smem, v_smem, q_ready, q_free,
                      k_ready, v_ready, kv_free, S, num_m, num_tiles, BLOCK_N, STAGES, CAUSAL,
                      HEAVY_FIRST, SNAKE)),
    ], [4, 1], [CONSUMER_REGS, 24])


_GL_DTYPES = {torch.float16: gl.float16, torch.bfloat16: gl.bfloat16}


def persistent_programs(num_tiles: int, num_m: int, sms: int, causal: bool,
                        snake: bool = False) -> int:
    """Programs of the persistent kernel: one per SM (at most one per tile). Program p takes
    tiles p, p + grid, ...; causally, with a grid of 132 and 32 query blocks per head, p would
    only ever see query blocks of one residue mod 4, whose causal costs differ by 20% (136 vs
    120 blocks per 8 tiles; measured 435 TFLOP/s against 474 unpersistent). Two cures: make the
    grid coprime with the query blocks per head (131: each program cycles through all of them;
    a simulated makespan 1.02x the mean, 1.12x at 132), or with ``snake`` keep every SM and
    take every other round in reverse (:func:`_persistent_tile`: 1.007x the mean at 132)."""
    grid = max(1, min(num_tiles, sms))
    if causal and not snake:
        while grid > 1 and math.gcd(grid, num_m) != 1:
            grid -= 1
    return grid


def launch_flash_wgmma(q, k, v, is_causal, *, out, BLOCK_M, BLOCK_N, STAGES, HEAVY_FIRST,
                       WARP_SPECIALIZE=False, PERSISTENT=False, PINGPONG=False, SNAKE=False):
    """Launch :func:`_attention_wgmma_kernel` (num_warps = BLOCK_M // 16), or with
    WARP_SPECIALIZE (BLOCK_M 128 only) :func:`_attention_wgmma_ws_kernel`."""
    from triton.experimental.gluon.nvidia.hopper import TensorDescriptor

    B, H, S, D, causal = check_attention_operands(q, k, v, is_causal, out)
    if os.environ.get("TRITON_INTERPRET") == "1" or q.device.type != "cuda":
        raise ValueError("flash_wgmma is Gluon code for sm_90 GPUs; Triton's CPU interpreter "
                         "cannot run it")
    if torch.cuda.get_device_capability(q.device) != (9, 0):
        raise ValueError("flash_wgmma needs an sm_90 GPU (Hopper: wgmma, TMA, setmaxnreg)")
    if BLOCK_M not in (64, 128) or BLOCK_N not in (32, 64, 128, 256):
        raise ValueError(f"flash_wgmma: BLOCK_M {BLOCK_M} must be 64 or 128 and BLOCK_N "
                         f"{BLOCK_N} one of 32, 64, 128, 256")
    if WARP_SPECIALIZE and BLOCK_M != 128:
        raise ValueError("flash_wgmma: WARP_SPECIALIZE needs BLOCK_M 128 (two warpgroups)")
    if (PERSISTENT or PINGPONG) and not WARP_SPECIALIZE:
        raise ValueError("flash_wgmma: PERSISTENT and PINGPONG need WARP_SPECIALIZE")
    if SNAKE and not PERSISTENT:
        raise ValueError("flash_wgmma: SNAKE orders the tiles of persistent programs; it "
                         "needs PERSISTENT")
    if not all(t.is_contiguous() for t in (q, k, v, out)):
        raise ValueError("flash_wgmma: q, k, v and out must be contiguous (descriptors view "
                         "them as [B*H*S, D])")
    rows = B * H * S
    gdt = _GL_DTYPES[q.dtype]

    def desc(t, block_rows):
        layout = gl.NVMMASharedLayout.get_default_for([block_rows, D], gdt)
        return TensorDescriptor.from_tensor(t.view(rows, D), [block_rows, D], layout)

    num_tiles = ((S + BLOCK_M - 1) // BLOCK_M) * B * H
    grid = (num_tiles,)
    if WARP_SPECIALIZE:
        if PERSISTENT:
            sms = torch.cuda.get_device_properties(q.device).multi_processor_count
            grid = (persistent_programs(num_tiles, (S + BLOCK_M - 1) // BLOCK_M, sms, causal,
                                        SNAKE),)
        _attention_wgmma_ws_kernel[grid](
            desc(q, 64), desc(k, BLOCK_N), desc(v, BLOCK_N), out, S, LOG2E / math.sqrt(D),
            out.stride(2), num_tiles, HEAD_DIM=D, BLOCK_N=BLOCK_N, STAGES=STAGES,
            CAUSAL=causal, HEAVY_FIRST=HEAVY_FIRST, PINGPONG=PINGPONG, SNAKE=SNAKE,
            CONSUMER_REGS=WS_CONSUMER_REGS,
            num_warps=4)
        return
    _attention_wgmma_kernel[grid](
        desc(q, BLOCK_M), desc(k, BLOCK_N), desc(v, BLOCK_N), out, S, LOG2E / math.sqrt(D),
        out.stride(2), HEAD_DIM=D, BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N, STAGES=STAGES,
        CAUSAL=causal, HEAVY_FIRST=HEAVY_FIRST, num_warps=BLOCK_M // 16)


def compile_for_sm90(config: dict, causal: bool, head_dim: int = 128,
                     dtype: torch.dtype = torch.float16):
    """Compile the kernel a ``flash_wgmma`` config launches for sm_90, without a GPU (Triton's
    compiler only; nothing runs). Returns Triton's compiled kernel (``.asm["ptx"]``,
    ``.metadata.shared``): the CPU tests check every seed builds and fits this way."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.experimental.gluon._runtime import GluonASTSource
    from triton.experimental.gluon.nvidia.hopper import TensorDescriptor
    from triton.runtime.jit import mangle_type

    gdt = _GL_DTYPES[dtype]
    host = torch.zeros(256, head_dim, dtype=dtype)  # only its type and alignment are read

    def desc(rows):
        layout = gl.NVMMASharedLayout.get_default_for([rows, head_dim], gdt)
        return mangle_type(TensorDescriptor.from_tensor(host, [rows, head_dim], layout))

    bm, bn = config["BLOCK_M"], config["BLOCK_N"]
    common = {"k_desc": desc(bn), "v_desc": desc(bn), "o_ptr": mangle_type(host), "S": "i32",
              "qk_scale": "fp32", "stride_os": "i32"}
    const = {"HEAD_DIM": head_dim, "BLOCK_N": bn, "STAGES": config["STAGES"],
             "CAUSAL": causal, "HEAVY_FIRST": config["HEAVY_FIRST"]}
    if config.get("WARP_SPECIALIZE"):
        fn, warps = _attention_wgmma_ws_kernel, 4
        sig = {"q_desc": desc(64), **common, "num_tiles": "i32"}
        const.update(PINGPONG=bool(config.get("PINGPONG")), SNAKE=bool(config.get("SNAKE")),
                     CONSUMER_REGS=WS_CONSUMER_REGS)
    else:
        fn, warps = _attention_wgmma_kernel, bm // 16
        sig = {"q_desc": desc(bm), **common}
        const.update(BLOCK_M=bm)
    sig.update({name: "constexpr" for name in const})
    return triton.compile(GluonASTSource(fn, sig, const), target=GPUTarget("cuda", 90, 32),
                          options={"num_warps": warps})
