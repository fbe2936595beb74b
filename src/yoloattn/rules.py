"""The table of placement rules: where ``make_variant`` puts an attention module in a stock model.

One :class:`PlacementRule` per rule says everything the rest of yoloattn needs: its name (``--where``),
a line of help, the Ultralytics families it is for, whether it takes ``@strides`` and which it picks
without, whether a module's floor (``AttentionModule.min_stride``) narrows those, the module it
implies, the block that makes it a base's default, and the function that applies it. ``make_variant``
(variants.py) parses, looks the rule up here, applies it and renumbers; the help texts of
``yoloattn variant``, ``compare`` and ``modules``, the naming scheme and the rule x family table of
docs/families.md are generated from this table. Adding a rule is one row and its apply function,
then ``python -m yoloattn.zoo`` (bundled YAMLs and the docs table).

Every stock argument of a rewritten row stays in its place (C3k2's order is the installed
Ultralytics', with 8.4's ``attn``); the module's options follow as a trailing flow mapping, which
the bridge passes by keyword. A module whose table row says it is quadratic in the map size gets its
``dense_map_options`` at stride <= 16 (Mobile MQA: kv_stride 2, as MobileNetV4 does at stride 16).
Any module of the module table works, timm's and plug-ins included (``yoloattn.modules``).

Dependency-free: rows are :class:`yoloattn.yaml_model.Row`; the module's table row is handed in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING

from .errors import YoloattnError
from .yaml_model import Row

if TYPE_CHECKING:
    from .modules import AttentionModule

__all__ = ["DOCS_BEGIN", "DOCS_END", "FALLBACK_RULE", "FAMILIES", "Apply", "PlacementRule", "Target", "VariantError", "any_module_rules", "default_text", "families_markdown",
           "floored_rules", "floors_text", "get", "implied_module", "rule_names_text", "rules_help", "stride_example",
           "strided_text", "strides_hint", "table", "with_families_table"]

#: Ultralytics' model folder (``ultralytics/cfg/models/<folder>``) -> the family's name, oldest first.
FAMILIES = MappingProxyType({"v8": "YOLOv8", "v9": "YOLOv9", "v10": "YOLOv10", "11": "YOLO11", "12": "YOLO12",
                             "26": "YOLO26", "rt-detr": "RT-DETR"})
#: The rule of a base that has none of the blocks a rule calls its own (``PlacementRule.own_block``).
FALLBACK_RULE = "csp"

_CSP = {"C2f", "C3k2", "RepNCSPELAN4"}
_PSA = {"C2PSA", "PSA"}
_SPP = {"SPPF", "SPPELAN"}


class VariantError(YoloattnError):
    """The requested placement does not exist in the base model."""


@dataclass(frozen=True)
class Target:
    """What an apply function works on: the base's rows and what was asked.

    Attributes:
        rows: Every row of the base, backbone then head (:func:`yoloattn.yaml_model.rows`).
        backbone: How many of them are the backbone.
        strides: The output stride of each row (``variants.layer_strides``).
        module: The module's table row (``modules.get``); ``module.name`` is its canonical name.
        picked: The strides named after ``@``, or the rule's ``default_strides``; None: every stride.
        where: The placement as written (``csp@16,32``), for messages.
        rule: The rule's table row.
    """

    rows: tuple[Row, ...]
    backbone: int
    strides: tuple[int, ...]
    module: AttentionModule
    picked: frozenset[int] | None
    where: str
    rule: PlacementRule

    def at(self, i: int) -> bool:
        """Whether row ``i`` outputs a picked stride."""
        return self.picked is None or self.strides[i] in self.picked

    def require(self, hits: Sequence[int], problem: str) -> None:
        """VariantError ``cannot apply placement ...: <problem>`` when the rule found nothing."""
        if not hits:
            raise VariantError(f"cannot apply placement {self.where!r}: {problem}")

    def options_at(self, stride: int) -> dict | None:
        """The module's default options on a map of ``stride`` (None when it has none there)."""
        return self.module.options_at(stride) or None

    def layer_args(self, c2, stride: int) -> list:
        """The args of a standalone module row of width ``c2`` at ``stride``."""
        options = self.options_at(stride)
        return [c2, options] if options else [c2]  # a trailing flow mapping: the layer's keyword options

    def floor_strides(self, available: Iterable[int], action: str) -> frozenset[int]:
        """The strides among ``available`` this rule gives the module when none are named: those at or above
        its floor (``AttentionModule.floor``; costly modules skip the finest maps). VariantError when the
        floor leaves none (the message names the strides to write instead)."""
        floor = self.module.floor(self.rule.name)
        ordered = sorted(set(available))
        kept = frozenset(s for s in ordered if s >= floor)
        self.require(kept, f"{self.module.name} {action} of stride >= {floor} only and this model has "
                           f"{', '.join(map(str, ordered))} (name strides: {self.rule.name}@{','.join(map(str, ordered))})")
        return kept


