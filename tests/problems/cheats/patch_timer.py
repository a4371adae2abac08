"""Cheat: patches the clock at import, so that every timed call looks 100x faster."""

import importlib.util
import pathlib
import time

import torch.nn as nn

_path = pathlib.Path(__file__).resolve().parents[1] / "answers" / "gemm_bias_relu_triton.py"
_spec = importlib.util.spec_from_file_location("_honest_gemm_bias_relu", _path)
_honest = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_honest)

_real = time.perf_counter
_start = _real()
time.perf_counter = lambda: _start + (_real() - _start) / 100


class ModelNew(nn.Module):
    def __init__(self, in_features, out_features):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)

    def forward(self, x):
        return _honest.gemm_bias_relu(x, self.linear.weight, self.linear.bias)
