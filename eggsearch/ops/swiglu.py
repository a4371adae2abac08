"""SwiGLU, the gated MLP of LLaMA-style blocks: ``out = silu(x @ W1) * (x @ W3)``.

``x`` [M, K], ``W1`` and ``W3`` [K, N], ``out`` [M, N]; products accumulated in fp32.

Structures:
    fused       one output tile per program (grouped order) with two accumulators: each x tile
                is loaded once and multiplied by the W1 and the W3 tile; silu * mul in
                registers before the store. x @ W1 and x @ W3 never reach memory.
    descriptor  the same with x, W1, W3 and out moved by tensor descriptors (TMA on Hopper),
                one program per tile or persistent, the tile loop optionally flattened.
    split       two launches of matmul_epilogue's kernel: H = silu(x @ W1) is written in the
                input dtype, then out = (x @ W3) * H with H read in the second product's
                epilogue. It reads x twice and writes and reads H, but each product keeps one
                accumulator, so it can use the large tiles that two accumulators cannot.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from eggsearch.ops.base import OpSpec, Problem, torch_dtype
from eggsearch.ops.matmul import _matmul_dot, _matmul_grouped_tile, _num_sms
from eggsearch.ops.matmul_epilogue import CODES, MUL, _epilogue_store, launch_chain


@triton.jit
def _swiglu_fused_kernel(x_ptr, w1_ptr, w3_ptr, out_ptr, M, N, K,
                         stride_xm, stride_xk, stride_w1k, stride_w1n, stride_w3k, stride_w3n,
                         stride_om, stride_on,
                         BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
                         GROUP_M: tl.constexpr, EVEN_K: tl.constexpr,
                         INPUT_PRECISION: tl.constexpr):
    """One [BLOCK_M, BLOCK_N] tile of ``out`` per program, grouped order, on a 1-D grid of
    cdiv(M, BLOCK_M) * cdiv(N, BLOCK_N) programs.

    x_ptr: x [M, K]; w1_ptr, w3_ptr: W1, W3 [K, N]; out_ptr: out [M, N], all one dtype.
    stride_<tensor><dim>: element strides. BLOCK_M/N/K: tile sizes (powers of two >= 16).
    GROUP_M: tile rows per group. EVEN_K: K % BLOCK_K == 0 (no K mask). INPUT_PRECISION: tl.dot
    precision for fp32 inputs. Rows of x and columns of W are wrapped (% M, % N) so edge tiles
    load in bounds without masks; the store is masked.
    """
    num_pid_m = tl.cdiv(M, BLOCK_M)
    num_pid_n = tl.cdiv(N, BLOCK_N)
    pid_m, pid_n = _matmul_grouped_tile(tl.program_id(0), num_pid_m, num_pid_n, GROUP_M)
    offs_m = ((pid_m * BLOCK_M + tl.arange(0, BLOCK_M)) % M).to(tl.int64)
    offs_n = ((pid_n * BLOCK_N + tl.arange(0, BLOCK_N)) % N).to(tl.int64)
    offs_k = tl.arange(0, BLOCK_K)
    x_ptrs = x_ptr + offs_m[:, None] * stride_xm + offs_k.to(tl.int64)[None, :] * stride_xk
    w1_ptrs = w1_ptr + offs_k.to(tl.int64)[:, None] * stride_w1k + offs_n[None, :] * stride_w1n
    w3_ptrs = w3_ptr + offs_k.to(tl.int64)[:, None] * stride_w3k + offs_n[None, :] * stride_w3n
    acc1 = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    acc3 = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k in range(0, tl.cdiv(K, BLOCK_K)):
        if EVEN_K:
            x = tl.load(x_ptrs)
            w1 = tl.load(w1_ptrs)
            w3 = tl.load(w3_ptrs)
        else:
            k_left = K - k * BLOCK_K
            x = tl.load(x_ptrs, mask=offs_k[None, :] < k_left, other=0.0)
            w1 = tl.load(w1_ptrs, mask=offs_k[:, None] < k_left, other=0.0)
            w3 = tl.load(w3_ptrs, mask=offs_k[:, None] < k_left, other=0.0)
        acc1 = _matmul_dot(x, w1, acc1, INPUT_PRECISION)
        acc3 = _matmul_dot(x, w3, acc3, INPUT_PRECISION)
        x_ptrs += tl.cast(stride_xk, tl.int64) * BLOCK_K
        w1_ptrs += tl.cast(stride_w1k, tl.int64) * BLOCK_K
        w3_ptrs += tl.cast(stride_w3k, tl.int64) * BLOCK_K
    out = acc1 * tl.sigmoid(acc1) * acc3
    _epilogue_store(out_ptr, out, pid_m * BLOCK_M + tl.arange(0, BLOCK_M),
                    pid_n * BLOCK_N + tl.arange(0, BLOCK_N), M, N, stride_om, stride_on)


@triton.jit
def _swiglu_descriptor_kernel(x_desc, w1_desc, w3_desc, out_desc, M, N, K,
                              BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                              BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr,
                              FLATTEN: tl.constexpr, INPUT_PRECISION: tl.constexpr):
    """Tiles of ``out`` moved by tensor descriptors; program p computes tiles p, p + G, ... of a
    1-D grid of G programs (G = number of tiles, or the number of SMs: persistent).

    x_desc: x [M, K], block [BLOCK_M, BLOCK_K]; w1_desc, w3_desc: W1, W3 [K, N], block
    [BLOCK_K, BLOCK_N]; out_desc: out [M, N], block [BLOCK_M, BLOCK_N]. Out-of-bounds reads are
    zero and writes dropped by the descriptors. FLATTEN: fuse the tile loop with the K loop.
    Other constexprs as in :func:`_swiglu_fused_kernel`.
    """
    num_pid_m = tl.cdiv(M, BLOCK_M)
    num_pid_n = tl.cdiv(N, BLOCK_N)
    k_tiles = tl.cdiv(K, BLOCK_K)
    for tile_id in tl.range(tl.program_id(0), num_pid_m * num_pid_n, tl.num_programs(0),
                            flatten=FLATTEN):
        pid_m, pid_n = _matmul_grouped_tile(tile_id, num_pid_m, num_pid_n, GROUP_M)
        acc1 = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        acc3 = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        for ki in range(k_tiles):
            x = x_desc.load([pid_m * BLOCK_M, ki * BLOCK_K])
            acc1 = _matmul_dot(x, w1_desc.load([ki * BLOCK_K, pid_n * BLOCK_N]), acc1,
                               INPUT_PRECISION)
            acc3 = _matmul_dot(x, w3_desc.load([ki * BLOCK_K, pid_n * BLOCK_N]), acc3,
                               INPUT_PRECISION)
        out = acc1 * tl.sigmoid(acc1) * acc3
        out_desc.store([pid_m * BLOCK_M, pid_n * BLOCK_N], out.to(out_desc.dtype))


# ---- launchers -------------------------------------------------------------------------------
def _check_operands(x, w1, w3, out) -> tuple[int, int, int]:
    M, K = x.shape
    if (tuple(w1.shape) != tuple(w3.shape) or w1.shape[0] != K
            or tuple(out.shape) != (M, w1.shape[1])
            or not x.dtype == w1.dtype == w3.dtype == out.dtype):
        raise ValueError(f"swiglu: x {tuple(x.shape)}, w1 {tuple(w1.shape)}, w3 "
                         f"{tuple(w3.shape)}, out {tuple(out.shape)} do not fit")
    return M, w1.shape[1], K


def launch_fused(x, w1, w3, *, out, BLOCK_M, BLOCK_N, BLOCK_K, GROUP_M, num_warps, num_stages,
                 INPUT_PRECISION):
    M, N, K = _check_operands(x, w1, w3, out)
    grid = (triton.cdiv(M, BLOCK_M) * triton.cdiv(N, BLOCK_N),)
    _swiglu_fused_kernel[grid](
        x, w1, w3, out, M, N, K, x.stride(0), x.stride(1), w1.stride(0), w1.stride(1),
        w3.stride(0), w3.stride(1), out.stride(0), out.stride(1),
        BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N, BLOCK_K=BLOCK_K, GROUP_M=GROUP_M,
        EVEN_K=K % BLOCK_K == 0, INPUT_PRECISION=INPUT_PRECISION,
        num_warps=num_warps, num_stages=num_stages)


def launch_descriptor(x, w1, w3, *, out, BLOCK_M, BLOCK_N, BLOCK_K, GROUP_M, PERSISTENT,
                      FLATTEN, num_warps, num_stages, INPUT_PRECISION):
    from triton.tools.tensor_descriptor import TensorDescriptor

    M, N, K = _check_operands(x, w1, w3, out)
    num_tiles = triton.cdiv(M, BLOCK_M) * triton.cdiv(N, BLOCK_N)
    grid = (min(_num_sms(x.device), num_tiles) if PERSISTENT else num_tiles,)
    _swiglu_descriptor_kernel[grid](
        TensorDescriptor.from_tensor(x, [BLOCK_M, BLOCK_K]),
        TensorDescriptor.from_tensor(w1, [BLOCK_K, BLOCK_N]),
        TensorDescriptor.from_tensor(w3, [BLOCK_K, BLOCK_N]),
        TensorDescriptor.from_tensor(out, [BLOCK_M, BLOCK_N]),
        M, N, K, BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N, BLOCK_K=BLOCK_K, GROUP_M=GROUP_M,
        FLATTEN=FLATTEN, INPUT_PRECISION=INPUT_PRECISION,
        num_warps=num_warps, num_stages=num_stages)


def launch_split(x, w1, w3, *, out, **config):
    """H = silu(x @ W1) in x's dtype (as eager rounds it), then out = (x @ W3) * H."""
    _check_operands(x, w1, w3, out)
    h = torch.empty_like(out)
    launch_chain(x, w1, h, None, None, CODES["silu"], 1.0, **config)
    launch_chain(x, w3, out, None, h, MUL, 1.0, **config)


