"""Rule-based YAML rewriting: put an attention module into a stock Ultralytics model.

``make_variant(base, module, where)`` returns a new model dict: it parses ``where`` (``csp``,
``csp@16,32``), looks the rule up in the rule table (:mod:`yoloattn.rules`, which describes every rule),
applies it to the base's rows and writes them back with every shifted ``from`` index fixed.
"""

from __future__ import annotations

import copy

from .. import modules
from ..yaml_model import Row, n_backbone, rows, with_rows
from .. import rules as rule_table
from ..rules import FALLBACK_RULE, Target, VariantError

__all__ = ["RULES", "RULE_HELP", "STRIDED_RULES", "VariantError", "default_rule", "layer_strides", "make_variant",
           "parse_rule"]

RULES = tuple(rule.name for rule in rule_table.table())
# One line per rule for `yoloattn variant --help` (each apply function's docstring has the details).
RULE_HELP = {rule.name: rule.help for rule in rule_table.table()}
# Rules that take ``@strides``, and the strides they pick without (None: every stride at or above the
# module's floor(rule), modules.AttentionModule.min_stride).
STRIDED_RULES = {rule.name: rule.default_strides for rule in rule_table.table() if rule.takes_strides}
_DOWNSAMPLERS = {"ADown", "AConv", "SCDown"}


def make_variant(base: dict, module: str, where: str) -> dict:
    """A copy of the model dict ``base`` with ``module`` placed by the rule ``where`` (see :mod:`yoloattn.rules`).

    Raises:
        VariantError: an unknown module or rule, bad strides, a module the rule does not take, or a rule
            that finds nothing to rewrite in this base (the message names what it looked for).
    """
    spec = _module(module)
    name, picked = parse_rule(where)
    rule = rule_table.get(name)
    if rule.implied_module and spec.name != rule.implied_module:
        raise VariantError(f"the {name} placement ({rule.families_text()}) takes module {rule.implied_module} only: "
                           f"use module {rule.implied_module}")
    d = copy.deepcopy(base)
    found = rows(d)
    target = Target(tuple(found), n_backbone(d), tuple(layer_strides(found)), spec, picked, where, rule)
    new_rows, backbone = rule.apply(target)
    return with_rows(d, new_rows, backbone)


def default_rule(base: dict) -> str:
    """The placement a base gets when none is asked for: its own attention block where it has one
    (RT-DETR's AIFI, YOLO12's area attention, the PSA block of YOLO11/YOLO26/YOLOv10), else ``csp``.

    A base with the blocks of several rules (none of Ultralytics' has) gets the rule listed last in the
    table, which keeps the order aifi, a2c2f, psa. Raises ModelYamlError for a malformed row.
    """
    found = rows(base)
    owned = [rule.name for rule in rule_table.table() if rule.own_block and rule.own_block(found)]
    return owned[-1] if owned else FALLBACK_RULE


def layer_strides(model_rows: list) -> list[int]:
    """Output stride of every row, following Conv strides, downsamplers, stems, upsamples and Concat.

    ``model_rows`` are :class:`yoloattn.yaml_model.Row` or plain ``[from, repeats, module, args]`` lists.
    """
    strides: list[int] = []
    for row in model_rows:
        f, _, m, args = Row(*row)
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


def _module(module: str) -> modules.AttentionModule:
    try:
        return modules.get(module)
    except modules.PluginError as error:
        raise VariantError(str(error)) from None


def parse_rule(where: str) -> tuple[str, frozenset[int] | None]:
    """``"csp@16,32"`` -> ``("csp", {16, 32})``; a rule's default strides without ``@`` (None: every
    stride, see :data:`STRIDED_RULES`).

    Raises:
        VariantError: an unknown rule, a list of rules, strides on a rule that takes none, or strides
            that are not integers.
    """
    rule, at, stride_text = where.partition("@")
    if "," in rule:
        raise VariantError(f"one placement rule here, got {where!r} (`yoloattn compare --where` takes a list)")
    if rule not in RULES:
        raise VariantError(f"unknown placement {where!r}; choose one of {', '.join(RULES)} "
                           f"({rule_table.strides_hint()})")
    if at and rule not in STRIDED_RULES:
        raise VariantError(f"only the {', '.join(STRIDED_RULES)} placements take strides, got {where!r}")
    if not at:
        return rule, STRIDED_RULES.get(rule, None)
    try:
        return rule, frozenset(int(s) for s in stride_text.split(","))
    except ValueError:
        raise VariantError(f"strides must be integers like {rule_table.stride_example()}, got {where!r}") from None

