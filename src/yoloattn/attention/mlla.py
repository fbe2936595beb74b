"""MLLA: Mamba-Like Linear Attention block for (B, C, H, W) feature maps.

Paper: Han et al., "Demystify Mamba in Vision: A Linear Attention Perspective", NeurIPS 2024,
arXiv 2405.16605. Official code: LeapLabTHU/MLLA, `models/mlla.py` (classification, fixed
resolution, complex RoPE) and `downstream/*/backbones/mlla.py` (any resolution, real RoPE).

Linear attention, per head, over the N = H*W tokens of the map (v is the input itself, the block's
in_proj plays the role of the value projection), with the kernel phi(t) = elu(t) + 1 > 0 and the
2-D rotary embedding R_p of position p:

    attn_p = sum_n <R_p phi(q_p), R_n phi(k_n)> v_n / (N * (phi(q_p) . mean_n phi(k_n) + 1e-6))
             + LePE(v)_p

computed in O(N d^2) as (R phi(q))_p [sum_n (R phi(k))_n v_n^T / N] z_p with the un-rotated
z_p = 1 / (phi(q_p) . mean_n phi(k_n) + 1e-6): RoPE enters the numerator only. LePE is a depthwise
3x3 conv of v in image layout.

2-D RoPE for C channels at row i, column j: channel pair (2m, 2m+1), read as the complex number
x_2m + i x_2m+1, is multiplied by exp(i * a_m) with a_m = i * theta_m for m < C/4 (channels
0..C/2-1 follow the row) and a_m = j * theta_(m - C/4) for m >= C/4 (channels C/2..C-1 follow
the column), theta_m = 10000^(-m / (C/4)). Hence <R_p q, R_n k> depends on p - n only.

MLLABlock, x: (B, C, H, W) -> (B, c2, H, W):

    x = x + cpe1(x)                                      depthwise 3x3
    t = LN(x);  gate = SiLU(act_proj(t));  u = SiLU(dwc(in_proj(t)))
    x = x + drop_path(out_proj(attn(u) * gate))
    x = x + cpe2(x)                                      depthwise 3x3
    x = x + drop_path(fc2(GELU(fc1(LN(x)))))             fc1: C -> mlp_ratio * C
    x = proj(x)                                          1x1 conv, only when c2 != c1

Implementation notes. Tokens live in one contiguous (B, H, W, C) tensor; its (B, C, H, W) view is
channels-last, so the depthwise convs run on permuted views without copies. The RoPE cos/sin tables
are computed for the actual H x W in float32 (real arithmetic, exportable to ONNX) and cached per
(H, W, device, dtype) outside the state_dict; they also carry the 1/N of the official kv as N^-1/2
on q and on k, which keeps an fp16 kv in range. Heads are channel slices of the token tensor, which
matmul reads in place (no per-head transposes).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .drop_path import DropPath

__all__ = ["LinearAttention", "MLLABlock", "apply_rope", "default_num_heads", "rope_tables"]

ROPE_BASE = 10000
HEAD_DIM = 32  # the official MLLA-T/S/B configs all use 32 channels per head
_ROPE_CACHE_SIZE = 4  # (H, W, device, dtype) entries kept per module; rect val batches vary in size


def rope_tables(
    height: int, width: int, channels: int, device: torch.device | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the 2-D RoPE tables (cos, sin), each (height, width, channels) in float32.

    `apply_rope(x, cos, sin)` rotates channel pair (2m, 2m+1) of the token at (i, j) by angle
    i * theta_m (pairs m < C/4) or j * theta_(m - C/4) (pairs m >= C/4). `sin` holds -sin on even
    and +sin on odd channels. The angles use the official float32 formula, so the tables equal the
    official `rotations` buffer bit for bit.
    """
    freqs = channels // 4
    inv_freq = 1.0 / (ROPE_BASE ** (torch.arange(freqs, device=device) / freqs))
    no_freq = torch.zeros_like(inv_freq)
    # Adding i * theta + j * 0 (or the reverse) is exact, and broadcasting keeps H and W symbolic.
    row_freq, col_freq = torch.cat([inv_freq, no_freq]), torch.cat([no_freq, inv_freq])
    rows = torch.arange(height, device=device, dtype=torch.float32)[:, None, None]
    cols = torch.arange(width, device=device, dtype=torch.float32)[None, :, None]
    angles = rows * row_freq + cols * col_freq  # (H, W, C/2)
    cos, sin = angles.cos(), angles.sin()
    return torch.stack([cos, cos], -1).flatten(-2), torch.stack([-sin, sin], -1).flatten(-2)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate channel pairs of x (..., C) with tables broadcastable to x: x * cos + swap(x) * sin.

    Two rounded products and one sum, as in the complex product, so float32 results match the
    official complex RoPE bit for bit (a fused multiply-add would not). The arithmetic runs in the
    tables' dtype (float32 for half inputs, as in the official code); the caller casts back.
    """
    x = x.to(cos.dtype)
    # Swap within each pair through a (..., C/2, 2) view and unit-step slices: stride-2 channel
    # slices (x[..., ::2]) become an ncnn Crop without the step (pnnx only warns), so the ncnn
    # export computed silently wrong attention. view, not unflatten: ONNX has unflatten from opset 13.
    pairs = x.view(*x.shape[:-1], -1, 2)
    swapped = torch.cat([pairs[..., 1:], pairs[..., :1]], -1).flatten(-2)
    if _capturing():
        # Out of place in a captured graph: once the product and its factor both reach unbind/split
        # lists, TorchScript's alias analysis says they may alias, and OpenVINO then replays the
        # in-place add backwards through the product as aten::mul_reverseprop, which it cannot convert.
        return x * cos + swapped * sin
    return (x * cos).add_(swapped * sin)


class LinearAttention(nn.Module):
    """MLLA linear attention with 2-D RoPE and LePE on (B, C, H, W) maps of any size.

    Args:
        dim: channels C; a multiple of 4 (two RoPE axes of channel pairs) and of num_heads.
        num_heads: heads; the kernelised attention is computed per group of C / num_heads channels.
        qkv_bias: bias in the q/k projection.

    Submodule names (qk, lepe) follow the official code so its weights load; the official
    `rope.rotations` buffer is fixed to one resolution and is dropped when loading.
    """

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True) -> None:
        super().__init__()
        _check_channels(dim, num_heads)
        self.dim = dim
        self.num_heads = num_heads
        self.qk = nn.Linear(dim, dim * 2, bias=qkv_bias)
        self.lepe = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        one_hot = F.one_hot(torch.arange(dim) // (dim // num_heads), num_heads).float()  # (C, heads)
        self.register_buffer("head_one_hot", one_hot, persistent=False)
        self._rope_cache: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, H, W) -> (B, C, H, W). Channels-last input (as inside MLLABlock) avoids copies."""
        b, c, h, w = x.shape
        n = h * w
        heads = self.num_heads
        tokens = x.permute(0, 2, 3, 1)  # (B, H, W, C)
        v = tokens.reshape(b, n, c)

        qk = F.elu(self.qk(tokens)).add_(1.0).view(b, n, 2, c)  # phi(q), phi(k); elu saves its input
        cos, sin = self._rope(h, w, x)  # (N, 1, C)
        qk_rot = apply_rope(qk, cos, sin).to(qk.dtype)  # R phi(.) / sqrt(N)
        q, k = qk.unbind(2)  # (B, N, C) views
        q_rot, k_rot = qk_rot.unbind(2)

        # Per head: (R q) [sum_n (R k_n) v_n^T / N], on channel-slice views (no transposed copies).
        head_dim = self.dim // heads
        heads_qkv = zip(q_rot.split(head_dim, -1), k_rot.split(head_dim, -1), v.split(head_dim, -1))
        numerator = [q_h @ (k_h.transpose(1, 2) @ v_h) for q_h, k_h, v_h in heads_qkv]
        numerator = torch.cat(numerator, -1) if heads > 1 else numerator[0]  # (B, N, C)
        k_mean = k.mean(1).unsqueeze(-1) * self.head_one_hot.to(k.dtype)  # (B, C, heads)
        z = 1.0 / (q @ k_mean + 1e-6)  # (B, N, heads), un-rotated q and k

        lepe = self.lepe(x).permute(0, 2, 3, 1).reshape(b, n, heads, head_dim)
        numerator, z = numerator.view(b, n, heads, head_dim), z.unsqueeze(-1)
        # pnnx has no aten::addcmul (it writes the op verbatim into model_pnnx.py, a syntax error).
        out = lepe + numerator * z if _capturing() else torch.addcmul(lepe, numerator, z)
        return out.view(b, h, w, c).permute(0, 3, 1, 2)

    def _rope(self, h: int, w: int, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """RoPE tables (N, 1, C) times N^-1/2, cached per (H, W, device, dtype) outside the state.

        The tables are float32 (float64 for float64 inputs, so the scale adds no float32 rounding).
        """
        dtype = torch.promote_types(x.dtype, torch.float32)
        if _capturing():
            return self._scaled_rope_tables(h, w, x.device, dtype)  # built from the traced sizes
        key = (h, w, x.device, dtype)
        if key not in self._rope_cache:
            if len(self._rope_cache) >= _ROPE_CACHE_SIZE:
                self._rope_cache.pop(next(iter(self._rope_cache)))
            # Tables made under inference_mode (validation) must stay usable in a later training step.
            with torch.inference_mode(False), torch.no_grad():
                self._rope_cache[key] = self._scaled_rope_tables(h, w, x.device, dtype)
        return self._rope_cache[key]

    def _scaled_rope_tables(
        self, h: int, w: int, device: torch.device, dtype: torch.dtype
    ) -> tuple[torch.Tensor, torch.Tensor]:
        cos, sin = rope_tables(h, w, self.dim, device)
        scale = (h * w) ** -0.5
        return (cos.to(dtype) * scale).view(-1, 1, self.dim), (sin.to(dtype) * scale).view(-1, 1, self.dim)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        state_dict.pop(prefix + "rope.rotations", None)  # official fixed-resolution RoPE buffer
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_rope_cache"] = {}  # keep pickled checkpoints free of size- and device-bound tables
        return state

    def extra_repr(self) -> str:
        return f"dim={self.dim}, num_heads={self.num_heads}"


class MLLABlock(nn.Module):
    """MLLA block (cpe, gated linear attention, cpe, MLP) on (B, c1, H, W) -> (B, c2, H, W).

    Args:
        c1: input channels; a multiple of 4 and of num_heads.
        c2: output channels. None or c1 keeps c1; any other value adds a bias-free 1x1 conv `proj`
            after the block (not in the official block, which keeps its width).
        num_heads: attention heads. None gives head_dim 32 as in the official configs, i.e.
            max(c1 // 32, 1) heads; when that does not divide c1 (e.g. c1 = 104), the largest
            divisor of c1 below it is used instead.
        mlp_ratio: MLP hidden width = int(c1 * mlp_ratio).
        qkv_bias: bias in the attention q/k projection.
        drop_path: stochastic-depth rate on both residual branches.

    Submodule names follow the official `MLLABlock`, so official weights load (strict) through
    `load_state_dict`. Linear layers use trunc_normal(std 0.02) weights and zero biases (official).
    """

    def __init__(
        self,
        c1: int,
        c2: int | None = None,
        num_heads: int | None = None,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        if num_heads is None:
            num_heads = default_num_heads(c1)
        _check_channels(c1, num_heads)
        if mlp_ratio <= 0:
            raise ValueError(f"MLLABlock: mlp_ratio must be > 0, got {mlp_ratio}.")
        if not 0.0 <= drop_path < 1.0:
            raise ValueError(f"MLLABlock: drop_path must be in [0, 1), got {drop_path}.")
        c2 = c1 if c2 is None else c2
        if c2 <= 0:
            raise ValueError(f"MLLABlock: c2 must be a positive channel count (or None for c1), got {c2}.")
        self.c1, self.c2 = c1, c2
        self.num_heads = num_heads
        self.mlp_ratio = mlp_ratio

        self.cpe1 = nn.Conv2d(c1, c1, 3, padding=1, groups=c1)
        self.norm1 = nn.LayerNorm(c1)
        self.in_proj = nn.Linear(c1, c1)
        self.act_proj = nn.Linear(c1, c1)
        self.dwc = nn.Conv2d(c1, c1, 3, padding=1, groups=c1)
        self.attn = LinearAttention(c1, num_heads, qkv_bias=qkv_bias)
        self.out_proj = nn.Linear(c1, c1)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.cpe2 = nn.Conv2d(c1, c1, 3, padding=1, groups=c1)
        self.norm2 = nn.LayerNorm(c1)
        self.mlp = Mlp(c1, int(c1 * mlp_ratio))
        self.proj = nn.Conv2d(c1, c2, 1, bias=False) if c2 != c1 else nn.Identity()
        self.apply(_init_linear)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, c1, H, W) -> (B, c2, H, W), contiguous."""
        # Channels are static; skipping the check while tracing keeps ONNX export free of warnings.
        if x.ndim != 4 or (not torch.jit.is_tracing() and x.shape[1] != self.c1):
            raise ValueError(
                f"MLLABlock expects a (B, {self.c1}, H, W) input, got shape {tuple(x.shape)}; "
                f"build it with c1={x.shape[1] if x.ndim == 4 else '<channels>'} or fix the input."
            )
        # Residual sums go in place into fresh branch outputs, which no backward formula needs.
        x = x.contiguous(memory_format=torch.channels_last)
        x = self.cpe1(x).add_(x)
        tokens = x.permute(0, 2, 3, 1)  # (B, H, W, C), a contiguous view of channels-last x

        t = self.norm1(tokens)
        gate = F.silu(self.act_proj(t))
        u = F.silu(self.dwc(self.in_proj(t).permute(0, 3, 1, 2)))  # (B, C, H, W), channels-last
        attn = self.attn(u).permute(0, 2, 3, 1)
        tokens = self.drop_path(self.out_proj(attn * gate)).add_(tokens)

        x = tokens.permute(0, 3, 1, 2)
        x = self.cpe2(x).add_(x)
        tokens = x.permute(0, 2, 3, 1)
        tokens = self.drop_path(self.mlp(self.norm2(tokens))).add_(tokens)
        return self.proj(tokens.permute(0, 3, 1, 2)).contiguous()

    def extra_repr(self) -> str:
        return f"c1={self.c1}, c2={self.c2}, num_heads={self.num_heads}, mlp_ratio={self.mlp_ratio}"


class Mlp(nn.Module):
    """Token MLP fc1 -> GELU -> fc2 on the last dimension (official names; dropout 0 omitted)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


def default_num_heads(channels: int) -> int:
    """Heads for head_dim 32 (official configs): max(C // 32, 1), lowered to a divisor of C."""
    heads = max(channels // HEAD_DIM, 1)
    while channels % heads:
        heads -= 1
    return heads


def _capturing() -> bool:
    """True while a graph is recorded (TorchScript trace, ONNX export, torch.compile)."""
    return torch.jit.is_tracing() or torch.onnx.is_in_onnx_export() or torch.compiler.is_compiling()


def _check_channels(channels: int, num_heads: int) -> None:
    if channels <= 0 or channels % 4:
        fix = max(4, channels + (-channels) % 4)
        raise ValueError(
            f"MLLA: channels must be a positive multiple of 4 for the 2-D RoPE (two axes of channel "
            f"pairs), got {channels}; use e.g. {fix}."
        )
    if num_heads <= 0 or channels % num_heads:
        divisors = [d for d in range(1, min(channels, 16) + 1) if channels % d == 0]
        raise ValueError(
            f"MLLA: channels ({channels}) must be divisible by num_heads ({num_heads}); use one of "
            f"{divisors}, or num_heads=None for head_dim 32."
        )


def _init_linear(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
