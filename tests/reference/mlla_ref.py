"""Reference MLLA: a plain port of the official LeapLabTHU/MLLA `models/mlla.py` (slow, obvious).

Han et al., "Demystify Mamba in Vision: A Linear Attention Perspective", NeurIPS 2024, arXiv 2405.16605.

Official op order and math, token layout (B, L, C), complex-number RoPE buffer built for one
(H, W) at construction. Deviations, each needed to use it as a reference:
- LinearAttention reshapes with the block's true (H, W) instead of h = w = int(sqrt(N)) (the
  official square-only shortcut, LeapLabTHU/MLLA#22), as the official detection backbone does.
- RoPE keeps float64 inputs in float64 (official always casts to float32), so the port can run in
  double precision.
- `ReferenceImage` wraps a block or attention for (B, C, H, W) maps and rebuilds the official RoPE
  module for each new input resolution (what constructing the official module at that size does).
Shares no code with src/.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from timm.layers import DropPath


class Mlp(nn.Module):
    def __init__(self, in_features, hidden_features=None, out_features=None, act_layer=nn.GELU, drop=0.0):
        super().__init__()
        out_features = out_features or in_features
        hidden_features = hidden_features or in_features
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = act_layer()
        self.fc2 = nn.Linear(hidden_features, out_features)
        self.drop = nn.Dropout(drop)

    def forward(self, x):
        x = self.fc1(x)
        x = self.act(x)
        x = self.drop(x)
        x = self.fc2(x)
        x = self.drop(x)
        return x


class RoPE(nn.Module):
    """Official RoPE: `rotations` (H, W, C/2, 2) = (cos, sin) of [i * theta_k, j * theta_k]."""

    def __init__(self, shape, base=10000):
        super().__init__()
        channel_dims, feature_dim = shape[:-1], shape[-1]
        k_max = feature_dim // (2 * len(channel_dims))
        assert feature_dim % k_max == 0

        theta_ks = 1 / (base ** (torch.arange(k_max) / k_max))
        grids = torch.meshgrid([torch.arange(d) for d in channel_dims], indexing="ij")
        angles = torch.cat([t.unsqueeze(-1) * theta_ks for t in grids], dim=-1)
        rotations_re = torch.cos(angles).unsqueeze(dim=-1)
        rotations_im = torch.sin(angles).unsqueeze(dim=-1)
        rotations = torch.cat([rotations_re, rotations_im], dim=-1)
        self.register_buffer("rotations", rotations)

    def forward(self, x):
        if x.dtype not in (torch.float32, torch.float64):  # official: anything but float32 -> float32
            x = x.to(torch.float32)
        x = torch.view_as_complex(x.reshape(*x.shape[:-1], -1, 2))
        pe_x = torch.view_as_complex(self.rotations) * x
        return torch.view_as_real(pe_x).flatten(-2)


class LinearAttention(nn.Module):
    def __init__(self, dim, input_resolution, num_heads, qkv_bias=True):
        super().__init__()
        self.dim = dim
        self.input_resolution = input_resolution
        self.num_heads = num_heads
        self.qk = nn.Linear(dim, dim * 2, bias=qkv_bias)
        self.elu = nn.ELU()
        self.lepe = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.rope = RoPE(shape=(input_resolution[0], input_resolution[1], dim))

    def forward(self, x):
        b, n, c = x.shape
        h, w = self.input_resolution  # official: h = w = int(n ** 0.5)
        num_heads = self.num_heads
        head_dim = c // num_heads

        qk = self.qk(x).reshape(b, n, 2, c).permute(2, 0, 1, 3)
        q, k, v = qk[0], qk[1], x

        q = self.elu(q) + 1.0
        k = self.elu(k) + 1.0
        q_rope = self.rope(q.reshape(b, h, w, c)).reshape(b, n, num_heads, head_dim).permute(0, 2, 1, 3)
        k_rope = self.rope(k.reshape(b, h, w, c)).reshape(b, n, num_heads, head_dim).permute(0, 2, 1, 3)
        q = q.reshape(b, n, num_heads, head_dim).permute(0, 2, 1, 3)
        k = k.reshape(b, n, num_heads, head_dim).permute(0, 2, 1, 3)
        v = v.reshape(b, n, num_heads, head_dim).permute(0, 2, 1, 3)

        z = 1 / (q @ k.mean(dim=-2, keepdim=True).transpose(-2, -1) + 1e-6)
        kv = (k_rope.transpose(-2, -1) * (n**-0.5)) @ (v * (n**-0.5))
        x = q_rope @ kv * z

        x = x.transpose(1, 2).reshape(b, n, c)
        v = v.transpose(1, 2).reshape(b, h, w, c).permute(0, 3, 1, 2)
        x = x + self.lepe(v).permute(0, 2, 3, 1).reshape(b, n, c)
        return x


class MLLABlock(nn.Module):
    def __init__(self, dim, input_resolution, num_heads, mlp_ratio=4.0, qkv_bias=True, drop=0.0,
                 drop_path=0.0, act_layer=nn.GELU, norm_layer=nn.LayerNorm):
        super().__init__()
        self.dim = dim
        self.input_resolution = input_resolution
        self.num_heads = num_heads
        self.mlp_ratio = mlp_ratio

        self.cpe1 = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.norm1 = norm_layer(dim)
        self.in_proj = nn.Linear(dim, dim)
        self.act_proj = nn.Linear(dim, dim)
        self.dwc = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.act = nn.SiLU()
        self.attn = LinearAttention(dim=dim, input_resolution=input_resolution, num_heads=num_heads,
                                    qkv_bias=qkv_bias)
        self.out_proj = nn.Linear(dim, dim)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()

        self.cpe2 = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.norm2 = norm_layer(dim)
        self.mlp = Mlp(in_features=dim, hidden_features=int(dim * mlp_ratio), act_layer=act_layer, drop=drop)

    def forward(self, x):
        H, W = self.input_resolution
        B, L, C = x.shape
        assert L == H * W, "input feature has wrong size"

        x = x + self.cpe1(x.reshape(B, H, W, C).permute(0, 3, 1, 2)).flatten(2).permute(0, 2, 1)
        shortcut = x

        x = self.norm1(x)
        act_res = self.act(self.act_proj(x))
        x = self.in_proj(x).view(B, H, W, C)
        x = self.act(self.dwc(x.permute(0, 3, 1, 2))).permute(0, 2, 3, 1).view(B, L, C)

        x = self.attn(x)

        x = self.out_proj(x * act_res)
        x = shortcut + self.drop_path(x)
        x = x + self.cpe2(x.reshape(B, H, W, C).permute(0, 3, 1, 2)).flatten(2).permute(0, 2, 1)

        x = x + self.drop_path(self.mlp(self.norm2(x)))
        return x


class ReferenceImage(nn.Module):
    """(B, C, H, W) wrapper: tokens = flatten(2).transpose(1, 2), official module, back to image.

    The official RoPE is rebuilt whenever the input resolution changes; `proj` is the efficient
    module's optional 1x1 output conv (c2 != c1).
    """

    def __init__(self, module: nn.Module, proj: nn.Module | None = None):
        super().__init__()
        self.module = module
        self.proj = proj

    def forward(self, x):
        b, c, h, w = x.shape
        self.set_resolution(h, w)
        out = self.module(x.flatten(2).transpose(1, 2))
        out = out.transpose(1, 2).reshape(b, c, h, w)
        return out if self.proj is None else self.proj(out)

    def set_resolution(self, h, w):
        attn = self.module.attn if isinstance(self.module, MLLABlock) else self.module
        if tuple(attn.input_resolution) == (h, w):
            return
        self.module.input_resolution = (h, w)
        attn.input_resolution = (h, w)
        buffer = attn.rope.rotations
        attn.rope = RoPE(shape=(h, w, attn.dim)).to(device=buffer.device, dtype=buffer.dtype)


def reference_from(module: nn.Module, resolution: tuple[int, int] = (8, 8)) -> ReferenceImage:
    """Official-port reference for an efficient `MLLABlock` or `LinearAttention`, same weights.

    `resolution` is the (H, W) the official module is built for; `ReferenceImage` rebuilds its RoPE
    for any other input size, so the argument only matters for `reference.module.state_dict()`.
    """
    params = next(module.parameters())
    is_block = hasattr(module, "attn")
    attn = module.attn if is_block else module
    dim, heads = attn.qk.in_features, attn.num_heads
    qkv_bias = attn.qk.bias is not None
    if is_block:
        drop_path = getattr(module.drop_path, "drop_prob", 0.0)
        ratio = module.mlp.fc1.out_features / dim
        official = MLLABlock(dim, tuple(resolution), heads, mlp_ratio=ratio, qkv_bias=qkv_bias,
                             drop_path=drop_path)
    else:
        official = LinearAttention(dim, tuple(resolution), heads, qkv_bias=qkv_bias)
    official.to(device=params.device, dtype=params.dtype)

    state = module.state_dict()
    proj = None
    if "proj.weight" in state:
        proj = nn.Conv2d(dim, state["proj.weight"].shape[0], 1, bias=False)
        proj.load_state_dict({"weight": state.pop("proj.weight")})
        proj.to(device=params.device, dtype=params.dtype)
    rope_key = "attn.rope.rotations" if is_block else "rope.rotations"
    missing, unexpected = official.load_state_dict(state, strict=False)
    assert missing == [rope_key] and not unexpected, (missing, unexpected)
    return ReferenceImage(official, proj).train(module.training)
