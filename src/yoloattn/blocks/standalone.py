"""Attention modules as standalone YOLO layers with Ultralytics' ``(c1, c2, *args)`` contract.

Written in a YAML row as ``[-1, 1, iRMB, [1024]]``: c1 comes from the previous layer and c2 is
width-scaled by parse_model, like a Conv row. ``ACmix``, ``iRMB``, ``MLLABlock`` and ``MobileMQA``
already take ``(c1, c2, ...)`` and are registered as they are; ``MQA`` is MobileNetV4's residual
block (``units.MQABlock``). The tutorial class ``MultiQueryAttentionLayerWithDownSampling`` takes no
c2, so its YAML name maps to the adapter below.

Keyword options go in a trailing flow mapping, which the bridge passes as keyword arguments:
``[-1, 1, MobileMQA, [256, {kv_stride: 2, compat: tf}]]``.
"""

from __future__ import annotations

from ..attention import MobileMQA


class MQALayer(MobileMQA):
    """``MultiQueryAttentionLayerWithDownSampling`` as a YAML layer: ``[c2, num_heads, key_dim, value_dim,
    query_h_strides, query_w_strides, kv_strides, dw_kernel_size, dropout]``, optionally followed by
    ``{compat: tf}`` (see ``MobileMQA``)."""

    def __init__(self, c1: int, c2: int, num_heads: int = 8, key_dim: int = 64, value_dim: int = 64,
                 query_h_strides: int = 1, query_w_strides: int = 1, kv_strides: int = 1, dw_kernel_size: int = 3,
                 dropout: float = 0.0, compat: str = "timm"):
        super().__init__(c1, c2, num_heads=num_heads, key_dim=key_dim, value_dim=value_dim,
                         query_stride=(query_h_strides, query_w_strides), kv_stride=kv_strides,
                         dw_kernel_size=dw_kernel_size, dropout=dropout, compat=compat)
