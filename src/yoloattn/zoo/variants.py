"""Rule-based YAML rewriting: put an attention module into a stock Ultralytics model.

``make_variant(base, module, where)`` returns a new model dict. Placement rules (``where``):

- ``csp``     the backbone CSP block at stride 32 (C2f / C3k2 / RepNCSPELAN4) becomes its ``*_M``
              version; ``csp@16,32`` picks other strides.
- ``psa``     the PSA attention block: YOLO11's and YOLO26's C2PSA becomes ``C2PSA_M``, YOLOv10's PSA
              ``PSA_M`` (the attention replaced, the FFN and residuals kept).
- ``a2c2f``   YOLO12: every A2C2f with area attention (``a2=True``) becomes ``A2C2f_M`` (M in place of
              each ABlock's area attention; the R-ELAN skeleton, MLPs and residual scaling kept), at
              strides >= the module's ``floor("a2c2f")`` (ACmix: 32 only, for ONNX Runtime);
              ``a2c2f@16,32`` names the strides.
- ``aifi``    RT-DETR: the AIFI transformer encoder layer on P5 becomes a standalone M layer with
              AIFI's channel contract (2-D map in, same channels out).
- ``sppf``    a standalone M layer right after SPPF / SPPELAN; every later reference to SPPF's output
              now reads the attended map.
- ``head``    a standalone M layer on neck outputs feeding the head (Detect, Segment, Pose, OBB,
              v10Detect, RTDETRDecoder; the neck's own flow is unchanged, only the head reads the
              attended maps): those of stride >= the module's ``floor("head")`` (iRMB and Mobile MQA
              P4/16 and P5/32, ACmix and MLLA P5/32; a plug-in every output, P4 and up when quadratic),
              which keeps every built-in within 1.25x of its baseline's latency (modules.py has the
              numbers); ``head@8,16,32`` names the outputs.
- ``mmqa``    YOLOv9 only: every backbone RepNCSPELAN4 becomes ``MMQARepNCSPELAN4`` (the tutorial).

Every stock argument of a rewritten row stays in its place (C3k2's order is the installed
Ultralytics', with 8.4's ``attn``); the module's options follow as a trailing flow mapping, which
the bridge passes by keyword. All ``from`` indices that shift are fixed. A module whose table row
says it is quadratic in the map size gets its ``dense_map_options`` at stride <= 16 (Mobile MQA:
kv_stride 2, as MobileNetV4 does at stride 16).
Any module of the table works, timm's and plug-ins included (``yoloattn.modules``).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable

from .. import modules
from ..errors import YoloattnError
from .naming import IMPLIED_MODULE

RULES = ("csp", "psa", "a2c2f", "aifi", "sppf", "head", "mmqa")
# One line per rule for `yoloattn variant --help` (the module docstring has the details).
RULE_HELP = {
    "csp": "the backbone CSP block at stride 32 becomes its *_M version (csp@16,32: other strides)",
    "psa": "YOLO11/YOLO26 C2PSA becomes C2PSA_M, YOLOv10 PSA becomes PSA_M (attention replaced, FFN kept)",
    "a2c2f": "YOLO12: every A2C2f with area attention becomes A2C2f_M (ACmix: P5 only; a2c2f@16,32 names strides)",
    "aifi": "RT-DETR: the AIFI encoder layer on P5 becomes an M layer (same channels)",
    "sppf": "an M layer right after SPPF/SPPELAN",
    "head": "an M layer on neck outputs feeding the head: P4-P5 (ACmix, MLLA: P5) by default, head@8,16,32 names them",
    "mmqa": "YOLOv9 only, MQA only: every backbone RepNCSPELAN4 becomes MMQARepNCSPELAN4",
}
# Rules that take ``@strides``, and the strides they pick without (None: every stride at or above the
# module's floor(rule), modules.AttentionModule.min_stride).
STRIDED_RULES = {"csp": frozenset({32}), "a2c2f": None, "head": None}
_CSP = {"C2f", "C3k2", "RepNCSPELAN4"}
_PSA = {"C2PSA", "PSA"}
_DOWNSAMPLERS = {"ADown", "AConv", "SCDown"}
_SPP = {"SPPF", "SPPELAN"}


class VariantError(YoloattnError):
    """The requested placement does not exist in the base model."""


def make_variant(base: dict, module: str, where: str) -> dict:
    """A copy of the model dict ``base`` with ``module`` placed by the rule ``where`` (see the module doc).

    Raises:
        VariantError: an unknown module or rule, bad strides, or a rule that finds nothing to rewrite
            in this base (the message names what it looked for).
    """
    module = _canonical_module(module)
    rule, strides = parse_rule(where)
    d = copy.deepcopy(base)
    rows = d["backbone"] + d["head"]
    n_backbone = len(d["backbone"])
    row_strides = layer_strides(rows)

    def at(i: int) -> bool:
        return strides is None or row_strides[i] in strides

    if rule == "csp":
        hits = [i for i in range(n_backbone) if rows[i][2] in _CSP and at(i)]
        _require(hits, f"no backbone C2f/C3k2/RepNCSPELAN4 at stride {sorted(strides)} (the csp rule is for YOLOv8, "
                       "YOLOv9, YOLOv10, YOLO11 and YOLO26 models; YOLO12 has C3k2 at strides 4 and 8 only)", where)
        for i in hits:
            _rewrite(rows[i], f"{rows[i][2]}_{module}", _options_at(module, row_strides[i]))
    elif rule == "psa":
        hits = [i for i, r in enumerate(rows) if r[2] in _PSA]
        _require(hits, "no C2PSA or PSA layer (the psa rule is for YOLO11, YOLO26 and YOLOv10 models)", where)
        for i in hits:
            _rewrite(rows[i], f"{rows[i][2]}_{module}", None)
    elif rule == "a2c2f":
        blocks = [i for i, r in enumerate(rows) if r[2] == "A2C2f" and _has_area_attention(r[3])]
        scope = "" if strides is None else f" at stride {sorted(strides)}"
        hits = [i for i in blocks if at(i)]
        _require(hits, f"no A2C2f with area attention (a2=True){scope} (the a2c2f rule is for YOLO12 models)", where)
        if strides is None:
            kept = _module_strides(module, rule, {row_strides[i] for i in blocks}, "replaces area attention", where)
            hits = [i for i in hits if row_strides[i] in kept]
        for i in hits:
            _rewrite(rows[i], f"A2C2f_{module}", _options_at(module, row_strides[i]))
    elif rule == "aifi":
        hits = [i for i, r in enumerate(rows) if r[2] == "AIFI"]
        _require(hits, "no AIFI layer (the aifi rule is for RT-DETR models)", where)
        for i in hits:
            f = rows[i][0]
            src = i - 1 if f == -1 else f
            # AIFI keeps its input's channels: the M row asks for the width of the row it reads
            rows[i] = [f, 1, module, _layer_args(module, rows[src][3][0], row_strides[i])]
    elif rule == "mmqa":
        if module != IMPLIED_MODULE["mmqa"]:
            raise VariantError(f"the mmqa placement is the YOLOv9 MQA tutorial: use module {IMPLIED_MODULE['mmqa']}")
        hits = [i for i in range(n_backbone) if rows[i][2] == "RepNCSPELAN4"]
        _require(hits, "no backbone RepNCSPELAN4 (the mmqa rule is for YOLOv9 models)", where)
        for i in hits:
            rows[i][2] = "MMQARepNCSPELAN4"
    elif rule == "sppf":
        hits = [i for i, r in enumerate(rows) if r[2] in _SPP]
        _require(hits, "no SPPF/SPPELAN layer (the sppf rule is for YOLOv8, YOLOv9, YOLOv10, YOLO11 and YOLO26 models)",
                 where)
        s = hits[0]
        rows = _insert_after(rows, s, [-1, 1, module, _layer_args(module, rows[s][3][0], row_strides[s])])
        n_backbone += s < n_backbone
    elif rule == "head":
        detect = rows[-1]
        sources = [s % (len(rows) - 1) if s < 0 else s for s in (detect[0] if isinstance(detect[0], list) else [detect[0]])]
        outputs = sorted({row_strides[s] for s in sources})
        if strides is None:
            strides = _module_strides(module, rule, outputs, "attends neck outputs", where)
        missing = sorted(set(strides) - set(outputs))
        if missing:
            raise VariantError(f"cannot apply placement {where!r}: the head reads neck outputs of stride "
                               f"{', '.join(map(str, outputs))}, not {', '.join(map(str, missing))}")
        new_from, added = [], []
        for src in sources:
            if row_strides[src] not in strides:
                new_from.append(src)
                continue
            added.append([src, 1, module, _layer_args(module, rows[src][3][0], row_strides[src])])
            new_from.append(len(rows) - 1 + len(added) - 1)
        rows = rows[:-1] + added + [[new_from, *detect[1:]]]

    d["backbone"], d["head"] = rows[:n_backbone], rows[n_backbone:]
    return d


def default_rule(base: dict) -> str:
    """The placement a base gets when none is asked for: its own attention block where it has one
    (RT-DETR's AIFI, YOLO12's area attention, the PSA block of YOLO11/YOLO26/YOLOv10), else ``csp``."""
    rows = base["backbone"] + base["head"]
    names = {row[2] for row in rows}
    if "AIFI" in names:
        return "aifi"
    if any(row[2] == "A2C2f" and _has_area_attention(row[3]) for row in rows):
        return "a2c2f"
    if names & _PSA:
        return "psa"
    return "csp"


def _has_area_attention(args: list) -> bool:
    return len(args) < 2 or bool(args[1])  # A2C2f(c2, a2=True, ...)


def _rewrite(row: list, name: str, options: dict | None) -> None:
    """Rename a row's module and append the module's options; the stock arguments stay where they are."""
    row[2] = name
    if options:
        row[3] = [*row[3], options]


def layer_strides(rows: list) -> list[int]:
    """Output stride of every row, following Conv strides, downsamplers, stems, upsamples and Concat."""
    strides: list[int] = []
    for f, _, m, args in rows:
        first = f[0] if isinstance(f, list) else f
        s = strides[first] if strides else 1
        if m in {"Conv", "DWConv", "GhostConv"} and len(args) > 2 and args[2] == 2:
            s *= 2
        elif m in _DOWNSAMPLERS:
            s *= 2
        elif m == "HGStem":  # RT-DETR's stem: two stride-2 stages
            s *= 4
        elif m == "ResNetLayer":  # [c1, c2, s, is_first, n]: the first layer is the 7x7/2 conv + 3x3/2 max pool
            s *= 4 if len(args) > 3 and args[3] else int(args[2]) if len(args) > 2 else 1
        elif m == "nn.Upsample":
            s //= int(args[1])
        strides.append(max(s, 1))
    return strides


def _canonical_module(module: str) -> str:
    try:
        return modules.get(module).name
    except modules.PluginError as error:
        raise VariantError(str(error)) from None


def parse_rule(where: str) -> tuple[str, frozenset[int] | None]:
    """``"csp@16,32"`` -> ``("csp", {16, 32})``; a rule's default strides without ``@`` (None: every
    stride, see :data:`STRIDED_RULES`). VariantError for an unknown rule or bad strides."""
    rule, at, stride_text = where.partition("@")
    if "," in rule:
        raise VariantError(f"one placement rule here, got {where!r} (`yoloattn compare --where` takes a list)")
    if rule not in RULES:
        raise VariantError(f"unknown placement {where!r}; choose one of {', '.join(RULES)} (csp, a2c2f and head "
                           "take strides: csp@16,32)")
    if at and rule not in STRIDED_RULES:
        raise VariantError(f"only the {', '.join(STRIDED_RULES)} placements take strides, got {where!r}")
    if not at:
        return rule, STRIDED_RULES.get(rule, None)
    try:
        return rule, frozenset(int(s) for s in stride_text.split(","))
    except ValueError:
        raise VariantError(f"strides must be integers like csp@16,32, got {where!r}") from None


def _module_strides(module: str, rule: str, available: Iterable[int], action: str, where: str) -> frozenset[int]:
    """The strides among ``available`` that ``rule`` gives ``module`` when none are named: those at or
    above the module's floor (``AttentionModule.min_stride``; costly modules skip the finest maps).
    VariantError when the floor leaves none."""
    floor = modules.get(module).floor(rule)
    ordered = sorted(set(available))
    kept = frozenset(s for s in ordered if s >= floor)
    _require(kept, f"{module} {action} of stride >= {floor} only and this model has {', '.join(map(str, ordered))} "
                   f"(name strides: {rule}@{','.join(map(str, ordered))})", where)
    return kept


def _require(hits: list, problem: str, where: str) -> None:
    if not hits:
        raise VariantError(f"cannot apply placement {where!r}: {problem}")


def _options_at(module: str, stride: int) -> dict | None:
    return modules.get(module).options_at(stride) or None


def _layer_args(module: str, c2, stride: int) -> list:
    options = _options_at(module, stride)
    return [c2, options] if options else [c2]  # a trailing flow mapping: the layer's keyword options


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
