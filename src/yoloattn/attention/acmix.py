"""ACmix: mixed local self-attention and convolution sharing one set of 1x1 projections.

Paper: Pan et al., "On the Integration of Self-Attention and Convolution", CVPR 2022, arXiv 2111.14556.
Faithful to the `ACmix` class of the official LeapLabTHU/ACmix `ResNet/test_bottleneck.py`: same
parameter names (conv1, conv2, conv3, conv_p, fc, dep_conv, rate1, rate2), so official checkpoints load.

Notation: x (B, Cin, H, W), C = c2 output channels, h heads of d = C / h channels, window
ka x ka (K = ka^2 offsets o_j, spaced by `dilation`), s = stride, H' = ceil(H / s), W' = ceil(W / s).

Stage I, shared projections: q, k, v = conv1(x), conv2(x), conv3(x), each (B, C, H, W).

Attention path (per head, local window with reflection padding p = dilation * (ka - 1) // 2):
    pe = conv_p(grid)                                   (1, d, H, W), grid = (x, y) in [-1, 1]
    logit_j(u) = d^-0.5 q(u) . [k(u + o_j) + pe(u) - pe(u + o_j)]     u on the stride-s lattice
    out_att(u) = sum_j softmax_j(logit)(u) * v(u + o_j)                (B, C, H', W')
  where k, v and pe are reflected at the borders. The q(u).pe(u) term is the same for every j, so
  the softmax cancels it and it is not computed here.
Convolution path (a kc x kc conv written as kc^2 shifted 1x1 outputs):
    f = fc(cat[q, k, v] as (B, 3h, d, H*W))             (B, kc^2, d, H*W), fc mixes the 3h maps
    out_conv = dep_conv(f as (B, d*kc^2, H, W))         grouped (groups=d), kc x kc, stride s
  dep_conv has no bias (the official init deletes it) and starts as shift kernels, so at init
  out_conv = sum_i shift_i(f_i).
Output: rate1 * out_att + rate2 * out_conv, rate1 = rate2 = 0.5 at init.  (B, C, H', W')

Efficiency: the official code unfolds k, v and pe into K-times larger tensors (K = 49). Here k - pe
and v are reflection-padded once and the K window offsets are strided slices of them, so the
largest extra tensors are the logits/attention (B*h, K, H', W'), K/d times a q/k/v activation instead
of K times. A hand-written backward accumulates the gradients of the padded tensors in place.
In inference (no autograd, and every traced export) on maps of at most 12 K positions the same
attention runs densely, as softmax(q k^T + log count) v over all H * W positions, where count(u, p)
is how many of u's reflected window offsets land on p (0 outside the window; separable over rows and
columns): two matmuls instead of 2K element-wise passes (``ACmix.dense_attention``).
The result equals the official one up to float rounding.

Extensions over the official code (identical where the official code runs):
- odd sizes with stride 2 give ceil(H/2) x ceil(W/2) from both paths (the official code crashes);
- any odd kernel_conv (dep_conv padding kc // 2) and any dilation >= 1 (dilated attention window);
- the coordinate grid follows x's device and dtype, and its size is read from x at run time, so
  `.half()`, float64 and ONNX export with dynamic H and W work.
- maps smaller than the window (H or W <= p, e.g. under 4x4 for ka=7, where the official
  ReflectionPad2d raises) are reflected repeatedly, the convention of ``numpy.pad(mode="reflect")``:
  the map extends periodically with period 2(n - 1) by mirroring, and a 1-pixel side is constant.
  Every window keeps its K offsets, so any map a detector produces (down to 1x1) works, also in an
  ONNX export with dynamic H and W (the traced graph gathers with indices computed from the size).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

__all__ = ["ACmix"]

# Inference (no autograd) on maps of N <= _DENSE_WINDOWS * K positions computes the window attention
# densely: N / K times the multiply-adds of the K window offsets, but two matmuls instead of 2K
# element-wise passes. Measured at 1 thread, 4 heads, ka = 7 (K = 49), forward only: 20x20 (N/K = 8)
# PyTorch 2.9 vs 4.3 ms, ONNX Runtime 1.9 vs 8.2 ms; 30x30 (18) PyTorch 10.1 vs 4.4 ms; 40x40 (33)
# ONNX Runtime 22.6 vs 14.2 ms. Training keeps the window path (its backward is written for it).
_DENSE_WINDOWS = 12


def _coordinate_grid(h: int, w: int, like: torch.Tensor) -> torch.Tensor:
    """(1, 2, h, w) grid: channel 0 is x in [-1, 1] along W, channel 1 is y in [-1, 1] along H."""
    # Low-precision dtypes get correctly rounded coordinates from a float32 linspace.
    dtype = torch.promote_types(like.dtype, torch.float32)
    if torch.jit.is_tracing():
        xs, ys = _traced_linspace(w, like.device, dtype), _traced_linspace(h, like.device, dtype)
    else:
        xs = torch.linspace(-1.0, 1.0, w, device=like.device, dtype=dtype)
        ys = torch.linspace(-1.0, 1.0, h, device=like.device, dtype=dtype)
    grid = torch.stack([xs.expand(h, w), ys.unsqueeze(1).expand(h, w)])
    return grid.unsqueeze(0).to(like.dtype)


def _traced_linspace(n, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """torch.linspace(-1, 1, n) for a traced size n, as (2i - m) / m with m = max(n - 1, 1).

    OpenVINO's converter decomposes a traced linspace into float Range(0, n) * step + start, with
    step and start float scalars computed from n. NNCF's INT8 quantization (Ultralytics'
    `quantize=8`, preset MIXED) treats those as activations and puts FakeQuantize on both inputs of
    the Multiply; with a fixed input shape the CPU plugin folds the Range into an f32[n] constant,
    and its FakeQuantizeMulFusion pass then throws (vector::_M_fill_insert) on a Multiply whose
    constant has a higher rank than the scalar FakeQuantize it would fuse into (OpenVINO 2026.4):
    the model cannot be compiled. Here the only float op is one Divide of an integer Range (which
    NNCF does not quantize), so nothing in the grid gets a FakeQuantize before conv_p.
    The numerator is exact, so the value is the correctly rounded -1 + 2i / (n - 1), within an ulp
    of torch.linspace; m = 1 for n = 1 gives [-1], as linspace does.
    """
    m = torch.clamp(torch.as_tensor(n, device=device) - 1, min=1)
    numerators = torch.arange(0, 2 * n, 2, device=device) - m  # int64: 2i - m
    return numerators.to(dtype) / m.to(dtype)


def _reflect_indices(n, pad: int, device: torch.device) -> torch.Tensor:
    """Source index of each of the n + 2 * pad positions of a reflect-padded axis of length n.

    Mirroring without repeating the edge is periodic with period 2 (n - 1); torch's reflect padding
    is this map for pad < n, and it stays defined for any pad. The period is clamped to 1 for n = 1
    (every position then reads index 0), so there is no branch on n and a traced n stays dynamic.
    """
    positions = torch.arange(-pad, n + pad, device=device)
    half = torch.as_tensor(n - 1, device=device)
    period = torch.clamp(2 * half, min=1)
    folded = positions.remainder(period)
    # min(f, 2(n-1) - f), written as a select: ONNX Min takes no int64 before opset 12 (ONNX Runtime rejects
    # the opset-11 graph), and an Abs (the form (n-1) - |f - (n-1)|) is dropped by OpenVINO's CPU plugin
    # (2026.4) when a static input shape makes its 1-D input constant: its AbsSinking pass removes an Abs of
    # a rank-1 value computed from constants without folding it (openvinotoolkit/openvino#38166), so the
    # indices near the start came out negative and a static export attended to the wrong positions.
    # Greater and Where take int64 at opset 11. For n = 1 (half 0, period 1) every f is 0 and stays 0.
    return torch.where(folded > half, period - folded, folded)


def _reflect_pad(x: torch.Tensor, pad: int) -> torch.Tensor:
    """Reflection-pad the last two axes of x (.., H, W) by `pad`, for any H, W >= 1 (see the module notes).

    Eager maps larger than the pad take torch's reflect padding (fastest); smaller maps, and every
    traced graph (ONNX export, where the size may change at run time), gather with computed indices.
    """
    h, w = x.shape[-2:]
    if not torch.jit.is_tracing() and h > pad and w > pad:
        return F.pad(x, (pad, pad, pad, pad), mode="reflect")
    x = x.index_select(-2, _reflect_indices(h, pad, x.device))
    if not torch.jit.is_tracing():
        return x.index_select(-1, _reflect_indices(w, pad, x.device))
    # ONNX Runtime gathers along the last axis element by element (2 ms per ACmix tensor at 40x40 and
    # 128 channels); a product with the (W, W + 2p) one-hot reflection matrix is exact and ~10x faster
    columns = (torch.arange(w, device=x.device)[:, None] == _reflect_indices(w, pad, x.device)).to(x.dtype)
    return torch.matmul(x, columns)


def _window_counts(n_out, n, pad: int, stride: int, dilation: int, kernel: int, device: torch.device) -> torch.Tensor:
    """(n_out, n): how many of the `kernel` window offsets of output i read input index j along one axis.

    Output i's window reads padded positions stride * i + dilation * a (a < kernel), and padded
    position t holds input index _reflect_indices(n, pad)[t]; near a border a reflected index is
    read twice.
    """
    source = _reflect_indices(n, pad, device)
    positions = torch.arange(n_out, device=device) * stride + (torch.arange(kernel, device=device) * dilation)[:, None]
    return (source[positions][..., None] == torch.arange(n, device=device)).sum(0)


def _subsample(x: torch.Tensor, stride: int) -> torch.Tensor:
    """x[..., ::stride, ::stride]: the query pixels of a strided window attention, (.., ceil(H/s), ceil(W/s)).

    A traced graph takes them with a 1x1 max pooling of stride s, which reads exactly those pixels
    (floor((H - 1) / s) + 1 = ceil(H / s) of them). The slice is wrong in OpenVINO (2026.4): its shape
    inference gives a slice from 0 to the end with step s the size symbol of its input whenever the size
    interval is unchanged ([1..inf] stays [1..inf]), and its symbol optimisation then reads the sizes of
    the strided query (the dense bias, the output reshape) from the unstrided H and W, so a dynamic export
    fails at run time. A pooling's output size gets its own symbol.
    """
    if stride == 1:
        return x
    if torch.jit.is_tracing():
        return F.max_pool2d(x, 1, stride)
    return x[..., ::stride, ::stride]


def _window(padded: torch.Tensor, dy: int, dx: int, pad: int, stride: int) -> torch.Tensor:
    """The view of `padded` (.., H + 2p, W + 2p) seen by window offset (dy, dx) at every output pixel.

    Ends are counted from the back so that no map size is baked into an exported graph.
    """
    end_y = dy - 2 * pad if dy < 2 * pad else None
    end_x = dx - 2 * pad if dx < 2 * pad else None
    return padded[..., dy:end_y:stride, dx:end_x:stride]


def _window_attention_forward(q, keys, values, offsets, pad, stride):
    """Softmax over the window of q . keys_j, then out = sum_j att_j * values_j, in reused buffers.

    q (n, d, H', W'); keys, values (n, d, H + 2p, W + 2p). Returns out (n, d, H', W'), att (n, K, H', W').
    """
    product = torch.empty_like(q)
    logits = q.new_empty(q.shape[0], len(offsets), q.shape[2], q.shape[3])
    for j, (dy, dx) in enumerate(offsets):
        torch.sum(torch.mul(q, _window(keys, dy, dx, pad, stride), out=product), 1, out=logits[:, j])
    # CUDA autocast runs softmax in float32; keep one dtype so the backward's in-place ops line up.
    att = logits.softmax(dim=1).to(values.dtype)
    del logits, product
    out = att[:, :1] * _window(values, *offsets[0], pad, stride)
    for j, (dy, dx) in enumerate(offsets[1:], start=1):
        out.addcmul_(att[:, j : j + 1], _window(values, dy, dx, pad, stride))
    return out, att


def _window_attention_traceable(q, keys, values, offsets, pad, stride):
    """The same result with out-of-place ops only, which torch.jit.trace (ONNX export) can record."""
    logits = torch.stack([(q * _window(keys, dy, dx, pad, stride)).sum(1) for dy, dx in offsets], 1)
    # softmax written out: ONNX Runtime's Softmax over a non-last axis transposes its input twice
    # (11.6 of 35 ms at 80x80 with 4 heads of 16)
    exp = (logits - logits.amax(1, keepdim=True)).exp()
    att = (exp / exp.sum(1, keepdim=True)).split(1, 1)
    out = att[0] * _window(values, *offsets[0], pad, stride)
    for j, (dy, dx) in enumerate(offsets[1:], start=1):
        out = out + att[j] * _window(values, dy, dx, pad, stride)
    return out


def _window_attention_dense(q, keys, values, kernel, dilation, pad, stride):
    """The window attention as attention over all N = H * W positions of the unpadded map.

    Reflection makes a window read some positions twice near the borders, so position j enters
    output i's softmax with multiplicity count(i, j) (separable over rows and columns,
    :func:`_window_counts`): logit + log(count), where count 0 gives -inf. Exact for any map size.
    q (n, d, H', W'); keys, values (n, d, H, W). Returns (n, d, H', W').
    """
    n, d, h_out, w_out = q.shape
    h, w = keys.shape[-2:]
    rows = _window_counts(h_out, h, pad, stride, dilation, kernel, q.device).to(q.dtype).log()
    cols = _window_counts(w_out, w, pad, stride, dilation, kernel, q.device).to(q.dtype).log()
    bias = (rows[:, None, :, None] + cols[None, :, None, :]).reshape(h_out * w_out, h * w)
    logits = torch.matmul(q.flatten(2).transpose(1, 2), keys.flatten(2)) + bias  # (n, N', N)
    out = torch.matmul(logits.softmax(-1), values.flatten(2).transpose(1, 2))  # (n, N', d)
    return out.transpose(1, 2).reshape(n, d, h_out, w_out)


class _WindowAttention(torch.autograd.Function):
    """Window attention with a hand-written backward that writes into the padded gradients in place.

    Autograd through the slice loop would allocate a zero-filled padded tensor per offset for each of
    keys and values; here each offset is one fused multiply-add into a shared buffer. Both directions
    reuse their per-offset buffers, which keeps the allocator's peak close to the live tensors.
    """

    @staticmethod
    def forward(ctx, q, keys, values, offsets, pad, stride):
        out, att = _window_attention_forward(q, keys, values, offsets, pad, stride)
        ctx.save_for_backward(q, keys, values, att)
        ctx.offsets, ctx.pad, ctx.stride = offsets, pad, stride
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        q, keys, values, att = ctx.saved_tensors
        offsets, pad, stride = ctx.offsets, ctx.pad, ctx.stride
        need_q, need_keys, need_values = ctx.needs_input_grad[:3]
        grad_out = grad_out.to(values.dtype)

        grad_values = torch.zeros_like(values) if need_values else None
        grad_att = torch.empty_like(att)
        product = torch.empty_like(grad_out)
        for j, (dy, dx) in enumerate(offsets):
            window = _window(values, dy, dx, pad, stride)
            torch.sum(torch.mul(grad_out, window, out=product), 1, out=grad_att[:, j])
            if need_values:
                _window(grad_values, dy, dx, pad, stride).addcmul_(grad_out, att[:, j : j + 1])
        # softmax backward: dL/dlogit = att * (dL/datt - sum_j att_j dL/datt_j)
        grad_logits = grad_att.sub_((att * grad_att).sum(1, keepdim=True)).mul_(att)

        grad_q = torch.zeros_like(q) if need_q else None
        grad_keys = torch.zeros_like(keys) if need_keys else None
        for j, (dy, dx) in enumerate(offsets):
            g = grad_logits[:, j : j + 1]
            if need_q:
                grad_q.addcmul_(_window(keys, dy, dx, pad, stride), g)
            if need_keys:
                _window(grad_keys, dy, dx, pad, stride).addcmul_(q, g)
        return grad_q, grad_keys, grad_values, None, None, None


class ACmix(nn.Module):
    """ACmix block: rate1 * local window attention + rate2 * shift-initialised conv, shared q/k/v.

    Args:
        c1: input channels.
        c2: output channels (default c1); must be divisible by `head`.
        kernel_att: attention window size ka (odd).
        head: number of attention heads.
        kernel_conv: kernel of the convolution path kc (odd).
        stride: spatial stride of both paths; output is ceil(H / stride) x ceil(W / stride).
        dilation: spacing of the attention window offsets.
    """

    def __init__(
        self,
        c1: int,
        c2: int | None = None,
        kernel_att: int = 7,
        head: int = 4,
        kernel_conv: int = 3,
        stride: int = 1,
        dilation: int = 1,
    ) -> None:
        super().__init__()
        c2 = c1 if c2 is None else c2
        if head < 1 or c2 % head:
            divisors = [n for n in range(1, min(c2, 16) + 1) if c2 % n == 0]
            raise ValueError(
                f"ACmix: c2={c2} output channels must be divisible by head={head}; "
                f"use a head count in {divisors} or make c2 a multiple of {head}."
            )
        for name, value in (("kernel_att", kernel_att), ("kernel_conv", kernel_conv)):
            if value < 1 or value % 2 == 0:
                raise ValueError(f"ACmix: {name}={value} must be a positive odd integer (e.g. {max(value + 1, 1)}).")
        if stride < 1 or dilation < 1:
            raise ValueError(f"ACmix: stride={stride} and dilation={dilation} must both be >= 1.")

        self.in_planes = c1
        self.out_planes = c2
        self.head = head
        self.head_dim = c2 // head
        self.kernel_att = kernel_att
        self.kernel_conv = kernel_conv
        self.stride = stride
        self.dilation = dilation
        self.padding_att = dilation * (kernel_att - 1) // 2
        self.scale = self.head_dim**-0.5
        self.offsets = [(dilation * a, dilation * b) for a in range(kernel_att) for b in range(kernel_att)]

        self.rate1 = nn.Parameter(torch.full((1,), 0.5))
        self.rate2 = nn.Parameter(torch.full((1,), 0.5))
        self.conv1 = nn.Conv2d(c1, c2, 1)
        self.conv2 = nn.Conv2d(c1, c2, 1)
        self.conv3 = nn.Conv2d(c1, c2, 1)
        self.conv_p = nn.Conv2d(2, self.head_dim, 1)
        self.fc = nn.Conv2d(3 * head, kernel_conv * kernel_conv, 1, bias=False)
        self.dep_conv = nn.Conv2d(
            kernel_conv * kernel_conv * self.head_dim,
            c2,
            kernel_conv,
            stride=stride,
            padding=kernel_conv // 2,
            groups=self.head_dim,
            bias=False,
        )
        self.reset_shift_kernels()

    def reset_shift_kernels(self) -> None:
        """dep_conv[o, i] = one-hot at (i // kc, i % kc): the conv path starts as a sum of shifted fc maps."""
        kc = self.kernel_conv
        kernel = torch.eye(kc * kc, dtype=self.dep_conv.weight.dtype, device=self.dep_conv.weight.device)
        with torch.no_grad():
            self.dep_conv.weight.copy_(kernel.view(1, kc * kc, kc, kc).expand_as(self.dep_conv.weight))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.conv1(x), self.conv2(x), self.conv3(x)
        return self.rate1 * self._attention(q, k, v) + self.rate2 * self._convolution(q, k, v)

    def _attention(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        b, c, h, w = q.shape
        pad, s = self.padding_att, self.stride
        pe = self.conv_p(_coordinate_grid(h, w, q))  # (1, d, H, W)
        q = _subsample(q.reshape(-1, self.head_dim, h, w), s) * self.scale
        # Reflection is linear, so padding k - pe once gives both k(u + o) and pe(u + o) of every window.
        # pe is subtracted with its own (1, 1, d, H, W) shape against (B, h, d, H, W): a 4-D (B*h, d, H, W)
        # minus (1, d, H, W) lets OpenVINO's CPU plugin fuse the subtraction into conv_p as a sum post-op,
        # and that fused conv keeps conv_p's batch of 1 (dynamic exports then give empty or mis-shaped
        # outputs). Same values either way.
        keys = (k.reshape(b, self.head, self.head_dim, h, w) - pe.unsqueeze(1)).reshape(-1, self.head_dim, h, w)
        values = v.reshape(-1, self.head_dim, h, w)
        recording = torch.is_grad_enabled() and (q.requires_grad or keys.requires_grad or values.requires_grad)
        if self.dense_attention(h, w, recording):
            out = _window_attention_dense(q, keys, values, self.kernel_att, self.dilation, pad, s)
        else:
            window = _window_attention_traceable if torch.jit.is_tracing() else _WindowAttention.apply
            out = window(q, _reflect_pad(keys, pad), _reflect_pad(values, pad), self.offsets, pad, s)
        return out.reshape(b, c, out.shape[-2], out.shape[-1])

    def dense_attention(self, h: int, w: int, recording: bool) -> bool:
        """Whether the window attention on an (H, W) input runs densely (:func:`_window_attention_dense`):
        in inference (``recording``: autograd records it) on maps of at most ``_DENSE_WINDOWS * K``
        positions. A traced graph (ONNX, TorchScript export) counts as inference whatever the grad mode.
        """
        return (torch.jit.is_tracing() or not recording) and h * w <= _DENSE_WINDOWS * len(self.offsets)

    def _convolution(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        b, _, h, w = q.shape
        qkv = torch.cat([q, k, v], 1).reshape(b, 3 * self.head, self.head_dim, -1)  # (B, 3h, d, N)
        f = self.fc(qkv).transpose(1, 2)  # (B, d, kc^2, N): dep_conv group g reads feature g's kc^2 maps
        return self.dep_conv(f.reshape(b, -1, h, w))

    def extra_repr(self) -> str:
        return (
            f"{self.in_planes}, {self.out_planes}, kernel_att={self.kernel_att}, head={self.head}, "
            f"kernel_conv={self.kernel_conv}, stride={self.stride}, dilation={self.dilation}"
        )