#: ``apply(target) -> (rows, backbone)``: the rewritten rows and the new backbone length.
Apply = Callable[[Target], "tuple[list[Row], int]"]


@dataclass(frozen=True)
class PlacementRule:
    """One row of the rule table.

    Attributes:
        name: What ``--where`` takes and variant names carry (``yolo11n-mlla-psa``).
        help: One line for ``yoloattn variant --help`` (the apply function's docstring has the details).
        families: The Ultralytics families (values of :data:`FAMILIES`) whose stock YAMLs have what the
            rule rewrites; on the others it fails with a message naming these.
        apply: Rewrites a :class:`Target`'s rows, returns ``(rows, backbone length)``; raises
            VariantError when the base has nothing to rewrite.
        takes_strides: ``rule@16,32`` names the strides.
        default_strides: With ``takes_strides``, the strides picked without ``@``; None: every stride
            at or above the module's floor (``AttentionModule.floor``, :attr:`floored`).
        stride_example: With ``takes_strides``, the strides its help shows (``16,32``).
        covers: With :attr:`floored`, what it rewrites for a module without a floor (``yoloattn modules``).
        implied_module: The one module the rule takes; its variants are named without a module
            (``yolov9c-mmqa``) and ``--where all`` leaves it out.
        own_block: Whether a base's rows have the attention block this rule replaces, which makes the
            rule that base's default (:func:`yoloattn.zoo.variants.default_rule`).

    Raises:
        ValueError: an inconsistent row (unknown family, strides fields on a rule without strides, ...),
            when the table is built.
    """

    name: str
    help: str
    families: tuple[str, ...]
    apply: Apply
    takes_strides: bool = False
    default_strides: frozenset[int] | None = None
    stride_example: str = ""
    covers: str = ""
    implied_module: str | None = None
    own_block: Callable[[Sequence[Row]], bool] | None = None

    def __post_init__(self):
        unknown = set(self.families) - set(FAMILIES.values())
        if unknown or not self.families:
            raise ValueError(f"rule {self.name}: families must be some of {', '.join(FAMILIES.values())}, got "
                             f"{self.families}")
        if not self.takes_strides and (self.default_strides is not None or self.stride_example):
            raise ValueError(f"rule {self.name}: default_strides and stride_example need takes_strides")
        if self.takes_strides and not self.stride_example:
            raise ValueError(f"rule {self.name}: a rule that takes strides shows them in its help (stride_example)")
        if self.floored != bool(self.covers):
            raise ValueError(f"rule {self.name}: covers says what a floored rule rewrites without a floor, and only that")

    @property
    def floored(self) -> bool:
        """Whether a module's floor (``AttentionModule.min_stride``) narrows the strides picked without ``@``
        (``modules.register_attention`` refuses a ``min_stride`` for any other rule)."""
        return self.takes_strides and self.default_strides is None

    def families_text(self) -> str:
        """``YOLOv8, YOLOv9 and YOLO11``: the families, for messages."""
        return _and(self.families)

    def is_for(self) -> str:
        """``the csp rule is for YOLOv8, ... and YOLO26 models``: the end of an error message."""
        return f"the {self.name} rule is for {self.families_text()} models"


# ------------------------------------------------------------------------------------------- the rules
# Each apply function's docstring is the rule's full description. Each raises VariantError (Target.require)
# when the base has nothing it rewrites, naming the families the rule is for.


def apply_csp(t: Target) -> tuple[list[Row], int]:
    """The backbone CSP block at stride 32 (C2f / C3k2 / RepNCSPELAN4) becomes its ``*_M`` version;
    ``csp@16,32`` picks other strides."""
    rows = list(t.rows)
    hits = [i for i in range(t.backbone) if rows[i].module in _CSP and t.at(i)]
    t.require(hits, f"no backbone C2f/C3k2/RepNCSPELAN4 at stride {sorted(t.picked)} ({t.rule.is_for()}; "
                    "YOLO12 has C3k2 at strides 4 and 8 only)")
    for i in hits:
        rows[i] = _renamed(rows[i], f"{rows[i].module}_{t.module.name}", t.options_at(t.strides[i]))
    return rows, t.backbone


