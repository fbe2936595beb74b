"""TensorFlow/Keras layer conventions in PyTorch, for modules whose official code is TensorFlow.

Used by ``MobileMQA(compat="tf")`` to reproduce tensorflow/models'
``OptimizedMultiQueryAttentionLayerWithDownSampling`` exactly. Three Keras behaviours differ from
PyTorch's defaults:

- ``padding='same'`` (``tf.nn`` convolution and pooling): the output has ``ceil(n / s)`` cells and
  the total padding ``max((ceil(n / s) - 1) * s + k - n, 0)`` is split with the smaller half
  *before*: on an even map a stride-2 3x3 conv pads 0 before and 1 after, where PyTorch's usual
  ``padding=(k - 1) // 2`` pads 1 on both sides and samples a grid shifted by one pixel.
  ``same_padding`` computes it per axis, so non-square and odd maps follow the same rule.
- ``AvgPool2D(padding='same')`` divides each window by its number of *valid* pixels
  (``SameAvgPool2d``).
- ``BatchNormalization(momentum=0.99, epsilon=1e-3)`` is ``nn.BatchNorm2d(eps=1e-3, momentum=0.01)``
  (``KerasBatchNorm2d``): PyTorch's momentum weighs the new batch, Keras' the old moving value. Both
  normalise with the biased batch variance and update the moving variance with the unbiased one
  (checked against recorded tf_keras 2.20 moving statistics, to 3e-8).

Source of the padding rule: TensorFlow ``tensorflow/core/framework/kernel_shape_util.cc``
(``GetWindowedOutputSizeVerbose``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["KERAS_BN_EPS", "KERAS_BN_MOMENTUM", "KerasBatchNorm2d", "SameAvgPool2d", "SamePad2d", "same_padding"]

#: Keras ``BatchNormalization`` defaults used by tensorflow/models' vision layers, in PyTorch terms
#: (Keras momentum 0.99 weighs the old moving statistic; PyTorch's momentum weighs the new batch).
KERAS_BN_EPS = 1e-3
KERAS_BN_MOMENTUM = 0.01


class KerasBatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` with Keras' ``BatchNormalization()`` defaults: eps 1e-3, momentum 0.01
    (Keras 0.99). Same math and state-dict keys as ``nn.BatchNorm2d``.

    A class of its own so that the values survive inside Ultralytics models, whose
    ``initialize_weights`` resets every module of type exactly ``nn.BatchNorm2d`` to eps 1e-3 and
    momentum 0.03.
    """

    def __init__(self, num_features: int, eps: float = KERAS_BN_EPS, momentum: float = KERAS_BN_MOMENTUM) -> None:
        super().__init__(num_features, eps=eps, momentum=momentum)


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """(before, after) padding of TF ``padding='same'`` along one axis of length `size`.

    The output then has ``ceil(size / stride)`` cells. Example: size 20, kernel 3, stride 2 gives
    (0, 1); size 17 gives (1, 1); kernel 5 on size 20 gives (1, 2).
    """
    # (ceil(size / stride) - 1) * stride + kernel - size, in a form that also traces with symbolic
    # sizes (ONNX export with dynamic H and W): no ceil, and max() only where it can bite (kernel < stride).
    total = kernel - 1 - (size - 1) % stride
    if kernel < stride:
        total = total.clamp(min=0) if isinstance(total, torch.Tensor) else max(total, 0)
    return total // 2, total - total // 2


class SamePad2d(nn.Module):
    """Zero padding of TF ``padding='same'`` for a (kernel, kernel) window at `stride`, per axis.

    Put in front of an ``nn.Conv2d(..., padding=0)``: together they are Keras' ``Conv2D`` /
    ``DepthwiseConv2D(padding='same')``. (B, C, H, W) -> (B, C, H + pad_h, W + pad_w).
    """

    def __init__(self, kernel: int, stride: int) -> None:
        super().__init__()
        self.kernel, self.stride = int(kernel), int(stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top, bottom = same_padding(x.shape[-2], self.kernel, self.stride)
        left, right = same_padding(x.shape[-1], self.kernel, self.stride)
        return F.pad(x, (left, right, top, bottom))

    def extra_repr(self) -> str:
        return f"kernel={self.kernel}, stride={self.stride}"


class SameAvgPool2d(nn.Module):
    """Keras ``AvgPool2D(pool_size=stride, padding='same')``: windows of stride_h x stride_w at that
    stride, padded by the 'same' rule and averaged over their valid pixels only.

    (B, C, H, W) -> (B, C, ceil(H / stride_h), ceil(W / stride_w)).
    """

    def __init__(self, stride: tuple[int, int]) -> None:
        super().__init__()
        self.stride = (int(stride[0]), int(stride[1]))

    def padding(self, height: int, width: int) -> tuple[tuple[int, int], tuple[int, int]]:
        """((top, bottom), (left, right)) for an H x W input."""
        return same_padding(height, self.stride[0], self.stride[0]), same_padding(width, self.stride[1], self.stride[1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (top, bottom), (left, right) = self.padding(x.shape[-2], x.shape[-1])
        pads = (left, right, top, bottom)
        summed = F.avg_pool2d(F.pad(x, pads), self.stride)
        if not torch.jit.is_tracing() and not any(pads):  # a traced graph must keep the general path
            return summed
        valid = F.avg_pool2d(F.pad(x.new_ones((1, 1, *x.shape[-2:])), pads), self.stride)
        return summed / valid

    def extra_repr(self) -> str:
        return f"stride={self.stride}"
