"""Matrix product with a fused epilogue: ``C = epilogue(A @ B)``, accumulated in fp32.

The epilogue is the option ``epilogue``, a comma-separated chain applied left to right to the
fp32 product while it is still in registers, then rounded once to C's dtype:

    bias      + bias[N] (broadcast over rows)       relu      max(x, 0)
    gelu      x * Phi(x), the exact (erf) form, as torch.nn.functional.gelu's default
    silu      x * sigmoid(x)                        scale     x * alpha (option ``alpha``)
    residual  + R[M, N]

Each item may appear once. The inputs follow the chain: ``a, b, [bias], [residual], chain``,
where ``chain`` is a small CPU float64 tensor ``[alpha, code, code, ...]`` (see
:class:`Epilogue`): the framework hands launchers and the reference only the inputs, so the
option travels with them. It is never read on the GPU.

Structures (the main loops are matmul.py's; only the epilogue is new):
    tiled       one output tile per program, grouped order, epilogue before the masked store.
    persistent  one program per SM walking the tiles in grouped order.
    descriptor  A, B and C moved by tensor descriptors (TMA on Hopper), one program per tile or
                persistent, optionally with the tile loop flattened into the K loop and the C
                tile stored in two halves; bias and residual are read with masked loads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from eggsearch.errors import UsageError
from eggsearch.ops.base import OpSpec, Problem, torch_dtype
from eggsearch.ops.matmul import (
    _matmul_descriptor_acc,
    _matmul_grouped_tile,
    _matmul_tile_acc,
    _num_sms,
    gemm_descriptors,
)

ITEMS = ("bias", "relu", "gelu", "silu", "scale", "residual")
# Codes of the packed chain: 3 bits per item, item i in bits 3i..3i+2, 0 ends the chain. MUL
# (C * aux[M, N]) is internal: swiglu's split structure multiplies by silu(x @ W1) with it.
CODES = {name: i + 1 for i, name in enumerate(ITEMS)}
MUL = 7
_BIAS = tl.constexpr(1)
_RELU = tl.constexpr(2)
_GELU = tl.constexpr(3)
_SILU = tl.constexpr(4)
_SCALE = tl.constexpr(5)
_RESIDUAL = tl.constexpr(6)
_MAX_ITEMS = tl.constexpr(len(ITEMS) + 1)
_SQRT1_2 = tl.constexpr(0.7071067811865476)


@dataclass(frozen=True)
class Epilogue:
    """A parsed chain: item names in order, and the ``scale`` factor."""

    items: tuple[str, ...]
    alpha: float = 0.5

    @classmethod
    def parse(cls, text: str, alpha: float) -> Epilogue:
        """From the option text ("bias,gelu"); raises :class:`UsageError` on a bad chain."""
        items = tuple(text.split(",")) if text else ()
        if not items:
            raise UsageError("option epilogue is empty; give items from "
                             f"{', '.join(ITEMS)} (for a plain product use --op matmul)")
        for item in items:
            if item not in CODES:
                raise UsageError(f"epilogue item {item!r} is unknown; allowed: "
                                 f"{', '.join(ITEMS)} (comma-separated, no spaces)")
            if items.count(item) > 1:
                raise UsageError(f"epilogue item {item!r} appears more than once")
        if not math.isfinite(alpha):
            raise UsageError(f"option alpha={alpha} must be a finite number")
        return cls(items, float(alpha))

    @property
    def code(self) -> int:
        """The chain packed for the kernels' CHAIN constexpr."""
        return pack_chain([CODES[i] for i in self.items])

    def to_tensor(self) -> torch.Tensor:
        return torch.tensor([self.alpha, *(CODES[i] for i in self.items)], dtype=torch.float64)

    @classmethod
    def from_tensor(cls, chain: torch.Tensor) -> Epilogue:
        alpha, *codes = chain.tolist()
        names = {v: k for k, v in CODES.items()}
        return cls(tuple(names[int(c)] for c in codes), alpha)


def pack_chain(codes: list[int]) -> int:
    return sum(c << (3 * i) for i, c in enumerate(codes))


