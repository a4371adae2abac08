"""Level 2: 2-D convolution, GELU, then global average pooling."""

import torch
import torch.nn as nn

batch_size = 64
in_channels = 16
out_channels = 64
height = 128
width = 128
kernel_size = 3
SMALL = {"batch_size": 2, "in_channels": 16, "out_channels": 5, "height": 10, "width": 7}


class Model(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size)

    def forward(self, x):
        x = self.conv(x)
        x = torch.nn.functional.gelu(x)
        x = torch.nn.functional.adaptive_avg_pool2d(x, 1)
        return x.squeeze(-1).squeeze(-1)


def get_inputs():
    return [torch.randn(batch_size, in_channels, height, width)]


def get_init_inputs():
    return [in_channels, out_channels, kernel_size]
