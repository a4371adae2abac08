"""A depthwise convolution (groups == channels: it stays in PyTorch), a learned per-channel
bias, then the mean over each channel's plane."""

import torch
import torch.nn as nn

batch_size = 16
channels = 32
height = 64
width = 64
SMALL = {"batch_size": 2, "channels": 5, "height": 9, "width": 7}


class Model(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, groups=channels, bias=False)
        self.bias = nn.Parameter(torch.randn(channels, 1, 1))

    def forward(self, x):
        return (self.conv(x) + self.bias).mean(dim=(2, 3))


def get_inputs():
    return [torch.randn(batch_size, channels, height, width)]


def get_init_inputs():
    return [channels]
