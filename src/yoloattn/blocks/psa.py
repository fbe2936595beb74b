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
import torch.nn as nn
from ultralytics.nn.modules import Conv
from ultralytics.nn.modules.block import PSA

from ..modules import builtin_names
from .units import psa_block


def psa_family(module: str, bases: tuple = (), home: str = __name__) -> type:
    def __init__(self, c1: int, c2: int, e: float = 0.5, *, options: dict | None = None):
        if c1 != c2:
            raise ValueError(f"PSA_{module} keeps the channel count (c1 == c2), got c1={c1}, c2={c2}")
        nn.Module.__init__(self)
        self.c = int(c1 * e)
        self.cv1 = Conv(c1, 2 * self.c, 1, 1)
        self.cv2 = Conv(2 * self.c, c1, 1)
        self.m = psa_block(module, self.c, options)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.cv1(x).split((self.c, self.c), dim=1)
        return self.cv2(torch.cat((a, self.m(b)), 1))

    name = f"PSA_{module}"
    cls = type(name, (*bases, PSA), {
        "__init__": __init__,
        "forward": forward,
        "__module__": home,
        "__doc__": f"YOLOv10 PSA whose attention is {module}; the FFN and residuals stay.",
    })
    cls.__qualname__ = name
    return cls


# Built-in blocks as module attributes (stable pickle paths), as in csp.py.
__all__ = []
for _module in builtin_names():
    _cls = psa_family(_module)
    globals()[_cls.__name__] = _cls
    __all__.append(_cls.__name__)
del _module, _cls