@triton.jit
def _erf(x):
    """erf to 1.5e-7 absolute (Abramowitz and Stegun 7.1.26): one exp and one division.
    libdevice's erff is exact to an ulp but made the 128x256 fp16 tile spill registers on sm_90
    (epilogue=gelu: 255 registers and 288 bytes of spills, against 203 and none here)."""
    ax = tl.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * ax)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741
                                                       + t * (-1.453152027 + t * 1.061405429))))
    y = 1.0 - poly * tl.exp(-ax * ax)
    return tl.where(x < 0, -y, y)


@triton.jit
def _epilogue_apply(acc, offs_m, offs_n, M, N, bias_ptr, aux_ptr, stride_auxm, stride_auxn,
                    alpha, CHAIN: tl.constexpr):
    """Apply the packed chain to the fp32 tile ``acc`` [len(offs_m), len(offs_n)] of C.

    offs_m/offs_n: the tile's row and column indices (unwrapped; loads are masked to [M, N]).
    bias_ptr: bias [N] (any float dtype) or None; aux_ptr: the residual or MUL operand [M, N]
    with element strides stride_auxm/n, or None. alpha: the ``scale`` factor. CHAIN: item codes
    in 3-bit digits, lowest first; each ``if`` is resolved at compile time.
    """
    for i in tl.static_range(_MAX_ITEMS):
        if (CHAIN >> (3 * i)) % 8 == _BIAS:
            bias = tl.load(bias_ptr + offs_n, mask=offs_n < N, other=0.0)
            acc = acc + bias.to(tl.float32)[None, :]
        elif (CHAIN >> (3 * i)) % 8 == _RELU:
            acc = tl.maximum(acc, 0.0)
        elif (CHAIN >> (3 * i)) % 8 == _GELU:
            acc = 0.5 * acc * (1.0 + _erf(acc * _SQRT1_2))
        elif (CHAIN >> (3 * i)) % 8 == _SILU:
            acc = acc * tl.sigmoid(acc)
        elif (CHAIN >> (3 * i)) % 8 == _SCALE:
            acc = acc * alpha
        elif (CHAIN >> (3 * i)) % 8 >= _RESIDUAL:  # residual (add) or MUL (7): aux[M, N]
            aux_ptrs = (aux_ptr + offs_m.to(tl.int64)[:, None] * stride_auxm
                        + offs_n.to(tl.int64)[None, :] * stride_auxn)
            mask = (offs_m[:, None] < M) & (offs_n[None, :] < N)
            aux = tl.load(aux_ptrs, mask=mask, other=0.0).to(tl.float32)
            if (CHAIN >> (3 * i)) % 8 == _RESIDUAL:
                acc = acc + aux
            else:
                acc = acc * aux
    return acc


