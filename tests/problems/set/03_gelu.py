"""Level 1: GELU activation (exact, erf form)."""

import torch
import torch.nn as nn

batch_size = 4096
dim = 16384
SMALL = {"batch_size": 9, "dim": 301}


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        return torch.nn.functional.gelu(x)


def get_inputs():
    return [torch.randn(batch_size, dim)]


def get_init_inputs():
    return []
