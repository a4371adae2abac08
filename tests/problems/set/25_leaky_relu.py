"""Level 1: leaky ReLU activation."""

import torch
import torch.nn as nn

batch_size = 4096
dim = 16384
SMALL = {"batch_size": 5, "dim": 391}


class Model(nn.Module):
    def __init__(self, negative_slope: float = 0.01):
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, x):
        return torch.nn.functional.leaky_relu(x, negative_slope=self.negative_slope)


def get_inputs():
    return [torch.randn(batch_size, dim)]


def get_init_inputs():
    return []
