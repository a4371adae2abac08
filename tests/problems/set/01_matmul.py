"""Level 1: square-ish matrix multiplication, C = A @ B."""

import torch
import torch.nn as nn

M = 4096
K = 4096
N = 4096
SMALL = {"M": 37, "K": 53, "N": 29}


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, A, B):
        return torch.matmul(A, B)


def get_inputs():
    return [torch.randn(M, K), torch.randn(K, N)]


def get_init_inputs():
    return []
