"""YOLOv9 GELAN blocks with attention: RepNCSPELAN4_* and the tutorial's MMQARepNCSPELAN4.

Ultralytics' ``RepNCSPELAN4(c1, c2, c3, c4, n)``: cv1 (1x1, c1 -> c3) split in two halves;
cv2 = [RepCSP(c3/2 -> c4, n), Conv3x3(c4)]; cv3 = [RepCSP(c4 -> c4, n), Conv3x3(c4)];
cv4 = 1x1 over cat(y0, y1, cv2(y1), cv3(cv2(y1))) -> c2. Only c2 is width-scaled by parse_model.

- ``RepNCSPELAN4_M(c1, c2, c3, c4, n=1, *, options=None)``: the 3x3 Conv after RepCSP in cv2 and cv3
  becomes a residual unit of M (``units.py``).
- ``MMQARepNCSPELAN4(c1, c2, c3, c4, n=1)``: exactly the YOLOv9 tutorial: both of those 3x3 Convs
  are *replaced* by a bare Mobile MQA ``(c4, num_heads=8, key_dim=48, value_dim=48, strides 1)``
  with the correct math (``MultiQueryAttentionLayerWithDownSampling``). Quadratic in the map size:
  at yolov9c's P2/P3 this dominates the model's cost (see docs/benchmarks.md).
"""

from __future__ import annotations

import torch.nn as nn
from ultralytics.nn.modules import Conv, RepNCSPELAN4
from ultralytics.nn.modules.block import RepCSP

from ..attention import MultiQueryAttentionLayerWithDownSampling
from .named import builtin_blocks, named_block
from .units import unit


def _init_elan(block: nn.Module, c1: int, c2: int, c3: int, c4: int, n: int, make_tail) -> None:
    nn.Module.__init__(block)
    block.c = c3 // 2
    block.cv1 = Conv(c1, c3, 1, 1)
    block.cv2 = nn.Sequential(RepCSP(c3 // 2, c4, n), make_tail(c4))
    block.cv3 = nn.Sequential(RepCSP(c4, c4, n), make_tail(c4))
    block.cv4 = Conv(c3 + 2 * c4, c2, 1, 1)


def elan_family(module: str, bases: tuple = (), home: str = __name__) -> type:
    def __init__(self, c1: int, c2: int, c3: int, c4: int, n: int = 1, *, options: dict | None = None):
        _init_elan(self, c1, c2, c3, c4, n, lambda c: unit(module, c, True, options))

    return named_block(f"RepNCSPELAN4_{module}", (*bases, RepNCSPELAN4), {"__init__": __init__},
                       f"RepNCSPELAN4 with the 3x3 Conv after each RepCSP replaced by a {module} unit.", home)


class MMQARepNCSPELAN4(RepNCSPELAN4):
    """RepNCSPELAN4 with both post-RepCSP 3x3 Convs replaced by Mobile MQA(c4, 8, 48, 48), as the tutorial.

    The tutorial's MQA has no query or key/value strides, so it has no padding, pooling or BatchNorm:
    the "timm" and "tf" conventions of ``MobileMQA`` are the same function here (checked against the
    recorded TF layer, case ``plain``), and the block keeps the default.
    """

    def __init__(self, c1: int, c2: int, c3: int, c4: int, n: int = 1):
        _init_elan(self, c1, c2, c3, c4, n, lambda c: MultiQueryAttentionLayerWithDownSampling(c, 8, 48, 48, 1, 1, 1))


# Built-in blocks as module attributes (stable pickle paths), as in csp.py.
_BLOCKS = builtin_blocks(elan_family)
globals().update(_BLOCKS)
__all__ = ["MMQARepNCSPELAN4", *_BLOCKS]
