"""Every YAML name yoloattn provides: class, channel contract, one-line summary, parameter formula."""

from __future__ import annotations

from .. import blocks
from ..attention import ACmix, MLLABlock, MobileMQA, iRMB
from .registry import REGISTRY, Entry

# Parameter counts of the bare modules (C = channels in = out); the blocks add Ultralytics' convs.
FORMULAS = {
    "MQA": "C*(h*k + k + v + h*v) [+ 2*(dw^2*C + 2C) with kv_stride>1] [+ 2C with query_stride>1]",
    "ACmix": "3*(Cin*C + C) + 3*C/head + 3*head*kc^2 + C*kc^4 + 2",
    "MLLA": "(5 + 2r)*C^2 + (50 + r)*C  (r = mlp_ratio)",
    "iRMB": "(2 + 2e)*C^2 + (2 + 11e)*C  (e = exp_ratio, no qkv bias)",
}

_SUMMARY = {
    "C2f": "YOLOv8 C2f, Bottlenecks -> {m} units",
    "C3k2": "YOLO11 C3k2, inner blocks -> {m} units",
    "C2PSA": "YOLO11 C2PSA, PSA attention -> {m} (FFN and residuals stay)",
    "RepNCSPELAN4": "YOLOv9 RepNCSPELAN4, post-RepCSP 3x3 convs -> {m} units",
}
_CONTRACT = {"C2f": "csp", "C3k2": "c3k2", "C2PSA": "csp", "RepNCSPELAN4": "layer"}


def entries() -> list[Entry]:
    out = []
    for family, summary in _SUMMARY.items():
        for m in blocks.MODULES:
            out.append(Entry(f"{family}_{m}", getattr(blocks, f"{family}_{m}"), _CONTRACT[family],
                             summary.format(m=m), FORMULAS[m]))
    out += [
        Entry("MMQARepNCSPELAN4", blocks.MMQARepNCSPELAN4, "layer",
              "YOLOv9 tutorial block: RepNCSPELAN4 with both post-RepCSP 3x3 convs -> MQA(c4, 8, 48, 48)",
              FORMULAS["MQA"]),
        Entry("MQA", blocks.MQABlock, "layer", "Mobile MQA block (MobileNetV4): x + MQA(BN(x))", FORMULAS["MQA"]),
        Entry("MobileMQA", MobileMQA, "layer", "bare Mobile MQA (MobileNetV4), no residual", FORMULAS["MQA"]),
        Entry("MultiQueryAttentionLayerWithDownSampling", blocks.MQALayer, "layer",
              "bare Mobile MQA with the tutorials' argument order after c2", FORMULAS["MQA"]),
        Entry("ACmix", ACmix, "layer", "ACmix (CVPR 2022): local attention + shift conv, no residual",
              FORMULAS["ACmix"]),
        Entry("MLLA", MLLABlock, "layer", "MLLA block (NeurIPS 2024): linear attention with 2-D RoPE",
              FORMULAS["MLLA"]),
        Entry("MLLABlock", MLLABlock, "layer", "alias of MLLA", FORMULAS["MLLA"]),
        Entry("iRMB", iRMB, "layer", "iRMB (EMO, ICCV 2023): windowed attention + depthwise conv",
              FORMULAS["iRMB"]),
    ]
    return out


def register_all() -> None:
    for entry in entries():
        REGISTRY.register(entry)
