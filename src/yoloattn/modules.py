"""The module table: every attention module yoloattn can place, built-in, timm's or the user's.

One ``AttentionModule`` record per module says everything the rest of yoloattn needs: the class and
how its constructor takes channels, whether its cost is quadratic in the map size (then the zoo
rules give it ``dense_map_options`` on maps of stride <= 16 and keep it off the stride-8 head map),
its parameter formula, where it came from, and optional builders for the YAML blocks. The blocks
(``C2f_M``, ``C3k2_M``, ``C2PSA_M``, ``PSA_M``, ``A2C2f_M``, ``RepNCSPELAN4_M`` and the standalone layer ``M``), the
Ultralytics registry, the zoo rules, the command line and ``compare`` all read this table; nothing
else lists modules.

A module enters the table through :func:`register_attention` only: the four built-ins at the bottom
of this file, timm's channel-attention layers (``timm_*``, when timm is installed), and the user's
(a call, a decorator, ``--plugin``, ``YOLOATTN_PLUGINS`` or the ``yoloattn.modules`` entry point;
see docs/plugins.md). This file is dependency-free: classes may be given as ``"package.module:Name"``
paths, resolved on first use, so importing it imports neither torch nor Ultralytics.
"""

from __future__ import annotations

import importlib
import inspect
import keyword
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from .errors import YoloattnError
from .rules import floored_rules

__all__ = [
    "AttentionModule", "ModuleOption", "PluginError", "block_class", "builtin_names", "get", "module_classes",
    "module_options", "names", "register_attention", "register_class", "similar", "table",
]

#: Sources of a module, in the order ``yoloattn modules`` lists them.
SOURCES = ("built-in", "timm", "plug-in")
#: How a class takes channels: ``(c1, c2, **options)`` or ``(channels, **options)`` (SE, CBAM, ECA, ...).
CHANNELS = ("c1_c2", "c")
#: The largest stride whose maps count as dense for a quadratic module (MobileNetV4 reduces keys there).
DENSE_STRIDE = 16
#: The finest map a P3-P5 detection head reads (P3/8); quadratic modules start one level coarser.
HEAD_FINEST_STRIDE = 8

class PluginError(YoloattnError):
    """A module cannot be registered or loaded: a name clash, a bad class, an unimportable plug-in."""


@dataclass(frozen=True)
class AttentionModule:
    """One row of the module table.

    Attributes:
        name: The module's name: YAML names ``name``, ``C2f_name``, ... and ``--module name``.
        target: The attention class, as a class, a ``"package.module:Name"`` path or a function
            returning the class (resolved by :meth:`cls` on first use). It maps (B, C, H, W) to
            (B, C, H, W) (to (B, c2, H, W) when it takes c2).
        channels: ``"c1_c2"`` when the constructor is ``(c1, c2, **options)``, ``"c"`` when it is
            ``(channels, **options)``.
        quadratic: Cost grows with (H·W)² (softmax attention over all positions).
        dense_map_options: Options the zoo rules pass at stride <= ``DENSE_STRIDE`` when quadratic
            (Mobile MQA: ``kv_stride=2``, as MobileNetV4 does at stride 16).
        params: Parameter-count formula (C = channels), shown by ``yoloattn modules``.
        summary: One line: what the module is (paper).
        source: ``"built-in"``, ``"timm"`` or ``"plug-in"``.
        origin: What to import to register it again in a fresh process (a module path), and what
            errors name: ``yoloattn``, or the plug-in's module path or file.
        unit: What replaces a Bottleneck inside C2f / C3k2 / RepNCSPELAN4: ``"bottleneck"`` (default:
            the Bottleneck's two 3x3 convs, then M, then the residual; right for gates such as SE,
            ECA, CBAM), ``"residual"`` (``x + M(x)``, no convs; right for token mixers), or a builder
            ``(c, shortcut, **options)`` given as class, path or function.
        psa, layer: Optional builders for the attention inside a PSABlock ``(c, **options)`` and
            for the standalone YAML layer ``(c1, c2, *args, **options)``. None: ``M`` in PSABlock's
            residual, and the bare ``M``.
        min_stride: Per placement rule that picks strides (``head``, ``a2c2f``), the finest stride it
            gives this module when the user names none (``head@8,16,32`` does). Missing rules: the
            ``head`` rule attends stride >= 16 for a quadratic module and every neck output
            otherwise; ``a2c2f`` every stride (see :meth:`floor`). A finer map has 4x the positions
            of the next, so a module whose per-position cost is high gets 16 or 32 there to stay
            within the latency budget.
    """

    name: str
    target: Any
    channels: str = "c1_c2"
    quadratic: bool = False
    dense_map_options: Mapping[str, Any] = field(default_factory=dict)
    params: str = ""
    summary: str = ""
    source: str = "plug-in"
    origin: str = ""
    unit: Any = "bottleneck"
    psa: Any = None
    layer: Any = None
    min_stride: Mapping[str, int] = field(default_factory=dict)

    def cls(self) -> type:
        """The attention class (imports it on first use)."""
        return resolve(self.target, self)

    def floor(self, rule: str) -> int:
        """The finest stride placement ``rule`` gives this module when no strides are named (1: any)."""
        if rule in self.min_stride:
            return self.min_stride[rule]
        return 2 * HEAD_FINEST_STRIDE if rule == "head" and self.quadratic else 1

    def options_at(self, stride: int) -> dict:
        """Default options of a placement on a map of this stride (empty unless quadratic and dense)."""
        return dict(self.dense_map_options) if self.quadratic and stride <= DENSE_STRIDE else {}


