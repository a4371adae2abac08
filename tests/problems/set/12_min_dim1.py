"""Level 1: minimum over dimension 1 of a 3-D tensor (values only)."""

import torch
import torch.nn as nn

batch_size = 64
dim1 = 1024
dim2 = 1024
SMALL = {"batch_size": 3, "dim1": 29, "dim2": 23}


class Model(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        return torch.min(x, dim=self.dim)[0]


def get_inputs():
    return [torch.randn(batch_size, dim1, dim2)]


def get_init_inputs():
    return [1]
