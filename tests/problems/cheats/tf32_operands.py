"""Cheat: rounds the fp32 operands to TF32's 10-bit mantissa (what tl.dot's "tf32" does)."""

import importlib.util
import pathlib

import torch
import torch.nn as nn

_path = pathlib.Path(__file__).resolve().parents[1] / "answers" / "gemm_bias_relu_triton.py"
_spec = importlib.util.spec_from_file_location("_honest_gemm_bias_relu", _path)
_honest = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_honest)


def _tf32(t):
    return (t.contiguous().view(torch.int32) & ~0x1FFF).view(torch.float32)


class ModelNew(nn.Module):
    def __init__(self, in_features, out_features):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)

    def forward(self, x):
        return _honest.gemm_bias_relu(_tf32(x), _tf32(self.linear.weight), self.linear.bias)