@triton.jit
def _epilogue_store(c_ptr, acc, offs_m, offs_n, M, N, stride_cm, stride_cn):
    c_ptrs = (c_ptr + offs_m.to(tl.int64)[:, None] * stride_cm
              + offs_n.to(tl.int64)[None, :] * stride_cn)
    mask = (offs_m[:, None] < M) & (offs_n[None, :] < N)
    tl.store(c_ptrs, acc.to(c_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _matmul_epilogue_tile(a_ptr, b_ptr, c_ptr, bias_ptr, aux_ptr, tile_id, M, N, K,
                          stride_am, stride_ak, stride_bk, stride_bn, stride_cm, stride_cn,
                          stride_auxm, stride_auxn, alpha,
                          BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
                          GROUP_M: tl.constexpr, EVEN_K: tl.constexpr,
                          INPUT_PRECISION: tl.constexpr, CHAIN: tl.constexpr):
    """Compute, finish and store output tile ``tile_id`` (grouped order)."""
    num_pid_m = tl.cdiv(M, BLOCK_M)
    num_pid_n = tl.cdiv(N, BLOCK_N)
    pid_m, pid_n = _matmul_grouped_tile(tile_id, num_pid_m, num_pid_n, GROUP_M)
    acc = _matmul_tile_acc(a_ptr, b_ptr, M, N, pid_m, pid_n, 0, K,
                           stride_am, stride_ak, stride_bk, stride_bn,
                           BLOCK_M, BLOCK_N, BLOCK_K, EVEN_K, INPUT_PRECISION)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    acc = _epilogue_apply(acc, offs_m, offs_n, M, N, bias_ptr, aux_ptr,
                          stride_auxm, stride_auxn, alpha, CHAIN)
    _epilogue_store(c_ptr, acc, offs_m, offs_n, M, N, stride_cm, stride_cn)


@triton.jit
def _matmul_epilogue_tiled_kernel(a_ptr, b_ptr, c_ptr, bias_ptr, aux_ptr, M, N, K,
                                  stride_am, stride_ak, stride_bk, stride_bn, stride_cm,
                                  stride_cn, stride_auxm, stride_auxn, alpha,
                                  BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                                  BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr,
                                  EVEN_K: tl.constexpr, INPUT_PRECISION: tl.constexpr,
                                  PERSISTENT: tl.constexpr, CHAIN: tl.constexpr):
    """Tiles of ``c`` = epilogue(A @ B) on a 1-D grid: one tile per program, or with PERSISTENT
    a grid of G programs where program p computes tiles p, p + G, ... (grouped order).

    a_ptr: A [M, K]; b_ptr: B [K, N]; c_ptr: C [M, N]; bias_ptr, aux_ptr, alpha, CHAIN: as in
    :func:`_epilogue_apply`. stride_<tensor><dim>: element strides (any layout). BLOCK_M/N/K,
    GROUP_M, EVEN_K, INPUT_PRECISION: as in matmul.py's ``_matmul_tiled_kernel``.
    """
    if PERSISTENT:
        num_tiles = tl.cdiv(M, BLOCK_M) * tl.cdiv(N, BLOCK_N)
        for tile_id in range(tl.program_id(0), num_tiles, tl.num_programs(0)):
            _matmul_epilogue_tile(a_ptr, b_ptr, c_ptr, bias_ptr, aux_ptr, tile_id, M, N, K,
                                  stride_am, stride_ak, stride_bk, stride_bn, stride_cm,
                                  stride_cn, stride_auxm, stride_auxn, alpha, BLOCK_M, BLOCK_N,
                                  BLOCK_K, GROUP_M, EVEN_K, INPUT_PRECISION, CHAIN)
    else:
        _matmul_epilogue_tile(a_ptr, b_ptr, c_ptr, bias_ptr, aux_ptr, tl.program_id(0), M, N,
                              K, stride_am, stride_ak, stride_bk, stride_bn, stride_cm,
                              stride_cn, stride_auxm, stride_auxn, alpha, BLOCK_M, BLOCK_N,
                              BLOCK_K, GROUP_M, EVEN_K, INPUT_PRECISION, CHAIN)


@triton.jit
def _matmul_epilogue_descriptor_kernel(a_desc, b_desc, c_desc, bias_ptr, aux_ptr, M, N, K,
                                       stride_auxm, stride_auxn, alpha,
                                       BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                                       BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr,
                                       FLATTEN: tl.constexpr, EPILOGUE_SUBTILE: tl.constexpr,
                                       INPUT_PRECISION: tl.constexpr, CHAIN: tl.constexpr):
    """As matmul.py's ``_matmul_descriptor_kernel`` (descriptors, PERSISTENT via the grid,
    FLATTEN, EPILOGUE_SUBTILE), with the epilogue applied to the whole fp32 tile before it is
    stored. bias_ptr, aux_ptr, strides, alpha, CHAIN: as in :func:`_epilogue_apply`.
    """
    num_pid_m = tl.cdiv(M, BLOCK_M)
    num_pid_n = tl.cdiv(N, BLOCK_N)
    k_tiles = tl.cdiv(K, BLOCK_K)
    for tile_id in tl.range(tl.program_id(0), num_pid_m * num_pid_n, tl.num_programs(0),
                            flatten=FLATTEN):
        pid_m, pid_n = _matmul_grouped_tile(tile_id, num_pid_m, num_pid_n, GROUP_M)
        acc = _matmul_descriptor_acc(a_desc, b_desc, pid_m, pid_n, 0, k_tiles,
                                     BLOCK_M, BLOCK_N, BLOCK_K, INPUT_PRECISION)
        offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        if EPILOGUE_SUBTILE:
            # Each half is finished and stored on its own: half the registers and half the
            # layout-conversion scratch for a residual.
            halves = tl.permute(tl.reshape(acc, (BLOCK_M, 2, BLOCK_N // 2)), (0, 2, 1))
            left, right = tl.split(halves)
            offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N // 2)
            left = _epilogue_apply(left, offs_m, offs_n, M, N, bias_ptr, aux_ptr,
                                   stride_auxm, stride_auxn, alpha, CHAIN)
            c_desc.store([pid_m * BLOCK_M, pid_n * BLOCK_N], left.to(c_desc.dtype))
            right = _epilogue_apply(right, offs_m, offs_n + BLOCK_N // 2, M, N, bias_ptr,
                                    aux_ptr, stride_auxm, stride_auxn, alpha, CHAIN)
            c_desc.store([pid_m * BLOCK_M, pid_n * BLOCK_N + BLOCK_N // 2],
                         right.to(c_desc.dtype))
        else:
            offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
            acc = _epilogue_apply(acc, offs_m, offs_n, M, N, bias_ptr, aux_ptr,
                                  stride_auxm, stride_auxn, alpha, CHAIN)
            c_desc.store([pid_m * BLOCK_M, pid_n * BLOCK_N], acc.to(c_desc.dtype))


# ---- launchers -------------------------------------------------------------------------------
def _operands(a, b, rest, out):
    """(M, N, K, chain code, alpha, bias or None, aux or None) from ``a, b, *rest``."""
    *tensors, chain = rest
    epi = Epilogue.from_tensor(chain)
    expected = int("bias" in epi.items) + int("residual" in epi.items)
    M, K = a.shape
    K2, N = b.shape
    if (len(tensors) != expected or K != K2 or tuple(out.shape) != (M, N)
            or not a.dtype == b.dtype == out.dtype):
        raise ValueError(f"matmul_epilogue: a {tuple(a.shape)}, b {tuple(b.shape)}, "
                         f"out {tuple(out.shape)}, {len(tensors)} extra tensors do not fit "
                         f"C = {','.join(epi.items)}(A @ B)")
    bias = tensors.pop(0) if "bias" in epi.items else None
    aux = tensors.pop(0) if "residual" in epi.items else None
    return M, N, K, epi.code, epi.alpha, bias, aux


def launch_chain(a, b, out, bias, aux, chain, alpha, *, BLOCK_M, BLOCK_N, BLOCK_K, GROUP_M,
                 num_warps, num_stages, INPUT_PRECISION, PERSISTENT=False):
    """Pointer-based product with a packed ``chain``; shared with swiglu's split structure."""
    M, K = a.shape
    N = b.shape[1]
    num_tiles = triton.cdiv(M, BLOCK_M) * triton.cdiv(N, BLOCK_N)
    grid = (min(_num_sms(a.device), num_tiles) if PERSISTENT else num_tiles,)
    aux_strides = (aux.stride(0), aux.stride(1)) if aux is not None else (0, 0)
    _matmul_epilogue_tiled_kernel[grid](
        a, b, out, bias, aux, M, N, K, a.stride(0), a.stride(1), b.stride(0), b.stride(1),
        out.stride(0), out.stride(1), *aux_strides, alpha,
        BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N, BLOCK_K=BLOCK_K, GROUP_M=GROUP_M,
        EVEN_K=K % BLOCK_K == 0, INPUT_PRECISION=INPUT_PRECISION, PERSISTENT=PERSISTENT,
        CHAIN=chain, num_warps=num_warps, num_stages=num_stages)


def launch_tiled(a, b, *rest, out, **config):
    M, N, K, chain, alpha, bias, aux = _operands(a, b, rest, out)
    launch_chain(a, b, out, bias, aux, chain, alpha, **config)


def launch_persistent(a, b, *rest, out, **config):
    M, N, K, chain, alpha, bias, aux = _operands(a, b, rest, out)
    launch_chain(a, b, out, bias, aux, chain, alpha, PERSISTENT=True, **config)


def launch_descriptor(a, b, *rest, out, BLOCK_M, BLOCK_N, BLOCK_K, GROUP_M, PERSISTENT, FLATTEN,
                      EPILOGUE_SUBTILE, num_warps, num_stages, INPUT_PRECISION):
    M, N, K, chain, alpha, bias, aux = _operands(a, b, rest, out)
    num_tiles = triton.cdiv(M, BLOCK_M) * triton.cdiv(N, BLOCK_N)
    grid = (min(_num_sms(a.device), num_tiles) if PERSISTENT else num_tiles,)
    aux_strides = (aux.stride(0), aux.stride(1)) if aux is not None else (0, 0)
    _matmul_epilogue_descriptor_kernel[grid](
        *gemm_descriptors(a, b, out, BLOCK_M, BLOCK_N, BLOCK_K, EPILOGUE_SUBTILE),
        bias, aux, M, N, K, *aux_strides, alpha,
        BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N, BLOCK_K=BLOCK_K, GROUP_M=GROUP_M, FLATTEN=FLATTEN,
        EPILOGUE_SUBTILE=EPILOGUE_SUBTILE, INPUT_PRECISION=INPUT_PRECISION, CHAIN=chain,
        num_warps=num_warps, num_stages=num_stages)


def eager_epilogue(y: torch.Tensor, epi: Epilogue, bias, residual) -> torch.Tensor:
    """The chain as separate PyTorch ops, each rounding to y's dtype (what eager code does)."""
    for item in epi.items:
        if item == "bias":
            y = y + bias
        elif item == "relu":
            y = torch.relu(y)
        elif item == "gelu":
            y = torch.nn.functional.gelu(y)
        elif item == "silu":
            y = torch.nn.functional.silu(y)
        elif item == "scale":
            y = y * epi.alpha
        else:
            y = y + residual
    return y


class MatmulEpilogue(OpSpec):
    name = "matmul_epilogue"
    summary = "C = epilogue(A @ B); epilogue: a chain of bias relu gelu silu scale residual"
    dims = ("M", "N", "K")
    tensor_cores = True
    default_shape = (4096, 4096, 4096)
    interpreter_shape = (67, 40, 88)  # odd M; rows 16-byte aligned for descriptors
    uses_tf32 = True
    # As matmul.py's: LLaMA-2 7B's projections on 4096 tokens.
    named_shapes = {"square4k": (4096, 4096, 4096), "llama7b-qkv": (4096, 12288, 4096),
                    "llama7b-o": (4096, 4096, 4096), "llama7b-up": (4096, 11008, 4096),
                    "llama7b-down": (4096, 4096, 11008)}
    options = {"epilogue": "bias,gelu", "alpha": 0.5}
    structures = {"tiled": launch_tiled, "persistent": launch_persistent,
                  "descriptor": launch_descriptor}

    def check_options(self, values):
        Epilogue.parse(str(values["epilogue"]), float(values["alpha"]))

    @staticmethod
    def epilogue(problem: Problem) -> Epilogue:
        return Epilogue.parse(str(problem.option("epilogue")), float(problem.option("alpha")))

    def make_inputs(self, problem: Problem, seed: int, device: str):
        M, N, K = problem.shape
        epi = self.epilogue(problem)
        g = torch.Generator(device=device).manual_seed(seed)
        dt = torch_dtype(problem.dtype)
        scale = K ** -0.25  # A @ B of unit variance, as in matmul.py
        inputs = [(torch.randn(M, K, generator=g, device=device) * scale).to(dt),
                  (torch.randn(K, N, generator=g, device=device) * scale).to(dt)]
        if "bias" in epi.items:
            inputs.append(torch.randn(N, generator=g, device=device).to(dt))
        if "residual" in epi.items:
            inputs.append(torch.randn(M, N, generator=g, device=device).to(dt))
        return (*inputs, epi.to_tensor())

    def output_shape(self, problem: Problem):
        M, N, _ = problem.shape
        return (M, N)

    def reference(self, a, b, *rest):
        *tensors, chain = rest
        epi = Epilogue.from_tensor(chain)
        bias = tensors.pop(0) if "bias" in epi.items else None
        residual = tensors.pop(0) if "residual" in epi.items else None
        return eager_epilogue(torch.matmul(a, b), epi, bias, residual)

    def flops(self, problem: Problem) -> float:
        M, N, K = problem.shape
        # One per output element per item: the epilogue is noise beside the product.
        return 2.0 * M * N * K + float(M * N * len(self.epilogue(problem).items))

    def min_bytes(self, problem: Problem) -> float:
        M, N, K = problem.shape
        items = self.epilogue(problem).items
        elems = M * K + K * N + M * N + N * ("bias" in items) + M * N * ("residual" in items)
        return float(elems * problem.elem_bytes)


OP = MatmulEpilogue()