def apply_psa(t: Target) -> tuple[list[Row], int]:
    """The PSA attention block: YOLO11's and YOLO26's C2PSA becomes ``C2PSA_M``, YOLOv10's PSA ``PSA_M``
    (the attention replaced, the FFN and residuals kept)."""
    rows = list(t.rows)
    hits = [i for i, r in enumerate(rows) if r.module in _PSA]
    t.require(hits, f"no C2PSA or PSA layer ({t.rule.is_for()})")
    for i in hits:
        rows[i] = _renamed(rows[i], f"{rows[i].module}_{t.module.name}", None)
    return rows, t.backbone


def apply_a2c2f(t: Target) -> tuple[list[Row], int]:
    """YOLO12: every A2C2f with area attention (``a2=True``) becomes ``A2C2f_M`` (M in place of each
    ABlock's area attention; the R-ELAN skeleton, MLPs and residual scaling kept), at strides >= the
    module's ``floor("a2c2f")`` (ACmix: 32 only, for ONNX Runtime); ``a2c2f@16,32`` names the strides."""
    rows = list(t.rows)
    blocks = [i for i, r in enumerate(rows) if _is_area_attention(r)]
    scope = "" if t.picked is None else f" at stride {sorted(t.picked)}"
    hits = [i for i in blocks if t.at(i)]
    t.require(hits, f"no A2C2f with area attention (a2=True){scope} ({t.rule.is_for()})")
    if t.picked is None:
        kept = t.floor_strides({t.strides[i] for i in blocks}, "replaces area attention")
        hits = [i for i in hits if t.strides[i] in kept]
    for i in hits:
        rows[i] = _renamed(rows[i], f"A2C2f_{t.module.name}", t.options_at(t.strides[i]))
    return rows, t.backbone


def apply_aifi(t: Target) -> tuple[list[Row], int]:
    """RT-DETR: the AIFI transformer encoder layer on P5 becomes a standalone M layer with AIFI's channel
    contract (2-D map in, same channels out)."""
    rows = list(t.rows)
    hits = [i for i, r in enumerate(rows) if r.module == "AIFI"]
    t.require(hits, f"no AIFI layer ({t.rule.is_for()})")
    for i in hits:
        f = rows[i].source
        src = i - 1 if f == -1 else f
        # AIFI keeps its input's channels: the M row asks for the width of the row it reads
        rows[i] = Row(f, 1, t.module.name, t.layer_args(rows[src].args[0], t.strides[i]))
    return rows, t.backbone


def apply_sppf(t: Target) -> tuple[list[Row], int]:
    """A standalone M layer right after SPPF / SPPELAN; every later reference to SPPF's output now reads
    the attended map."""
    hits = [i for i, r in enumerate(t.rows) if r.module in _SPP]
    t.require(hits, f"no SPPF/SPPELAN layer ({t.rule.is_for()})")
    s = hits[0]
    new = Row(-1, 1, t.module.name, t.layer_args(t.rows[s].args[0], t.strides[s]))
    return _insert_after(list(t.rows), s, new), t.backbone + (s < t.backbone)


def apply_head(t: Target) -> tuple[list[Row], int]:
    """A standalone M layer on neck outputs feeding the head (Detect, Segment, Pose, OBB, v10Detect,
    RTDETRDecoder; the neck's own flow is unchanged, only the head reads the attended maps): those of
    stride >= the module's ``floor("head")`` (iRMB and Mobile MQA P4/16 and P5/32, ACmix and MLLA
    P5/32; a plug-in every output, P4 and up when quadratic), which keeps every built-in within 1.25x
    of its baseline's latency (modules.py has the numbers); ``head@8,16,32`` names the outputs."""
    rows = list(t.rows)
    detect = rows[-1]
    sources = detect.inputs(len(rows) - 1)
    outputs = sorted({t.strides[s] for s in sources})
    picked = t.floor_strides(outputs, "attends neck outputs") if t.picked is None else t.picked
    missing = sorted(set(picked) - set(outputs))
    if missing:
        raise VariantError(f"cannot apply placement {t.where!r}: the head reads neck outputs of stride "
                           f"{', '.join(map(str, outputs))}, not {', '.join(map(str, missing))}")
    new_from, added = [], []
    for src in sources:
        if t.strides[src] not in picked:
            new_from.append(src)
            continue
        added.append(Row(src, 1, t.module.name, t.layer_args(rows[src].args[0], t.strides[src])))
        new_from.append(len(rows) - 1 + len(added) - 1)
    return rows[:-1] + added + [detect._replace(source=new_from)], t.backbone


