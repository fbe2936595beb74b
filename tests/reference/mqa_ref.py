"""Reference Mobile MQA: a literal port of TF `OptimizedMultiQueryAttentionLayerWithDownSampling`.

Op order as in tensorflow/models official/vision/modeling/layers/nn_blocks.py:
    q = proj_q(BN(avgpool_same(x)))          k = proj_k(BN(dwconv(x)))      v = proj_v(BN(dwconv(x)))
    logits = einsum('blhk,bpk->blhp', q, k) / sqrt(key_dim)
    scores = dropout(softmax(logits))
    o = einsum('blhp,bpk->blhk', scores, v) -> (B, Hq, Wq, h*v) -> bilinear upsample -> proj_o

Deliberately slow and explicit: the (B, Nq, h, M) logits are materialised, the 'same' average pool
and the half-pixel bilinear upsampling are written out by hand, and everything runs in whatever
dtype the weights have (float64 included). Two resolution fixes that TF lacks (it reshapes with
px = H for both axes) are applied the same way the efficient module does: separate H and W, and the
upsample targets exactly H x W. A `proj_dropout` after the output projection mirrors timm's
proj_drop; TF has none, and every MNv4 config uses 0.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def _avg_pool_same(x: torch.Tensor, stride_h: int, stride_w: int) -> torch.Tensor:
    """TF AvgPool2D(pool=stride, padding='same'): pad at the end, average valid pixels only."""
    batch, channels, height, width = x.shape
    out_h, out_w = math.ceil(height / stride_h), math.ceil(width / stride_w)
    pad_h, pad_w = out_h * stride_h - height, out_w * stride_w - width
    padded = F.pad(x, (0, pad_w, 0, pad_h))
    valid = F.pad(torch.ones(1, 1, height, width, dtype=x.dtype, device=x.device), (0, pad_w, 0, pad_h))
    window_sum = padded.reshape(batch, channels, out_h, stride_h, out_w, stride_w).sum(dim=(3, 5))
    window_count = valid.reshape(1, 1, out_h, stride_h, out_w, stride_w).sum(dim=(3, 5))
    return window_sum / window_count


def _nhwc(x: torch.Tensor) -> torch.Tensor:
    """TF works channels-last."""
    return x.permute(0, 2, 3, 1)


def _bilinear_matrix(out_size: int, in_size: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """(out_size, in_size) half-pixel-centre bilinear weights (TF half_pixel_centers / align_corners=False)."""
    weights = torch.zeros(out_size, in_size, dtype=torch.float64)
    step = in_size / out_size
    for i in range(out_size):
        source = max((i + 0.5) * step - 0.5, 0.0)
        lower = min(int(math.floor(source)), in_size - 1)
        upper = min(lower + 1, in_size - 1)
        frac = source - lower
        weights[i, lower] += 1.0 - frac
        weights[i, upper] += frac
    return weights.to(dtype=dtype, device=device)


class MobileMQAReference(nn.Module):
    """Explicit-softmax MQA holding its own copies of the weights (TF-like tensor layouts)."""

    def __init__(
        self,
        num_heads: int,
        key_dim: int,
        value_dim: int,
        query_stride: tuple[int, int],
        kv_stride: int,
        query_weight: torch.Tensor,
        key_weight: torch.Tensor,
        value_weight: torch.Tensor,
        output_weight: torch.Tensor,
        query_norm: nn.BatchNorm2d | None,
        key_down: tuple[torch.Tensor, nn.BatchNorm2d] | None,
        value_down: tuple[torch.Tensor, nn.BatchNorm2d] | None,
        dropout: float,
        proj_dropout: float,
    ) -> None:
        super().__init__()
        self.num_heads, self.key_dim, self.value_dim = num_heads, key_dim, value_dim
        self.query_stride, self.kv_stride = query_stride, kv_stride
        self.scale = 1.0 / math.sqrt(key_dim)  # tests overwrite this to model the blog's head_dim bug
        self.dropout, self.proj_dropout = dropout, proj_dropout
        # TF layouts: query (h, k, C), key (C, k), value (C, v), output (C_out, h, v).
        self.query_weight = nn.Parameter(query_weight.reshape(num_heads, key_dim, -1).clone())
        self.key_weight = nn.Parameter(key_weight.reshape(key_dim, -1).t().clone())
        self.value_weight = nn.Parameter(value_weight.reshape(value_dim, -1).t().clone())
        self.output_weight = nn.Parameter(output_weight.reshape(output_weight.shape[0], num_heads, value_dim).clone())
        self.query_norm = query_norm
        self.key_dw_weight = nn.Parameter(key_down[0].clone()) if key_down else None
        self.key_dw_norm = key_down[1] if key_down else None
        self.value_dw_weight = nn.Parameter(value_down[0].clone()) if value_down else None
        self.value_dw_norm = value_down[1] if value_down else None

    def _downsample_kv(self, x: torch.Tensor, weight: torch.Tensor | None, norm: nn.Module | None) -> torch.Tensor:
        if weight is None:
            return x
        kernel = weight.shape[-1]
        x = F.conv2d(x, weight, stride=self.kv_stride, padding=(kernel - 1) // 2, groups=x.shape[1])
        return norm(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, _, height, width = x.shape
        query_in = x
        if self.query_stride != (1, 1):
            query_in = self.query_norm(_avg_pool_same(x, *self.query_stride))
        q_height, q_width = query_in.shape[-2:]
        q = torch.einsum("bhwc,nkc->bhwnk", _nhwc(query_in), self.query_weight)
        q = q.reshape(batch, q_height * q_width, self.num_heads, self.key_dim)  # (B, L, h, k)

        key_in = self._downsample_kv(x, self.key_dw_weight, self.key_dw_norm)
        k = torch.einsum("bhwc,ck->bhwk", _nhwc(key_in), self.key_weight).reshape(batch, -1, self.key_dim)

        logits = torch.einsum("blhk,bpk->blhp", q, k) * self.scale
        scores = F.dropout(torch.softmax(logits, dim=-1), self.dropout, self.training)

        value_in = self._downsample_kv(x, self.value_dw_weight, self.value_dw_norm)
        v = torch.einsum("bhwc,cv->bhwv", _nhwc(value_in), self.value_weight).reshape(batch, -1, self.value_dim)
        o = torch.einsum("blhp,bpv->blhv", scores, v)
        o = o.reshape(batch, q_height, q_width, self.num_heads, self.value_dim)

        if self.query_stride != (1, 1):
            rows = _bilinear_matrix(height, q_height, o.dtype, o.device)
            cols = _bilinear_matrix(width, q_width, o.dtype, o.device)
            o = torch.einsum("yp,bpqhv,xq->byxhv", rows, o, cols)

        result = torch.einsum("byxhv,dhv->bdyx", o, self.output_weight)
        return F.dropout(result, self.proj_dropout, self.training)


def _copy_norm(norm: nn.BatchNorm2d) -> nn.BatchNorm2d:
    clone = nn.BatchNorm2d(norm.num_features, eps=norm.eps, momentum=norm.momentum)
    clone.load_state_dict(norm.state_dict())
    return clone.to(norm.weight.device, norm.weight.dtype)


def reference_from(module: nn.Module) -> MobileMQAReference:
    """A reference carrying exactly `module`'s weights (and BN running statistics) and train/eval mode."""
    state = module.state_dict()
    query_norm = _copy_norm(module.query.norm) if hasattr(module.query, "norm") else None
    key_down = value_down = None
    if module.kv_stride > 1:
        key_down = (state["key.down_conv.weight"], _copy_norm(module.key.norm))
        value_down = (state["value.down_conv.weight"], _copy_norm(module.value.norm))
    reference = MobileMQAReference(
        num_heads=module.num_heads,
        key_dim=module.key_dim,
        value_dim=module.value_dim,
        query_stride=tuple(module.query_stride),
        kv_stride=module.kv_stride,
        query_weight=state["query.proj.weight"],
        key_weight=state["key.proj.weight"],
        value_weight=state["value.proj.weight"],
        output_weight=state["output.proj.weight"],
        query_norm=query_norm,
        key_down=key_down,
        value_down=value_down,
        dropout=module.dropout,
        proj_dropout=module.dropout,
    )
    return reference.train(module.training)
