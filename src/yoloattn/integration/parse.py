"""Teach Ultralytics' ``parse_model`` our YAML names without editing Ultralytics.

``parse_model`` resolves names through ``ultralytics.nn.tasks`` globals and decides channel
handling from frozensets local to the function, so registration alone cannot give a plug-in class
the stock treatment (c1 from the previous layer, width-scaled and capped c2, depth-scaled n).

The wrapper installed here does a *placeholder swap*: every row naming a registered yoloattn module
is rewritten to a stock module with the same contract (``Conv``, ``C2f`` or ``C3k2``, see
``registry.py``), the original parser runs, and the channels and repeats it decided are read back
from the placeholder to build the real module in its slot. Every piece of Ultralytics' logic
(scales, ``max_channels``, Concat/Detect channel sums, the ``legacy`` head flag) therefore stays
Ultralytics' own. The verbose layer table is re-emitted with our real rows.
"""

from __future__ import annotations

import ast
import contextlib
import copy
import difflib
import inspect
import logging
import re

import torch.nn as nn
from ultralytics.nn import tasks
from ultralytics.nn.modules import C2f, C3k2, Conv
from ultralytics.nn.modules.block import A2C2f, C3k

from ..errors import YoloattnError
from ..yaml_model import rows as model_rows
from ..yaml_model import with_rows
from .patching import unwrap, wrap
from .registry import REGISTRY, Entry, UnknownModuleError, unknown_name_message

_PLACEHOLDER = {"layer": "Conv", "csp": "C2f", "c3k2": "C3k2", "a2c2f": "A2C2f"}
# Placeholder arguments after c2: 8.3's parser writes ``args[3] = True`` (c3k) at scales m/l/x, which
# needs the c3k slot to exist; 8.4 assigns a slice and accepts either. The A2C2f placeholder has
# area attention (a2=True, area=1) so that its ``gamma`` shows whether the parser appended the l/x
# arguments (residual=True, mlp_ratio=1.2).
_PLACEHOLDER_EXTRA = {"layer": [], "csp": [], "c3k2": [False], "a2c2f": [True, 1]}
_TAKES_N = {"layer": False, "csp": True, "c3k2": True, "a2c2f": True}  # 3rd argument is the repeat count


def install() -> None:
    """Wrap ``ultralytics.nn.tasks.parse_model`` (idempotent) and expose our names in its namespace."""
    for entry in REGISTRY.entries():
        setattr(tasks, entry.name, entry.cls)

    def make_wrapper(original):
        def parse_model(d, ch, verbose=True):
            return _parse_with_swaps(original, d, ch, verbose)

        return parse_model

    wrap(tasks, "parse_model", make_wrapper)


def uninstall() -> None:
    unwrap(tasks, "parse_model")


def _parse_with_swaps(original, d, ch, verbose):
    found = model_rows(d)
    _check_names(found)
    if not any(row.module in REGISTRY for row in found):
        return original(d, ch, verbose)

    d = copy.deepcopy(d)  # the parser edits row arguments in place; the caller's dict stays as written
    scales = d.get("scales")
    if isinstance(scales, dict) and len(scales) == 1 and not d.get("scale"):
        # A file with one scale (`variant` keeps one for an unscaled name and says so): Ultralytics would pick
        # it anyway, after a warning that it "assumes" it.
        d["scale"] = next(iter(scales))
    swaps: dict[int, tuple[Entry, list]] = {}
    placeholders = []
    for i, row in enumerate(model_rows(d)):
        name, args = row.module, row.args
        if name in REGISTRY:
            if not args:
                raise ValueError(f"YAML row {i} ({name}) needs at least the output channels, e.g. [-1, 1, {name}, [256]]")
            swaps[i] = (REGISTRY[name], list(args))
            contract = REGISTRY[name].contract
            row = row._replace(module=_PLACEHOLDER[contract], args=[args[0], *_PLACEHOLDER_EXTRA[contract]])
        placeholders.append(row)
    d = with_rows(d, placeholders)

    with _captured_log(verbose) as records:
        model, save = original(d, ch, verbose)
    with _activation(d.get("activation")):
        built = {i: _build_row(i, model[i], entry, yaml_args, d) for i, (entry, yaml_args) in swaps.items()}
    table_rows = {}
    for i, (module, args) in built.items():
        placeholder, first = model[i], module[0] if isinstance(module, nn.Sequential) else module
        module.i, module.f = placeholder.i, placeholder.f
        module.type = f"{type(first).__module__}.{type(first).__qualname__}"
        module.np = sum(p.numel() for p in module.parameters())
        model[i] = module
        if isinstance(module, nn.Sequential):
            n = len(module)
        else:
            n = args[2] if _TAKES_N[swaps[i][0].contract] else 1
        table_rows[i] = f"{i:>3}{module.f!s:>20}{n:>3}{module.np:10.0f}  {module.type:<45}{args!s:<30}"
    _reemit(records, table_rows)
    return model, save


def _check_names(rows) -> None:
    for i, row in enumerate(rows):
        name = row.module
        if name in REGISTRY or name.startswith(("nn.", "torchvision.ops.")):
            continue
        if not isinstance(getattr(tasks, name, None), type):
            candidates = REGISTRY.names() + [k for k, v in vars(tasks).items() if isinstance(v, type)]
            raise UnknownModuleError(unknown_name_message(name, candidates, where=f" in YAML row {i}"))


class ModelBuildError(YoloattnError):
    """A YAML row's arguments do not build its module (a bad value or an unknown option)."""


_UNEXPECTED = re.compile(r"unexpected keyword argument '(\w+)'")


