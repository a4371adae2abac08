"""A 2-D convolution with padding, stride and dilation (different along H and W), an input
channel count that is no multiple of the channel block, then a sigmoid: the padded path of the
implicit GEMM."""

import torch
import torch.nn as nn

batch_size = 8
in_channels = 20
out_channels = 24
height = 64
width = 48
SMALL = {"batch_size": 2, "height": 11, "width": 9}


class Model(nn.Module):
    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=(3, 2), stride=(2, 1),
                              padding=(1, 2), dilation=(2, 1))

    def forward(self, x):
        return torch.sigmoid(self.conv(x))


def get_inputs():
    return [torch.randn(batch_size, in_channels, height, width)]


def get_init_inputs():
    return [in_channels, out_channels]