_TABLE: dict[str, AttentionModule] = {}
_LISTENERS: list[Callable[[AttentionModule, int], None]] = []


def register_attention(name: str, cls: Any = None, **options: Any):
    """Add an attention module to the table; usable as ``@register_attention("Name")``.

    Args:
        name: A Python identifier, unique over all modules (it becomes YAML names like ``C2f_Name``).
        cls: An ``nn.Module`` class whose first constructor argument is the channel count and whose
            output has the input's shape; an optional second argument named ``c2`` may change the
            output channels. Modules taking only the channels (SE, CBAM, ECA) are wrapped. Also a
            ``"package.module:Name"`` path or a function returning the class (resolved lazily).
        **options: Fields of :class:`AttentionModule`: ``quadratic``, ``dense_map_options``,
            ``params``, ``summary``, ``channels`` (detected from the signature when omitted),
            ``unit`` / ``psa`` / ``layer`` builders, ``source``, ``origin``, and ``probe_channels``
            (default 64): the width of the shape check run when a class is registered.

    Returns:
        The class (so the decorator leaves it unchanged), or the decorator when ``cls`` is omitted.

    Raises:
        PluginError: the name is not an identifier or is taken by another class; the class does
            not take channels first; a built class changes the input's shape.
    """
    if cls is None:
        return lambda target: register_attention(name, target, **options)
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        raise PluginError(f"attention module name {name!r} must be a Python identifier (it becomes YAML names "
                          f"like C2f_{name}); pick another name")
    probe_channels = options.pop("probe_channels", 64)
    unknown = set(options) - {f for f in AttentionModule.__dataclass_fields__ if f not in ("name", "target")}
    if unknown:
        raise PluginError(f"register_attention({name!r}): unknown option(s) {', '.join(sorted(unknown))}")
    origin = options.pop("origin", None) or _origin_of(cls)
    if isinstance(cls, type) and "channels" not in options:
        options["channels"] = _channels_of(name, cls, origin)
    for mapping in ("dense_map_options", "min_stride"):
        if mapping in options:
            options[mapping] = MappingProxyType(dict(options[mapping] or {}))
    spec = AttentionModule(name, cls, origin=origin, **options)
    if spec.channels not in CHANNELS or spec.source not in SOURCES:
        raise PluginError(f"register_attention({name!r}): channels must be one of {CHANNELS} and source one of {SOURCES}")
    floored = [rule.name for rule in floored_rules()]  # the rules whose default strides a floor narrows
    if not all(r in floored and isinstance(v, int) and v >= 1 for r, v in spec.min_stride.items()):
        raise PluginError(f"register_attention({name!r}): min_stride maps the placement rules "
                          f"{' and '.join(floored)} to strides, e.g. {{'head': 16}}, got {dict(spec.min_stride)!r}")
    if isinstance(spec.unit, str) and spec.unit not in ("bottleneck", "residual") and ":" not in spec.unit:
        raise PluginError(f"register_attention({name!r}): unit must be 'bottleneck', 'residual', a builder or a "
                          f"'package.module:builder' path, got {spec.unit!r}")
    known = next((s for n, s in _TABLE.items() if n.lower() == name.lower()), None)  # names match in any case
    if known is not None:
        if _same_target(known.target, cls):
            return cls  # the same class imported again (by file and by module path, or a second import)
        raise PluginError(f"attention module name {name!r} is already taken by {_describe(known)}; "
                          f"register {_where(cls, origin)} under another name")
    for listener in _LISTENERS:  # the Ultralytics bridge builds the blocks and YAML names (and checks shapes)
        listener(spec, probe_channels)
    _TABLE[name] = spec
    return cls