def apply_mmqa(t: Target) -> tuple[list[Row], int]:
    """YOLOv9 only: every backbone RepNCSPELAN4 becomes ``MMQARepNCSPELAN4`` (the YOLOv9 MQA tutorial)."""
    rows = list(t.rows)
    hits = [i for i in range(t.backbone) if rows[i].module == "RepNCSPELAN4"]
    t.require(hits, f"no backbone RepNCSPELAN4 ({t.rule.is_for()})")
    for i in hits:
        rows[i] = rows[i]._replace(module="MMQARepNCSPELAN4")
    return rows, t.backbone


_ALL = tuple(FAMILIES.values())
_TABLE = (
    PlacementRule("csp", "the backbone CSP block at stride 32 becomes its *_M version (csp@16,32: other strides)",
                  ("YOLOv8", "YOLOv9", "YOLOv10", "YOLO11", "YOLO26"), apply_csp,
                  takes_strides=True, default_strides=frozenset({32}), stride_example="16,32"),
    PlacementRule("psa", "YOLO11/YOLO26 C2PSA becomes C2PSA_M, YOLOv10 PSA becomes PSA_M (attention replaced, FFN kept)",
                  ("YOLOv10", "YOLO11", "YOLO26"), apply_psa, own_block=lambda rows: any(r.module in _PSA for r in rows)),
    PlacementRule("a2c2f", "YOLO12: every A2C2f with area attention becomes A2C2f_M (ACmix: P5 only; a2c2f@16,32 names "
                  "strides)", ("YOLO12",), apply_a2c2f, takes_strides=True, stride_example="16,32",
                  covers="every area-attention A2C2f", own_block=lambda rows: any(map(_is_area_attention, rows))),
    PlacementRule("aifi", "RT-DETR: the AIFI encoder layer on P5 becomes an M layer (same channels)",
                  ("RT-DETR",), apply_aifi, own_block=lambda rows: any(r.module == "AIFI" for r in rows)),
    PlacementRule("sppf", "an M layer right after SPPF/SPPELAN",
                  ("YOLOv8", "YOLOv9", "YOLOv10", "YOLO11", "YOLO26"), apply_sppf),
    PlacementRule("head", "an M layer on neck outputs feeding the head: P4-P5 (ACmix, MLLA: P5) by default, "
                  "head@8,16,32 names them", _ALL, apply_head, takes_strides=True, stride_example="8,16,32",
                  covers="every neck output"),
    PlacementRule("mmqa", "YOLOv9 only, MQA only: every backbone RepNCSPELAN4 becomes MMQARepNCSPELAN4",
                  ("YOLOv9",), apply_mmqa, implied_module="MQA"),
)
_BY_NAME = {rule.name: rule for rule in _TABLE}


def _is_area_attention(row: Row) -> bool:
    return row.module == "A2C2f" and (len(row.args) < 2 or bool(row.args[1]))  # A2C2f(c2, a2=True, ...)


def _renamed(row: Row, name: str, options: dict | None) -> Row:
    """The row with another module name and the module's options appended; stock arguments stay put."""
    return row._replace(module=name, args=[*row.args, options] if options else list(row.args))


def _insert_after(rows: list[Row], s: int, new_row: Row) -> list[Row]:
    """Insert new_row after index s; references to s and later now point one further."""

    def shift(f):
        if isinstance(f, list):
            return [shift(x) for x in f]
        return f + 1 if f >= s else f

    return rows[: s + 1] + [new_row] + [r._replace(source=shift(r.source)) for r in rows[s + 1 :]]


