"""Reference Mobile MQA: the official TF layer's algorithm, written out slowly, in two conventions.

Op order of tensorflow/models `official/vision/modeling/layers/nn_blocks.py`,
`OptimizedMultiQueryAttentionLayerWithDownSampling`:

    q = proj_q(BN(avgpool(x)))          k = proj_k(BN(dwconv(x)))      v = proj_v(BN(dwconv(x)))
    logits = einsum('blhk,bpk->blhp', q, k) / sqrt(key_dim)
    scores = dropout(softmax(logits))
    o = einsum('blhp,bpk->blhk', scores, v) -> (B, Hq, Wq, h*v) -> bilinear upsample -> proj_o

The convention (``CONVENTIONS``) fixes what the two references disagree on, with the constants
declared here, not read from the module under test:

- ``"tf"``, the official layer: TF 'same' padding for the strided depthwise conv and for the average
  pool (total padding split with the smaller half first; the pool averages valid pixels only),
  Keras BatchNorm (epsilon 1e-3, momentum 0.99, i.e. 0.01 for the new batch), bilinear upsampling
  by the query stride followed by cutting off the pool's padding, no dropout after the output
  projection. Checked against recorded TF outputs in tests/test_attention_mqa_tf.py.
- ``"timm"``, timm's `MultiQueryAttention2d`: symmetric padding (k - 1) // 2, PyTorch BatchNorm
  (1e-5, 0.1), a pool that pads at the end only, bilinear resize straight to H x W, dropout after
  the output projection.

Deliberately slow and explicit: the (B, Nq, h, M) logits are materialised, padding, pooling,
BatchNorm (with its moving-statistics update) and the half-pixel bilinear resize are written out by
hand, and everything runs in the weights' dtype (float64 in the tests). Two resolution fixes that
TF lacks (it reshapes with px = H for both axes) are applied in both conventions: H and W are kept
separate, and the output has exactly H x W pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class Convention:
    same_padding: bool  # TF 'same' (asymmetric on even maps) instead of (k - 1) // 2 on every side
    bn_eps: float
    bn_momentum: float  # weight of the new batch statistic in the moving average
    proj_dropout: bool  # dropout after the output projection (timm's proj_drop)


CONVENTIONS = {
    "tf": Convention(same_padding=True, bn_eps=1e-3, bn_momentum=1.0 - 0.99, proj_dropout=False),
    "timm": Convention(same_padding=False, bn_eps=1e-5, bn_momentum=0.1, proj_dropout=True),
}


def _same(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF padding='same' along one axis: ceil(size / stride) outputs, smaller half of the padding first."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _avg_pool(x: torch.Tensor, stride_h: int, stride_w: int, same: bool) -> torch.Tensor:
    """Windows of stride_h x stride_w, averaged over the valid pixels they cover."""
    _, _, height, width = x.shape
    top = _same(height, stride_h, stride_h)[0] if same else 0
    left = _same(width, stride_w, stride_w)[0] if same else 0
    rows, cols = -(-height // stride_h), -(-width // stride_w)
    out = x.new_zeros(x.shape[0], x.shape[1], rows, cols)
    for i in range(rows):
        r0, r1 = max(i * stride_h - top, 0), min(i * stride_h - top + stride_h, height)
        for j in range(cols):
            c0, c1 = max(j * stride_w - left, 0), min(j * stride_w - left + stride_w, width)
            out[:, :, i, j] = x[:, :, r0:r1, c0:c1].mean(dim=(2, 3))
    return out


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


def _upsample_matrix(size: int, pooled: int, stride: int, same: bool, dtype, device) -> torch.Tensor:
    """(size, pooled) weights taking the pooled axis back to `size` pixels."""
    if not same:
        return _bilinear_matrix(size, pooled, dtype, device)
    top = _same(size, stride, stride)[0]
    return _bilinear_matrix(pooled * stride, pooled, dtype, device)[top : top + size]


def _nhwc(x: torch.Tensor) -> torch.Tensor:
    """TF works channels-last."""
    return x.permute(0, 2, 3, 1)


class _Norm(nn.Module):
    """BatchNorm written out, with the convention's epsilon and moving-average weight."""

    def __init__(self, norm: nn.BatchNorm2d, convention: Convention) -> None:
        super().__init__()
        self.weight = nn.Parameter(norm.weight.detach().clone())
        self.bias = nn.Parameter(norm.bias.detach().clone())
        self.register_buffer("running_mean", norm.running_mean.detach().clone())
        self.register_buffer("running_var", norm.running_var.detach().clone())
        self.eps, self.momentum = convention.bn_eps, convention.bn_momentum

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            mean = x.mean(dim=(0, 2, 3))
            var = x.var(dim=(0, 2, 3), unbiased=False)
            count = x.numel() // x.shape[1]
            with torch.no_grad():
                self.running_mean.mul_(1 - self.momentum).add_(self.momentum * mean)
                self.running_var.mul_(1 - self.momentum).add_(self.momentum * var * count / max(count - 1, 1))
        else:
            mean, var = self.running_mean, self.running_var
        shape = (1, -1, 1, 1)
        return (x - mean.view(shape)) / torch.sqrt(var.view(shape) + self.eps) * self.weight.view(shape) + self.bias.view(shape)


