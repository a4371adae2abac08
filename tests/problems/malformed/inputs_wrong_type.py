"""Malformed: get_inputs returns a list holding a string."""

import torch
import torch.nn as nn


class Model(nn.Module):
    def forward(self, x, mode):
        return x * 2


def get_inputs():
    return [torch.randn(4, 4), "fast"]


def get_init_inputs():
    return []