def _build_row(i: int, placeholder: nn.Module, entry: Entry, yaml_args: list, d: dict):
    """``_build_real`` with the row named in argument errors (a bad option in a flow mapping, ...)."""
    try:
        return _build_real(placeholder, entry, yaml_args, d)
    except (TypeError, ValueError) as error:
        where = f"YAML row {i} ({entry.name}, args {yaml_args})"
        unknown = _UNEXPECTED.search(str(error))
        if isinstance(error, TypeError) and unknown:
            close = difflib.get_close_matches(unknown.group(1), _option_names(), n=3, cutoff=0.6)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ModelBuildError(f"{where}: unknown option {unknown.group(1)!r} in the flow mapping{hint}") from None
        if isinstance(error, YoloattnError) or type(error) in (TypeError, ValueError):
            raise ModelBuildError(f"{where}: {error}") from None
        raise


def _option_names() -> list[str]:
    """Keyword parameters of every module and unit a flow mapping can reach (for did-you-mean)."""
    from .. import attention, blocks

    classes = [getattr(attention, n) for n in attention.__all__] + [blocks.MQABlock, blocks.ACmixBottleneck]
    return sorted({p for cls in classes for p in inspect.signature(cls).parameters if p not in ("c1", "c2", "self")})


def _build_real(placeholder: nn.Module, entry: Entry, yaml_args: list, d: dict):
    """Build ``entry.cls`` with the channels and repeats the stock parser gave the placeholder."""
    rest = [_resolve(a, d) for a in yaml_args[1:]]
    options = _options(entry.cls, rest.pop()) if rest and isinstance(rest[-1], dict) else {}
    shown_options = [yaml_args[-1]] if options else []
    if entry.contract == "layer":
        convs = list(placeholder) if isinstance(placeholder, nn.Sequential) else [placeholder]
        c1, c2 = convs[0].conv.in_channels, convs[0].conv.out_channels
        shown = [c1, c2, *rest, *shown_options]
        if len(convs) == 1:
            return entry.cls(c1, c2, *rest, **options), shown
        # Stock Ultralytics would give every copy c1 inputs; chaining c2 -> c2 is what a repeat means.
        blocks = [entry.cls(c1, c2, *rest, **options)] + [entry.cls(c2, c2, *rest, **options) for _ in convs[1:]]
        return nn.Sequential(*blocks), shown

    assert isinstance(placeholder, (C2f, A2C2f)), placeholder  # C3k2 is a C2f subclass
    c1, c2, n = placeholder.cv1.conv.in_channels, placeholder.cv2.conv.out_channels, len(placeholder.m)
    args = [c1, c2, n, *rest]
    if entry.contract == "a2c2f" and placeholder.gamma is not None:
        args.extend((True, 1.2))  # the parser's l/x rule, applied to the real row as to a stock one
    if entry.contract == "c3k2" and isinstance(placeholder.m[0], C3k):
        if len(args) > 3:
            args[3] = True  # the parser forced c3k=True for scales m/l/x; mirror it
        else:
            options["c3k"] = True
    return entry.cls(*args, **options), [*args, *shown_options]


def _options(cls: type, mapping: dict) -> dict:
    """Keyword arguments from a row's trailing flow mapping.

    Blocks that take an ``options`` dict (C2f_*, C3k2_*, C2PSA_*, PSA_*, A2C2f_*, RepNCSPELAN4_*)
    get the mapping as that dict, wherever the positional arguments before it stop:
    ``[1024, {compat: tf}]``. Other modules get it as keyword arguments: ``[256, {kv_stride: 2}]``.
    """
    param = inspect.signature(cls).parameters.get("options")
    takes_dict = param is not None and param.kind is not inspect.Parameter.VAR_KEYWORD  # not a layer's **options
    return {"options": mapping} if takes_dict else dict(mapping)


def _resolve(arg, d: dict):
    """String arguments as parse_model treats them: 'nc' and Python literals."""
    if not isinstance(arg, str):
        return arg
    if arg == "nc":
        return d["nc"]
    with contextlib.suppress(ValueError, SyntaxError):
        return ast.literal_eval(arg)
    return arg


@contextlib.contextmanager
def _activation(spec):
    """Blocks built after the parser returns must still see the YAML's ``activation:``."""
    saved = Conv.default_act
    if spec:
        safe_load = getattr(tasks, "_SafeLoad", None)
        if safe_load is not None and safe_load.restricted():
            Conv.default_act = safe_load.activation(spec)
        else:
            Conv.default_act = eval(spec, vars(tasks))  # same resolution as parse_model's own eval(act)
    try:
        yield
    finally:
        Conv.default_act = saved


_ROW = re.compile(r"^\s*(\d+)\s")


@contextlib.contextmanager
def _captured_log(verbose: bool):
    """Hold back the parser's log records so placeholder rows can be replaced before printing."""
    records: list[logging.LogRecord] = []
    if not verbose:
        yield records
        return

    def hold(record):
        records.append(record)
        return False

    tasks.LOGGER.addFilter(hold)
    try:
        yield records
    finally:
        tasks.LOGGER.removeFilter(hold)


def _reemit(records, table_rows: dict[int, str]) -> None:
    """Print the held records, our real rows in place of the placeholder rows (same format as Ultralytics)."""
    for record in records:
        message = record.getMessage()
        match = _ROW.match(message)
        if match and message[:3].strip() == match.group(1) and int(match.group(1)) in table_rows:
            record.msg, record.args = table_rows[int(match.group(1))], ()
        tasks.LOGGER.handle(record)