class MobileMQAReference(nn.Module):
    """Explicit-softmax MQA holding its own copies of the weights (TF tensor layouts)."""

    def __init__(
        self,
        convention: str,
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
    ) -> None:
        super().__init__()
        self.convention = CONVENTIONS[convention]
        self.num_heads, self.key_dim, self.value_dim = num_heads, key_dim, value_dim
        self.query_stride, self.kv_stride = query_stride, kv_stride
        self.scale = 1.0 / math.sqrt(key_dim)  # tests overwrite this to model the blog's head_dim bug
        self.dropout = dropout
        # TF layouts: query (h, k, C), key (C, k), value (C, v), output (C_out, h, v).
        self.query_weight = nn.Parameter(query_weight.reshape(num_heads, key_dim, -1).clone())
        self.key_weight = nn.Parameter(key_weight.reshape(key_dim, -1).t().clone())
        self.value_weight = nn.Parameter(value_weight.reshape(value_dim, -1).t().clone())
        self.output_weight = nn.Parameter(output_weight.reshape(output_weight.shape[0], num_heads, value_dim).clone())
        self.query_norm = _Norm(query_norm, self.convention) if query_norm is not None else None
        self.key_dw_weight = nn.Parameter(key_down[0].clone()) if key_down else None
        self.key_dw_norm = _Norm(key_down[1], self.convention) if key_down else None
        self.value_dw_weight = nn.Parameter(value_down[0].clone()) if value_down else None
        self.value_dw_norm = _Norm(value_down[1], self.convention) if value_down else None

    def _downsample_kv(self, x: torch.Tensor, weight: torch.Tensor | None, norm: nn.Module | None) -> torch.Tensor:
        if weight is None:
            return x
        kernel = weight.shape[-1]
        if self.convention.same_padding:
            top, bottom = _same(x.shape[2], kernel, self.kv_stride)
            left, right = _same(x.shape[3], kernel, self.kv_stride)
        else:
            top = bottom = left = right = (kernel - 1) // 2
        x = F.conv2d(F.pad(x, (left, right, top, bottom)), weight, stride=self.kv_stride, groups=x.shape[1])
        return norm(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, _, height, width = x.shape
        same = self.convention.same_padding
        query_in = x
        if self.query_stride != (1, 1):
            query_in = self.query_norm(_avg_pool(x, *self.query_stride, same=same))
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
            rows = _upsample_matrix(height, q_height, self.query_stride[0], same, o.dtype, o.device)
            cols = _upsample_matrix(width, q_width, self.query_stride[1], same, o.dtype, o.device)
            o = torch.einsum("yp,bpqhv,xq->byxhv", rows, o, cols)

        result = torch.einsum("byxhv,dhv->bdyx", o, self.output_weight)
        return F.dropout(result, self.dropout, self.training) if self.convention.proj_dropout else result


def reference_from(module: nn.Module, convention: str) -> MobileMQAReference:
    """A `convention` reference carrying `module`'s weights, BN statistics and train/eval mode."""
    state = module.state_dict()
    key_down = value_down = None
    if module.kv_stride > 1:
        key_down = (state["key.down_conv.weight"], module.key.norm)
        value_down = (state["value.down_conv.weight"], module.value.norm)
    reference = MobileMQAReference(
        convention,
        num_heads=module.num_heads,
        key_dim=module.key_dim,
        value_dim=module.value_dim,
        query_stride=tuple(module.query_stride),
        kv_stride=module.kv_stride,
        query_weight=state["query.proj.weight"],
        key_weight=state["key.proj.weight"],
        value_weight=state["value.proj.weight"],
        output_weight=state["output.proj.weight"],
        query_norm=getattr(module.query, "norm", None),
        key_down=key_down,
        value_down=value_down,
        dropout=module.dropout,
    )
    return reference.train(module.training)
