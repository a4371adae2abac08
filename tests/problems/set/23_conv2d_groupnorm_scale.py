"""Level 2: 2-D convolution, group normalization, then a learned per-channel scale."""

import torch
import torch.nn as nn

batch_size = 64
in_channels = 16
out_channels = 64
height = 128
width = 128
kernel_size = 3
num_groups = 8
SMALL = {"batch_size": 2, "in_channels": 16, "out_channels": 6, "height": 9, "width": 8,
         "num_groups": 3}


class Model(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size, num_groups):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size)
        self.group_norm = nn.GroupNorm(num_groups, out_channels)
        self.scale = nn.Parameter(torch.randn(out_channels, 1, 1))

    def forward(self, x):
        x = self.conv(x)
        x = self.group_norm(x)
        return x * self.scale


def get_inputs():
    return [torch.randn(batch_size, in_channels, height, width)]


def get_init_inputs():
    return [in_channels, out_channels, kernel_size, num_groups]
