"""Level 2: linear layer, layer normalization, then ReLU."""

import torch
import torch.nn as nn

batch_size = 4096
in_features = 2048
out_features = 4096
SMALL = {"batch_size": 10, "in_features": 37, "out_features": 66}


class Model(nn.Module):
    def __init__(self, in_features, out_features):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)
        self.norm = nn.LayerNorm(out_features)

    def forward(self, x):
        return torch.relu(self.norm(self.linear(x)))


def get_inputs():
    return [torch.randn(batch_size, in_features)]


def get_init_inputs():
    return [in_features, out_features]
