"""Every default and every check of a comparison, applied once, before anything is written.

:func:`resolve` turns what the user asked (``settings.CompareSettings``) into one frozen
:class:`ResolvedCompare`: module names canonical, ``--where`` parsed, ``imgsz`` and ``threads_per_run``
filled, the base model read, its wiring and task checked, the executor's options checked by the
executor itself. Everything after it (``plan.py``, ``runner.py``) trusts those values.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from ..errors import YoloattnError
from . import executors
from .models import imgsz_error, load_model_dict, resolve_model
from .sequential import SequentialDesign
from .settings import CompareError, CompareSettings, default_runtimes


@dataclass(frozen=True)
class ResolvedCompare:
    """A comparison ready to plan. ``settings.where`` is a tuple of canonical rules (``("all",)`` for
    every rule) or None for the base's default; ``settings.modules`` canonical module names."""

    settings: CompareSettings
    base: dict  # the base model dict (Ultralytics YAML), read once
    stem: str  # display stem with the scale letter, e.g. yolo11n
    base_path: str  # resolve_model(settings.base)
    out: Path  # absolute OUT
    executor: type  # the executor's class (executors.EXECUTORS); its class-level answers need no instance
    sequential: SequentialDesign | None = None  # --until-decided: the adaptive-seeds design (sequential.py)


