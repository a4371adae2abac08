"""A half-precision 2-D convolution with a bias, then ReLU: the implicit GEMM's fp16 path (no
TF32 split; fp16 operands, fp32 accumulation)."""

import torch
import torch.nn as nn

batch_size = 16
in_channels = 32
out_channels = 64
height = 56
width = 56
SMALL = {"batch_size": 2, "in_channels": 24, "out_channels": 7, "height": 8, "width": 9}


class Model(nn.Module):
    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1).half()

    def forward(self, x):
        return torch.relu(self.conv(x))


def get_inputs():
    return [torch.randn(batch_size, in_channels, height, width, dtype=torch.float16)]


def get_init_inputs():
    return [in_channels, out_channels]
