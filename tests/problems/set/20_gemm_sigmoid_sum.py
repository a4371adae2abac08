"""Level 2: linear layer, sigmoid, then a sum over the features."""

import torch
import torch.nn as nn

batch_size = 4096
input_size = 4096
hidden_size = 4096
SMALL = {"batch_size": 11, "input_size": 29, "hidden_size": 53}


class Model(nn.Module):
    def __init__(self, input_size, hidden_size):
        super().__init__()
        self.linear = nn.Linear(input_size, hidden_size)

    def forward(self, x):
        x = self.linear(x)
        x = torch.sigmoid(x)
        return torch.sum(x, dim=1, keepdim=True)


def get_inputs():
    return [torch.randn(batch_size, input_size)]


def get_init_inputs():
    return [input_size, hidden_size]