def _and(words: Sequence[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


# ------------------------------------------------------------------------------------------- lookups


def table() -> tuple[PlacementRule, ...]:
    """Every rule, in the order help texts list them and ``--where all`` tries them."""
    return _TABLE


def get(name: str) -> PlacementRule:
    """The row of rule ``name`` (no ``@strides``).

    Raises:
        VariantError: no rule has that name (the message lists the rules).
    """
    try:
        return _BY_NAME[name]
    except KeyError:
        raise VariantError(f"unknown placement rule {name!r}; choose one of {rule_names_text()}") from None


def implied_module(where: str) -> str | None:
    """The module a placement implies (``mmqa`` -> ``MQA``); None for any other text, rule or not."""
    rule = _BY_NAME.get(where)
    return rule.implied_module if rule else None


def any_module_rules() -> tuple[str, ...]:
    """The rules that take any module, in table order: what ``--where all`` tries (every rule but those
    that imply their module)."""
    return tuple(rule.name for rule in _TABLE if rule.implied_module is None)


def floored_rules() -> tuple[PlacementRule, ...]:
    """The rules whose default strides a module's floor narrows (the keys ``AttentionModule.min_stride`` takes)."""
    return tuple(rule for rule in _TABLE if rule.floored)


# ------------------------------------------------------------------------------------- generated texts


def rules_help(indent: int = 2) -> list[str]:
    """One line per rule, ``<indent>name  help``, for ``yoloattn variant --help``."""
    width = max(len(rule.name) for rule in _TABLE)
    return [f"{' ' * indent}{rule.name:<{width}} {rule.help}" for rule in _TABLE]


def strided_text() -> str:
    """``csp@16,32, a2c2f@16,32 and head@8,16,32``: each rule that takes strides, with an example."""
    return _and([f"{rule.name}@{rule.stride_example}" for rule in _TABLE if rule.takes_strides])


def stride_example() -> str:
    """``csp@16,32``: how strides are written, on the first rule that takes them."""
    rule = next(rule for rule in _TABLE if rule.takes_strides)
    return f"{rule.name}@{rule.stride_example}"


def strides_hint() -> str:
    """``csp, a2c2f and head take strides: csp@16,32``."""
    return f"{_and([rule.name for rule in _TABLE if rule.takes_strides])} take strides: {stride_example()}"


def rule_names_text() -> str:
    """Every rule on one line, with how strides are written: ``csp, psa, ..., mmqa (csp@16,32, ... pick strides)``."""
    return f"{', '.join(rule.name for rule in _TABLE)} ({strided_text()} pick strides)"


def default_text() -> str:
    """The default placement in words: ``the base's own attention block (psa for YOLOv10/YOLO11/YOLO26, ...),
    csp otherwise``."""
    owned = ", ".join(f"{rule.name} for {'/'.join(rule.families)}" for rule in _TABLE if rule.own_block)
    return f"the base's own attention block ({owned}), {FALLBACK_RULE} otherwise"


def floors_text(specs: Iterable[AttentionModule]) -> str | None:
    """The modules whose floor narrows a rule's default strides, and what the others get (``yoloattn modules``);
    None when no module has a floor above 1."""
    floored = floored_rules()
    floors = [f"{rule.name} from stride {spec.floor(rule.name)} for {spec.name}"
              for spec in specs for rule in floored if spec.floor(rule.name) > 1]
    if not floors:
        return None
    return ("Without strides (latency budget, docs/benchmarks.md): " + "; ".join(floors) + "; modules not listed: "
            + _and([f"{rule.covers} ({rule.name})" for rule in floored]) + "; stride 8 = P3, 16 = P4, 32 = P5")


#: The lines around the generated table in docs/families.md (``python -m yoloattn.zoo`` rewrites what is between).
DOCS_BEGIN = "<!-- rule x family table: generated from src/yoloattn/rules.py by `python -m yoloattn.zoo` -->"
DOCS_END = "<!-- end of the generated table -->"


def families_markdown() -> str:
    """The rule x family table of docs/families.md (Markdown, one line per family, no trailing newline)."""
    lines = ["| family | " + " | ".join(f"`{rule.name}`" for rule in _TABLE) + " |",
             "|---" * (len(_TABLE) + 1) + "|"]
    for family in FAMILIES.values():
        cells = [("yes" + (f" ({rule.implied_module} only)" if rule.implied_module else ""))
                 if family in rule.families else "–" for rule in _TABLE]
        lines.append(f"| {family} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def with_families_table(text: str) -> str:
    """``text`` (docs/families.md) with the lines between :data:`DOCS_BEGIN` and :data:`DOCS_END` replaced
    by :func:`families_markdown`.

    Raises:
        ValueError: the markers are missing or out of order.
    """
    start, end = text.find(DOCS_BEGIN), text.find(DOCS_END)
    if start < 0 or end < start:
        raise ValueError(f"the rule x family table needs the lines {DOCS_BEGIN!r} and {DOCS_END!r} around it")
    return f"{text[:start]}{DOCS_BEGIN}\n{families_markdown()}\n{text[end:]}"
