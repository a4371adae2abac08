"""Operator registry. Each op is one module, imported only when it is used (it imports triton).

To add an op ``foo``: write ``eggsearch/ops/foo.py`` with a subclass of
:class:`eggsearch.ops.base.OpSpec` named ``OP``, add ``search_spaces/foo.yaml`` and a line below.
"""

from __future__ import annotations

import importlib

from eggsearch.errors import UsageError
from eggsearch.ops.base import OpSpec, Problem

# name -> one-line summary; the module is eggsearch.ops.<name> and exports OP.
OPS: dict[str, str] = {
    "matmul": "C = A @ B (fp16, bf16, fp32; exact fp32 unless --allow-tf32)",
    "softmax": "softmax over the last dimension of a 2-D tensor",
    "layernorm": "layer normalization over the last dimension, with weight and bias",
    "rmsnorm": "RMS normalization over the last dimension, with weight",
    "matmul_epilogue": "C = epilogue(A @ B), the epilogue a chain such as bias,gelu",
    "swiglu": "silu(x @ W1) * (x @ W3), the gated MLP of LLaMA-style blocks",
    "cross_entropy": "per-row cross-entropy loss over a large vocabulary (fp32 losses)",
    "add_rmsnorm": "h = x + r, y = rmsnorm(h) * w: residual add fused with RMSNorm",
    "attention": "forward scaled-dot-product attention, [B, H, S, D] (--option causal=0|1)",
}

_cache: dict[str, OpSpec] = {}


def get_op(name: str) -> OpSpec:
    if name.startswith("problem:"):  # a problem file (run --problem): eggsearch/problems/op.py
        if name not in _cache:
            from eggsearch.problems.op import problem_op

            _cache[name] = problem_op(name)
        return _cache[name]
    if name not in OPS:
        raise UsageError(f"unknown op '{name}'; known ops: {', '.join(sorted(OPS))}")
    if name not in _cache:
        module = importlib.import_module(f"eggsearch.ops.{name}")
        _cache[name] = module.OP
    return _cache[name]


__all__ = ["OPS", "OpSpec", "Problem", "get_op"]
