"""Stochastic depth (Huang et al., "Deep Networks with Stochastic Depth", arXiv 1603.09382)."""

from __future__ import annotations

import torch
import torch.nn as nn


class DropPath(nn.Module):
    """Zero a sample's residual branch with probability p in training; rescale the kept ones by 1/(1-p)."""

    def __init__(self, drop_prob: float) -> None:
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.drop_prob == 0.0:
            return x
        keep_prob = 1.0 - self.drop_prob
        keep = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep_prob)
        return x * keep.div_(keep_prob) if keep_prob > 0.0 else x * keep

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob}"
