"""The channel-preserving units that YOLO blocks are composed of, built from the module table.

A *unit* maps (B, c, H, W) -> (B, c, H, W) and owns its residual: it is what replaces a
``Bottleneck`` inside C2f / C3k2 / RepNCSPELAN4. ``psa_block`` builds what replaces a ``PSABlock``
inside C2PSA and YOLOv10's PSA (and an ``ABlock`` inside YOLO12's A2C2f): the module's attention
(without a residual of its own) in place of the block's attention, with its residuals and FFN kept.

The builders of the four built-ins are named in their table rows (``modules.py``); any other module
(timm's, the user's) gets the generic ``AttentionUnit`` / ``PSAMixerBlock`` / ``AttentionLayer``.

Default hyper-parameters are chosen from the width so that nano models (hidden widths 8..128)
build and stay cheap; every one can be overridden through the block's ``options`` dict.

- MQA: 4 query heads, key/value width clamp(c/2, 16, 64) (MobileNetV4-medium uses 4 heads of 64 at
  C=160..256). The unit is MobileNetV4's MobileAttention block (BN -> MQA -> residual) without its
  1e-5 LayerScale, which would keep a from-scratch YOLO branch silent for most of a short schedule
  (Ultralytics' PSABlock uses a plain residual too).
- ACmix: 4 heads, 7x7 attention window, 3x3 conv path (the paper's defaults). The unit is a YOLO
  Bottleneck whose second conv is ACmix (+ BN + act), the community C2f_ACmix slot.
- MLLA: head width 32 as in the MLLA configs (so c/32 heads, at least 1), MLP ratio 4.
- iRMB: the EMO defaults with a head width that divides nano widths (see ``iRMB``).
"""

from __future__ import annotations

import torch
import torch.nn as nn
from ultralytics.nn.modules import Conv
from ultralytics.nn.modules.block import PSABlock

from .. import modules
from ..attention import ACmix, MLLABlock, MobileMQA, iRMB
from ..attention.mqa import compat_batch_norm


