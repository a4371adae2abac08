"""Level 2: linear layer, GELU, then softmax over the features."""

import torch
import torch.nn as nn

batch_size = 2048
in_features = 4096
out_features = 4096
SMALL = {"batch_size": 9, "in_features": 33, "out_features": 70}


class Model(nn.Module):
    def __init__(self, in_features, out_features):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)

    def forward(self, x):
        x = self.linear(x)
        x = torch.nn.functional.gelu(x)
        return torch.softmax(x, dim=1)


def get_inputs():
    return [torch.randn(batch_size, in_features)]


def get_init_inputs():
    return [in_features, out_features]
