"""The channel-preserving units that YOLO blocks are composed of, one per attention module.

A *unit* maps (B, c, H, W) -> (B, c, H, W) and owns its residual: it is what replaces a
``Bottleneck`` inside C2f / C3k2 / RepNCSPELAN4. ``psa_block`` builds what replaces a ``PSABlock``
inside C2PSA: the module's attention (without a residual of its own) in place of PSABlock's
``Attention``, with PSABlock's residuals and FFN kept.

Default hyper-parameters are chosen from the width so that nano models (hidden widths 8..128)
build and stay cheap; every one can be overridden through the block's ``attn`` dict.

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

from ..attention import ACmix, MLLABlock, MobileMQA, iRMB
from ..attention.tf_compat import keras_batch_norm


def mqa_key_dim(c: int) -> int:
    return int(min(64, max(16, c // 2)))


class MQABlock(nn.Module):
    """MobileNetV4's MobileAttention block (multi-query variant): ``x + MQA(BN(x))``, (B, c1, H, W) ->
    (B, c2, H, W).

    With ``c1 != c2`` the output projection maps to c2 and there is no residual. ``compat="tf"``
    makes the MQA the official TF layer (see ``MobileMQA``) and the input BatchNorm Keras' (epsilon
    1e-3, momentum 0.99), as in tensorflow/models' ``MultiHeadSelfAttentionBlock``.
    """

    def __init__(self, c1: int, c2: int | None = None, kv_stride: int = 1, num_heads: int = 4,
                 key_dim: int | None = None, value_dim: int | None = None, compat: str = "timm"):
        super().__init__()
        c2 = c1 if c2 is None else c2
        key_dim = key_dim or mqa_key_dim(c1)
        self.norm = keras_batch_norm(c1) if compat == "tf" else nn.BatchNorm2d(c1)
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


def unit(module: str, c: int, shortcut: bool = True, attn: dict | None = None) -> nn.Module:
    """The residual unit of `module` at width c (replaces a Bottleneck)."""
    kw = dict(attn or {})
    if module == "MQA":
        return MQABlock(c, c, **kw)
    if module == "ACmix":
        return ACmixBottleneck(c, shortcut, **kw)
    if module == "MLLA":
        return MLLABlock(c, c, **kw)
    if module == "iRMB":
        return iRMB(c, c, **kw)
    raise ValueError(f"unknown attention module {module!r}; expected one of {MODULES}")


class PSAMixerBlock(PSABlock):
    """Ultralytics' PSABlock (x + attn(x), then x + ffn(x)) with an attention module as ``attn``."""

    def __init__(self, attn: nn.Module, c: int):
        nn.Module.__init__(self)
        self.attn = attn
        self.ffn = nn.Sequential(Conv(c, c * 2, 1), Conv(c * 2, c, 1, act=False))
        self.add = True


def psa_block(module: str, c: int, attn: dict | None = None) -> nn.Module:
    """What replaces a PSABlock: the module's attention inside PSABlock's residuals and FFN.

    MLLA's block already is "attention + FFN, each with a residual" (the PSABlock roles), so it
    replaces the PSABlock whole, as community C2PSA_MLLA does.
    """
    kw = dict(attn or {})
    if module == "MQA":
        kw.setdefault("key_dim", mqa_key_dim(c))
        kw.setdefault("value_dim", kw["key_dim"])
        return PSAMixerBlock(MobileMQA(c, c, **{"num_heads": 4, **kw}), c)
    if module == "ACmix":
        return PSAMixerBlock(ACmix(c, c, **kw), c)
    if module == "MLLA":
        return MLLABlock(c, c, **kw)
    if module == "iRMB":
        return PSAMixerBlock(iRMB(c, c, **{"has_skip": False, **kw}), c)
    raise ValueError(f"unknown attention module {module!r}; expected one of {MODULES}")


MODULES = ("MQA", "ACmix", "MLLA", "iRMB")
