"""Level 2: 2-D convolution, ReLU, then a learned per-channel bias."""

import torch
import torch.nn as nn

batch_size = 64
in_channels = 16
out_channels = 64
height = 128
width = 128
kernel_size = 3
bias_shape = (out_channels, 1, 1)
SMALL = {"batch_size": 2, "in_channels": 16, "out_channels": 5, "height": 9, "width": 11}


class Model(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size, bias_shape):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size)
        self.bias = nn.Parameter(torch.randn(bias_shape))

    def forward(self, x):
        x = self.conv(x)
        x = torch.relu(x)
        return x + self.bias


def get_inputs():
    return [torch.randn(batch_size, in_channels, height, width)]


def get_init_inputs():
    return [in_channels, out_channels, kernel_size, (out_channels, 1, 1)]