class SwiGLU(OpSpec):
    name = "swiglu"
    summary = "silu(x @ W1) * (x @ W3), the gated MLP of LLaMA-style blocks"
    dims = ("M", "N", "K")
    tensor_cores = True
    # LLaMA-2 7B's MLP (hidden 4096, intermediate 11008) on 4096 tokens.
    default_shape = (4096, 11008, 4096)
    # tokens x intermediate x hidden: LLaMA-2 7B and 70B, LLaMA-3 8B.
    named_shapes = {"llama7b": (4096, 11008, 4096), "llama70b": (4096, 28672, 8192),
                    "llama3-8b": (4096, 14336, 4096)}
    interpreter_shape = (37, 40, 72)  # odd M; rows 16-byte aligned for descriptors
    uses_tf32 = True
    structures = {"fused": launch_fused, "descriptor": launch_descriptor, "split": launch_split}

    def make_inputs(self, problem: Problem, seed: int, device: str):
        M, N, K = problem.shape
        g = torch.Generator(device=device).manual_seed(seed)
        dt = torch_dtype(problem.dtype)
        scale = K ** -0.25  # both products of unit variance, as in matmul.py
        return tuple((torch.randn(*shape, generator=g, device=device) * scale).to(dt)
                     for shape in ((M, K), (K, N), (K, N)))

    def output_shape(self, problem: Problem):
        M, N, _ = problem.shape
        return (M, N)

    def reference(self, x, w1, w3):
        return torch.nn.functional.silu(x @ w1) * (x @ w3)

    def flops(self, problem: Problem) -> float:
        M, N, K = problem.shape
        return 4.0 * M * N * K + 3.0 * M * N  # two products; silu and the product, ~3 a point

    def min_bytes(self, problem: Problem) -> float:
        M, N, K = problem.shape
        return float((M * K + 2 * K * N + M * N) * problem.elem_bytes)


OP = SwiGLU()
