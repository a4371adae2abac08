"""Matrix product ``C = A @ B`` with ``A`` [M, K], ``B`` [K, N], ``C`` [M, N], accumulated in fp32.

Structures:
    tiled       one output tile per program, in grouped (L2-friendly) order, looping over K.
    splitk      each program reduces one slice of K for one output tile into an fp32 workspace
                [SPLIT_K, M, N]; a second kernel sums the slices in a fixed order (deterministic).
                For small M*N and large K, where output tiles alone leave SMs idle.
    persistent  one program per SM (at most one per tile); each walks the tiles pid, pid + grid,
                ... in grouped order, so launch overhead and tail waves are paid once.
    descriptor  tiles moved by tensor descriptors (the TMA copy engine on Hopper), which handle
                the edges themselves; one program per tile, or persistent (PERSISTENT), with the
                tile and K loops optionally flattened into one pipelined loop (FLATTEN).
    streamk     persistent descriptor tiles, with the last partial wave shared out by K blocks
                (stream-K): with 512 tiles on 132 SMs, 116 tiles would otherwise run on 116
                SMs while 16 wait; here every SM takes 56 or 57 of their 7424 K blocks and the
                pieces of a tile meet through an fp32 workspace.
    wgmma_ws    sm_90 only, in Gluon (``matmul_gluon.py``): persistent and warp-specialized, a
                loader warp feeding a TMA ring and two consumer warpgroups whose epilogue (TMA
                store) overlaps the next tile's loads.

Precision: ``INPUT_PRECISION`` ("ieee", "tf32x3" or "tf32") applies to fp32 inputs only; fp16 and
bf16 products are exact on the tensor cores, and the kernels call plain ``tl.dot`` for them.

Indexing: rows of A and columns of B are wrapped with ``% M`` / ``% N`` so that the loads of an
edge tile stay in bounds without a mask (the wrapped rows and columns are computed and then
dropped by the masked store); K is masked only when it is not a multiple of BLOCK_K (EVEN_K).
Element offsets are formed in int64, since ``row * stride`` passes 2**31 on large operands.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from eggsearch.ops.base import OpSpec, Problem, torch_dtype
from eggsearch.ops.matmul_gluon import launch_wgmma_ws
from eggsearch.ops.operands import check_matmul_operands

# Programs of the persistent kernel when there is no GPU to ask (the CPU interpreter).
CPU_NUM_PROGRAMS = 4
# Tile of the split-K reduction kernel: memory-bound, so any tile that keeps loads wide will do.
REDUCE_BLOCK_M = 32
REDUCE_BLOCK_N = 64
REDUCE_NUM_WARPS = 4


# ---- shared device helpers ----------------------------------------------------------------
@triton.jit
def _matmul_grouped_tile(tile_id, num_pid_m, num_pid_n, GROUP_M: tl.constexpr):
    """(pid_m, pid_n) of output tile ``tile_id`` in grouped order: GROUP_M tile rows are walked
    column by column, so programs running together share rows of A and columns of B in L2."""
    num_pid_in_group = GROUP_M * num_pid_n
    group_id = tile_id // num_pid_in_group
    first_pid_m = group_id * GROUP_M
    group_size_m = min(num_pid_m - first_pid_m, GROUP_M)
    pid_m = first_pid_m + (tile_id % num_pid_in_group) % group_size_m
    pid_n = (tile_id % num_pid_in_group) // group_size_m
    return pid_m, pid_n


@triton.jit
def _matmul_dot(a, b, acc, INPUT_PRECISION: tl.constexpr):
    """acc += a @ b. The branch is resolved at compile time: 16-bit operands never see
    ``input_precision`` (the GPU backend need not accept it for them)."""
    if a.dtype == tl.float32:
        acc = tl.dot(a, b, acc, input_precision=INPUT_PRECISION)
    else:
        acc = tl.dot(a, b, acc)
    return acc


@triton.jit
def _matmul_tile_acc(a_ptr, b_ptr, M, N, pid_m, pid_n, k_start, k_len,
                     stride_am, stride_ak, stride_bk, stride_bn,
                     BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
                     EVEN_K: tl.constexpr, INPUT_PRECISION: tl.constexpr):
    """fp32 [BLOCK_M, BLOCK_N] tile (pid_m, pid_n) of A[:, k_start:k_start+k_len] @ B[same, :].

    EVEN_K promises k_len % BLOCK_K == 0, which drops the K mask from every load.
    """
    offs_m = ((pid_m * BLOCK_M + tl.arange(0, BLOCK_M)) % M).to(tl.int64)
    offs_n = ((pid_n * BLOCK_N + tl.arange(0, BLOCK_N)) % N).to(tl.int64)
    offs_k = tl.arange(0, BLOCK_K)
    rk = (k_start + offs_k).to(tl.int64)
    a_ptrs = a_ptr + offs_m[:, None] * stride_am + rk[None, :] * stride_ak
    b_ptrs = b_ptr + rk[:, None] * stride_bk + offs_n[None, :] * stride_bn
    step_a = tl.cast(stride_ak, tl.int64) * BLOCK_K
    step_b = tl.cast(stride_bk, tl.int64) * BLOCK_K
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k in range(0, tl.cdiv(k_len, BLOCK_K)):
        if EVEN_K:
            a = tl.load(a_ptrs)
            b = tl.load(b_ptrs)
        else:
            k_left = k_len - k * BLOCK_K
            a = tl.load(a_ptrs, mask=offs_k[None, :] < k_left, other=0.0)
            b = tl.load(b_ptrs, mask=offs_k[:, None] < k_left, other=0.0)
        acc = _matmul_dot(a, b, acc, INPUT_PRECISION)
        a_ptrs += step_a
        b_ptrs += step_b
    return acc


@triton.jit
def _matmul_store_tile(c_ptr, acc, M, N, pid_m, pid_n, stride_cm, stride_cn,
                       BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    """Store the fp32 tile ``acc`` as C's dtype at tile (pid_m, pid_n), masked to [M, N]."""
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    c_ptrs = (c_ptr + offs_m.to(tl.int64)[:, None] * stride_cm
              + offs_n.to(tl.int64)[None, :] * stride_cn)
    mask = (offs_m[:, None] < M) & (offs_n[None, :] < N)
    tl.store(c_ptrs, acc.to(c_ptr.dtype.element_ty), mask=mask)


