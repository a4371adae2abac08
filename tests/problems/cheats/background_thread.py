"""Cheat: returns at once and computes the output later, in a background thread."""

import importlib.util
import pathlib
import threading
import time

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
        out = torch.empty(x.shape[0], self.linear.weight.shape[0], device=x.device)

        def work():
            time.sleep(0.2)
            _honest.gemm_bias_relu(x, self.linear.weight, self.linear.bias, out=out)

        threading.Thread(target=work, daemon=True).start()
        return out
