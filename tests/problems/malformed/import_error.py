"""Malformed: imports a module that does not exist."""

import not_a_real_module_eggsearch  # noqa: F401
import torch.nn as nn


class Model(nn.Module):
    def forward(self, x):
        return x


def get_inputs():
    return []


def get_init_inputs():
    return []