# ---- tiled -----------------------------------------------------------------------------------
@triton.jit
def _matmul_tiled_kernel(a_ptr, b_ptr, c_ptr, M, N, K,
                         stride_am, stride_ak, stride_bk, stride_bn, stride_cm, stride_cn,
                         BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
                         GROUP_M: tl.constexpr, EVEN_K: tl.constexpr,
                         INPUT_PRECISION: tl.constexpr):
    """One [BLOCK_M, BLOCK_N] tile of ``c`` per program; 1-D grid of cdiv(M, BLOCK_M) *
    cdiv(N, BLOCK_N) programs, mapped to tiles in grouped order.

    a_ptr: A [M, K]; b_ptr: B [K, N]; c_ptr: C [M, N] (fp16, bf16 or fp32, as A and B).
    stride_<tensor><dim>: element strides of each (any layout). BLOCK_M/N/K: tile sizes (powers
    of two, >= 16 for tl.dot). GROUP_M: tile rows per group of the program order. EVEN_K:
    K % BLOCK_K == 0 (no K mask). INPUT_PRECISION: tl.dot precision for fp32 inputs ("ieee",
    "tf32x3", "tf32"); ignored for 16-bit inputs.
    """
    num_pid_m = tl.cdiv(M, BLOCK_M)
    num_pid_n = tl.cdiv(N, BLOCK_N)
    pid_m, pid_n = _matmul_grouped_tile(tl.program_id(0), num_pid_m, num_pid_n, GROUP_M)
    acc = _matmul_tile_acc(a_ptr, b_ptr, M, N, pid_m, pid_n, 0, K,
                           stride_am, stride_ak, stride_bk, stride_bn,
                           BLOCK_M, BLOCK_N, BLOCK_K, EVEN_K, INPUT_PRECISION)
    _matmul_store_tile(c_ptr, acc, M, N, pid_m, pid_n, stride_cm, stride_cn, BLOCK_M, BLOCK_N)


