"""Level 1: sum over dimension 1 of a 3-D tensor, keeping the dimension."""

import torch
import torch.nn as nn

batch_size = 64
dim1 = 1024
dim2 = 1024
SMALL = {"batch_size": 5, "dim1": 37, "dim2": 19}


class Model(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        return torch.sum(x, dim=self.dim, keepdim=True)


def get_inputs():
    return [torch.randn(batch_size, dim1, dim2)]


def get_init_inputs():
    return [1]
