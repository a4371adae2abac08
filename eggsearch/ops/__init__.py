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
}

_cache: dict[str, OpSpec] = {}


def get_op(name: str) -> OpSpec:
    if name not in OPS:
        raise UsageError(f"unknown op '{name}'; known ops: {', '.join(sorted(OPS))}")
    if name not in _cache:
        module = importlib.import_module(f"eggsearch.ops.{name}")
        _cache[name] = module.OP
    return _cache[name]


__all__ = ["OPS", "OpSpec", "Problem", "get_op"]