def parse_modules(text: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """``"all"`` or names separated by commas, case-insensitive, to canonical module names.

    ``all`` is the built-in modules plus the plug-ins loaded in this process; timm's layers
    (``timm_eca``, ...) are named one by one. Raises CompareError for an unknown name (closest names given).
    """
    from .. import modules

    everyday = (*modules.builtin_names(), *modules.names("plug-in"))  # what 'all' means
    items = text.split(",") if isinstance(text, str) else list(text)
    items = [item.strip() for item in items if item.strip()]
    if not items or [i.lower() for i in items] == ["all"]:
        return everyday
    known = {m.lower(): m for m in modules.names()}
    unknown = [i for i in items if i.lower() not in known]
    if unknown:
        close = [m for u in unknown for m in modules.similar(u, n=2)]
        hint = f" (did you mean {', '.join(dict.fromkeys(close))}? `yoloattn modules` lists timm's and plug-in modules)" if close else ""
        raise CompareError(f"unknown module(s) {', '.join(unknown)}; choose from {', '.join(everyday)} or 'all'{hint}")
    return tuple(dict.fromkeys(known[i.lower()] for i in items))


def all_rules() -> tuple[str, ...]:
    """The rules ``--where all`` tries, in the rule table's order: every rule but those implying a module (mmqa)."""
    from ..rules import any_module_rules

    return any_module_rules()


def parse_where(where: str | list[str] | tuple[str, ...] | None) -> tuple[str, ...] | None:
    """``--where`` as a tuple of placement rules: ``"csp,psa"``, ``("csp", "psa")``, ``"all"``; None for the
    base's default. Stride lists stay with their rule: ``"csp@16,32,head"`` is ``("csp@16,32", "head")``,
    and are sorted (``csp@32,16`` is ``csp@16,32``: one placement, one variant name, one set of runs).

    Raises CompareError for an empty list.
    """
    if where is None:
        return None
    items = where.split(",") if isinstance(where, str) else [part for item in where for part in str(item).split(",")]
    rules: list[str] = []
    for item in (i.strip().lower() for i in items):  # rule names match in any case, like module names
        if item.isdigit() and rules and "@" in rules[-1]:
            rules[-1] += f",{item}"  # csp@16,32: a stride of the previous rule
        elif item:
            rules.append(item)
    if not rules:
        raise CompareError(f"--where needs at least one placement rule ({', '.join(all_rules())}, csp@16,32 or all)")
    if "all" in rules:
        return ("all",)
    return tuple(dict.fromkeys(_sorted_strides(rule) for rule in rules))


def _sorted_strides(rule: str) -> str:
    name, at, strides = rule.partition("@")
    parts = strides.split(",")
    if not at or not all(p.isdigit() for p in parts):
        return rule  # zoo.parse_rule reports what is wrong with it
    return f"{name}@{','.join(str(s) for s in sorted({int(p) for p in parts}))}"


def embedded_config(settings: CompareSettings):
    """The embedded dataset's ``DatasetConfig`` for ``settings`` (CompareError for a bad preset or knob)."""
    from ..data import resolve_config

    try:
        return resolve_config(settings.preset, **settings.data_overrides)
    except ValueError as err:
        raise CompareError(str(err)) from None


def _check_numbers(settings: CompareSettings) -> None:
    execution = settings.execution
    for option, value, least in (("--seeds", settings.seeds, 1), ("--epochs", settings.epochs, 1),
                                 ("--jobs", execution.jobs, 1), ("--latency-threads", settings.latency_threads, 1),
                                 ("--imgsz", settings.imgsz, 1), ("--threads-per-run", settings.threads_per_run, 1),
                                 ("--runs-per-gpu", execution.runs_per_gpu, 1), ("--cpus-per-run", execution.cpus_per_run, 1),
                                 ("--retries", execution.retries, 0), ("--gpus-per-run", execution.gpus_per_run, 0)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < least):
            raise CompareError(f"{option} must be an integer >= {least}, got {value!r}")
    if settings.freeze is not None and (not isinstance(settings.freeze, int) or settings.freeze < 0):
        raise CompareError(f"--freeze must be an integer >= 0 (the first N layers of the base), got {settings.freeze!r}")
    if settings.freeze and not settings.weights:
        raise CompareError("--freeze needs --weights BASE.pt: frozen layers of a model trained from scratch stay random")
    if not settings.until_decided:
        for option, value in (("--max-seeds", settings.max_seeds), ("--min-effect", settings.min_effect)):
            if value is not None:
                raise CompareError(f"{option} is an option of adaptive seeds: add --until-decided, or drop it")
    elif settings.max_seeds is not None and (not isinstance(settings.max_seeds, int) or settings.max_seeds < 2):
        raise CompareError(f"--max-seeds must be an integer >= 2, got {settings.max_seeds!r}")
    else:
        SequentialDesign.from_options(settings.seeds, settings.max_seeds, settings.min_effect)
    if not isinstance(settings.val_every, int) or isinstance(settings.val_every, bool) or settings.val_every < 0:
        raise CompareError(f"--val-every must be an integer >= 0 (0: validate after the last epoch only), "
                           f"got {settings.val_every!r}")


def check_settings(settings: CompareSettings) -> tuple[CompareSettings, type]:
    """Every option checked on its own, before any model is read: returns the settings with the module names
    canonical and ``--where`` parsed, and the executor's class.

    Raises CompareError (one line naming the option, the bad value and what is allowed) for: seeds,
    epochs, jobs, latency threads or imgsz below 1; unknown modules; a ``--set`` recipe that
    Ultralytics' own argument check refuses; a GPU device on a machine without one; the executor's
    options (``executors.check``); bad embedded dataset options; an unreadable ``--weights``.
    """
    from ..integration.config import UltralyticsArgumentError, check_device, check_ultralytics_args

    _check_numbers(settings)
    executor = executors.check(settings)
    try:
        check_ultralytics_args(settings.recipe)
    except UltralyticsArgumentError as err:
        raise CompareError(f"training recipe (--set): {err}") from None
    if not executor.joins_cluster(settings):  # else the cluster's nodes have the GPUs (the executor checks the fit)
        try:
            check_device(settings.device, as_option=True)
        except UltralyticsArgumentError as err:
            raise CompareError(str(err)) from None
    if settings.data == "embedded":
        embedded_config(settings)
    if settings.weights:
        from ..integration.transfer import WeightsError, load_weights_model

        try:
            load_weights_model(settings.weights)
        except WeightsError as err:
            raise CompareError(f"--weights: {err}") from None
    checked = dataclasses.replace(settings, modules=parse_modules(settings.modules), where=parse_where(settings.where),
                                  runtimes=parse_runtimes(settings.runtimes), int8=parse_int8(settings.int8))
    return checked, executor


def _names(value: str | tuple[str, ...] | None) -> list[str]:
    parts = value.split(",") if isinstance(value, str) else list(value or ())
    return [str(part).strip() for part in parts if str(part).strip()]


def parse_runtimes(value: str | tuple[str, ...] | None) -> tuple[str, ...]:
    """``--runtimes``: canonical names of ``deploy.runtimes.RUNTIMES``, eager torch always first (it also gives
    the peak memory); None: ``settings.default_runtimes()``. Raises CompareError for an unknown runtime or
    one that is not installed (naming the extra)."""
    from ..deploy.runtimes import runtime

    names = _names(default_runtimes() if value is None else value)
    try:
        rows = [runtime(name) for name in names]
        for row in rows:
            row.require()
    except YoloattnError as err:
        raise CompareError(f"--runtimes: {err}") from None
    return tuple(dict.fromkeys(["torch", *(row.name for row in rows)]))


def parse_int8(value: str | tuple[str, ...]) -> tuple[str, ...]:
    """``--int8``: canonical runtime names with Ultralytics' INT8 export (``deploy.int8.check_int8``).
    Raises CompareError for a runtime without INT8 or a package missing."""
    from ..deploy.int8 import check_int8

    try:
        return tuple(dict.fromkeys(check_int8(name) for name in _names(value)))
    except YoloattnError as err:
        raise CompareError(str(err)) from None


def check_imgsz(settings: CompareSettings, base_yaml: str | Path) -> CompareSettings:
    """Fill ``imgsz`` (the embedded preset's size, else 640) and ``threads_per_run``, and check that imgsz is a
    multiple of the base model's largest stride, which Ultralytics would otherwise round up with a warning
    per run.

    Raises CompareError naming the value, the stride and the nearest valid sizes.
    """
    from ..integration.heads import build_model

    preset_imgsz = embedded_config(settings).imgsz[1] if settings.data == "embedded" else None
    settings = settings.resolved(preset_imgsz=preset_imgsz)
    stride = int(build_model(base_yaml).stride.max())
    message = imgsz_error(settings.imgsz, stride)
    if message:
        raise CompareError(f"--imgsz {message}")
    return settings


def resolve(settings: CompareSettings, stream: TextIO | None = None) -> ResolvedCompare:
    """Check ``settings`` and apply every default (see the module docstring). Wiring warnings of the base
    model go to ``stream`` (default stderr).

    Raises CompareError for bad options, ModelNameError for an unknown base, WiringError for a base that
    cannot build, CompareError for a base of a task compare does not train (``integration.heads.TASKS``).
    """
    from ..integration.heads import compare_refusal, task_of
    from ..integration.wiring import report_wiring

    settings, executor = check_settings(settings)
    base, _, stem = load_model_dict(settings.base)
    refusal = compare_refusal(task_of(base), settings.base, stem)
    if refusal:
        raise CompareError(refusal)
    base_path = resolve_model(settings.base)
    # a user's base YAML may be mis-wired: say so (rows named) before it is built or trained for hours
    report_wiring(base_path, stream=stream, label=Path(base_path).stem)
    settings = check_imgsz(settings, base_path)
    design = SequentialDesign.from_options(settings.seeds, settings.max_seeds, settings.min_effect) \
        if settings.until_decided else None
    return ResolvedCompare(settings, base, stem, base_path, Path(settings.out).expanduser().resolve(), executor,
                           design)
