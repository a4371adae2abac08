"""Cheat (GPU): runs its kernel on a side stream and returns without waiting for it."""

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
        self.stream = torch.cuda.Stream()

    def forward(self, x):
        out = torch.empty(x.shape[0], self.linear.weight.shape[0], device=x.device)
        with torch.cuda.stream(self.stream):
            for _ in range(3):  # at full size, far more GPU work than the launches take
                _honest.gemm_bias_relu(x, self.linear.weight, self.linear.bias, out=out)
        return out
