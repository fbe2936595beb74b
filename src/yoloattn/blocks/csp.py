"""CSP blocks with attention: C2f_* (YOLOv8), C3k2_* and C2PSA_* (YOLO11), one factory per family.

Each family keeps Ultralytics' skeleton and its ``forward`` (the blocks subclass the stock class, so
the exporter's ``forward_split`` and ``fuse()`` of the inner ``Conv`` layers keep working) and only
swaps what runs inside:

- ``C2f_M(c1, c2, n=1, shortcut=False, g=1, e=0.5, *, options=None)``: the n Bottlenecks become n
  units of M.
- ``C3k2_M``: the installed Ultralytics' ``C3k2`` signature, then ``options``. Ultralytics 8.4:
  ``(c1, c2, n=1, c3k=False, e=0.5, attn=False, g=1, shortcut=True, *, options=None)``; 8.3 has no
  ``attn`` (``(c1, c2, n, c3k, e, g, shortcut)``). The n Bottlenecks (or, with c3k, the Bottlenecks
  inside each C3k) become units of M; with 8.4's ``attn=True`` (YOLO26's last neck block) each inner
  block is stock's ``Bottleneck + PSABlock`` with the Bottleneck as an M unit and the stock
  PSABlock kept, so every stock argument means what it means in ``C3k2``.
- ``C2PSA_M(c1, c2, n=1, e=0.5, *, options=None)``: inside each PSABlock the attention becomes M;
  the FFN and both residuals stay (MLLA's block, which has exactly those parts, replaces it whole).

``options`` is a dict of the module's own hyper-parameters (see ``units.py``), written in a YAML row
as a trailing flow mapping after the stock arguments, e.g. ``[-1, 2, C3k2_MQA, [512, True, {kv_stride: 2}]]``.
It is keyword-only, so the stock positional arguments keep their places in either Ultralytics order.
The built-in modules' classes are created here with stable names and module paths, because
checkpoints pickle them; the factories also make the blocks of timm's and plug-in modules
(``families.py``).
"""

from __future__ import annotations

import inspect

import torch.nn as nn
from ultralytics.nn.modules import C2f, C2PSA, C3k2, Conv
from ultralytics.nn.modules.block import C3k, PSABlock

from .named import builtin_blocks, named_block
from .units import psa_block, unit


def _init_skeleton(block: nn.Module, c1: int, c2: int, hidden: int, n: int) -> None:
    """cv1/cv2 of a C2f-style split block; built here so no throwaway Bottlenecks are constructed."""
    nn.Module.__init__(block)
    block.c = hidden
    block.cv1 = Conv(c1, 2 * hidden, 1, 1)
    block.cv2 = Conv((2 + n) * hidden, c2, 1)


def c2f_family(module: str, bases: tuple = (), home: str = __name__) -> type:
    def __init__(self, c1: int, c2: int, n: int = 1, shortcut: bool = False, g: int = 1, e: float = 0.5, *,
                 options: dict | None = None):
        _init_skeleton(self, c1, c2, int(c2 * e), n)
        self.m = nn.ModuleList(unit(module, self.c, shortcut, options) for _ in range(n))

    return named_block(f"C2f_{module}", (*bases, C2f), {"__init__": __init__},
                       f"C2f with its Bottlenecks replaced by {module} units.", home)


class _C3kUnits(C3k):
    """C3k whose Bottlenecks are attention units (used by C3k2_* with c3k=True)."""

    def __init__(self, module: str, c: int, n: int = 2, shortcut: bool = True, e: float = 0.5,
                 options: dict | None = None):
        nn.Module.__init__(self)
        hidden = int(c * e)
        self.cv1 = Conv(c, hidden, 1, 1)
        self.cv2 = Conv(c, hidden, 1, 1)
        self.cv3 = Conv(2 * hidden, c, 1)
        self.m = nn.Sequential(*(unit(module, hidden, shortcut, options) for _ in range(n)))


#: Ultralytics 8.4 inserted ``attn`` (a PSABlock after each Bottleneck) before ``g`` in C3k2's arguments.
C3K2_TAKES_ATTN = "attn" in inspect.signature(C3k2.__init__).parameters


def _init_c3k2(block: nn.Module, module: str, c1: int, c2: int, n: int, c3k: bool, e: float, attn: bool,
               shortcut: bool, options: dict | None) -> None:
    _init_skeleton(block, c1, c2, int(c2 * e), n)

    def inner() -> nn.Module:
        if attn:  # stock: Bottleneck then PSABlock; the Bottleneck becomes the unit, the PSABlock stays stock
            return nn.Sequential(unit(module, block.c, shortcut, options),
                                 PSABlock(block.c, attn_ratio=0.5, num_heads=max(block.c // 64, 1)))
        if c3k:
            return _C3kUnits(module, block.c, 2, shortcut, options=options)
        return unit(module, block.c, shortcut, options)

    block.m = nn.ModuleList(inner() for _ in range(n))


def c3k2_family(module: str, bases: tuple = (), home: str = __name__) -> type:
    if C3K2_TAKES_ATTN:
        def __init__(self, c1: int, c2: int, n: int = 1, c3k: bool = False, e: float = 0.5, attn: bool = False,
                     g: int = 1, shortcut: bool = True, *, options: dict | None = None):
            _init_c3k2(self, module, c1, c2, n, c3k, e, attn, shortcut, options)
    else:
        def __init__(self, c1: int, c2: int, n: int = 1, c3k: bool = False, e: float = 0.5, g: int = 1,
                     shortcut: bool = True, *, options: dict | None = None):
            _init_c3k2(self, module, c1, c2, n, c3k, e, False, shortcut, options)

    return named_block(f"C3k2_{module}", (*bases, C3k2), {"__init__": __init__},
                       f"C3k2 with its inner blocks built from {module} units.", home)


def c2psa_family(module: str, bases: tuple = (), home: str = __name__) -> type:
    def __init__(self, c1: int, c2: int, n: int = 1, e: float = 0.5, *, options: dict | None = None):
        init_psa_skeleton(self, f"C2PSA_{module}", c1, c2, e)
        self.m = nn.Sequential(*(psa_block(module, self.c, options) for _ in range(n)))

    return named_block(f"C2PSA_{module}", (*bases, C2PSA), {"__init__": __init__},
                       f"C2PSA whose PSABlock attention is {module}; the FFN and residuals stay.", home)


def init_psa_skeleton(block: nn.Module, name: str, c1: int, c2: int, e: float) -> None:
    """cv1 (c1 -> 2c) and cv2 (2c -> c1), c = c1 * e, of C2PSA and YOLOv10's PSA, which keep the channel
    count: ValueError naming the block when c1 != c2."""
    if c1 != c2:
        raise ValueError(f"{name} keeps the channel count (c1 == c2), got c1={c1}, c2={c2}")
    nn.Module.__init__(block)
    block.c = int(c1 * e)
    block.cv1 = Conv(c1, 2 * block.c, 1, 1)
    block.cv2 = Conv(2 * block.c, c1, 1)


# The built-in modules' blocks are module attributes here (C2f_MQA, C3k2_iRMB, C2PSA_MLLA, ...):
# checkpoints pickle them by this path, which therefore never changes. Other modules' blocks are
# made at registration (families.py).
_BLOCKS = builtin_blocks(c2f_family, c3k2_family, c2psa_family)
globals().update(_BLOCKS)
__all__ = list(_BLOCKS)