def mqa_key_dim(c: int) -> int:
    return int(min(64, max(16, c // 2)))


class MQABlock(nn.Module):
    """MobileNetV4's MobileAttention block (multi-query variant): ``x + MQA(BN(x))``, (B, c1, H, W) ->
    (B, c2, H, W).

    With ``c1 != c2`` the output projection maps to c2 and there is no residual. ``compat="tf"``
    makes the MQA the official TF layer (see ``MobileMQA``) and the input BatchNorm Keras' (epsilon
    1e-3, momentum 0.99), as in tensorflow/models' ``MultiHeadSelfAttentionBlock``.

    Args:
        c1, c2: input and output channels (c2 defaults to c1).
        kv_stride, num_heads, compat: as in ``MobileMQA`` (4 heads here: nano widths).
        key_dim: per-head query/key width; None gives clamp(c1 / 2, 16, 64).
        value_dim: per-head value width; None gives key_dim.
    """

    def __init__(self, c1: int, c2: int | None = None, kv_stride: int = 1, num_heads: int = 4,
                 key_dim: int | None = None, value_dim: int | None = None, compat: str = "timm"):
        super().__init__()
        c2 = c1 if c2 is None else c2
        key_dim = key_dim or mqa_key_dim(c1)
        self.norm = compat_batch_norm(c1, compat)  # "TF" too: the convention is checked in one place
        self.attn = MobileMQA(c1, c2, num_heads=num_heads, key_dim=key_dim, value_dim=value_dim or key_dim,
                              kv_stride=kv_stride, compat=compat)
        self.add = c1 == c2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.attn(self.norm(x))
        return x + y if self.add else y


class ACmixBottleneck(nn.Module):
    """A YOLO Bottleneck whose second 3x3 conv is ACmix followed by BN and the default activation."""

    def __init__(self, c: int, shortcut: bool = True, head: int = 4, kernel_att: int = 7):
        super().__init__()
        self.cv1 = Conv(c, c, 3, 1)
        self.attn = ACmix(c, c, kernel_att=kernel_att, head=head)
        self.bn = nn.BatchNorm2d(c)
        self.act = Conv.default_act
        self.add = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.bn(self.attn(self.cv1(x))))
        return x + y if self.add else y


class PSAMixerBlock(PSABlock):
    """Ultralytics' PSABlock (x + attn(x), then x + ffn(x)) with an attention module as ``attn``.

    The FFN is ``Conv(c, c * mlp_ratio, 1) -> Conv(c * mlp_ratio, c, 1, act=False)``: PSABlock's is 2x,
    YOLO12's ABlock takes the A2C2f row's ``mlp_ratio``.
    """

    def __init__(self, attn: nn.Module, c: int, mlp_ratio: float = 2.0):
        nn.Module.__init__(self)
        self.attn = attn
        hidden = int(c * mlp_ratio)
        self.ffn = nn.Sequential(Conv(c, hidden, 1), Conv(hidden, c, 1, act=False))
        self.add = True


def psa_block(module: str, c: int, options: dict | None = None, mlp_ratio: float = 2.0) -> nn.Module:
    """What replaces a PSABlock (or YOLO12's ABlock): the module's attention inside the block's
    residuals and FFN, (B, c, H, W) -> (B, c, H, W).

    The table's ``psa`` builder when the module has one (MLLA's block already is "attention + FFN,
    each with a residual", so it replaces the PSABlock whole, as community C2PSA_MLLA does, and keeps
    its own MLP), else ``PSAMixerBlock(M(c))``. ``mlp_ratio`` is the host's FFN width (PSABlock 2.0,
    ABlock the A2C2f row's); a builder's ``PSAMixerBlock`` gets that FFN too.
    """
    spec = modules.get(module)
    if spec.psa is None:
        return PSAMixerBlock(build_attention(spec, c, c, **dict(options or {})), c, mlp_ratio)
    block = modules.resolve(spec.psa, spec)(c, **dict(options or {}))
    if isinstance(block, PSAMixerBlock) and mlp_ratio != 2.0:
        hidden = int(c * mlp_ratio)
        block.ffn = nn.Sequential(Conv(c, hidden, 1), Conv(hidden, c, 1, act=False))
    return block


def unit(module: str, c: int, shortcut: bool = True, options: dict | None = None) -> nn.Module:
    """The residual unit of `module` at width c, (B, c, H, W) -> (B, c, H, W) (replaces a Bottleneck).

    The table's ``unit``: a builder, ``"bottleneck"`` (``AttentionBottleneck``) or ``"residual"``
    (``AttentionUnit``).
    """
    spec = modules.get(module)
    if spec.unit == "residual":
        return AttentionUnit(build_attention(spec, c, c, **dict(options or {})), shortcut)
    if spec.unit == "bottleneck":
        return AttentionBottleneck(build_attention(spec, c, c, **dict(options or {})), c, shortcut)
    return modules.resolve(spec.unit, spec)(c, shortcut, **dict(options or {}))


def build_attention(spec: modules.AttentionModule, c1: int, c2: int | None = None, *args, **options) -> nn.Module:
    """``M(c1, c2, *args, **options)``, or ``M(c1, ...)`` for a channel-only module (which needs c2 == c1).

    Raises:
        ValueError: a channel-only module asked to change the channel count.
    """
    cls = spec.cls()
    if spec.channels == "c1_c2":
        return cls(c1, c1 if c2 is None else c2, *args, **options)
    if c2 not in (None, c1):
        raise ValueError(f"attention module {spec.name} keeps the channel count, but the row asks for {c1} -> {c2} "
                         "channels; give the row the input's width (e.g. SPPF's) or add a Conv after it")
    return cls(c1, *args, **options)


class AttentionUnit(nn.Module):
    """A module without a residual of its own as a Bottleneck replacement: ``x + attn(x)`` (``attn(x)``
    without shortcut). (B, c, H, W) -> (B, c, H, W)."""

    def __init__(self, attn: nn.Module, shortcut: bool = True):
        super().__init__()
        self.attn = attn
        self.add = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.attn(x)
        return x + y if self.add else y


class AttentionBottleneck(nn.Module):
    """C2f's Bottleneck (two 3x3 Convs, e=1.0) with the module after its convs, before the residual:
    ``x + attn(cv2(cv1(x)))``, the fork's ``Bottleneck_CBAM`` slot. (B, c, H, W) -> (B, c, H, W)."""

    def __init__(self, attn: nn.Module, c: int, shortcut: bool = True):
        super().__init__()
        self.cv1 = Conv(c, c, 3, 1)
        self.cv2 = Conv(c, c, 3, 1)
        self.attn = attn
        self.add = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.attn(self.cv2(self.cv1(x)))
        return x + y if self.add else y


class AttentionLayer(nn.Module):
    """The standalone YAML layer ``[-1, 1, Name, [c2, *args, {options}]]`` of a timm or plug-in module:
    the bare module, (B, c1, H, W) -> (B, c2, H, W). Subclassed per module (``families.py``)."""

    module: str = ""  # the table name, set by each subclass

    def __init__(self, c1: int, c2: int | None = None, *args, **options):
        super().__init__()
        self.attn = build_attention(modules.get(self.module), c1, c2, *args, **options)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attn(x)


# --------------------------------------------------------------------------- builders of the built-ins
def mqa_unit(c: int, shortcut: bool = True, **options) -> MQABlock:
    """MobileNetV4's block at width c (its own residual; ``shortcut`` is the C2f flag it ignores, as before)."""
    return MQABlock(c, c, **options)


def mqa_psa(c: int, **options) -> PSAMixerBlock:
    """Bare Mobile MQA in PSABlock's residual: 4 heads, key/value width clamp(c/2, 16, 64)."""
    options.setdefault("key_dim", mqa_key_dim(c))
    options.setdefault("value_dim", options["key_dim"])
    return PSAMixerBlock(MobileMQA(c, c, **{"num_heads": 4, **options}), c)


def mlla_unit(c: int, shortcut: bool = True, **options) -> MLLABlock:
    """MLLA's block (attention + MLP, each with a residual)."""
    return MLLABlock(c, c, **options)


def mlla_psa(c: int, **options) -> MLLABlock:
    """MLLA's block replaces the PSABlock whole."""
    return MLLABlock(c, c, **options)


def irmb_unit(c: int, shortcut: bool = True, **options) -> iRMB:
    """iRMB with its own skip."""
    return iRMB(c, c, **options)


def irmb_psa(c: int, **options) -> PSAMixerBlock:
    """iRMB without its skip inside PSABlock's residual."""
    return PSAMixerBlock(iRMB(c, c, **{"has_skip": False, **options}), c)
