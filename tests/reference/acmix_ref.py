"""Reference ACmix: an obvious port of LeapLabTHU/ACmix `ResNet/test_bottleneck.py` (arXiv 2111.14556).

Slow on purpose. It keeps the official op order: unfold the reflection-padded k, v and positional
encoding into (.., K, H', W') windows, logits = sum_d q * (k_win + pe_q - pe_win), softmax over K,
weighted sum of v_win; conv path = fc over cat(q, k, v) then the grouped dep_conv.

Changes to the official code, none of which alter its results where it runs:
- the coordinate grid is built on x's device and dtype (the official one is fp32 on CPU/default GPU),
  so the reference runs in float64;
- h_out, w_out = ceil(H / stride), which is what Unfold and the [::stride] subsampling produce
  (the official floor division crashes on odd sizes with stride 2 and agrees on even sizes);
- dep_conv padding is kernel_conv // 2 (hard-coded 1 in the official code, the same for 3) and the
  Unfold receives the dilation (the official one ignores it and crashes for dilation > 1);
- nn.ReflectionPad2d is replaced by indexing with numpy.pad(mode="reflect") indices: identical where
  ReflectionPad2d is defined (pad < H, W), and numpy's repeated reflection on smaller maps, which
  ReflectionPad2d refuses.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn


class NumpyReflectionPad2d(nn.Module):
    """Reflection padding of the last two axes by index lookup with numpy.pad's reflect convention."""

    def __init__(self, pad: int):
        super().__init__()
        self.pad = pad

    def forward(self, x):
        h, w = x.shape[-2:]
        rows = torch.from_numpy(np.pad(np.arange(h), self.pad, mode="reflect")).to(x.device)
        cols = torch.from_numpy(np.pad(np.arange(w), self.pad, mode="reflect")).to(x.device)
        return x[..., rows, :][..., cols]


def official_position(h: int, w: int, like: torch.Tensor) -> torch.Tensor:
    """The official (1, 2, H, W) grid: channel 0 is x in [-1, 1] along W, channel 1 is y along H."""
    loc_w = torch.linspace(-1.0, 1.0, w, device=like.device, dtype=like.dtype).unsqueeze(0).repeat(h, 1)
    loc_h = torch.linspace(-1.0, 1.0, h, device=like.device, dtype=like.dtype).unsqueeze(1).repeat(1, w)
    return torch.cat([loc_w.unsqueeze(0), loc_h.unsqueeze(0)], 0).unsqueeze(0)


def official_shift_kernels(out_planes: int, kernel_conv: int) -> torch.Tensor:
    """dep_conv init: weight[o, i, a, b] = 1 iff (a, b) == (i // kc, i % kc)."""
    kernel = torch.zeros(kernel_conv * kernel_conv, kernel_conv, kernel_conv)
    for i in range(kernel_conv * kernel_conv):
        kernel[i, i // kernel_conv, i % kernel_conv] = 1.0
    return kernel.repeat(out_planes, 1, 1, 1)


class ACmixRef(nn.Module):
    def __init__(self, in_planes, out_planes, kernel_att=7, head=4, kernel_conv=3, stride=1, dilation=1):
        super().__init__()
        self.in_planes = in_planes
        self.out_planes = out_planes
        self.head = head
        self.kernel_att = kernel_att
        self.kernel_conv = kernel_conv
        self.stride = stride
        self.dilation = dilation
        self.rate1 = nn.Parameter(torch.full((1,), 0.5))
        self.rate2 = nn.Parameter(torch.full((1,), 0.5))
        self.head_dim = out_planes // head

        self.conv1 = nn.Conv2d(in_planes, out_planes, kernel_size=1)
        self.conv2 = nn.Conv2d(in_planes, out_planes, kernel_size=1)
        self.conv3 = nn.Conv2d(in_planes, out_planes, kernel_size=1)
        self.conv_p = nn.Conv2d(2, self.head_dim, kernel_size=1)

        self.padding_att = (dilation * (kernel_att - 1) + 1) // 2
        self.pad_att = NumpyReflectionPad2d(self.padding_att)
        self.unfold = nn.Unfold(kernel_size=kernel_att, dilation=dilation, padding=0, stride=stride)
        self.softmax = nn.Softmax(dim=1)

        self.fc = nn.Conv2d(3 * head, kernel_conv * kernel_conv, kernel_size=1, bias=False)
        self.dep_conv = nn.Conv2d(
            kernel_conv * kernel_conv * self.head_dim,
            out_planes,
            kernel_size=kernel_conv,
            bias=False,  # the official init_rate_0 assigns None: the bias is deleted
            groups=self.head_dim,
            padding=kernel_conv // 2,
            stride=stride,
        )
        self.dep_conv.weight = nn.Parameter(official_shift_kernels(out_planes, kernel_conv))

    def forward(self, x):
        q, k, v = self.conv1(x), self.conv2(x), self.conv3(x)
        scaling = float(self.head_dim) ** -0.5
        b, c, h, w = q.shape
        h_out, w_out = -(-h // self.stride), -(-w // self.stride)
        kk = self.kernel_att * self.kernel_att

        # attention path
        pe = self.conv_p(official_position(h, w, x))
        q_att = q.view(b * self.head, self.head_dim, h, w) * scaling
        k_att = k.view(b * self.head, self.head_dim, h, w)
        v_att = v.view(b * self.head, self.head_dim, h, w)
        if self.stride > 1:
            q_att = q_att[:, :, :: self.stride, :: self.stride]
            q_pe = pe[:, :, :: self.stride, :: self.stride]
        else:
            q_pe = pe
        unfold_k = self.unfold(self.pad_att(k_att)).view(b * self.head, self.head_dim, kk, h_out, w_out)
        unfold_rpe = self.unfold(self.pad_att(pe)).view(1, self.head_dim, kk, h_out, w_out)
        att = (q_att.unsqueeze(2) * (unfold_k + q_pe.unsqueeze(2) - unfold_rpe)).sum(1)
        att = self.softmax(att)
        out_att = self.unfold(self.pad_att(v_att)).view(b * self.head, self.head_dim, kk, h_out, w_out)
        out_att = (att.unsqueeze(1) * out_att).sum(2).view(b, self.out_planes, h_out, w_out)

        # convolution path
        f_all = self.fc(
            torch.cat(
                [
                    q.view(b, self.head, self.head_dim, h * w),
                    k.view(b, self.head, self.head_dim, h * w),
                    v.view(b, self.head, self.head_dim, h * w),
                ],
                1,
            )
        )
        f_conv = f_all.permute(0, 2, 1, 3).reshape(x.shape[0], -1, x.shape[-2], x.shape[-1])
        out_conv = self.dep_conv(f_conv)
        return self.rate1 * out_att + self.rate2 * out_conv


def reference_from(module: nn.Module) -> ACmixRef:
    """A reference carrying exactly `module`'s configuration and weights (same dtype and device)."""
    ref = ACmixRef(
        module.in_planes,
        module.out_planes,
        kernel_att=module.kernel_att,
        head=module.head,
        kernel_conv=module.kernel_conv,
        stride=module.stride,
        dilation=module.dilation,
    )
    param = next(module.parameters())
    ref = ref.to(device=param.device, dtype=param.dtype)
    ref.load_state_dict(module.state_dict())
    return ref.train(module.training)
