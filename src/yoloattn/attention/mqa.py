"""Mobile Multi-Query Attention (Mobile MQA) from MobileNetV4.

Paper: "MobileNetV4 - Universal Models for the Mobile Ecosystem", Qin et al., arXiv:2404.10518.
Official code: tensorflow/models `official/vision/modeling/layers/nn_blocks.py`,
`OptimizedMultiQueryAttentionLayerWithDownSampling`; PyTorch port: timm `MultiQueryAttention2d`, whose
state_dict keys this module reproduces one-to-one in both conventions.

Two conventions (``compat``), identical without strides and differing only in the strided stages:

=========  ===========================================  ==============================================
stage      ``compat="timm"`` (default, timm's weights)  ``compat="tf"`` (the official TF layer)
=========  ===========================================  ==============================================
kv conv    padding (k-1)//2 on every side               TF 'same': on even maps 0 before / 1 after (k 3)
BatchNorm  eps 1e-5, momentum 0.1 (PyTorch)             eps 1e-3, momentum 0.01 (Keras' 0.99)
q pool     windows padded at the end (ceil_mode)        TF 'same' AvgPool2D (pads split as for convs)
upsample   bilinear straight to H x W                   bilinear x stride, then the pool's padding cropped
out drop   dropout after the output projection          none (TF drops attention scores only)
=========  ===========================================  ==============================================

Inside an Ultralytics model, ``initialize_weights`` resets every plain ``nn.BatchNorm2d`` (the "timm"
norms included) to eps 1e-3 and momentum 0.03; the "tf" norms are ``KerasBatchNorm2d`` and keep
Keras' values.

On the maps the TF layer accepts (square; strided queries need H divisible by the stride) "tf"
matches it to float rounding (tests/test_attention_mqa_tf.py against recorded TF outputs); on other
maps it applies the same 'same' rule per axis, where the TF layer itself fails to reshape.

h query heads share ONE key head and ONE value head. For x of shape (B, C, H, W):

    q = W_q [BN(AvgPool_sq(x))]            (B, h*k, Hq, Wq),  Hq = ceil(H / sh), Wq = ceil(W / sw)
    K = W_k [BN(DWConv_s(x))]              (B, k, Hk, Wk),    M = Hk * Wk
    V = W_v [BN(DWConv_s(x))]              (B, v, Hk, Wk)
    o_i = softmax(q_i K^T / sqrt(k)) V     one (Nq, M) attention map per head i, Nq = Hq * Wq
    y = Dropout(W_o Upsample_(H, W)(concat_i o_i))      (B, c2, H, W)

The bracketed stages exist only for query_stride > 1 (average pool + BN) and kv_stride > 1
(depthwise conv + BN). All projections are 1x1 convolutions without bias; the head index is the
major one inside the h*k and h*v channels.

Efficiency: on large maps, one `F.scaled_dot_product_attention` call with q (B, h, Nq, k) and the
single key/value head (B, 1, M, .) as grouped-query attention (``enable_gqa``, torch >= 2.5; older
torch: the head expanded over h as a stride-0 view). This is exactly the softmax attention above, but
fused kernels (flash / memory-efficient, on CPU too when k == v) never materialise the (B, h, Nq, M)
logits. On small maps the same math runs as two batched matmuls with the heads folded into the
queries, which is faster there: up to 2^22 logits per image (h*Nq*M) when autograd records the
attention (the fused backward is the slow part), up to 2^16 in inference (:func:`fused_attention`). Folding the heads into the query length, (B, 1, h*Nq, k), gives the same math
but leaves PyTorch's CPU flash backward with only B work items (about 10x slower at B=1).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from .tf_compat import KerasBatchNorm2d, SameAvgPool2d, SamePad2d

__all__ = ["COMPAT", "MobileMQA", "MultiQueryAttentionLayerWithDownSampling", "check_compat", "compat_batch_norm",
           "fused_attention"]

#: The reference conventions MobileMQA can follow; the first is the default.
COMPAT = ("timm", "tf")

# When autograd records the attention: up to this many logits per image (h * Nq * M; 16 MB in fp32)
# it is computed densely, beyond it the fused SDPA kernels keep memory O(N). Measured on CPU: at 20x20
# with 8 heads the dense path is ~4x faster than the CPU flash kernel's backward, at 40x40 the fused
# path is ~2x faster.
_DENSE_LOGITS_LIMIT = 1 << 22
# Without autograd (eval, inference) there is no backward to pay for, and the fused forward wins from
# small maps on. Measured (CPU, 2 threads, B=4, C=64, 8 heads x 48, forward): 8x8 (32768 logits) dense
# 0.78 ms vs fused 0.79 ms; 10x10 (80000) 2.7 vs 2.1 ms; 20x20 24.8 vs 9.2 ms. Up to this many logits
# per image the dense path stays.
_DENSE_LOGITS_LIMIT_INFERENCE = 1 << 16
# scaled_dot_product_attention(enable_gqa=True) (torch >= 2.5) lets the h query heads read the one key /
# value head without an expanded view.
_SDPA_GQA = tuple(int(part) for part in torch.__version__.split("+")[0].split(".")[:2]) >= (2, 5)


def fused_attention(logits: int, grad: bool) -> bool:
    """Whether MobileMQA takes the fused SDPA path for ``logits`` = h * Nq * M per image; ``grad``: autograd
    records the attention (training), which moves the switch from 2^16 to 2^22 logits."""
    return logits > (_DENSE_LOGITS_LIMIT if grad else _DENSE_LOGITS_LIMIT_INFERENCE)


def check_compat(compat: object) -> str:
    """``compat`` lower-cased and checked: one of ``COMPAT``; ValueError otherwise."""
    compat = compat.lower() if isinstance(compat, str) else compat
    if compat not in COMPAT:
        raise ValueError(f"MobileMQA: compat must be one of {COMPAT}, got {compat!r}.")
    return compat


def compat_batch_norm(channels: int, compat: str) -> nn.BatchNorm2d:
    """The convention's BatchNorm over `channels` maps: PyTorch's for "timm", Keras' for "tf"."""
    return KerasBatchNorm2d(channels) if check_compat(compat) == "tf" else nn.BatchNorm2d(channels)


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"MobileMQA: {name} must be a positive integer, got {value!r}.")
    return value


