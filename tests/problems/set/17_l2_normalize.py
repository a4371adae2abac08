"""Level 1: L2 normalization of each row."""

import torch
import torch.nn as nn

batch_size = 4096
dim = 8192
SMALL = {"batch_size": 7, "dim": 211}


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        return x / torch.norm(x, p=2, dim=1, keepdim=True)


def get_inputs():
    return [torch.randn(batch_size, dim)]


def get_init_inputs():
    return []