def register_class(module, class_name: str, spec: str | None = None) -> str:
    """Register the undecorated class ``class_name`` of the imported plug-in ``module`` under its class name
    (a no-op when it is registered already); returns the name.

    Raises:
        PluginError: the module has no such attribute, or it is not an ``nn.Module`` class; and the
            errors of :func:`yoloattn.register_attention` (name taken, shape check).
    """
    import torch

    who = spec or module.__name__
    target = getattr(module, class_name, None)
    if target is None:
        classes = ", ".join(module_classes(module)) or "none"
        raise PluginError(f"plug-in {who} has no class {class_name!r} (its nn.Module classes: {classes})")
    if not (isinstance(target, type) and issubclass(target, torch.nn.Module)):
        raise PluginError(f"plug-in {who}: {class_name!r} is a {type(target).__name__}, not an nn.Module class")
    register_attention(class_name, target, origin=module.__name__)
    return class_name


def module_classes(module) -> list[str]:
    """The ``nn.Module`` classes defined in ``module`` (not imported into it), by name (imports torch)."""
    import torch

    return sorted(name for name, value in vars(module).items()
                  if isinstance(value, type) and issubclass(value, torch.nn.Module)
                  and value.__module__ == module.__name__)


def get(name: str) -> AttentionModule:
    """The table row of `name`, matched case-insensitively; PluginError names the known modules."""
    spec = _TABLE.get(name) or {k.lower(): v for k, v in _TABLE.items()}.get(str(name).lower())
    if spec is None:
        close = similar(str(name), n=3, cutoff=0.5)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise PluginError(f"unknown module {name!r}{hint}; choose one of {', '.join(names())}; a module of "
                          "your own needs --plugin FILE.py (see docs/plugins.md)")
    return spec


def similar(name: str, n: int = 3, cutoff: float = 0.6) -> list[str]:
    """Registered module names close to ``name``, compared case-insensitively (``mla`` -> ``MLLA``)."""
    import difflib

    by_lower = {k.lower(): k for k in names()}
    return [by_lower[m] for m in difflib.get_close_matches(name.lower(), list(by_lower), n=n, cutoff=cutoff)]


@dataclass(frozen=True)
class ModuleOption:
    """One constructor option of a module: its name, default (``inspect.Parameter.empty`` when required)
    and meaning (from the class docstring's ``Args:`` section; empty when it says nothing)."""

    name: str
    default: Any
    meaning: str
    block_default: Any = inspect.Parameter.empty  # the module's block class's own default where it differs
    in_block: bool = True  # False: the block class does not take the option


def module_options(spec: AttentionModule) -> list[ModuleOption]:
    """The options a YAML row's trailing mapping may set for ``spec`` (``[1024, {kv_stride: 2}]``): the
    constructor's arguments after the channel count(s), with their defaults, and their meaning from the
    class docstring's Google-style ``Args:`` section (``name: text``; ``a, b: text`` documents both).
    Where the module's own block class (:func:`block_class`, e.g. ``MQABlock``) defaults an option
    differently, ``block_default`` holds that value and the meaning ends with the block's own words; an
    option that block class does not take has ``in_block`` False.

    Raises:
        PluginError: the class cannot be imported (see :meth:`AttentionModule.cls`).
    """
    target = spec.cls()
    found = _signature_options(target, 2 if spec.channels == "c1_c2" else 1)
    block = block_class(spec)
    in_block = {o.name: o for o in _signature_options(block, 2)} if block is not None else {}
    out = []
    for option in found:
        other = in_block.get(option.name)
        if in_block and other is None:  # the block class does not take it: the layer and its units refuse it
            out.append(ModuleOption(option.name, option.default, option.meaning, in_block=False))
            continue
        if other is None or other.default == option.default:
            out.append(option)
            continue
        said = f" In yoloattn's blocks: {other.meaning}" if other.meaning and other.meaning != option.meaning else ""
        out.append(ModuleOption(option.name, option.default, option.meaning + said, other.default))
    return out


def block_class(spec: AttentionModule) -> type | None:
    """The class of the module's own block, whose defaults :func:`module_options` compares: its ``layer``
    builder when that is a class (``MQABlock``), else its ``unit`` builder when that is a class
    (``ACmixBottleneck``, taking ``(c, shortcut, ...)``); None when both are functions or defaults."""
    for builder in (spec.layer, spec.unit):
        if builder is None or builder in ("bottleneck", "residual"):
            continue
        found = resolve(builder, spec)
        if isinstance(found, type):
            return found
    return None


