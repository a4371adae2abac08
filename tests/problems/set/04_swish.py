"""Level 1: Swish activation, x * sigmoid(x)."""

import torch
import torch.nn as nn

batch_size = 4096
dim = 16384
SMALL = {"batch_size": 7, "dim": 333}


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        return x * torch.sigmoid(x)


def get_inputs():
    return [torch.randn(batch_size, dim)]


def get_init_inputs():
    return []
