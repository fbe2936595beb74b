"""The four attention modules. Pure PyTorch: nothing here imports Ultralytics.

All take and return (B, C, H, W) at any H x W, follow the input's device and dtype, and export to
ONNX with dynamic H and W.
"""

from .acmix import ACmix
from .irmb import iRMB
from .mlla import LinearAttention, MLLABlock
from .mqa import MobileMQA, MultiQueryAttentionLayerWithDownSampling

__all__ = ["ACmix", "LinearAttention", "MLLABlock", "MobileMQA", "MultiQueryAttentionLayerWithDownSampling", "iRMB"]