def _stride_pair(value: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value, value)
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise ValueError(f"MobileMQA: query_stride must be an int or a (stride_h, stride_w) pair, got {value!r}.")
    return tuple(_positive_int("query_stride", stride) for stride in value)


class MobileMQA(nn.Module):
    """Multi-query attention with optional query pooling and key/value downsampling (MobileNetV4).

    Args:
        c1: Input channels C.
        c2: Output channels (default c1).
        num_heads: Query heads h; all of them share one key head and one value head.
        key_dim: Per-head query/key width k (the logits are scaled by k^-0.5).
        value_dim: Per-head value width v.
        query_stride: Average-pool stride for the queries, int or (stride_h, stride_w). The attention
            output is upsampled bilinearly back to exactly H x W, also for odd H or W.
        kv_stride: Stride of the depthwise conv that downsamples keys and values.
        dw_kernel_size: Kernel of that depthwise conv (odd for ``compat="timm"``, whose symmetric
            padding needs it; any size for ``"tf"``).
        dropout: Dropout rate on the attention probabilities and (``compat="timm"``) on the output
            projection.
        compat: ``"timm"`` (default: timm's ``MultiQueryAttention2d``, the weights PyTorch users load)
            or ``"tf"`` (the official TF layer exactly: 'same' padding, Keras BatchNorm); see the
            module docstring for the differences. Without strides both are the same function.

    Raises:
        ValueError: a non-positive size or stride, an even ``dw_kernel_size`` (timm), dropout outside
            [0, 1), an unknown ``compat``, or (in forward) an input that is not (B, c1, H, W).
    """

    def __init__(
        self,
        c1: int,
        c2: int | None = None,
        num_heads: int = 8,
        key_dim: int = 64,
        value_dim: int = 64,
        query_stride: int | tuple[int, int] = 1,
        kv_stride: int = 1,
        dw_kernel_size: int = 3,
        dropout: float = 0.0,
        compat: str = "timm",
    ) -> None:
        super().__init__()
        self.compat = compat = check_compat(compat)
        c1 = _positive_int("c1 (input channels)", c1)
        c2 = c1 if c2 is None else _positive_int("c2 (output channels)", c2)
        self.num_heads = _positive_int("num_heads", num_heads)
        self.key_dim = _positive_int("key_dim", key_dim)
        self.value_dim = _positive_int("value_dim", value_dim)
        self.query_stride = _stride_pair(query_stride)
        self.kv_stride = _positive_int("kv_stride", kv_stride)
        dw_kernel_size = _positive_int("dw_kernel_size", dw_kernel_size)
        if dw_kernel_size % 2 == 0 and compat == "timm":
            raise ValueError(
                f"MobileMQA: dw_kernel_size must be odd so that padding (k - 1) // 2 keeps the key/value grid "
                f"centred, got {dw_kernel_size}; use {dw_kernel_size - 1} or {dw_kernel_size + 1} "
                "(compat='tf' pads by TF's 'same' rule and takes even kernels too)."
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"MobileMQA: dropout must be in [0, 1), got {dropout!r}.")
        self.c1, self.c2 = c1, c2
        self.dropout = float(dropout)
        self.scale = self.key_dim**-0.5

        query = OrderedDict()
        if self.query_stride != (1, 1):
            if compat == "tf":
                query["down_pool"] = SameAvgPool2d(self.query_stride)
            else:
                # ceil_mode averages the partial windows at the end over their valid pixels only, so
                # odd maps keep their last row/column (timm's pool drops it).
                query["down_pool"] = nn.AvgPool2d(self.query_stride, ceil_mode=True)
            query["norm"] = compat_batch_norm(c1, compat)
        query["proj"] = nn.Conv2d(c1, self.num_heads * self.key_dim, 1, bias=False)
        self.query = nn.Sequential(query)
        self.key = self._kv_path(c1, self.key_dim, dw_kernel_size)
        self.value = self._kv_path(c1, self.value_dim, dw_kernel_size)
        self.output = nn.Sequential(
            OrderedDict(
                proj=nn.Conv2d(self.num_heads * self.value_dim, c2, 1, bias=False),
                drop=nn.Dropout(dropout if compat == "timm" else 0.0),
            )
        )
        self._init_weights()

    def _kv_path(self, channels: int, out_dim: int, dw_kernel_size: int) -> nn.Sequential:
        layers = OrderedDict()
        if self.kv_stride > 1:
            tf = self.compat == "tf"
            if tf:
                # A parameter-free child: the state_dict keys stay timm's (key.down_conv.weight, ...).
                layers["pad"] = SamePad2d(dw_kernel_size, self.kv_stride)
            layers["down_conv"] = nn.Conv2d(
                channels,
                channels,
                dw_kernel_size,
                stride=self.kv_stride,
                padding=0 if tf else (dw_kernel_size - 1) // 2,
                groups=channels,
                bias=False,
            )
            layers["norm"] = compat_batch_norm(channels, self.compat)
        layers["proj"] = nn.Conv2d(channels, out_dim, 1, bias=False)
        return nn.Sequential(layers)

    def _init_weights(self) -> None:
        # Xavier on every projection and downsampling conv, as timm does for the MNv4 hybrids (stability).
        for path in (self.query, self.key, self.value, self.output):
            for name, layer in path.named_children():
                if name in ("proj", "down_conv"):
                    nn.init.xavier_uniform_(layer.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Attend over (B, c1, H, W) and return (B, c2, H, W)."""
        # Skipped while tracing for ONNX: the shape comparison would only emit a TracerWarning.
        if not torch.jit.is_tracing() and (x.dim() != 4 or x.shape[1] != self.c1):
            raise ValueError(f"MobileMQA expects input of shape (B, {self.c1}, H, W), got {tuple(x.shape)}.")
        batch, _, height, width = x.shape
        heads, key_dim, value_dim = self.num_heads, self.key_dim, self.value_dim

        q = self.query(x)
        q_height, q_width = q.shape[-2:]
        q = q.reshape(batch, heads, key_dim, -1).transpose(-1, -2).contiguous()  # (B, h, Nq, k)
        k = self.key(x).reshape(batch, key_dim, -1).transpose(-1, -2).contiguous()  # (B, M, k)
        v = self.value(x).reshape(batch, value_dim, -1).transpose(-1, -2).contiguous()  # (B, M, v)
        dropout = self.dropout if self.training else 0.0

        if torch.jit.is_tracing() or not fused_attention(heads * q.shape[2] * k.shape[1], q.requires_grad):
            # Small maps (and exported graphs): the heads share K, so folding them into the queries
            # makes the whole attention two batched matmuls, faster than the fused kernels here.
            logits = torch.bmm(q.reshape(batch, -1, key_dim), k.transpose(1, 2)).mul_(self.scale)
            weights = F.dropout(logits.softmax(dim=-1), dropout, self.training)
            o = torch.bmm(weights, v).reshape(batch, heads, -1, value_dim)
        elif _SDPA_GQA:
            # One key/value head for h query heads is grouped-query attention with one group: B*h
            # independent work items for the fused kernel, which never materialises the logits.
            o = F.scaled_dot_product_attention(q, k.unsqueeze(1), v.unsqueeze(1), dropout_p=dropout,
                                               scale=self.scale, enable_gqa=True)
        else:
            # Older torch: the shared head expanded over the heads as a stride-0 view (no copy).
            k = k.unsqueeze(1).expand(-1, heads, -1, -1)
            v = v.unsqueeze(1).expand(-1, heads, -1, -1)
            o = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, scale=self.scale)
        # (B, h, Nq, v) -> (B, h, v, Nq) -> (B, h*v, Hq, Wq), head-major channels.
        o = o.transpose(-1, -2).reshape(batch, heads * value_dim, q_height, q_width)
        if self.query_stride != (1, 1):
            o = self._upsample(o, height, width)
        return self.output(o)

    def _upsample(self, o: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """(B, h*v, Hq, Wq) -> (B, h*v, H, W), bilinear with half-pixel centres."""
        if self.compat == "timm":
            return F.interpolate(o, size=(height, width), mode="bilinear", align_corners=False)
        # Keras UpSampling2D(size=stride) on the padded grid the 'same' pool saw, then the padding
        # cut off again; on maps divisible by the stride nothing is cut and this is TF's layer.
        stride_h, stride_w = self.query_stride
        o = F.interpolate(o, size=(o.shape[-2] * stride_h, o.shape[-1] * stride_w), mode="bilinear", align_corners=False)
        (top, _), (left, _) = self.query.down_pool.padding(height, width)
        return o[..., top : top + height, left : left + width]

    def extra_repr(self) -> str:
        return (
            f"num_heads={self.num_heads}, key_dim={self.key_dim}, value_dim={self.value_dim}, "
            f"query_stride={self.query_stride}, kv_stride={self.kv_stride}, dropout={self.dropout}, "
            f"compat={self.compat!r}"
        )


class MultiQueryAttentionLayerWithDownSampling(MobileMQA):
    """MobileMQA under the argument order of the official TF layer and of the popular blog ports.

    Unlike those ports it honours value_dim, scales by key_dim^-0.5 (not (key_dim // num_heads)^-0.5),
    keeps tokens spatial (reshape + transpose, never `view` across NCHW), works on non-square maps
    and upsamples strided queries back to the input size. Output channels equal in_channels.
    ``compat="tf"`` makes it the official TF layer of the same name exactly (see ``MobileMQA``).
    """

    def __init__(
        self,
        in_channels: int,
        num_heads: int,
        key_dim: int,
        value_dim: int,
        query_h_strides: int,
        query_w_strides: int,
        kv_strides: int,
        dw_kernel_size: int = 3,
        dropout: float = 0.0,
        compat: str = "timm",
    ) -> None:
        super().__init__(
            in_channels,
            in_channels,
            num_heads=num_heads,
            key_dim=key_dim,
            value_dim=value_dim,
            query_stride=(query_h_strides, query_w_strides),
            kv_stride=kv_strides,
            dw_kernel_size=dw_kernel_size,
            dropout=dropout,
            compat=compat,
        )
