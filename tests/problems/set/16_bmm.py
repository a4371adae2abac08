"""Level 1: batched matrix multiplication."""

import torch
import torch.nn as nn

batch = 128
m = 512
k = 1024
n = 512
SMALL = {"batch": 3, "m": 37, "k": 45, "n": 29}


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, A, B):
        return torch.bmm(A, B)


def get_inputs():
    return [torch.randn(batch, m, k), torch.randn(batch, k, n)]


def get_init_inputs():
    return []
