"""Reference iRMB: a literal port of the official EMO `model/emo.py` iRMB forward.

Op order as in github.com/zhangzjn/EMO (iRMB.forward, with get_norm / get_act / ConvNormAct from
`model/basic_modules.py` and timm's EfficientNet SqueezeExcite):

    x = norm(x); pad right/bottom to multiples of ws (after the norm, zeros, unmasked)
    rearrange 'b c (h1 n1) (w1 n2) -> (b n1 n2) c h1 w1'           strided ("grid") windows
    qk = conv1x1(x) -> 'b (qk heads dim_head) h w -> qk b heads (h w) dim_head'
    attn = softmax(q @ k^T * dim_head^-0.5)                          materialised
    attn_pre: v(rearranged(attn @ x))   else: attn @ rearranged(v(x))
    inverse rearrange, crop; x = x + se(conv_local(x)) if skip; proj(dropout(x)); + shortcut if skip

Deliberately explicit (einops, full attention matrices) and dtype-agnostic (float64 works). Two
departures, both mirroring documented choices of the efficient module: the depthwise padding can be
overridden (the official formula ignores dilation), and `mask_padding=True` sets the logits of
padded keys to -inf before the softmax (the official code has no such option). 'gn' is a
single-group GroupNorm because the official `get_norm('gn')(C)` cannot be constructed.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from timm.layers import DropPath
from timm.layers.activations import (
    GELU,
    HardMish,
    HardSigmoid,
    HardSwish,
    Mish,
    PReLU,
    Sigmoid,
    Swish,
    Tanh,
)
from timm.models._efficientnet_blocks import SqueezeExcite
from torch import nn

EPS = 1e-6


class LayerNorm2dRef(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.norm = nn.LayerNorm(channels, EPS)

    def forward(self, x):
        x = rearrange(x, "b c h w -> b h w c").contiguous()
        x = self.norm(x)
        return rearrange(x, "b h w c -> b c h w").contiguous()


NORMS = {
    "none": lambda c: nn.Identity(),
    "in_2d": lambda c: nn.InstanceNorm2d(c, eps=EPS),
    "bn_2d": lambda c: nn.BatchNorm2d(c, eps=EPS),
    "gn": lambda c: nn.GroupNorm(1, c, eps=EPS),
    "ln_2d": LayerNorm2dRef,
}

ACTS = {
    "none": nn.Identity,
    "sigmoid": Sigmoid,
    "swish": Swish,
    "mish": Mish,
    "hsigmoid": HardSigmoid,
    "hswish": HardSwish,
    "hmish": HardMish,
    "tanh": Tanh,
    "relu": nn.ReLU,
    "relu6": nn.ReLU6,
    "prelu": PReLU,
    "gelu": GELU,
    "silu": nn.SiLU,
}


class ConvNormActRef(nn.Module):
    def __init__(self, c1, c2, kernel_size, stride=1, dilation=1, groups=1, bias=False, norm="bn_2d", act="relu",
                 padding=None):
        super().__init__()
        padding = math.ceil((kernel_size - stride) / 2) if padding is None else padding  # official formula
        self.conv = nn.Conv2d(c1, c2, kernel_size, stride, padding, dilation, groups, bias)
        self.norm = NORMS[norm](c2)
        self.act = ACTS[act](inplace=False)

    def forward(self, x):
        return self.act(self.norm(self.conv(x)))


class IRMBReference(nn.Module):
    """The official iRMB, explicit softmax; constructor arguments as in `model/emo.py`."""

    def __init__(self, dim_in, dim_out, norm_in=True, has_skip=True, exp_ratio=1.0, norm_layer="bn_2d",
                 act_layer="relu", v_proj=True, dw_ks=3, stride=1, dilation=1, se_ratio=0.0, dim_head=64,
                 window_size=7, attn_s=True, qkv_bias=False, attn_drop=0.0, drop=0.0, drop_path=0.0,
                 v_group=False, attn_pre=False, mask_padding=False, dw_padding=None):
        super().__init__()
        self.norm = NORMS[norm_layer](dim_in) if norm_in else nn.Identity()
        dim_mid = int(dim_in * exp_ratio)
        self.has_skip = (dim_in == dim_out and stride == 1) and has_skip
        self.attn_s = attn_s
        self.mask_padding = mask_padding
        if attn_s:
            assert dim_in % dim_head == 0
            self.dim_head, self.window_size = dim_head, window_size
            self.num_head = dim_in // dim_head
            self.scale = dim_head ** -0.5
            self.attn_pre = attn_pre
            self.qk = ConvNormActRef(dim_in, dim_in * 2, 1, bias=qkv_bias, norm="none", act="none")
            self.v = ConvNormActRef(dim_in, dim_mid, 1, groups=self.num_head if v_group else 1, bias=qkv_bias,
                                    norm="none", act=act_layer)
            self.attn_drop = nn.Dropout(attn_drop)
        else:
            self.v = (ConvNormActRef(dim_in, dim_mid, 1, bias=qkv_bias, norm="none", act=act_layer)
                      if v_proj else nn.Identity())
        self.conv_local = ConvNormActRef(dim_mid, dim_mid, dw_ks, stride, dilation, groups=dim_mid, norm="bn_2d",
                                         act="silu", padding=dw_padding)
        self.se = (SqueezeExcite(dim_mid, rd_ratio=se_ratio, act_layer=ACTS[act_layer])
                   if se_ratio > 0.0 else nn.Identity())
        self.proj_drop = nn.Dropout(drop)
        self.proj = ConvNormActRef(dim_mid, dim_out, 1, norm="none", act="none")
        self.drop_path = DropPath(drop_path) if drop_path else nn.Identity()

    def forward(self, x):
        shortcut = x
        x = self.norm(x)
        B, C, H, W = x.shape
        if self.attn_s:
            if self.window_size <= 0:
                ws_w, ws_h = W, H
            else:
                ws_w, ws_h = self.window_size, self.window_size
            pad_r = (ws_w - W % ws_w) % ws_w
            pad_b = (ws_h - H % ws_h) % ws_h
            x = F.pad(x, (0, pad_r, 0, pad_b, 0, 0))
            n1, n2 = (H + pad_b) // ws_h, (W + pad_r) // ws_w
            x = rearrange(x, "b c (h1 n1) (w1 n2) -> (b n1 n2) c h1 w1", n1=n1, n2=n2).contiguous()
            b, c, h, w = x.shape
            qk = self.qk(x)
            qk = rearrange(qk, "b (qk heads dim_head) h w -> qk b heads (h w) dim_head", qk=2,
                           heads=self.num_head, dim_head=self.dim_head).contiguous()
            q, k = qk[0], qk[1]
            attn_spa = (q @ k.transpose(-2, -1)) * self.scale
            if self.mask_padding:
                valid = F.pad(torch.ones(1, 1, H, W, dtype=torch.bool, device=x.device), (0, pad_r, 0, pad_b))
                valid = rearrange(valid, "b c (h1 n1) (w1 n2) -> (b n1 n2) c (h1 w1)", n1=n1, n2=n2)
                valid = valid.repeat(B, 1, 1).unsqueeze(1)  # (B n1 n2, 1, 1, h1 w1): batch is outermost
                attn_spa = attn_spa.masked_fill(~valid, float("-inf"))
            attn_spa = attn_spa.softmax(dim=-1)
            attn_spa = self.attn_drop(attn_spa)
            if self.attn_pre:
                x = rearrange(x, "b (heads dim_head) h w -> b heads (h w) dim_head", heads=self.num_head).contiguous()
                x_spa = attn_spa @ x
                x_spa = rearrange(x_spa, "b heads (h w) dim_head -> b (heads dim_head) h w", heads=self.num_head,
                                  h=h, w=w).contiguous()
                x_spa = self.v(x_spa)
            else:
                v = self.v(x)
                v = rearrange(v, "b (heads dim_head) h w -> b heads (h w) dim_head", heads=self.num_head).contiguous()
                x_spa = attn_spa @ v
                x_spa = rearrange(x_spa, "b heads (h w) dim_head -> b (heads dim_head) h w", heads=self.num_head,
                                  h=h, w=w).contiguous()
            x = rearrange(x_spa, "(b n1 n2) c h1 w1 -> b c (h1 n1) (w1 n2)", n1=n1, n2=n2).contiguous()
            if pad_r > 0 or pad_b > 0:
                x = x[:, :, :H, :W].contiguous()
        else:
            x = self.v(x)
        x = x + self.se(self.conv_local(x)) if self.has_skip else self.se(self.conv_local(x))
        x = self.proj_drop(x)
        x = self.proj(x)
        return (shortcut + self.drop_path(x)) if self.has_skip else x


def reference_from(module: nn.Module, mask_padding: bool | None = None) -> IRMBReference:
    """An IRMBReference with exactly `module`'s hyper-parameters, weights, buffers, dtype and mode.

    `mask_padding` overrides the module's flag (to build an explicitly masked or unmasked reference).
    """
    conv = module.conv_local.conv
    v_conv = getattr(module.v, "conv", None)
    reference = IRMBReference(
        module.dim_in,
        module.dim_out,
        norm_in=not isinstance(module.norm, nn.Identity),
        has_skip=module.has_skip,
        exp_ratio=module.exp_ratio,
        norm_layer=module.norm_layer,
        act_layer=module.act_layer,
        v_proj=v_conv is not None,
        dw_ks=conv.kernel_size[0],
        stride=conv.stride[0],
        dilation=conv.dilation[0],
        se_ratio=module.se_ratio,
        dim_head=module.dim_head if module.attn_s else 64,
        window_size=module.window_size if module.attn_s else 7,
        attn_s=module.attn_s,
        qkv_bias=v_conv is not None and v_conv.bias is not None,
        attn_drop=module.attn_drop_p if module.attn_s else 0.0,
        drop=module.proj_drop.p,
        drop_path=getattr(module.drop_path, "drop_prob", 0.0),
        v_group=v_conv is not None and v_conv.groups > 1,
        attn_pre=module.attn_s and module.attn_pre,
        mask_padding=(module.attn_s and module.mask_padding) if mask_padding is None else mask_padding,
        dw_padding=conv.padding[0],
    )
    reference.load_state_dict(module.state_dict(), strict=True)
    first = next(module.parameters())
    return reference.to(device=first.device, dtype=first.dtype).train(module.training)
