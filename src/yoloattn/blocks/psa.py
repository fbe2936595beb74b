"""YOLOv10's PSA with attention: ``PSA_M(c1, c2, e=0.5, *, options=None)``.

Ultralytics' ``PSA`` (YOLOv10, Wang et al. 2024, "YOLOv10: Real-Time End-to-End Object Detection",
partial self-attention): cv1 (1x1, c1 -> 2c) split into halves a and b; b goes through
``b + Attention(b)`` then ``b + FFN(b)``; cv2 (1x1) over cat(a, b) -> c1, with c = c1 * e. It is one
PSABlock on the second half, so ``PSA_M`` puts what replaces a PSABlock inside C2PSA
(``units.psa_block``: M in place of the attention, the FFN and both residuals kept) in that place.
(B, c1, H, W) -> (B, c1, H, W); like PSA it keeps the channel count.
"""

from __future__ import annotations

import torch
from ultralytics.nn.modules.block import PSA

from .csp import init_psa_skeleton
from .named import builtin_blocks, named_block
from .units import psa_block


def psa_family(module: str, bases: tuple = (), home: str = __name__) -> type:
    def __init__(self, c1: int, c2: int, e: float = 0.5, *, options: dict | None = None):
        init_psa_skeleton(self, f"PSA_{module}", c1, c2, e)
        self.m = psa_block(module, self.c, options)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.cv1(x).split((self.c, self.c), dim=1)
        return self.cv2(torch.cat((a, self.m(b)), 1))

    return named_block(f"PSA_{module}", (*bases, PSA), {"__init__": __init__, "forward": forward},
                       f"YOLOv10 PSA whose attention is {module}; the FFN and residuals stay.", home)


# Built-in blocks as module attributes (stable pickle paths), as in csp.py.
_BLOCKS = builtin_blocks(psa_family)
globals().update(_BLOCKS)
__all__ = list(_BLOCKS)