def _signature_options(target: Any, channel_args: int) -> list[ModuleOption]:
    try:
        parameters = list(inspect.signature(target).parameters.values())
    except (TypeError, ValueError):
        return []
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    channels = {p.name for p in positional[:channel_args]}
    meanings = _documented_args(inspect.getdoc(getattr(target, "func", target)) or "")
    return [ModuleOption(p.name, p.default, meanings.get(p.name, ""))
            for p in parameters if p.name not in channels and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def _documented_args(doc: str) -> dict[str, str]:
    """``{argument: meaning}`` from a docstring's ``Args:`` section (continuation lines joined)."""
    import re

    found: dict[str, str] = {}
    lines = doc.splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() in ("Args:", "Arguments:", "Parameters:")), None)
    if start is None:
        return found
    indent, current = None, []
    for line in lines[start + 1:]:
        if not line.strip():
            continue
        depth = len(line) - len(line.lstrip())
        if indent is None:
            indent = depth
        if depth < indent:  # the next section (Raises:, Returns:, prose)
            break
        entry = re.match(r"([\w*]+(?:\s*,\s*[\w*]+)*)\s*(?:\([^)]*\))?:\s*(.*)", line.strip()) if depth == indent else None
        if entry:
            current = [n.strip().lstrip("*") for n in entry.group(1).split(",")]
            for name in current:
                found[name] = entry.group(2).strip()
        elif current:
            for name in current:
                found[name] = f"{found[name]} {line.strip()}".strip()
    return found


def table() -> list[AttentionModule]:
    """Every registered module: built-ins first, then timm's, then plug-ins, each in registration order."""
    return sorted(_TABLE.values(), key=lambda s: SOURCES.index(s.source))


def names(source: str | None = None) -> list[str]:
    return [s.name for s in table() if source is None or s.source == source]


def builtin_names() -> tuple[str, ...]:
    """The four modules yoloattn ships (the zoo and ``compare``'s default)."""
    return tuple(names("built-in"))


def on_register(listener: Callable[[AttentionModule, int], None]) -> None:
    """Call `listener(spec, probe_channels)` for every module registered from now on and, at once,
    for those already in the table (used by the Ultralytics bridge)."""
    _LISTENERS.append(listener)
    for spec in list(_TABLE.values()):
        listener(spec, 64)


def resolve(target: Any, spec: AttentionModule | None = None) -> Any:
    """A class or function given as itself, ``"package.module:Name"`` or a zero-argument factory."""
    if isinstance(target, str):
        module_path, _, attr = target.partition(":")
        try:
            return getattr(importlib.import_module(module_path), attr)
        except (ImportError, AttributeError) as error:
            who = f"attention module {spec.name!r} ({spec.source}) needs" if spec else "yoloattn needs"
            raise PluginError(f"{who} {target}, which cannot be imported: {error}") from None
    if callable(target) and not isinstance(target, type) and getattr(target, "_yoloattn_lazy", False):
        return target()
    return target


def lazy(factory: Callable[[], Any]) -> Callable[[], Any]:
    """Mark a zero-argument function as a lazy class target (e.g. a timm layer looked up on first use)."""
    factory._yoloattn_lazy = True
    return factory


def _origin_of(cls: Any) -> str:
    if isinstance(cls, str):
        return cls.partition(":")[0]
    return getattr(cls, "__module__", "") or ""


def _where(cls: Any, origin: str) -> str:
    name = cls if isinstance(cls, str) else getattr(cls, "__qualname__", repr(cls))
    return f"{origin}:{name}" if origin and not isinstance(cls, str) else str(name)


def _describe(spec: AttentionModule) -> str:
    return f"the {spec.source} module {_where(spec.target, spec.origin)}"


def _same_target(a: Any, b: Any) -> bool:
    if a is b:
        return True
    key = lambda t: t if isinstance(t, str) else f"{getattr(t, '__module__', '')}:{getattr(t, '__qualname__', '')}"  # noqa: E731
    return key(a) == key(b)


def _channels_of(name: str, cls: type, origin: str) -> str:
    try:
        parameters = list(inspect.signature(cls).parameters.values())
    except (TypeError, ValueError):
        return "c1_c2"
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if not positional:
        raise PluginError(f"attention module {name!r} ({_where(cls, origin)}) must take the channel count as its "
                          "first constructor argument")
    return "c1_c2" if len(positional) > 1 and positional[1].name == "c2" else "c"


