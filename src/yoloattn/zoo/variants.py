"""Rule-based YAML rewriting: put an attention module into a stock Ultralytics model.

``make_variant(base, module, where)`` returns a new model dict. Placement rules (``where``):

- ``csp``     the backbone CSP block at stride 32 (C2f / C3k2 / RepNCSPELAN4) becomes its ``*_M``
              version; ``csp@16,32`` picks other strides.
- ``psa``     YOLO11's C2PSA becomes ``C2PSA_M``.
- ``sppf``    a standalone M layer right after SPPF / SPPELAN; every later reference to SPPF's output
              now reads the attended map.
- ``head``    a standalone M layer on each neck output feeding Detect (the neck's own flow is
              unchanged; only Detect reads the attended maps).
- ``mmqa``    YOLOv9 only: every backbone RepNCSPELAN4 becomes ``MMQARepNCSPELAN4`` (the tutorial).

All ``from`` indices that shift are fixed. A module whose table row says it is quadratic in the map
size gets its ``dense_map_options`` at stride <= 16 (Mobile MQA: kv_stride 2, as MobileNetV4 does at
stride 16), and the ``head`` rule keeps it off the stride-8 map. Any module of the table works,
timm's and plug-ins included (``yoloattn.modules``).
"""

from __future__ import annotations

import copy

from .. import modules
from ..errors import YoloattnError
from .naming import IMPLIED_MODULE

RULES = ("csp", "psa", "sppf", "head", "mmqa")
_CSP = {"C2f": "C2f", "C3k2": "C3k2", "RepNCSPELAN4": "RepNCSPELAN4"}
_DOWNSAMPLERS = {"ADown", "AConv", "SCDown"}
_SPP = {"SPPF", "SPPELAN"}


class VariantError(YoloattnError):
    """The requested placement does not exist in the base model."""


def make_variant(base: dict, module: str, where: str) -> dict:
    module = _canonical_module(module)
    rule, strides = parse_rule(where)
    d = copy.deepcopy(base)
    rows = d["backbone"] + d["head"]
    n_backbone = len(d["backbone"])
    row_strides = layer_strides(rows)

    if rule == "csp":
        hits = [i for i in range(n_backbone) if rows[i][2] in _CSP and row_strides[i] in strides]
        _require(hits, f"no backbone C2f/C3k2/RepNCSPELAN4 at stride {sorted(strides)}", where)
        for i in hits:
            rows[i][2] = f"{rows[i][2]}_{module}"
            attn = _attn_args(module, row_strides[i])
            if attn:
                rows[i][3] = _with_attn(rows[i][2], rows[i][3], attn)
    elif rule == "psa":
        hits = [i for i, r in enumerate(rows) if r[2] == "C2PSA"]
        _require(hits, "no C2PSA layer (the psa rule is for YOLO11-style models)", where)
        for i in hits:
            rows[i][2] = f"C2PSA_{module}"
    elif rule == "mmqa":
        if module != IMPLIED_MODULE["mmqa"]:
            raise VariantError(f"the mmqa placement is the YOLOv9 MQA tutorial: use module {IMPLIED_MODULE['mmqa']}")
        hits = [i for i in range(n_backbone) if rows[i][2] == "RepNCSPELAN4"]
        _require(hits, "no backbone RepNCSPELAN4 (the mmqa rule is for YOLOv9 models)", where)
        for i in hits:
            rows[i][2] = "MMQARepNCSPELAN4"
    elif rule == "sppf":
        hits = [i for i, r in enumerate(rows) if r[2] in _SPP]
        _require(hits, "no SPPF/SPPELAN layer", where)
        s = hits[0]
        rows = _insert_after(rows, s, [-1, 1, module, _layer_args(module, rows[s][3][0], row_strides[s])])
        n_backbone += s < n_backbone
    elif rule == "head":
        detect = rows[-1]
        sources = detect[0] if isinstance(detect[0], list) else [detect[0]]
        new_from, added = [], []
        for src in sources:
            src = src % (len(rows) - 1) if src < 0 else src
            if modules.get(module).quadratic and row_strides[src] <= 8:
                new_from.append(src)  # quadratic attention on the stride-8 map would dominate the model's cost
                continue
            added.append([src, 1, module, _layer_args(module, rows[src][3][0], row_strides[src])])
            new_from.append(len(rows) - 1 + len(added) - 1)
        rows = rows[:-1] + added + [[new_from, *detect[1:]]]

    d["backbone"], d["head"] = rows[:n_backbone], rows[n_backbone:]
    return d


def layer_strides(rows: list) -> list[int]:
    """Output stride of every row, following Conv strides, downsamplers, upsamples and Concat."""
    strides: list[int] = []
    for f, _, m, args in rows:
        first = f[0] if isinstance(f, list) else f
        s = strides[first] if strides else 1
        if m in {"Conv", "DWConv", "GhostConv"} and len(args) > 2 and args[2] == 2:
            s *= 2
        elif m in _DOWNSAMPLERS:
            s *= 2
        elif m == "nn.Upsample":
            s //= int(args[1])
        strides.append(max(s, 1))
    return strides


def _canonical_module(module: str) -> str:
    try:
        return modules.get(module).name
    except modules.PluginError as error:
        raise VariantError(str(error)) from None


def parse_rule(where: str) -> tuple[str, set[int]]:
    """``"csp@16,32"`` -> ``("csp", {16, 32})``; VariantError for an unknown rule or bad strides."""
    rule, _, stride_text = where.partition("@")
    if rule not in RULES:
        raise VariantError(f"unknown placement {where!r}; choose one of {', '.join(RULES)} (csp takes @16,32)")
    if stride_text and rule != "csp":
        raise VariantError(f"only the csp placement takes strides, got {where!r}")
    try:
        strides = {int(s) for s in stride_text.split(",")} if stride_text else {32}
    except ValueError:
        raise VariantError(f"strides must be integers like csp@16,32, got {where!r}") from None
    return rule, strides


def _require(hits: list, problem: str, where: str) -> None:
    if not hits:
        raise VariantError(f"cannot apply placement {where!r}: {problem}")


def _attn_args(module: str, stride: int) -> dict | None:
    return modules.get(module).options_at(stride) or None


def _layer_args(module: str, c2, stride: int) -> list:
    attn = _attn_args(module, stride)
    return [c2, attn] if attn else [c2]  # a trailing flow mapping: the layer's keyword options


# Each family's YAML arguments after c2, up to the ``attn`` dict that follows them (see blocks/).
_DEFAULTS_AFTER_C2 = {
    "C2f": [False, 1, 0.5],  # shortcut, g, e
    "C3k2": [False, 0.5, 1, True],  # c3k, e, g, shortcut
    "RepNCSPELAN4": [None, None, 1],  # c3, c4, n (c3 and c4 are always given)
}


def _with_attn(block: str, args: list, attn: dict) -> list:
    defaults = _DEFAULTS_AFTER_C2[block.rsplit("_", 1)[0]]
    return list(args) + defaults[len(args) - 1 :] + [attn]


def _insert_after(rows: list, s: int, new_row: list) -> list:
    """Insert new_row after index s; references to s and later now point one further."""

    def shift(f):
        if isinstance(f, list):
            return [shift(x) for x in f]
        return f + 1 if f >= s else f

    out = rows[: s + 1] + [new_row]
    for f, n, m, args in rows[s + 1 :]:
        out.append([shift(f), n, m, args])
    return out
