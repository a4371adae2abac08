"""Cheat: a Triton path that fails, and a try/except fallback to PyTorch."""

import importlib.util
import pathlib

import torch
import torch.nn as nn

_path = pathlib.Path(__file__).resolve().parents[1] / "answers" / "gemm_bias_relu_triton.py"
_spec = importlib.util.spec_from_file_location("_honest_gemm_bias_relu", _path)
_honest = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_honest)


class ModelNew(nn.Module):
    def __init__(self, in_features, out_features):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)

    def forward(self, x):
        try:
            return _honest.gemm_bias_relu(x, self.linear.weight)  # missing bias: TypeError
        except Exception:
            return torch.relu(x @ self.linear.weight.t() + self.linear.bias)
