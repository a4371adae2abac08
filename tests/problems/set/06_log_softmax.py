"""Level 1: log-softmax over dimension 1."""

import torch
import torch.nn as nn

batch_size = 4096
dim = 8192
SMALL = {"batch_size": 13, "dim": 257}


class Model(nn.Module):
    def __init__(self, dim: int = 1):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        return torch.log_softmax(x, dim=self.dim)


def get_inputs():
    return [torch.randn(batch_size, dim)]


def get_init_inputs():
    return []
