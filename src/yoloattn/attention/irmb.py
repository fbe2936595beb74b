"""Inverted Residual Mobile Block (iRMB) with Expanded Window MHSA.

Paper: Zhang et al., "Rethinking Mobile Block for Efficient Attention-based Models" (EMO), ICCV 2023,
arXiv:2301.01146. Official code: github.com/zhangzjn/EMO, ``model/emo.py`` (iRMB) and
``model/basic_modules.py`` (get_norm, get_act, ConvNormAct). Submodule names follow the official code,
so official state dicts load unchanged.

For x of shape (B, C1, H, W), with dim_mid = int(C1 * exp_ratio), heads = C1 / dim_head and
ws the window size::

    s = x
    x = Norm(x)
    if attn_s:                                     # EW-MHSA on strided ("grid") windows
        x  <- zero-pad right/bottom to (Hp, Wp), multiples of ws; n1 = Hp / ws, n2 = Wp / ws
        window (i, j) holds the ws x ws pixels (i + n1 * a, j + n2 * b), a, b < ws
        Q, K = W_qk x                              (B * n1 * n2, heads, ws * ws, dim_head)
        A = softmax(Q K^T / sqrt(dim_head))
        Y = A act(W_v x)      if not attn_pre      (value heads of width dim_mid / heads)
        Y = act(W_v (A x))    if attn_pre
        Y <- merge windows, crop to H x W          (B, dim_mid, H, W)
    else:
        Y = act(W_v x), or x when v_proj is False
    Z = Y + SE(DW(Y))  if skip else SE(DW(Y))      DW: k x k depthwise conv + BN + SiLU, stride s
    out = s + DropPath(W_proj Dropout(Z))  if skip else W_proj Dropout(Z)      (B, C2, H / s, W / s)

skip = has_skip and C1 == C2 and stride == 1, exactly as in the official code.

Differences from the official code. The first keeps the math exactly; the rest are fixes and an opt-in:

- Attention runs through ``F.scaled_dot_product_attention`` on a token layout built with one
  reshape/permute, and the 1x1 projections run as matrix products on those tokens (they are pointwise,
  so they commute with the window partition and the crop). The windows are merged back in
  channels-last order, which the depthwise conv takes directly; the block returns NCHW-contiguous
  tensors.
- The depthwise conv pads by ceil(((k - 1) * dilation + 1 - stride) / 2). This equals the official
  ceil((k - stride) / 2) for dilation 1; the official formula ignores dilation and shrinks the map.
- ``dim_head=None`` picks 64 when it divides C1, else the largest of 32, 16, 8 that does; the official
  default 64 rejects the 16/32/48-channel layers of nano YOLO models.
- ``mask_padding=True`` (opt-in, off by default) keeps the zero tokens added by the window padding out
  of the softmax. The official code lets them take part, so its outputs depend on the padding amount.
- ``norm_layer='gn'`` is a single-group GroupNorm: the official ``get_norm('gn')(C)`` cannot be built
  (GroupNorm needs both a group and a channel count).

Under export tracing (ONNX, TorchScript, OpenVINO, pnnx/ncnn) the attention takes a second, portable
route with the same math: 1x1 convs on the padded NCHW map, windows cut out with reshapes whose sizes
come from ``x.shape`` (no ``unflatten``, which ONNX has only from opset 13) and an explicit
softmax(q k^T / sqrt(dim_head)) v (no ``scaled_dot_product_attention``, ONNX opset 14+). Every tensor keeps
the batch as its first dimension and has at most 5 dimensions: ncnn drops the batch and holds at most 4,
so pnnx cannot convert the 6-D window view or a batch folded together with the windows.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .drop_path import DropPath

__all__ = ["iRMB"]

_EPS = 1e-6  # the official get_norm uses eps 1e-6 for every norm
_AUTO_HEAD_DIMS = (64, 32, 16, 8)


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of a (B, C, H, W) map; wraps ``nn.LayerNorm`` as ``.norm`` like EMO."""

    def __init__(self, channels: int, eps: float = _EPS):
        super().__init__()
        self.norm = nn.LayerNorm(channels, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class HardMish(nn.Module):
    """Hard Mish, 0.5 * x * clamp(x + 2, 0, 2), as in timm (the official 'hmish')."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * x * (x + 2).clamp(min=0, max=2)


_NORMS = {
    "none": lambda c: nn.Identity(),
    "bn_2d": lambda c: nn.BatchNorm2d(c, eps=_EPS),
    "ln_2d": lambda c: LayerNorm2d(c, eps=_EPS),
    "gn": lambda c: nn.GroupNorm(1, c, eps=_EPS),
    "in_2d": lambda c: nn.InstanceNorm2d(c, eps=_EPS),
}

# Keys of the official get_act; timm's versions compute the same functions as these torch modules.
_ACTS = {
    "none": nn.Identity,
    "sigmoid": nn.Sigmoid,
    "swish": lambda: nn.SiLU(inplace=True),
    "mish": lambda: nn.Mish(inplace=True),
    "hsigmoid": lambda: nn.Hardsigmoid(inplace=True),
    "hswish": lambda: nn.Hardswish(inplace=True),
    "hmish": HardMish,
    "tanh": nn.Tanh,
    "relu": lambda: nn.ReLU(inplace=True),
    "relu6": lambda: nn.ReLU6(inplace=True),
    "prelu": lambda: nn.PReLU(num_parameters=1, init=0.25),
    "gelu": nn.GELU,
    "silu": lambda: nn.SiLU(inplace=True),
}


def _make_norm(key: str, channels: int) -> nn.Module:
    if key not in _NORMS:
        raise ValueError(f"iRMB: unknown norm_layer {key!r}; use one of {sorted(_NORMS)}.")
    return _NORMS[key](channels)


def _make_act(key: str) -> nn.Module:
    if key not in _ACTS:
        raise ValueError(f"iRMB: unknown act_layer {key!r}; use one of {sorted(_ACTS)}.")
    return _ACTS[key]()


def _resolve_dim_head(channels: int, dim_head: int | None) -> int:
    divisors = [d for d in range(channels, 0, -1) if channels % d == 0]
    if dim_head is None:
        for candidate in _AUTO_HEAD_DIMS:
            if channels % candidate == 0:
                return candidate
        raise ValueError(
            f"iRMB: c1={channels} channels is divisible by none of the automatic head widths "
            f"{_AUTO_HEAD_DIMS}; pass dim_head explicitly, one of {divisors}."
        )
    if dim_head <= 0 or channels % dim_head:
        raise ValueError(
            f"iRMB: c1={channels} channels is not divisible by dim_head={dim_head}; use a dim_head "
            f"that divides {channels}, one of {divisors}, or dim_head=None to pick one automatically."
        )
    return dim_head


class ConvNormAct(nn.Module):
    """Conv2d, norm, activation; padding keeps H x W at stride 1 (official EMO ConvNormAct, dilation-aware)."""

    def __init__(
        self,
        c1: int,
        c2: int,
        kernel_size: int = 1,
        stride: int = 1,
        dilation: int = 1,
        groups: int = 1,
        bias: bool = False,
        norm_layer: str = "bn_2d",
        act_layer: str = "relu",
    ):
        super().__init__()
        padding = math.ceil(((kernel_size - 1) * dilation + 1 - stride) / 2)
        self.conv = nn.Conv2d(c1, c2, kernel_size, stride, padding, dilation, groups, bias)
        self.norm = _make_norm(norm_layer, c2)
        self.act = _make_act(act_layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(x)))


class SqueezeExcite(nn.Module):
    """Squeeze-and-Excitation as timm's EfficientNet ``SqueezeExcite`` (round(C * rd_ratio) hidden channels)."""

    def __init__(self, channels: int, rd_ratio: float, act_layer: str):
        super().__init__()
        rd_channels = round(channels * rd_ratio)
        if rd_channels < 1:
            raise ValueError(
                f"iRMB: se_ratio={rd_ratio} gives round({channels} * {rd_ratio}) = 0 squeeze channels; "
                f"use se_ratio >= {0.5 / channels:.4g} or 0 to disable SE."
            )
        self.conv_reduce = nn.Conv2d(channels, rd_channels, 1, bias=True)
        self.act1 = _make_act(act_layer)
        self.conv_expand = nn.Conv2d(rd_channels, channels, 1, bias=True)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.conv_expand(self.act1(self.conv_reduce(x.mean((2, 3), keepdim=True))))
        return x * self.gate(scale)


def _pointwise(conv: nn.Conv2d, tokens: torch.Tensor) -> torch.Tensor:
    """Apply a 1x1 conv to channels-last tokens (..., C_in), grouped convs included."""
    weight = conv.weight.flatten(1)
    if conv.groups == 1:
        return F.linear(tokens, weight, conv.bias)
    groups = conv.groups
    grouped = tokens.unflatten(-1, (groups, -1)).unsqueeze(-2)  # (..., g, 1, C_in / g)
    weight = weight.unflatten(0, (groups, -1))  # (g, C_out / g, C_in / g)
    out = (grouped @ weight.transpose(-1, -2)).squeeze(-2).flatten(-2)
    return out if conv.bias is None else out + conv.bias


class iRMB(nn.Module):  # noqa: N801 - the paper's and the official code's name
    """Inverted Residual Mobile Block (EMO, ICCV 2023). (B, c1, H, W) -> (B, c2, H / stride, W / stride).

    Args:
        c1, c2: input and output channels (c2 defaults to c1).
        norm_in: normalise the input with ``norm_layer``.
        has_skip: residual connections (used only when c1 == c2 and stride == 1, as officially).
        exp_ratio: dim_mid = int(c1 * exp_ratio), the width of the value / depthwise path.
        norm_layer: 'bn_2d', 'ln_2d', 'gn', 'in_2d' or 'none' (all eps 1e-6).
        act_layer: activation after the value projection and inside SE (official get_act keys).
        v_proj: value projection when attn_s is False (always present with attention).
        dw_ks, stride, dilation: depthwise conv of the local path.
        se_ratio: squeeze ratio of the SE after the depthwise conv; 0 disables it.
        dim_head: attention head width; None picks 64, 32, 16 or 8, the largest dividing c1.
        window_size: window side; <= 0 attends globally over the whole map.
        attn_s: use EW-MHSA (else only the value projection).
        qkv_bias: bias in the qk and v projections.
        attn_drop, drop, drop_path: attention dropout, dropout before proj, stochastic depth.
        v_group: value projection grouped by heads.
        attn_pre: attend on the normalised input and project values afterwards.
        mask_padding: mask the window padding out of the softmax (not in the official code).
    """

    def __init__(
        self,
        c1: int,
        c2: int | None = None,
        norm_in: bool = True,
        has_skip: bool = True,
        exp_ratio: float = 1.0,
        norm_layer: str = "bn_2d",
        act_layer: str = "relu",
        v_proj: bool = True,
        dw_ks: int = 3,
        stride: int = 1,
        dilation: int = 1,
        se_ratio: float = 0.0,
        dim_head: int | None = None,
        window_size: int = 7,
        attn_s: bool = True,
        qkv_bias: bool = False,
        attn_drop: float = 0.0,
        drop: float = 0.0,
        drop_path: float = 0.0,
        v_group: bool = False,
        attn_pre: bool = False,
        mask_padding: bool = False,
    ):
        super().__init__()
        c2 = c1 if c2 is None else c2
        dim_mid = int(c1 * exp_ratio)
        self.dim_in, self.dim_out, self.exp_ratio = c1, c2, exp_ratio
        self.norm_layer, self.act_layer, self.se_ratio = norm_layer, act_layer, se_ratio
        self.norm = _make_norm(norm_layer, c1) if norm_in else nn.Identity()
        self.has_skip = c1 == c2 and stride == 1 and has_skip
        self.attn_s = attn_s
        if attn_s:
            self.dim_head = _resolve_dim_head(c1, dim_head)
            self.num_head = c1 // self.dim_head
            if dim_mid % self.num_head:
                raise ValueError(
                    f"iRMB: the value width int(c1 * exp_ratio) = {dim_mid} must split into "
                    f"{self.num_head} heads (c1={c1} / dim_head={self.dim_head}); choose exp_ratio so that "
                    f"{dim_mid} becomes a multiple of {self.num_head}, or a larger dim_head."
                )
            self.window_size = window_size
            self.attn_pre = attn_pre
            self.mask_padding = mask_padding
            self.attn_drop_p = attn_drop
            self.qk = ConvNormAct(c1, 2 * c1, bias=qkv_bias, norm_layer="none", act_layer="none")
            v_groups = self.num_head if v_group else 1
            self.v = ConvNormAct(c1, dim_mid, groups=v_groups, bias=qkv_bias, norm_layer="none", act_layer=act_layer)
        elif v_proj:
            self.v = ConvNormAct(c1, dim_mid, bias=qkv_bias, norm_layer="none", act_layer=act_layer)
        elif dim_mid != c1:
            raise ValueError(
                f"iRMB: v_proj=False passes the c1={c1} input channels to the depthwise conv, but "
                f"int(c1 * exp_ratio) = {dim_mid}; use exp_ratio=1.0 or v_proj=True."
            )
        else:
            self.v = nn.Identity()
        self.conv_local = ConvNormAct(
            dim_mid, dim_mid, dw_ks, stride, dilation, groups=dim_mid, norm_layer="bn_2d", act_layer="silu"
        )
        self.se = SqueezeExcite(dim_mid, se_ratio, act_layer) if se_ratio > 0.0 else nn.Identity()
        self.proj_drop = nn.Dropout(drop)
        self.proj = ConvNormAct(dim_mid, c2, norm_layer="none", act_layer="none")
        self.drop_path = DropPath(drop_path) if drop_path else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.norm(x)
        x = self._window_attention(x) if self.attn_s else self.v(x)
        local = self.se(self.conv_local(x))
        x = x + local if self.has_skip else local
        x = self.proj(self.proj_drop(x))
        x = shortcut + self.drop_path(x) if self.has_skip else x
        # The attention path hands channels-last tensors to the convs; return the usual NCHW layout,
        # which code such as Ultralytics' Detect relies on for `.view`.
        return x.contiguous()

    def _pad_to_windows(self, x: torch.Tensor) -> tuple[torch.Tensor, int, int, int, int]:
        """(B, C, H, W) padded at the bottom and right to whole windows, and (win_h, win_w, n1, n2): the window size
        and the windows per column and row (one window of the whole map when ``window_size`` is 0). Sizes stay
        symbolic under tracing, so an export handles any H and W."""
        _, _, height, width = x.shape
        if self.window_size <= 0:
            return x, height, width, 1, 1
        win = self.window_size
        pad_b, pad_r = (win - height % win) % win, (win - width % win) % win
        return F.pad(x, (0, pad_r, 0, pad_b)), win, win, (height + pad_b) // win, (width + pad_r) // win

    def _window_attention(self, x: torch.Tensor) -> torch.Tensor:
        """EW-MHSA on strided windows: (B, C1, H, W) -> (B, dim_mid, H, W)."""
        # Eager runs keep SDPA's fused kernels; exported graphs need ops that ONNX opset 11 and ncnn have.
        if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
            return self._window_attention_portable(x)
        batch, channels, height, width = x.shape
        x, win_h, win_w, n1, n2 = self._pad_to_windows(x)
        windows, tokens = batch * n1 * n2, win_h * win_w

        # Row r = h1 * n1 + i1 goes to window row i1 ('(h1 n1)' in the official einops pattern).
        x = x.view(batch, channels, win_h, n1, win_w, n2).permute(0, 3, 5, 2, 4, 1)
        x = x.reshape(windows, tokens, channels)  # one copy into (B n1 n2, ws * ws, C1)

        # Separate q and k products keep their gradients free of a stack/cat copy in backward.
        w_q, w_k = self.qk.conv.weight.flatten(1).chunk(2)
        b_q, b_k = (None, None) if self.qk.conv.bias is None else self.qk.conv.bias.chunk(2)
        q = self._split_heads(F.linear(x, w_q, b_q))
        k = self._split_heads(F.linear(x, w_k, b_k))
        values = self._split_heads(x if self.attn_pre else self.v.act(_pointwise(self.v.conv, x)))

        mask = None
        if self.mask_padding and self.window_size > 0:  # (B n1 n2, 1, 1, ws * ws), windows batch-major
            valid = self._valid_keys(height, width, win_h, win_w, n1, n2, x.device)
            mask = valid.unsqueeze(0).expand(batch, -1, -1).reshape(-1, 1, 1, tokens)
        out = F.scaled_dot_product_attention(
            q, k, values, attn_mask=mask, dropout_p=self.attn_drop_p if self.training else 0.0
        )
        out = out.transpose(1, 2).reshape(batch, n1, n2, win_h, win_w, -1)

        # Merging into channels-last order moves whole channel vectors (a far cheaper copy than NCHW
        # order); the result is a (B, dim_mid, H, W) view with channels-last strides.
        out = out.permute(0, 3, 1, 4, 2, 5).reshape(batch, win_h * n1, win_w * n2, -1)[:, :height, :width]
        if self.attn_pre:  # pointwise, so projecting after the crop skips the padded pixels
            out = self.v.act(_pointwise(self.v.conv, out))
        return out.permute(0, 3, 1, 2)

    def _split_heads(self, tokens: torch.Tensor) -> torch.Tensor:
        """(windows, tokens, heads * d) -> (windows, heads, tokens, d), a view."""
        return tokens.unflatten(-1, (self.num_head, -1)).transpose(1, 2)

    def _window_attention_portable(self, x: torch.Tensor) -> torch.Tensor:
        """``_window_attention`` for exported graphs: (B, C1, H, W) -> (B, dim_mid, H, W), the same math.

        Built from ops that ONNX opset 11 and ncnn have: Pad, 1x1 Conv, Reshape, Transpose (at most 5-D,
        batch first), MatMul, Softmax. Sizes are read from ``x.shape``, so they stay symbolic when traced.
        """
        batch, _, height, width = x.shape
        x, win_h, win_w, n1, n2 = self._pad_to_windows(x)
        shape = (batch, win_h, win_w, n1, n2)

        # 1x1 convs commute with the window partition, so they run on the padded map, as officially.
        # Channel counts are the module's own ints, not read from shapes: the graph needs no size arithmetic.
        dim_v = self.dim_in if self.attn_pre else self.v.conv.out_channels
        q, k = self.qk(x).chunk(2, dim=1)
        q = self._to_windows(q * self.dim_head**-0.5, shape, self.dim_in)  # scales T d values, not T T scores
        k = self._to_windows(k, shape, self.dim_in)
        values = self._to_windows(x if self.attn_pre else self.v(x), shape, dim_v)

        scores = q.transpose(-1, -2) @ k  # (B, n1 n2 heads, T, T): query t, key s
        if self.mask_padding and self.window_size > 0:
            valid = self._valid_keys(height, width, win_h, win_w, n1, n2, x.device)  # (n1 n2, T)
            tokens = win_h * win_w
            valid = valid.reshape(-1, 1, 1, tokens).expand(-1, self.num_head, 1, tokens).reshape(1, -1, 1, tokens)
            # An added -inf (as SDPA does with a boolean mask): ncnn has no masked_fill, but pnnx folds this
            # shape-only bias into a constant that a broadcast add applies.
            scores = scores + torch.zeros_like(valid, dtype=scores.dtype).masked_fill(~valid, float("-inf"))
        attn = F.dropout(scores.softmax(-1), self.attn_drop_p, self.training)
        out = values @ attn.transpose(-1, -2)  # (B, n1 n2 heads, d_v, T)

        out = self._from_windows(out, shape, dim_v)[:, :, :height, :width]
        return self.v(out) if self.attn_pre else out

    def _to_windows(self, t: torch.Tensor, shape: tuple, channels: int) -> torch.Tensor:
        """(B, heads * d, ws * n1, ws * n2) -> (B, n1 n2 heads, d, ws * ws), window (i, j) holding the
        pixels (i + n1 a, j + n2 b); two reshapes around one 5-D transpose instead of a 6-D view."""
        batch, win_h, win_w, n1, n2 = shape
        t = t.reshape(batch, channels * win_h, n1, win_w, n2).permute(0, 2, 4, 1, 3)  # (B, i, j, c a, b)
        return t.reshape(batch, n1 * n2 * self.num_head, channels // self.num_head, win_h * win_w)

    @staticmethod
    def _from_windows(t: torch.Tensor, shape: tuple, channels: int) -> torch.Tensor:
        """Inverse of ``_to_windows``: (B, n1 n2 heads, d, ws * ws) -> (B, heads * d, ws * n1, ws * n2)."""
        batch, win_h, win_w, n1, n2 = shape
        t = t.reshape(batch, n1, n2, channels * win_h, win_w).permute(0, 3, 1, 4, 2)  # (B, c a, i, b, j)
        return t.reshape(batch, channels, win_h * n1, win_w * n2)

    @staticmethod
    def _valid_keys(
        height: int, width: int, win_h: int, win_w: int, n1: int, n2: int, device: torch.device
    ) -> torch.Tensor:
        """Boolean (n1 n2, ws * ws) mask, True for the keys of each window inside the unpadded H x W map."""
        rows = torch.arange(win_h * n1, device=device).view(win_h, n1).t() < height  # (n1, ws): window, row
        cols = torch.arange(win_w * n2, device=device).view(win_w, n2).t() < width  # (n2, ws)
        valid = rows[:, None, :, None] & cols[None, :, None, :]  # (n1, n2, ws, ws)
        return valid.reshape(n1 * n2, win_h * win_w)

    def extra_repr(self) -> str:
        text = f"c1={self.dim_in}, c2={self.dim_out}, exp_ratio={self.exp_ratio}, has_skip={self.has_skip}"
        if self.attn_s:
            text += (
                f", heads={self.num_head}, dim_head={self.dim_head}, window_size={self.window_size}, "
                f"attn_pre={self.attn_pre}, mask_padding={self.mask_padding}"
            )
        return text