# --------------------------------------------------------------------------- the built-in modules
# min_stride keeps each ``head`` and YOLO12 ``a2c2f`` placement within 1.25x of its baseline's batch-1
# latency at 640 (PyTorch and ONNX Runtime, 1 thread; docs/benchmarks.md has the full table).
# ``head`` on yolo11n, ratio to the baseline (PyTorch / ONNX Runtime) per set of attended outputs:
#   iRMB   P3-P5 1.19 / 1.19 (yolo26n: 1.14 / 1.23)   P4-P5 1.07 / 1.10
#   ACmix  P3-P5 1.43 / 2.11 (before its dense inference path)   P4-P5 1.16 / 1.32   P5 1.06 / 1.06
#   MLLA   P3-P5 1.61 / 1.48   P4-P5 1.23 / 1.26   P5 1.07 / 1.12
# MQA is quadratic and skips P3 as every quadratic module does (P4-P5: 1.16 / 1.19). ``a2c2f`` on
# yolo12n: ACmix in the P4 and P5 blocks 1.06 / 1.29 (the 40x40 window loop in ONNX Runtime), P5 only
# 0.99 / 1.02; the other modules keep both (at most 1.08 / 1.09).
register_attention(
    "MQA", "yoloattn.attention.mqa:MobileMQA", channels="c1_c2", quadratic=True,
    dense_map_options={"kv_stride": 2}, source="built-in", origin="yoloattn",
    params="C*(h*k + k + v + h*v) [+ 2*(d^2*C + 2C) with kv_stride>1] [+ 2C with query_stride>1]  "
           "(h = num_heads, k = key_dim, v = value_dim, d = dw_kernel_size)",
    summary="Mobile MQA block (MobileNetV4): x + MQA(BN(x))",
    unit="yoloattn.blocks.units:mqa_unit", psa="yoloattn.blocks.units:mqa_psa", layer="yoloattn.blocks.units:MQABlock",
)
register_attention(
    "ACmix", "yoloattn.attention.acmix:ACmix", channels="c1_c2", source="built-in", origin="yoloattn",
    params="3*(Cin*C + C) + 3*C/head + 3*head*kc^2 + C*kc^4 + 2  (Cin = c1, C = c2, kc = kernel_conv)",
    summary="ACmix (CVPR 2022): local attention + shift conv, no residual",
    unit="yoloattn.blocks.units:ACmixBottleneck", min_stride={"head": 32, "a2c2f": 32},
)
register_attention(
    "MLLA", "yoloattn.attention.mlla:MLLABlock", channels="c1_c2", source="built-in", origin="yoloattn",
    params="(5 + 2r)*C^2 + (50 + r)*C  (r = mlp_ratio)",
    summary="MLLA block (NeurIPS 2024): linear attention with 2-D RoPE",
    unit="yoloattn.blocks.units:mlla_unit", psa="yoloattn.blocks.units:mlla_psa", min_stride={"head": 32},
)
register_attention(
    "iRMB", "yoloattn.attention.irmb:iRMB", channels="c1_c2", source="built-in", origin="yoloattn",
    params="(2 + 2e)*C^2 + (2 + 11e)*C  (e = exp_ratio, no qkv bias)",
    summary="iRMB (EMO, ICCV 2023): windowed attention + depthwise conv",
    unit="yoloattn.blocks.units:irmb_unit", psa="yoloattn.blocks.units:irmb_psa", min_stride={"head": 16},
)


# --------------------------------------------------------------------------- timm's attention layers
#: timm layer names (``timm.layers.get_attn``) exposed as ``timm_<name>``: those that keep the input's
#: shape at any map size with their defaults, and whether they are quadratic. ``ge`` (GatherExcite)
#: is left out: timm 1.0.31 cannot build it with its defaults (ConvMlp gets act_layer twice).
TIMM_LAYERS = {
    "se": False, "ese": False, "eca": False, "ecam": False, "ceca": False, "gc": False, "gca": False,
    "cbam": False, "lcbam": False, "lambda": False, "nl": True,
}


def _timm_layer(name: str):
    def load():
        try:
            from timm.layers import get_attn
        except ImportError:
            raise PluginError(f"timm_{name} needs timm: pip install 'yoloattn[timm]'") from None
        return get_attn(name)

    return lazy(load)


def _register_timm() -> None:
    import importlib.util

    if importlib.util.find_spec("timm") is None:
        return
    for layer, quadratic in TIMM_LAYERS.items():
        register_attention(
            f"timm_{layer}", _timm_layer(layer), channels="c", quadratic=quadratic, source="timm", origin="yoloattn",
            summary=f"timm.layers.get_attn({layer!r}) (timm's own layer, not a copy)",
            params="see timm",
        )


_register_timm()