# ---- splitk ----------------------------------------------------------------------------------
@triton.jit
def _matmul_splitk_kernel(a_ptr, b_ptr, ws_ptr, M, N, K, k_per_split,
                          stride_am, stride_ak, stride_bk, stride_bn,
                          stride_ws_s, stride_ws_m, stride_ws_n,
                          BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
                          GROUP_M: tl.constexpr, EVEN_K: tl.constexpr,
                          INPUT_PRECISION: tl.constexpr):
    """Partial products: program (t, s) of a 2-D grid (tiles, splits) writes tile t (grouped
    order) of A[:, s*k_per_split : (s+1)*k_per_split] @ B[same, :] into ``ws[s]``.

    a_ptr: A [M, K]; b_ptr: B [K, N]; ws_ptr: fp32 workspace [splits, M, N].
    k_per_split: K elements per split, a multiple of BLOCK_K; only the last split may be shorter
    (ragged). stride_<tensor><dim>: element strides. BLOCK_M/N/K, GROUP_M, EVEN_K,
    INPUT_PRECISION: as in :func:`_matmul_tiled_kernel` (EVEN_K: K % BLOCK_K == 0, which with
    k_per_split % BLOCK_K == 0 makes every split's length a multiple of BLOCK_K).
    """
    num_pid_m = tl.cdiv(M, BLOCK_M)
    num_pid_n = tl.cdiv(N, BLOCK_N)
    pid_m, pid_n = _matmul_grouped_tile(tl.program_id(0), num_pid_m, num_pid_n, GROUP_M)
    split = tl.program_id(1)
    k_start = split * k_per_split
    k_len = min(K - k_start, k_per_split)
    acc = _matmul_tile_acc(a_ptr, b_ptr, M, N, pid_m, pid_n, k_start, k_len,
                           stride_am, stride_ak, stride_bk, stride_bn,
                           BLOCK_M, BLOCK_N, BLOCK_K, EVEN_K, INPUT_PRECISION)
    ws_split_ptr = ws_ptr + split.to(tl.int64) * stride_ws_s
    _matmul_store_tile(ws_split_ptr, acc, M, N, pid_m, pid_n, stride_ws_m, stride_ws_n,
                       BLOCK_M, BLOCK_N)


