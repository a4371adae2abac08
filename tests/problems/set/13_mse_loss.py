"""Level 1: mean squared error loss."""

import torch
import torch.nn as nn

batch_size = 8192
dim = 4096
SMALL = {"batch_size": 13, "dim": 129}


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, predictions, targets):
        return torch.mean((predictions - targets) ** 2)


def get_inputs():
    return [torch.randn(batch_size, dim), torch.randn(batch_size, dim)]


def get_init_inputs():
    return []
