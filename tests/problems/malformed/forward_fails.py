"""Malformed: the reference's forward raises (shapes do not match)."""

import torch
import torch.nn as nn


class Model(nn.Module):
    def forward(self, a, b):
        return a @ b


def get_inputs():
    return [torch.randn(4, 5), torch.randn(4, 5)]


def get_init_inputs():
    return []
