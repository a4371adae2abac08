"""Malformed: Model is not an nn.Module."""

import torch


class Model:
    def forward(self, x):
        return x


def get_inputs():
    return [torch.randn(3)]


def get_init_inputs():
    return []
