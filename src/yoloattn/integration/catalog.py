"""Every YAML name yoloattn provides: class, channel contract, one-line summary, parameter formula.

The names of each attention module come from its row of the module table (``yoloattn.modules``)
and ``blocks/families.py``: ``M``, ``C2f_M``, ``C3k2_M``, ``C2PSA_M``, ``RepNCSPELAN4_M``. They
are registered for every module in the table now and for each one registered later (a plug-in),
after a shape check of plug-in classes. The few names that are not a module's family (aliases and
the YOLOv9 tutorial block) are listed here.
"""

from __future__ import annotations

import torch

from .. import blocks, modules
from ..attention import MLLABlock, MobileMQA
from ..blocks.families import FAMILIES, block_classes, rebuild_block
from .registry import REGISTRY, Entry


def module_entries(spec: modules.AttentionModule) -> list[Entry]:
    """The YAML names of one attention module."""
    classes = block_classes(spec)
    origin = {"built-in": "", "timm": " [timm]"}.get(spec.source, f" [plug-in: {spec.origin}]")
    out = [Entry(f"{family}_{spec.name}", classes[f"{family}_{spec.name}"], contract,
                 summary.format(m=spec.name) + origin, spec.params)
           for family, (_, contract, summary) in FAMILIES.items()]
    out.append(Entry(spec.name, classes[spec.name], "layer", (spec.summary or f"{spec.name} as a layer") + origin,
                     spec.params))
    return out


def alias_entries() -> list[Entry]:
    """YAML names that are not an attention module's family."""
    mqa = modules.get("MQA").params
    return [
        Entry("MMQARepNCSPELAN4", blocks.MMQARepNCSPELAN4, "layer",
              "YOLOv9 tutorial block: RepNCSPELAN4 with both post-RepCSP 3x3 convs -> MQA(c4, 8, 48, 48)", mqa),
        Entry("MobileMQA", MobileMQA, "layer", "bare Mobile MQA (MobileNetV4), no residual", mqa),
        Entry("MultiQueryAttentionLayerWithDownSampling", blocks.MQALayer, "layer",
              "bare Mobile MQA with the tutorials' argument order after c2", mqa),
        Entry("MLLABlock", MLLABlock, "layer", "alias of MLLA", modules.get("MLLA").params),
    ]


def entries() -> list[Entry]:
    return [e for spec in modules.table() for e in module_entries(spec)] + alias_entries()


def add_module(spec: modules.AttentionModule, probe_channels: int = 64) -> None:
    """Make one table row usable in YAMLs: check a plug-in class, register its names with Ultralytics."""
    from ultralytics.nn import tasks

    entries = module_entries(spec)
    for entry in entries:
        taken = REGISTRY[entry.name].cls if entry.name in REGISTRY else getattr(tasks, entry.name, None)
        if taken is not None and taken is not entry.cls and spec.source != "built-in":
            raise modules.PluginError(f"attention module name {spec.name!r} ({spec.source} {spec.origin}) would make the "
                                      f"YAML name {entry.name}, which is taken by {getattr(taken, '__module__', '?')}."
                                      f"{getattr(taken, '__qualname__', taken)}; register it under another name")
    if spec.source == "plug-in" and isinstance(spec.target, type):
        _probe(spec, probe_channels)
        torch.serialization.add_safe_globals([spec.target])
    for entry in entries:
        REGISTRY.register(entry)
        setattr(tasks, entry.name, entry.cls)  # parse_model resolves names in its module's globals


def register_all() -> None:
    """Register the names of every module in the table, now and whenever one is added."""
    modules.on_register(add_module)
    for entry in alias_entries():
        REGISTRY.register(entry)
    torch.serialization.add_safe_globals([rebuild_block])


def _probe(spec: modules.AttentionModule, channels: int) -> None:
    """Build the module at `channels` and check that it keeps a (2, C, 9, 11) map's shape."""
    from ..blocks.units import build_attention

    who = f"attention module {spec.name!r} (plug-in {spec.origin}:{spec.target.__qualname__})"
    try:
        module = build_attention(spec, channels).eval()
        x = torch.randn(2, channels, 9, 11)
        with torch.no_grad():
            y = module(x)
    except Exception as error:  # the user's code: any failure is reported as one line naming it
        raise modules.PluginError(f"{who} failed its check at {channels} channels on a 9x11 map: "
                                  f"{type(error).__name__}: {error} (pass probe_channels= to check another width)") from None
    shape = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
    if shape != tuple(x.shape):
        raise modules.PluginError(f"{who} returns {shape} for an input of {tuple(x.shape)}; an attention module must "
                                  "keep the input's shape (B, C, H, W)")
