"""An adversarial problem: outputs so small that allclose alone passes an all-zeros answer."""

import torch
import torch.nn as nn

batch_size = 4096
dim = 4096
SMALL = {"batch_size": 7, "dim": 129}


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        return torch.tanh(x) * 1e-6


def get_inputs():
    return [torch.randn(batch_size, dim)]


def get_init_inputs():
    return []
