"""YOLO12's A2C2f with attention: ``A2C2f_M``, the area-attention blocks' attention replaced by M.

Ultralytics' ``A2C2f(c1, c2, n=1, a2=True, area=1, residual=False, mlp_ratio=2.0, e=0.5, g=1,
shortcut=True)`` (YOLO12, Tian et al. 2025, "YOLOv12: Attention-Centric Real-Time Object Detectors",
R-ELAN): cv1 (1x1, c1 -> c_ = c2 * e); n stages, each two ABlocks (``x + AAttn(x)``, then
``x + MLP(x)`` with hidden width c_ * mlp_ratio) when ``a2``, else a C3k; cv2 (1x1) over the
concatenation of cv1's output and every stage's -> c2; with ``residual``, ``x + gamma * out``
(gamma a learnable per-channel scale, initialised 0.01).

``A2C2f_M`` keeps that skeleton, its ``forward`` and the residual scaling, and builds each ABlock
as ``units.psa_block(M, c_, mlp_ratio)``: M in place of AAttn, the MLP (with ABlock's truncated
normal initialisation) and both residuals kept. ``area`` (AAttn's split of the map into areas) has
no meaning for M and is ignored; Ultralytics' scale rule (l/x: ``residual=True, mlp_ratio=1.2``)
applies exactly as to stock rows. Only blocks with attention take M: ``a2=False`` raises ValueError.
(B, c1, H, W) -> (B, c2, H, W).
"""

from __future__ import annotations

import torch
import torch.nn as nn
from ultralytics.nn.modules import Conv
from ultralytics.nn.modules.block import A2C2f, ABlock

from .named import builtin_blocks, named_block
from .units import PSAMixerBlock, psa_block


def _area_block(module: str, c: int, mlp_ratio: float, options: dict | None) -> nn.Module:
    block = psa_block(module, c, options, mlp_ratio=mlp_ratio)
    if isinstance(block, PSAMixerBlock):
        block.ffn.apply(ABlock._init_weights)  # ABlock's MLP initialisation; M keeps its own
    return block


def a2c2f_family(module: str, bases: tuple = (), home: str = __name__) -> type:
    def __init__(self, c1: int, c2: int, n: int = 1, a2: bool = True, area: int = 1, residual: bool = False,
                 mlp_ratio: float = 2.0, e: float = 0.5, g: int = 1, shortcut: bool = True, *,
                 options: dict | None = None):
        if not a2:
            raise ValueError(f"A2C2f_{module} replaces area attention, but this row has a2=False (C3k stages, no "
                             "attention): keep it as A2C2f")
        nn.Module.__init__(self)
        hidden = int(c2 * e)
        self.cv1 = Conv(c1, hidden, 1, 1)
        self.cv2 = Conv((1 + n) * hidden, c2, 1)
        self.gamma = nn.Parameter(0.01 * torch.ones(c2), requires_grad=True) if residual else None
        self.m = nn.ModuleList(
            nn.Sequential(*(_area_block(module, hidden, mlp_ratio, options) for _ in range(2))) for _ in range(n)
        )

    return named_block(f"A2C2f_{module}", (*bases, A2C2f), {"__init__": __init__},
                       f"YOLO12 A2C2f whose area attention is {module}; the MLPs, residuals and gamma stay.", home)


# Built-in blocks as module attributes (stable pickle paths), as in csp.py.
_BLOCKS = builtin_blocks(a2c2f_family)
globals().update(_BLOCKS)
__all__ = list(_BLOCKS)