@triton.jit
def _matmul_splitk_reduce_kernel(ws_ptr, c_ptr, M, N, splits,
                                 stride_ws_s, stride_ws_m, stride_ws_n, stride_cm, stride_cn,
                                 BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    """C = sum over s of ws[s], summed in order s = 0, 1, ... (deterministic), cast to C's dtype.

    ws_ptr: fp32 workspace [splits, M, N]; c_ptr: C [M, N]. 2-D grid of
    (cdiv(M, BLOCK_M), cdiv(N, BLOCK_N)) programs, one [BLOCK_M, BLOCK_N] tile each.
    """
    offs_m = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    mask = (offs_m[:, None] < M) & (offs_n[None, :] < N)
    ws_ptrs = (ws_ptr + offs_m.to(tl.int64)[:, None] * stride_ws_m
               + offs_n.to(tl.int64)[None, :] * stride_ws_n)
    step = tl.cast(stride_ws_s, tl.int64)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for _ in range(0, splits):
        acc += tl.load(ws_ptrs, mask=mask, other=0.0)
        ws_ptrs += step
    c_ptrs = (c_ptr + offs_m.to(tl.int64)[:, None] * stride_cm
              + offs_n.to(tl.int64)[None, :] * stride_cn)
    tl.store(c_ptrs, acc.to(c_ptr.dtype.element_ty), mask=mask)


# ---- persistent ------------------------------------------------------------------------------
@triton.jit
def _matmul_persistent_kernel(a_ptr, b_ptr, c_ptr, M, N, K,
                              stride_am, stride_ak, stride_bk, stride_bn, stride_cm, stride_cn,
                              BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                              BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr,
                              EVEN_K: tl.constexpr, INPUT_PRECISION: tl.constexpr):
    """A 1-D grid of G <= number of tiles programs; program p computes tiles p, p + G, p + 2G,
    ... of ``c`` (grouped order), so the programs live in a wave walk neighbouring tiles.

    Pointers, strides and constexprs as in :func:`_matmul_tiled_kernel`.
    """
    num_pid_m = tl.cdiv(M, BLOCK_M)
    num_pid_n = tl.cdiv(N, BLOCK_N)
    num_tiles = num_pid_m * num_pid_n
    for tile_id in range(tl.program_id(0), num_tiles, tl.num_programs(0)):
        pid_m, pid_n = _matmul_grouped_tile(tile_id, num_pid_m, num_pid_n, GROUP_M)
        acc = _matmul_tile_acc(a_ptr, b_ptr, M, N, pid_m, pid_n, 0, K,
                               stride_am, stride_ak, stride_bk, stride_bn,
                               BLOCK_M, BLOCK_N, BLOCK_K, EVEN_K, INPUT_PRECISION)
        _matmul_store_tile(c_ptr, acc, M, N, pid_m, pid_n, stride_cm, stride_cn,
                           BLOCK_M, BLOCK_N)


# ---- descriptor ------------------------------------------------------------------------------
@triton.jit
def _matmul_descriptor_acc(a_desc, b_desc, pid_m, pid_n, k_lo, k_hi,
                           BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
                           INPUT_PRECISION: tl.constexpr):
    """fp32 [BLOCK_M, BLOCK_N] tile (pid_m, pid_n) of A @ B over the K blocks k_lo .. k_hi - 1,
    loaded through the tensor descriptors (which zero-fill past the edges, so no masks)."""
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for ki in range(k_lo, k_hi):
        a = a_desc.load([pid_m * BLOCK_M, ki * BLOCK_K])
        b = b_desc.load([ki * BLOCK_K, pid_n * BLOCK_N])
        acc = _matmul_dot(a, b, acc, INPUT_PRECISION)
    return acc


@triton.jit
def _matmul_descriptor_store(c_desc, acc, pid_m, pid_n, BLOCK_M: tl.constexpr,
                             BLOCK_N: tl.constexpr, EPILOGUE_SUBTILE: tl.constexpr):
    """Store the fp32 tile ``acc`` as C's tile (pid_m, pid_n): whole, or with EPILOGUE_SUBTILE
    in two halves (c_desc's block is then [BLOCK_M, BLOCK_N // 2])."""
    if EPILOGUE_SUBTILE:
        halves = tl.permute(tl.reshape(acc, (BLOCK_M, 2, BLOCK_N // 2)), (0, 2, 1))
        left, right = tl.split(halves)
        c_desc.store([pid_m * BLOCK_M, pid_n * BLOCK_N], left.to(c_desc.dtype))
        c_desc.store([pid_m * BLOCK_M, pid_n * BLOCK_N + BLOCK_N // 2], right.to(c_desc.dtype))
    else:
        c_desc.store([pid_m * BLOCK_M, pid_n * BLOCK_N], acc.to(c_desc.dtype))


@triton.jit
def _matmul_descriptor_kernel(a_desc, b_desc, c_desc, M, N, K,
                              BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                              BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr,
                              FLATTEN: tl.constexpr, EPILOGUE_SUBTILE: tl.constexpr,
                              INPUT_PRECISION: tl.constexpr):
    """Tiles of ``c`` moved by tensor descriptors; program p computes tiles p, p + G, ... of a
    1-D grid of G programs (G = number of tiles: one each; G = number of SMs: persistent).

    a_desc: descriptor of A [M, K] with block [BLOCK_M, BLOCK_K]; b_desc: B [K, N], block
    [BLOCK_K, BLOCK_N]; c_desc: C [M, N], block [BLOCK_M, BLOCK_N], or [BLOCK_M, BLOCK_N // 2]
    with EPILOGUE_SUBTILE (the tile is stored in two halves, halving the epilogue's shared
    memory, which leaves room for one more pipeline stage). Out-of-bounds reads are zero and
    out-of-bounds writes are dropped by the descriptors, so no masks. FLATTEN: let Triton fuse
    the tile loop with the K loop (software pipelining across tiles). Other constexprs as in
    :func:`_matmul_tiled_kernel`.
    """
    num_pid_m = tl.cdiv(M, BLOCK_M)
    num_pid_n = tl.cdiv(N, BLOCK_N)
    k_tiles = tl.cdiv(K, BLOCK_K)
    for tile_id in tl.range(tl.program_id(0), num_pid_m * num_pid_n, tl.num_programs(0),
                            flatten=FLATTEN):
        pid_m, pid_n = _matmul_grouped_tile(tile_id, num_pid_m, num_pid_n, GROUP_M)
        acc = _matmul_descriptor_acc(a_desc, b_desc, pid_m, pid_n, 0, k_tiles,
                                     BLOCK_M, BLOCK_N, BLOCK_K, INPUT_PRECISION)
        _matmul_descriptor_store(c_desc, acc, pid_m, pid_n, BLOCK_M, BLOCK_N, EPILOGUE_SUBTILE)


# ---- streamk ------------------------------------------------------------------------------
@triton.jit
def _matmul_streamk_kernel(a_desc, b_desc, c_desc, ws_ptr, flags_ptr, M, N, K,
                           sk_tiles, sk_programs,
                           BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
                           GROUP_M: tl.constexpr, FLATTEN: tl.constexpr,
                           EPILOGUE_SUBTILE: tl.constexpr, INPUT_PRECISION: tl.constexpr):
    """Stream-K for the last partial wave, then whole tiles (data-parallel), on a persistent
    grid of G programs (Osama et al., "Stream-K", PPoPP 2023, its "DP + one-tile SK" hybrid).

    With T tiles, the first ``sk_tiles`` (T mod G, or all T when T < G) in grouped order would
    leave most SMs idle in a last wave. Instead their ``sk_tiles * k_tiles`` K-block iterations
    are cut into ``sk_programs`` contiguous, equal ranges (< k_tiles each, so a range touches at
    most two tiles); the other T - sk_tiles tiles are then taken whole, pid + sk_tiles,
    pid + sk_tiles + G, ... as in the descriptor kernel.

    A range's piece of a tile either reaches the tile's last K block (the piece's program owns
    the tile: it adds the others' partial sums and stores C) or not (it writes its fp32 partial
    sum to ``ws_ptr`` [G, BLOCK_M, BLOCK_N] at its program's slot and raises ``flags_ptr[pid]``;
    the owner lowers it again once read, so the flags are all zero between launches (CUDA
    graphs may replay the kernel). A program does its non-owning piece first, and an owner
    waits only for programs below it, whose non-owning pieces were their first work: no
    program waits on one that is itself waiting, and the CPU interpreter, which runs programs
    in order, never waits. The grid must be at most the number of SMs (all programs resident
    at once)."""
    pid = tl.program_id(0)
    num_programs = tl.num_programs(0)
    num_pid_m = tl.cdiv(M, BLOCK_M)
    num_pid_n = tl.cdiv(N, BLOCK_N)
    k_tiles = tl.cdiv(K, BLOCK_K)

    if pid < sk_programs:
        total = sk_tiles * k_tiles
        lo = (pid * total) // sk_programs
        hi = ((pid + 1) * total) // sk_programs
        first_tile = lo // k_tiles
        last_tile = (hi - 1) // k_tiles
        # element offsets within one program's [BLOCK_M, BLOCK_N] slot of the workspace
        in_slot = tl.arange(0, BLOCK_M)[:, None] * BLOCK_N + tl.arange(0, BLOCK_N)[None, :]
        # The non-owning piece first: the start of the next tile, or a middle of this one.
        if hi < (first_tile + 1) * k_tiles or last_tile > first_tile:
            t = last_tile
            t_lo = tl.maximum(lo, t * k_tiles)
            pid_m, pid_n = _matmul_grouped_tile(t, num_pid_m, num_pid_n, GROUP_M)
            part = _matmul_descriptor_acc(a_desc, b_desc, pid_m, pid_n, t_lo - t * k_tiles,
                                          hi - t * k_tiles, BLOCK_M, BLOCK_N, BLOCK_K,
                                          INPUT_PRECISION)
            tl.store(ws_ptr + pid.to(tl.int64) * BLOCK_M * BLOCK_N + in_slot, part)
            tl.debug_barrier()  # every thread's part is written before the flag is raised
            tl.atomic_xchg(flags_ptr + pid, 1, sem="release")
        # The owning piece: the end of first_tile (when this range reaches it).
        if hi >= (first_tile + 1) * k_tiles:
            t = first_tile
            pid_m, pid_n = _matmul_grouped_tile(t, num_pid_m, num_pid_n, GROUP_M)
            acc = _matmul_descriptor_acc(a_desc, b_desc, pid_m, pid_n, lo - t * k_tiles,
                                         k_tiles, BLOCK_M, BLOCK_N, BLOCK_K, INPUT_PRECISION)
            # Programs below whose ranges reach into this tile hold its earlier K blocks.
            q = pid - 1
            while (q >= 0) and (((q + 1) * total) // sk_programs > t * k_tiles):
                while tl.atomic_add(flags_ptr + q, 0, sem="acquire") == 0:
                    pass
                acc += tl.load(ws_ptr + q.to(tl.int64) * BLOCK_M * BLOCK_N + in_slot,
                               cache_modifier=".cg")
                tl.atomic_xchg(flags_ptr + q, 0)
                q -= 1
            _matmul_descriptor_store(c_desc, acc, pid_m, pid_n, BLOCK_M, BLOCK_N,
                                     EPILOGUE_SUBTILE)

    for tile_id in tl.range(sk_tiles + pid, num_pid_m * num_pid_n, num_programs,
                            flatten=FLATTEN):
        pid_m, pid_n = _matmul_grouped_tile(tile_id, num_pid_m, num_pid_n, GROUP_M)
        acc = _matmul_descriptor_acc(a_desc, b_desc, pid_m, pid_n, 0, k_tiles,
                                     BLOCK_M, BLOCK_N, BLOCK_K, INPUT_PRECISION)
        _matmul_descriptor_store(c_desc, acc, pid_m, pid_n, BLOCK_M, BLOCK_N, EPILOGUE_SUBTILE)


# ---- launchers -------------------------------------------------------------------------------
def _num_sms(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).multi_processor_count
    return CPU_NUM_PROGRAMS


def launch_tiled(a, b, *, out, BLOCK_M, BLOCK_N, BLOCK_K, GROUP_M, num_warps, num_stages,
                 INPUT_PRECISION):
    M, N, K = check_matmul_operands(a, b, out)
    grid = (triton.cdiv(M, BLOCK_M) * triton.cdiv(N, BLOCK_N),)
    _matmul_tiled_kernel[grid](
        a, b, out, M, N, K,
        a.stride(0), a.stride(1), b.stride(0), b.stride(1), out.stride(0), out.stride(1),
        BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N, BLOCK_K=BLOCK_K, GROUP_M=GROUP_M,
        EVEN_K=K % BLOCK_K == 0, INPUT_PRECISION=INPUT_PRECISION,
        num_warps=num_warps, num_stages=num_stages)


def launch_splitk(a, b, *, out, BLOCK_M, BLOCK_N, BLOCK_K, SPLIT_K, GROUP_M, num_warps,
                  num_stages, INPUT_PRECISION):
    M, N, K = check_matmul_operands(a, b, out)
    # Whole K blocks per split; when SPLIT_K does not divide them, the last split is short and
    # trailing splits that would be empty are not launched.
    blocks_per_split = triton.cdiv(triton.cdiv(K, BLOCK_K), SPLIT_K)
    k_per_split = blocks_per_split * BLOCK_K
    splits = triton.cdiv(K, k_per_split)
    ws = torch.empty((splits, M, N), dtype=torch.float32, device=a.device)
    grid = (triton.cdiv(M, BLOCK_M) * triton.cdiv(N, BLOCK_N), splits)
    _matmul_splitk_kernel[grid](
        a, b, ws, M, N, K, k_per_split,
        a.stride(0), a.stride(1), b.stride(0), b.stride(1),
        ws.stride(0), ws.stride(1), ws.stride(2),
        BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N, BLOCK_K=BLOCK_K, GROUP_M=GROUP_M,
        EVEN_K=K % BLOCK_K == 0, INPUT_PRECISION=INPUT_PRECISION,
        num_warps=num_warps, num_stages=num_stages)
    reduce_grid = (triton.cdiv(M, REDUCE_BLOCK_M), triton.cdiv(N, REDUCE_BLOCK_N))
    _matmul_splitk_reduce_kernel[reduce_grid](
        ws, out, M, N, splits,
        ws.stride(0), ws.stride(1), ws.stride(2), out.stride(0), out.stride(1),
        BLOCK_M=REDUCE_BLOCK_M, BLOCK_N=REDUCE_BLOCK_N, num_warps=REDUCE_NUM_WARPS)


def launch_persistent(a, b, *, out, BLOCK_M, BLOCK_N, BLOCK_K, GROUP_M, num_warps, num_stages,
                      INPUT_PRECISION):
    M, N, K = check_matmul_operands(a, b, out)
    num_tiles = triton.cdiv(M, BLOCK_M) * triton.cdiv(N, BLOCK_N)
    grid = (min(_num_sms(a.device), num_tiles),)
    _matmul_persistent_kernel[grid](
        a, b, out, M, N, K,
        a.stride(0), a.stride(1), b.stride(0), b.stride(1), out.stride(0), out.stride(1),
        BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N, BLOCK_K=BLOCK_K, GROUP_M=GROUP_M,
        EVEN_K=K % BLOCK_K == 0, INPUT_PRECISION=INPUT_PRECISION,
        num_warps=num_warps, num_stages=num_stages)


def gemm_descriptors(a, b, out, BLOCK_M, BLOCK_N, BLOCK_K, EPILOGUE_SUBTILE):
    """Host TMA descriptors of A [M, K], B [K, N] and C [M, N] for the descriptor kernels:
    blocks [BLOCK_M, BLOCK_K], [BLOCK_K, BLOCK_N] and [BLOCK_M, BLOCK_N], C's half as wide with
    EPILOGUE_SUBTILE (the tile is stored in two halves)."""
    from triton.tools.tensor_descriptor import TensorDescriptor

    c_block_n = BLOCK_N // 2 if EPILOGUE_SUBTILE else BLOCK_N
    return (TensorDescriptor.from_tensor(a, [BLOCK_M, BLOCK_K]),
            TensorDescriptor.from_tensor(b, [BLOCK_K, BLOCK_N]),
            TensorDescriptor.from_tensor(out, [BLOCK_M, c_block_n]))


def launch_descriptor(a, b, *, out, BLOCK_M, BLOCK_N, BLOCK_K, GROUP_M, PERSISTENT, FLATTEN,
                      EPILOGUE_SUBTILE, num_warps, num_stages, INPUT_PRECISION):
    M, N, K = check_matmul_operands(a, b, out)
    num_tiles = triton.cdiv(M, BLOCK_M) * triton.cdiv(N, BLOCK_N)
    grid = (min(_num_sms(a.device), num_tiles) if PERSISTENT else num_tiles,)
    _matmul_descriptor_kernel[grid](
        *gemm_descriptors(a, b, out, BLOCK_M, BLOCK_N, BLOCK_K, EPILOGUE_SUBTILE),
        M, N, K, BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N, BLOCK_K=BLOCK_K, GROUP_M=GROUP_M,
        FLATTEN=FLATTEN, EPILOGUE_SUBTILE=EPILOGUE_SUBTILE, INPUT_PRECISION=INPUT_PRECISION,
        num_warps=num_warps, num_stages=num_stages)


# Workspace of the streamk kernel: one fp32 partial tile and one flag per program, kept per
# (device, stream, tile shape, grid) so that a launch allocates nothing; the kernel leaves the
# flags at zero, and launches on one stream never overlap.
_STREAMK_WORKSPACE: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}


def streamk_split(num_tiles: int, k_tiles: int, programs: int, max_pieces: int) -> tuple[int, int]:
    """(sk_tiles, sk_programs) for the streamk kernel on ``programs`` persistent programs: the
    tiles of the last partial wave (all of them when there are fewer tiles than programs) are
    shared out by K blocks, each tile cut into at most ``max_pieces`` pieces; (0, 0) when the
    tiles fill whole waves or the pieces would be whole tiles anyway (k_tiles of 1)."""
    sk_tiles = num_tiles % programs if num_tiles > programs else num_tiles
    sk_programs = min(programs, sk_tiles * max_pieces, sk_tiles * k_tiles)
    if sk_programs <= sk_tiles:
        return 0, 0
    return sk_tiles, sk_programs


def launch_streamk(a, b, *, out, BLOCK_M, BLOCK_N, BLOCK_K, GROUP_M, SK_PIECES, FLATTEN,
                   EPILOGUE_SUBTILE, num_warps, num_stages, INPUT_PRECISION):
    M, N, K = check_matmul_operands(a, b, out)
    num_tiles = triton.cdiv(M, BLOCK_M) * triton.cdiv(N, BLOCK_N)
    programs = _num_sms(a.device)  # with fewer tiles, the idle programs take K pieces
    sk_tiles, sk_programs = streamk_split(num_tiles, triton.cdiv(K, BLOCK_K), programs,
                                          SK_PIECES)
    stream = torch.cuda.current_stream(a.device).cuda_stream if a.is_cuda else 0
    key = (a.device, stream, BLOCK_M, BLOCK_N, programs)
    if key not in _STREAMK_WORKSPACE:
        _STREAMK_WORKSPACE[key] = (
            torch.empty((programs, BLOCK_M, BLOCK_N), dtype=torch.float32, device=a.device),
            torch.zeros(programs, dtype=torch.int32, device=a.device))
    ws, flags = _STREAMK_WORKSPACE[key]
    _matmul_streamk_kernel[(programs,)](
        *gemm_descriptors(a, b, out, BLOCK_M, BLOCK_N, BLOCK_K, EPILOGUE_SUBTILE),
        ws, flags, M, N, K, sk_tiles, sk_programs,
        BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N, BLOCK_K=BLOCK_K, GROUP_M=GROUP_M,
        FLATTEN=FLATTEN, EPILOGUE_SUBTILE=EPILOGUE_SUBTILE, INPUT_PRECISION=INPUT_PRECISION,
        num_warps=num_warps, num_stages=num_stages)


class Matmul(OpSpec):
    name = "matmul"
    summary = "C = A @ B (fp16, bf16, fp32; exact fp32 unless --allow-tf32)"
    dims = ("M", "N", "K")
    tensor_cores = True
    default_shape = (4096, 4096, 4096)
    # Llama-2-7B's projections for 4096 tokens (hidden 4096, MLP 11008): M = tokens.
    named_shapes = {"square4k": (4096, 4096, 4096), "llama7b-qkv": (4096, 12288, 4096),
                    "llama7b-o": (4096, 4096, 4096), "llama7b-up": (4096, 11008, 4096),
                    "llama7b-down": (4096, 4096, 11008)}
    interpreter_shape = (67, 40, 88)  # odd M; rows 16-byte aligned for descriptors
    uses_tf32 = True
    structures = {"tiled": launch_tiled, "splitk": launch_splitk,
                  "persistent": launch_persistent, "descriptor": launch_descriptor,
                  "streamk": launch_streamk, "wgmma_ws": launch_wgmma_ws}

    def make_inputs(self, problem: Problem, seed: int, device: str):
        M, N, K = problem.shape
        g = torch.Generator(device=device).manual_seed(seed)
        dt = torch_dtype(problem.dtype)
        # Scaled so that C has unit variance: with plain randn, |C| ~ sqrt(K) and fp32's own
        # rounding near zero-valued outputs (even PyTorch's) exceeds atol=1e-4 at K=4096.
        scale = K ** -0.25
        a = (torch.randn(M, K, generator=g, device=device) * scale).to(dt)
        b = (torch.randn(K, N, generator=g, device=device) * scale).to(dt)
        return a, b

    def output_shape(self, problem: Problem):
        M, N, _ = problem.shape
        return (M, N)

    def reference(self, a, b):
        return torch.matmul(a, b)

    def flops(self, problem: Problem) -> float:
        M, N, K = problem.shape
        return 2.0 * M * N * K

    def min_bytes(self, problem: Problem) -> float:
        M, N, K = problem.shape
        return float((M * K + K * N + M * N) * problem.elem_bytes)


OP = Matmul()
