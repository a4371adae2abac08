"""Level 2: attention scores: batched Q @ K^T, scaled, then softmax over the keys."""

import torch
import torch.nn as nn

batch = 64
seq = 1024
head_dim = 128
SMALL = {"batch": 2, "seq": 37, "head_dim": 24}


class Model(nn.Module):
    def __init__(self, head_dim: int):
        super().__init__()
        self.scale = head_dim ** -0.5

    def forward(self, q, k):
        scores = torch.bmm(q, k.transpose(1, 2)) * self.scale
        return torch.softmax(scores, dim=-1)


def get_inputs():
    return [torch.randn(batch, seq, head_dim), torch.randn(batch, seq, head_dim)]


def get_init_inputs():
    return [head_dim]
