"""``wgmma_ws``: a warp-specialized, persistent matmul for Hopper (sm_90), written in Gluon.

Why a second kernel. ``descriptor`` (``matmul.py``) is Triton's software-pipelined persistent
matmul; measured on an H200 at fp16 4096^3 it runs within 1-2% of cuBLAS by kernel time but
every warp both waits for copies and issues the matrix products, and the epilogue of one tile
(convert, store) is not overlapped with the next tile's main loop by design but only where
Triton's pipeliner happens to place it. Here the roles are split as in CUTLASS's warp-specialized
"cooperative" kernels:

- a loader warp walks the program's tiles and streams A [128, BLOCK_K] (as two 64-row halves)
  and B [BLOCK_K, BLOCK_N] blocks through a ring of ``STAGES`` shared-memory stages by TMA,
  each stage with a "ready" mbarrier (TMA bytes arrived) and an "empty" one (both consumers
  done with it);
- two consumer warpgroups each own 64 rows of the 128-row tile: per K block one asynchronous
  wgmma, keeping one in flight (``warpgroup_mma_wait(1)``), releasing the stage of the block
  before. At the end of a tile each converts its fp32 accumulator, writes it to its own
  shared-memory buffer and starts a TMA store; it waits for that store only before reusing the
  buffer one tile later. Meanwhile the loader has already filled the ring for the next tile.

``SHARED_C``: the two consumers share one C buffer and take turns at it (two mbarriers hand it
over: warpgroup 0 writes and stores tile j, then warpgroup 1, then warpgroup 0 tile j + 1). The
buffer's 32 KB at BLOCK_N 256 make room for a 4th stage, and the turns stagger the consumers:
warpgroup 0 starts the next tile's products while warpgroup 1 is still in its epilogue (it can
run up to ``STAGES`` K steps ahead), and from then on one of them issues products while the
other converts and stores, as in CUTLASS's "ping-pong" schedule but on one shared tile.

Tiles are taken pid, pid + grid, ... (one program per SM) in grouped order (``GROUP_M`` rows of
tiles walked column by column, for L2 reuse), as ``descriptor``'s persistent programs.
``BALANCED_GRID`` launches the fewest programs that finish in the same number of rounds
(:func:`persistent_grid`): at 4096^3, 128 programs of 4 tiles rather than 132 of which 16 take
3. The makespan in tiles is the same, but an H200 running this kernel sits at its power cap,
and with 4 SMs idle all along rather than 16 idle at the end it holds a higher clock (measured:
1522 vs 1497 MHz back to back, 776-779 vs 769-773 TFLOP/s by kernel time). Edges: the
TMA descriptors zero-fill reads past M, N and K and drop writes past M and N, so any shape with
16-byte aligned rows works.

Gluon compiles only for a real GPU (no CPU interpreter): the structure is offered on sm_90 only
(``expert_rules/selection.yaml``); on the CPU its tests compile it for sm_90 and check the PTX
(``tests/ops/test_matmul_gluon.py``), and the GPU tests run it.
"""

from __future__ import annotations

import os

import torch
import triton
from triton.experimental import gluon
from triton.experimental.gluon import language as gl
from triton.experimental.gluon.language.nvidia.hopper import (
    fence_async_shared,
    mbarrier,
    tma,
    warpgroup_mma,
    warpgroup_mma_wait,
)

from eggsearch.ops.operands import check_matmul_operands

# Registers per thread of the consumer warpgroups (setmaxnreg); the loader keeps 24.
CONSUMER_REGS = 232
BLOCK_M = 128  # two consumer warpgroups of 64 rows


@gluon.jit
def _grouped_tile(tile_id, num_pid_m, num_pid_n, GROUP_M: gl.constexpr):
    """(pid_m, pid_n) of tile ``tile_id`` in grouped order (as matmul.py's)."""
    num_pid_in_group = GROUP_M * num_pid_n
    group_id = tile_id // num_pid_in_group
    first_pid_m = group_id * GROUP_M
    group_size_m = gl.minimum(num_pid_m - first_pid_m, GROUP_M)
    pid_m = first_pid_m + (tile_id % num_pid_in_group) % group_size_m
    pid_n = (tile_id % num_pid_in_group) // group_size_m
    return pid_m, pid_n


