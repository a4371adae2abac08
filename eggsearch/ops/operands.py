"""Operand checks shared by an op's Triton and Gluon launchers.

They live apart from the op modules so that both ``matmul.py`` and ``matmul_gluon.py`` (and the
attention pair) can import them at the top level: ``eggsearch export`` inlines top-level
``from eggsearch... import name`` definitions, not imports inside a function.
"""

from __future__ import annotations

import torch


def check_matmul_operands(a: torch.Tensor, b: torch.Tensor,
                          out: torch.Tensor) -> tuple[int, int, int]:
    """(M, N, K) of C = A @ B, or ValueError when the shapes or dtypes do not fit."""
    M, K = a.shape
    K2, N = b.shape
    if K != K2 or tuple(out.shape) != (M, N) or not (a.dtype == b.dtype == out.dtype):
        raise ValueError(f"matmul: a {tuple(a.shape)} {a.dtype}, b {tuple(b.shape)} {b.dtype}, "
                         f"out {tuple(out.shape)} {out.dtype} do not fit C = A @ B")
    return M, N, K


def check_attention_operands(q, k, v, is_causal, out) -> tuple[int, int, int, int, bool]:
    """(B, H, S, D, causal) of SDPA's [B, H, S, D] operands, or ValueError."""
    B, H, S, D = q.shape
    if (k.shape != q.shape or v.shape != q.shape or tuple(out.shape) != tuple(q.shape)
            or not (q.dtype == k.dtype == v.dtype == out.dtype)):
        raise ValueError(f"attention: q {tuple(q.shape)} {q.dtype}, k {tuple(k.shape)}, "
                         f"v {tuple(v.shape)}, out {tuple(out.shape)} {out.dtype} must match")
    if D < 16 or D & (D - 1):
        raise ValueError(f"attention: head dim {D} must be a power of two >= 16")
    return B, H, S, D, bool(is_causal)
