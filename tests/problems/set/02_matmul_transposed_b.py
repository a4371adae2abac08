"""Level 1: matrix multiplication with a transposed operand, C = A @ B.T."""

import torch
import torch.nn as nn

M = 2048
K = 4096
N = 4096
SMALL = {"M": 29, "K": 67, "N": 41}


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, A, B):
        return torch.matmul(A, B.T)


def get_inputs():
    return [torch.randn(M, K), torch.randn(N, K)]


def get_init_inputs():
    return []