@gluon.jit
def _ws_mm_loader(a_desc, b_desc, a_smem, b_smem, ready, empty, num_pid_m, num_pid_n, k_tiles,
                  STAGES: gl.constexpr, GROUP_M: gl.constexpr, SPLIT_N: gl.constexpr):
    """The loader warp: A's two 64-row halves and B's block of every K step of every tile of
    this program into the ring; a stage is refilled once both consumers released it.
    ``count`` numbers the K steps over all tiles, so stage and phase run on across tiles."""
    BLOCK_K: gl.constexpr = a_desc.block_type.shape[1]
    B_PARTS: gl.constexpr = 2 if SPLIT_N else 1
    PART_N: gl.constexpr = b_desc.block_type.shape[1]
    BLOCK_N: gl.constexpr = B_PARTS * PART_N
    nbytes: gl.constexpr = 2 * a_desc.block_type.nbytes + B_PARTS * b_desc.block_type.nbytes
    count = 0
    for t in range(gl.program_id(0), num_pid_m * num_pid_n, gl.num_programs(0)):
        pid_m, pid_n = _grouped_tile(t, num_pid_m, num_pid_n, GROUP_M)
        for ki in range(k_tiles):
            stage = count % STAGES
            mbarrier.wait(empty.index(stage), ((count // STAGES) & 1) ^ 1, pred=count >= STAGES)
            bar = ready.index(stage)
            mbarrier.expect(bar, nbytes)
            tma.async_copy_global_to_shared(a_desc, [pid_m * 128, ki * BLOCK_K], bar,
                                            a_smem.index(2 * stage))
            tma.async_copy_global_to_shared(a_desc, [pid_m * 128 + 64, ki * BLOCK_K], bar,
                                            a_smem.index(2 * stage + 1))
            for part in gl.static_range(B_PARTS):
                tma.async_copy_global_to_shared(b_desc, [ki * BLOCK_K, pid_n * BLOCK_N
                                                         + part * PART_N], bar,
                                                b_smem.index(B_PARTS * stage + part))
            count += 1


@gluon.jit
def _ws_mm_store(c_desc, c_buf, acc, row, col):
    """Once the TMA store last started from ``c_buf`` has read it, write ``acc`` there and start
    storing it to C at (row, col)."""
    tma.store_wait(0)
    c_buf.store(acc.to(c_desc.dtype))
    fence_async_shared()
    tma.async_copy_shared_to_global(c_desc, [row, col], c_buf)


@gluon.jit
def _ws_mm_consumer(c_desc, a_smem, b_smem, c_smem, ready, empty, c_turn, num_pid_m, num_pid_n,
                    k_tiles, HALF: gl.constexpr, STAGES: gl.constexpr, GROUP_M: gl.constexpr,
                    SPLIT_N: gl.constexpr, SHARED_C: gl.constexpr):
    """One consumer warpgroup: rows HALF * 64 .. HALF * 64 + 63 of every tile. SPLIT_N: the
    tile's columns as two accumulators of BLOCK_N / 2 (two wgmmas per K step, B in two
    blocks), stored one after the other through one half-size buffer: half the epilogue's
    shared memory, which leaves room for another stage. SHARED_C: one buffer for both
    consumers; ``c_turn.index(h)`` completes a phase each time consumer h's stores have read
    it, and the other consumer waits for that before writing."""
    PART_N: gl.constexpr = c_desc.block_type.shape[1]
    B_PARTS: gl.constexpr = 2 if SPLIT_N else 1
    acc_layout: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[4, 1],
                                                         instr_shape=[16, PART_N, 16])
    c_buf = c_smem.index(0 if SHARED_C else HALF)
    count = 0
    tile = 0  # this program's tiles so far: the phase of the turns at the shared buffer
    for t in range(gl.program_id(0), num_pid_m * num_pid_n, gl.num_programs(0)):
        pid_m, pid_n = _grouped_tile(t, num_pid_m, num_pid_n, GROUP_M)
        row = pid_m * 128 + HALF * 64
        acc = gl.zeros([64, PART_N], gl.float32, layout=acc_layout)
        if SPLIT_N:
            acc_r = gl.zeros([64, PART_N], gl.float32, layout=acc_layout)
        prev = 0  # the previous K step's stage (carried: no second modulo in the loop)
        for ki in range(k_tiles):
            stage = count % STAGES
            mbarrier.wait(ready.index(stage), (count // STAGES) & 1)
            a = a_smem.index(2 * stage + HALF)
            if SPLIT_N:
                acc = warpgroup_mma(a, b_smem.index(2 * stage), acc, is_async=True)
                acc_r = warpgroup_mma(a, b_smem.index(2 * stage + 1), acc_r, is_async=True)
                # The products of the previous K step have retired: its stage is free.
                acc, acc_r = warpgroup_mma_wait(num_outstanding=2, deps=[acc, acc_r])
            else:
                acc = warpgroup_mma(a, b_smem.index(stage), acc, is_async=True)
                acc = warpgroup_mma_wait(num_outstanding=1, deps=[acc])
            if ki > 0:
                mbarrier.arrive(empty.index(prev), count=1)
            prev = stage
            count += 1
        if SPLIT_N:
            acc, acc_r = warpgroup_mma_wait(num_outstanding=0, deps=[acc, acc_r])
        else:
            acc = warpgroup_mma_wait(num_outstanding=0, deps=[acc])
        mbarrier.arrive(empty.index(prev), count=1)
        if SHARED_C:  # consumer 0 goes after consumer 1's previous tile, 1 after 0's tile
            if HALF == 0:
                mbarrier.wait(c_turn.index(1), (tile - 1) & 1, pred=tile > 0)
            else:
                mbarrier.wait(c_turn.index(0), tile & 1)
        _ws_mm_store(c_desc, c_buf, acc, row, pid_n * B_PARTS * PART_N)
        if SPLIT_N:
            _ws_mm_store(c_desc, c_buf, acc_r, row, (2 * pid_n + 1) * PART_N)
        if SHARED_C:
            tma.store_wait(0)  # the stores have read the buffer: the other consumer's turn
            mbarrier.arrive(c_turn.index(HALF), count=1)
        tile += 1
    tma.store_wait(0)


@gluon.jit
def _matmul_wgmma_ws_kernel(a_desc, b_desc, c_desc, M, N, K, STAGES: gl.constexpr,
                            GROUP_M: gl.constexpr, SPLIT_N: gl.constexpr,
                            SHARED_C: gl.constexpr, CONSUMER_REGS: gl.constexpr):
    """C = A @ B on a persistent grid (program p: tiles p, p + grid, ...), tiles of
    [128, BLOCK_N]. a_desc: A [M, K], block [64, BLOCK_K]; b_desc: B [K, N], block
    [BLOCK_K, BLOCK_N]; c_desc: C [M, N], block [64, BLOCK_N] (with SPLIT_N the b and c blocks
    are BLOCK_N / 2 wide). 4 warps per launch (the first consumer), plus a 4-warp consumer and a
    1-warp loader."""
    dtype: gl.constexpr = a_desc.dtype
    BLOCK_K: gl.constexpr = a_desc.block_type.shape[1]
    B_PARTS: gl.constexpr = 2 if SPLIT_N else 1
    PART_N: gl.constexpr = b_desc.block_type.shape[1]
    a_smem = gl.allocate_shared_memory(dtype, [2 * STAGES, 64, BLOCK_K], a_desc.layout)
    b_smem = gl.allocate_shared_memory(dtype, [B_PARTS * STAGES, BLOCK_K, PART_N], b_desc.layout)
    c_smem = gl.allocate_shared_memory(dtype, [1 if SHARED_C else 2, 64, PART_N], c_desc.layout)
    ready = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    empty = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    c_turn = gl.allocate_shared_memory(gl.int64, [2, 1], mbarrier.MBarrierLayout())
    for i in gl.static_range(STAGES):
        mbarrier.init(ready.index(i), count=1)
        mbarrier.init(empty.index(i), count=2)
    for i in gl.static_range(2):
        mbarrier.init(c_turn.index(i), count=1)
    num_pid_m = gl.cdiv(M, 128)
    num_pid_n = gl.cdiv(N, B_PARTS * PART_N)
    k_tiles = gl.cdiv(K, BLOCK_K)
    gl.warp_specialize([
        (_ws_mm_consumer, (c_desc, a_smem, b_smem, c_smem, ready, empty, c_turn, num_pid_m,
                           num_pid_n, k_tiles, 0, STAGES, GROUP_M, SPLIT_N, SHARED_C)),
        (_ws_mm_consumer, (c_desc, a_smem, b_smem, c_smem, ready, empty, c_turn, num_pid_m,
                           num_pid_n, k_tiles, 1, STAGES, GROUP_M, SPLIT_N, SHARED_C)),
        (_ws_mm_loader, (a_desc, b_desc, a_smem, b_smem, ready, empty, num_pid_m, num_pid_n,
                         k_tiles, STAGES, GROUP_M, SPLIT_N)),
    ], [4, 1], [CONSUMER_REGS, 24])


_GL_DTYPES = {torch.float16: gl.float16, torch.bfloat16: gl.bfloat16}


def _descriptors(a, b, out, BLOCK_N, BLOCK_K, SPLIT_N, make):
    """The three TMA descriptors the kernel takes; ``make(tensor, block, layout)`` builds one."""
    gdt = _GL_DTYPES[a.dtype]
    part_n = BLOCK_N // 2 if SPLIT_N else BLOCK_N

    def desc(t, block):
        return make(t, block, gl.NVMMASharedLayout.get_default_for(block, gdt))

    return desc(a, [64, BLOCK_K]), desc(b, [BLOCK_K, part_n]), desc(out, [64, part_n])


def persistent_grid(num_tiles: int, sms: int, balanced: bool) -> int:
    """Programs for ``num_tiles`` tiles: one per SM (at most one per tile), or with
    ``balanced`` the fewest that still finish in the same number of rounds, so that every
    program takes the same number of tiles (512 tiles on 132 SMs: 128 programs of 4 tiles
    rather than 116 of 4 and 16 of 3)."""
    grid = max(1, min(num_tiles, sms))
    if balanced:
        rounds = -(-num_tiles // grid)
        grid = -(-num_tiles // rounds)
    return grid


def launch_wgmma_ws(a, b, *, out, BLOCK_N, BLOCK_K, GROUP_M, STAGES, SPLIT_N=False,
                    SHARED_C=False, BALANCED_GRID=False):
    """Launch :func:`_matmul_wgmma_ws_kernel` on a persistent grid (:func:`persistent_grid`)."""
    from triton.experimental.gluon.nvidia.hopper import TensorDescriptor

    M, N, K = check_matmul_operands(a, b, out)
    if os.environ.get("TRITON_INTERPRET") == "1" or a.device.type != "cuda":
        raise ValueError("wgmma_ws is Gluon code for sm_90 GPUs; Triton's CPU interpreter "
                         "cannot run it")
    if torch.cuda.get_device_capability(a.device) != (9, 0):
        raise ValueError("wgmma_ws needs an sm_90 GPU (Hopper: wgmma, TMA, setmaxnreg)")
    if a.dtype not in _GL_DTYPES:
        raise ValueError(f"wgmma_ws takes fp16 or bf16 operands, not {a.dtype}")
    if not all(t.is_contiguous() for t in (a, b, out)):
        raise ValueError("wgmma_ws: a, b and out must be contiguous (TMA descriptors)")
    if (K * a.element_size()) % 16 or (N * a.element_size()) % 16:
        raise ValueError(f"wgmma_ws: rows of {K} and {N} elements are not 16-byte aligned, "
                         "as TMA descriptors need")
    a_desc, b_desc, c_desc = _descriptors(a, b, out, BLOCK_N, BLOCK_K, SPLIT_N,
                                          TensorDescriptor.from_tensor)
    num_tiles = triton.cdiv(M, BLOCK_M) * triton.cdiv(N, BLOCK_N)
    sms = torch.cuda.get_device_properties(a.device).multi_processor_count
    _matmul_wgmma_ws_kernel[(persistent_grid(num_tiles, sms, BALANCED_GRID),)](
        a_desc, b_desc, c_desc, M, N, K, STAGES=STAGES, GROUP_M=GROUP_M, SPLIT_N=SPLIT_N,
        SHARED_C=SHARED_C, CONSUMER_REGS=CONSUMER_REGS, num_warps=4)


def compile_for_sm90(config: dict, dtype: torch.dtype = torch.float16):
    """Compile the kernel of a ``wgmma_ws`` config for sm_90 without a GPU (Triton's compiler
    only; nothing runs): the CPU tests check every seed builds, fits and overlaps this way."""
    from triton.backends.compiler import GPUTarget
    from triton.experimental.gluon._runtime import GluonASTSource
    from triton.experimental.gluon.nvidia.hopper import TensorDescriptor
    from triton.runtime.jit import mangle_type

    host = torch.zeros(256, 256, dtype=dtype)  # only its type and alignment are read
    descs = _descriptors(host, host, host, config["BLOCK_N"], config["BLOCK_K"],
                         bool(config.get("SPLIT_N")), lambda t, block, layout: mangle_type(
                             TensorDescriptor.from_tensor(t, block, layout)))
    fn = _matmul_wgmma_ws_kernel
    sig = dict(zip(("a_desc", "b_desc", "c_desc"), descs), M="i32", N="i32", K="i32")
    const = {"STAGES": config["STAGES"], "GROUP_M": config["GROUP_M"],
             "SPLIT_N": bool(config.get("SPLIT_N")), "SHARED_C": bool(config.get("SHARED_C")),
             "CONSUMER_REGS": CONSUMER_REGS}
    sig.update({name: "constexpr" for name in const})
    return triton.compile(GluonASTSource(fn, sig, const), target=GPUTarget("cuda", 90, 32),
                          options={"num_warps": 4})
