"""A user's attention module, outside the yoloattn package: channel-only constructor (like SE/ECA).

Used by tests/test_plugins.py through ``--plugin tests/plugins/channel_gate.py``; docs/plugins.md
shows the same shape of file.
"""

import torch
from torch import nn

import yoloattn


@yoloattn.register_attention("ChannelGate")
class ChannelGate(nn.Module):
    """Squeeze-and-excitation style gate: x * sigmoid(W2 relu(W1 mean_hw(x))), (B, C, H, W) -> same."""

    def __init__(self, channels: int, reduction: int = 4):
        super().__init__()
        hidden = max(channels // reduction, 4)
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.fc2 = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.fc2(torch.relu(self.fc1(x.mean((2, 3), keepdim=True)))))
