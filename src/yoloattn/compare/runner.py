"""Plan, run (in parallel, resumably) and report a comparison of attention variants against their base model.

Pipeline of :func:`run_compare`:

1. data: the embedded dataset is generated (or reused from the cache) and evaluated on its test split;
   a user data.yaml is resolved to absolute paths (``data/resolve.py``, as for ``yoloattn train``),
   its train and evaluation splits are checked with Ultralytics' own verifier (images it would skip
   are refused unless ``--allow-skipped``), and it is evaluated on ``test`` if it has one, else on
   ``val``. ``OUT/data/run-data.yaml`` is the resolved dataset with ``val:`` pointing at the
   evaluation split (see ``worker.py`` for why that is safe);
2. models: ``OUT/models/<base>.yaml`` (the stock file, verbatim) and one ``zoo.make_variant`` YAML per
   module, e.g. ``OUT/models/yolo11n-mlla-psa.yaml``;
3. cost: params, GFLOPs and batch-1 latency of each model (``measure.py``), before any training, so a
   variant that does not build fails in seconds;
4. runs: one per model and seed, in ``OUT/runs/<model>-s<seed>-<key>/``; ``key`` hashes every setting
   that decides the result (``settings.py``). A run is finished when its ``result.json`` exists (the
   worker writes it by rename, last). Unfinished run folders are deleted and the run starts over.
   Runs execute as ``jobs`` parallel subprocesses on ``threads_per_run`` torch threads each (part of the
   key: the thread count changes the numbers, ``jobs`` does not); their ``progress.json`` feeds the
   progress line, their ``result.json`` is a typed ``records.RunResult``;
5. report: ``results.csv``, ``summary.csv`` (``stats.summarize``: intervals, Holm, detectable Δ, with
   diverged and missing runs left out and listed), ``pareto.png``, ``curves.png``, ``heatmaps.png``
   (EigenCAM, ``heatmaps.py``), ``report.md`` and a self-contained ``report.html`` in OUT, and the
   summary table on the terminal.

Only one comparison should write to a given OUT at a time.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import re
import shutil
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TextIO

import yaml

from ..data.validate import DatasetReport
from ..errors import YoloattnError
from ..integration.wiring import report_wiring
from . import plots, report, stats
from ..integration.heads import build_model, is_end_to_end, task_of, wrapper
from .measure import ModelSpec, format_duration, measure_all
from .models import default_placement, imgsz_error, load_model_dict, model_file, resolve_model, variant_stem
from .executors import EXECUTORS, Executor, make_executor, ray_address
from .executors.process import log_tail
from .executors.remote import run_data_text
from .records import DataSource, RecordError, RunAttempt, RunFailure, RunResult, WorkerSpec
from .settings import CompareSettings, dataset_fingerprint, default_jobs, device_kind, digest, gpu_indices, versions

POLL_S = 1.0
QUIET_LOG_EVERY_S = 30.0  # progress lines when the output is not a terminal


class CompareError(YoloattnError):
    """Settings that cannot be run (bad module name, seeds < 1, ...); the message says how to fix them."""


@dataclass(frozen=True)
class PreparedData:
    data_yaml: Path  # the dataset as given (or generated)
    run_yaml: Path  # what the runs train on: absolute root, val -> eval split
    eval_split: str
    nc: int
    fingerprint: dict
    report: DatasetReport | None = None  # what Ultralytics skips / alters in the train and eval splits
    source: DataSource | None = None  # the dataset as any node rebuilds it (the ray executor)


@dataclass(frozen=True)
class RunSpec:
    model: ModelSpec
    seed: int
    key: str
    run_dir: Path
    extra_args: tuple = ()  # (name, value) Ultralytics arguments of this model only (the aligned freeze list)

    @property
    def label(self) -> str:
        return f"{self.model.label} s{self.seed}"

    @property
    def result_path(self) -> Path:
        return self.run_dir / "result.json"

    def finished(self) -> bool:
        return self.result() is not None

    def result(self) -> RunResult | None:
        """The run's result when it finished under this key; None otherwise (a result of an older
        yoloattn without this version's fields counts as unfinished: the run is redone)."""
        try:
            result = RunResult.read(self.result_path)
        except (OSError, ValueError, TypeError, RecordError):
            return None
        return result if result.key == self.key else None

    def failure(self) -> RunFailure | None:
        """Why the run failed for good in its last comparison (``failure.json``), if it did under this key."""
        try:
            failure = RunFailure.read(self.run_dir / "failure.json")
        except (OSError, ValueError, TypeError, RecordError):
            return None
        return failure if failure.key == self.key else None


@dataclass
class CompareOutcome:
    out: Path
    report_md: Path | None = None
    report_html: Path | None = None
    summary: list[dict] = dataclasses.field(default_factory=list)
    trained: list[str] = dataclasses.field(default_factory=list)
    reused: list[str] = dataclasses.field(default_factory=list)
    failed: list[str] = dataclasses.field(default_factory=list)
    failures: list[RunFailure] = dataclasses.field(default_factory=list)  # why each failed run failed
    retried: list[str] = dataclasses.field(default_factory=list)  # one entry per retried attempt
    problems: list[stats.RunProblem] = dataclasses.field(default_factory=list)  # missing / diverged / identical
    interrupted: bool = False
    dry_run: bool = False


def parse_modules(text: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """``"all"`` or names separated by commas, case-insensitive, to canonical module names.

    ``all`` is the built-in modules plus the plug-ins loaded in this process; timm's layers
    (``timm_eca``, ...) are named one by one.
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
        import difflib

        close = [m for u in unknown for m in difflib.get_close_matches(u, modules.names(), n=2, cutoff=0.6)]
        hint = f" (did you mean {', '.join(dict.fromkeys(close))}? `yoloattn modules` lists timm's and plug-in modules)" if close else ""
        raise CompareError(f"unknown module(s) {', '.join(unknown)}; choose from {', '.join(everyday)} or 'all'{hint}")
    return tuple(dict.fromkeys(known[i.lower()] for i in items))


def check_settings(settings: CompareSettings) -> CompareSettings:
    """Every option of a comparison checked before any work starts; returns the settings with the
    module names canonical.

    Raises CompareError (one line naming the option, the bad value and what is allowed) for: seeds,
    epochs, jobs, latency threads or imgsz below 1; unknown modules; a ``--set`` recipe that
    Ultralytics' own argument check refuses; a GPU device on a machine without one; bad embedded
    dataset options. :func:`plan_variants` (base and placement) and :func:`check_imgsz` follow.
    """
    from ..integration.config import UltralyticsArgumentError, check_device, check_ultralytics_args

    for option, value in (("--seeds", settings.seeds), ("--epochs", settings.epochs), ("--jobs", settings.jobs),
                          ("--latency-threads", settings.latency_threads), ("--imgsz", settings.imgsz),
                          ("--threads-per-run", settings.threads_per_run), ("--runs-per-gpu", settings.runs_per_gpu),
                          ("--cpus-per-run", settings.cpus_per_run)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise CompareError(f"{option} must be an integer >= 1, got {value!r}")
    for option, value in (("--retries", settings.retries), ("--gpus-per-run", settings.gpus_per_run)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            raise CompareError(f"{option} must be an integer >= 0, got {value!r}")
    _check_execution(settings)
    if settings.freeze is not None and (not isinstance(settings.freeze, int) or settings.freeze < 0):
        raise CompareError(f"--freeze must be an integer >= 0 (the first N layers of the base), got {settings.freeze!r}")
    if settings.freeze and not settings.weights:
        raise CompareError("--freeze needs --weights BASE.pt: frozen layers of a model trained from scratch stay random")
    if not isinstance(settings.val_every, int) or isinstance(settings.val_every, bool) or settings.val_every < 0:
        raise CompareError(f"--val-every must be an integer >= 0 (0: validate after the last epoch only), "
                           f"got {settings.val_every!r}")
    try:
        check_ultralytics_args(settings.recipe)
    except UltralyticsArgumentError as err:
        raise CompareError(f"training recipe (--set): {err}") from None
    try:
        if settings.executor == "ray" and settings.ray_address:
            pass  # the cluster's nodes have the GPUs, not necessarily this one (RayExecutor checks the fit)
        else:
            check_device(settings.device, as_option=True)
    except UltralyticsArgumentError as err:
        raise CompareError(str(err)) from None
    if settings.data == "embedded":
        _embedded_config(settings)
    if settings.weights:
        from ..integration.transfer import WeightsError, load_weights_model

        try:
            load_weights_model(settings.weights)
        except WeightsError as err:
            raise CompareError(f"--weights: {err}") from None
    return dataclasses.replace(settings, modules=parse_modules(settings.modules), where=parse_where(settings.where))


def _check_execution(settings: CompareSettings) -> None:
    """The executor options against each other (CompareError, one line, naming the option and the fix)."""
    if settings.executor not in EXECUTORS:
        raise CompareError(f"--executor must be one of {', '.join(EXECUTORS)}, got {settings.executor!r}")
    kind = device_kind(settings.device)
    if settings.executor == "local":
        for option, value in (("--ray-address", settings.ray_address), ("--gpus-per-run", settings.gpus_per_run),
                              ("--cpus-per-run", settings.cpus_per_run),
                              ("--collect-weights", settings.collect_weights or None)):
            if value is not None:
                raise CompareError(f"{option} is an option of --executor ray: add --executor ray, or drop it (the "
                                   "local executor trains under OUT, one run per GPU of --device)")
        gpu_slots = len(gpu_indices(settings.device)) * settings.runs_per_gpu
        if kind == "cuda" and settings.jobs and settings.jobs > gpu_slots:
            raise CompareError(f"--jobs {settings.jobs} is more than the {gpu_slots} GPU slot(s) of --device "
                               f"{settings.device} with --runs-per-gpu {settings.runs_per_gpu}: raise --runs-per-gpu "
                               "to share GPUs, or list more GPUs")
    else:
        import importlib.util

        if importlib.util.find_spec("ray") is None:
            raise CompareError("--executor ray needs Ray, which is not installed: pip install 'yoloattn[ray]'")
        if settings.gpus_per_run and kind != "cuda":
            raise CompareError(f"--gpus-per-run {settings.gpus_per_run} needs a GPU --device (e.g. --device 0), "
                               f"got --device {settings.device}")
        cpus = settings.cpus_per_run or settings.threads_per_run or 1
        if not ray_address(settings) and cpus > (os.cpu_count() or 1):
            raise CompareError(f"--cpus-per-run {cpus}: the local Ray instance has {os.cpu_count()} CPU(s); lower "
                               "--cpus-per-run (or --threads-per-run), or join a cluster with --ray-address")
        gpus_listed = len(gpu_indices(settings.device))
        if not ray_address(settings) and (settings.gpus_per_run or 0) > gpus_listed:
            raise CompareError(f"--gpus-per-run {settings.gpus_per_run}: --device {settings.device} gives the local "
                               f"Ray instance {gpus_listed} GPU(s); list more GPUs or lower --gpus-per-run")
    if settings.runs_per_gpu != 1 and (kind != "cuda" or settings.executor != "local"):
        raise CompareError("--runs-per-gpu shares GPUs of --device 0,1,.. between local runs; with --executor ray "
                           "use --gpus-per-run, on the CPU --jobs")


def _all_rules() -> tuple[str, ...]:
    """The rules ``--where all`` tries, in the zoo's order: every rule but those implying a module (mmqa)."""
    from ..zoo import RULES
    from ..zoo.naming import IMPLIED_MODULE

    return tuple(rule for rule in RULES if rule not in IMPLIED_MODULE)


def parse_where(where: str | list[str] | tuple[str, ...] | None) -> tuple[str, ...] | None:
    """``--where`` as a tuple of placement rules: ``"csp,psa"``, ``("csp", "psa")``, ``"all"``; None for the
    base's default. Stride lists stay with their rule: ``"csp@16,32,head"`` is ``("csp@16,32", "head")``.

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
        raise CompareError(f"--where needs at least one placement rule ({', '.join(_all_rules())}, csp@16,32 or all)")
    if "all" in rules:
        return ("all",)
    return tuple(dict.fromkeys(_sorted_strides(rule) for rule in rules))


def _sorted_strides(rule: str) -> str:
    """``csp@32,16`` is ``csp@16,32``: one placement, one variant name, one set of runs."""
    name, at, strides = rule.partition("@")
    parts = strides.split(",")
    if not at or not all(p.isdigit() for p in parts):
        return rule  # zoo.parse_rule reports what is wrong with it
    return f"{name}@{','.join(str(s) for s in sorted({int(p) for p in parts}))}"


def _embedded_config(settings: CompareSettings):
    """The embedded dataset's ``DatasetConfig`` for ``settings`` (CompareError for a bad preset or knob)."""
    from ..data import resolve_config

    try:
        return resolve_config(settings.preset, **settings.data_overrides)
    except ValueError as err:
        raise CompareError(str(err)) from None


def check_imgsz(settings: CompareSettings, base_yaml: str | Path) -> CompareSettings:
    """Fill ``imgsz`` (the embedded preset's size, else 640) and check it is a multiple of the base
    model's largest stride, which Ultralytics would otherwise round up with a warning per run.

    Raises CompareError naming the value, the stride and the nearest valid sizes.
    """
    preset_imgsz = _embedded_config(settings).imgsz[1] if settings.data == "embedded" else None
    settings = settings.resolved(preset_imgsz=preset_imgsz)
    stride = int(build_model(base_yaml).stride.max())
    message = imgsz_error(settings.imgsz, stride)
    if message:
        raise CompareError(f"--imgsz {message}")
    return settings


def prepare_data(settings: CompareSettings, out: Path) -> PreparedData:
    """Generate or resolve the dataset, check it with Ultralytics' verifier, write ``OUT/data/run-data.yaml``.

    A user data.yaml goes through ``resolve_dataset`` (the same resolution as ``yoloattn train``/``val``):
    its resolved copy, rewritten image lists and any ``dataset-issues.txt`` go into ``OUT/data``. The
    train split and the evaluation split are verified.

    Raises:
        CompareError: bad embedded preset options.
        DatasetError: a broken dataset, or images Ultralytics would skip unless ``settings.allow_skipped``.
    """
    from ..data import generate
    from ..data.resolve import resolve_dataset
    from ..data.validate import inspect_dataset

    if settings.data == "embedded":
        _embedded_config(settings)  # CompareError for bad options, before anything is generated
        data_yaml = generate(settings.preset, seed=settings.data_seed, **settings.data_overrides)
    else:
        data_yaml = Path(settings.data).expanduser().absolute()
    resolved = resolve_dataset(data_yaml, out / "data")
    eval_split = "test" if resolved.data.get("test") else "val"
    data_report = inspect_dataset(resolved, ("train", eval_split))
    data_report.refuse_skipped(
        settings.allow_skipped,
        "fix those files, or pass --allow-skipped to compare without them (the report then gives the counts)")
    run_yaml = out / "data" / "run-data.yaml"
    run_yaml.write_text(run_data_text(data_yaml, resolved.data, eval_split))
    fingerprint = dataset_fingerprint(resolved.source, resolved.root)
    if settings.data == "embedded":
        source = DataSource(eval_split, preset=settings.preset, seed=settings.data_seed,
                            overrides=dict(settings.data_overrides), cache_key=fingerprint.get("embedded", ""))
    else:
        source = DataSource(eval_split, path=str(resolved.source))
    return PreparedData(resolved.source, run_yaml, eval_split, resolved.nc, fingerprint, data_report, source)


@dataclass(frozen=True)
class VariantPlan:
    """The base model and one ``make_variant`` dict per module and placement, before anything is written."""

    base: dict
    stem: str  # display stem with the scale letter, e.g. yolo11n
    rules: tuple[str, ...]  # the placements with at least one variant, in --where order
    variants: tuple[tuple[str, str, str, dict], ...]  # (module, where, label, variant model dict)
    skipped: tuple[str, ...] = ()  # one line per placement (or module x placement) that does not apply

    @property
    def where(self) -> str:
        return ",".join(self.rules)


def plan_variants(settings: CompareSettings) -> VariantPlan:
    """Plan every module x placement variant of the comparison in memory.

    One placement rule (or the default) must apply to every module: its VariantError stops the
    comparison. With a list, or ``all`` (every rule but mmqa that the base has), a rule or a module x
    rule pair that does not apply is skipped with a line in ``skipped``; nothing applying is an error.

    Raises ModelNameError for an unknown base and VariantError for placements the base does not have.
    """
    from .. import zoo

    base, _, stem = load_model_dict(settings.base)
    task = task_of(base)
    if task != "detect":
        detection = re.sub(r"-(seg|pose|obb|cls)(?=-|$)", "", stem)
        raise CompareError(f"--base {settings.base} is {'an' if task[0] in 'aeio' else 'a'} {task} model, but "
                           "compare trains and evaluates detection (the embedded dataset and YOLO box labels have no "
                           f"{_TASK_LABELS.get(task, task)}): use the detection model of the family, e.g. --base "
                           f"{detection if detection != stem else 'yolo26n'}")
    where = parse_where(settings.where)
    rules = _all_rules() if where == ("all",) else where or (default_placement(base),)
    for rule in rules:
        zoo.parse_rule(rule)  # a misspelt rule is an error even in a list, never "does not apply"
    strict = where is None or (len(where) == 1 and where != ("all",))
    variants, skipped = [], {}  # skipped: rule -> {module: why}
    for rule in rules:
        for module in settings.modules:
            try:
                variant = zoo.make_variant(base, module, rule)
            except zoo.VariantError as err:
                if strict:
                    raise
                skipped.setdefault(rule, {})[module] = str(err)
                continue
            variants.append((module, rule, variant_stem(stem, module, rule), variant))
    lines = _skip_lines(skipped, len(settings.modules))
    if not variants:
        raise zoo.VariantError(f"no placement of --where {','.join(rules)} applies to {settings.base}: "
                               + "; ".join(lines))
    used = tuple(dict.fromkeys(rule for _, rule, _, _ in variants))
    return VariantPlan(base, stem, used, tuple(variants), tuple(lines))


_TASK_LABELS = {"segment": "masks", "pose": "keypoints", "obb": "rotated boxes", "classify": "boxes to classify"}


def _skip_lines(skipped: dict[str, dict[str, str]], n_modules: int) -> list[str]:
    """One line per rule that applies to no module for one reason, else one per module x rule pair."""
    lines = []
    for rule, reasons in skipped.items():
        if len(reasons) == n_modules and len(set(reasons.values())) == 1:
            lines.append(f"placement {rule} skipped: {next(iter(reasons.values()))}")
        else:
            lines.extend(f"{module}@{rule} skipped: {reason}" for module, reason in reasons.items())
    return lines


def plan_models(settings: CompareSettings, out: Path, plan: VariantPlan | None = None) -> tuple[list[ModelSpec], str]:
    """Write the baseline and variant YAMLs into OUT/models; return their specs and the placement used.

    ``plan`` is :func:`plan_variants`' result when the caller already has it.
    """
    from .. import zoo

    plan = plan or plan_variants(settings)
    models_dir = out / "models"
    models_dir.mkdir(parents=True, exist_ok=True)
    base_yaml = models_dir / f"{plan.stem}.yaml"
    source = model_file(resolve_model(settings.base))
    _write_if_changed(base_yaml, f"# {source} (verbatim copy; the scale comes from this file's name)\n"
                      + source.read_text())
    specs = [ModelSpec(plan.stem, "", "", base_yaml, is_end_to_end(plan.base))]
    for module, where, label, variant in plan.variants:
        path = models_dir / f"{label}.yaml"
        _write_if_changed(path, zoo.render(variant, f"{plan.stem} + {module} ({where} placement), "
                                                    "for yoloattn compare"))
        specs.append(ModelSpec(label, module, where, path, is_end_to_end(variant)))
    return specs, plan.where


def _write_if_changed(path: Path, text: str) -> None:
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)


def plan_runs(settings: CompareSettings, models: list[ModelSpec], data: PreparedData, out: Path) -> list[RunSpec]:
    from ..plugins import plugin_key_fields

    runs, stamp = [], versions()
    weights_hash = _file_hash(settings.weights) if settings.weights else None
    frozen = frozen_layers(models, settings.freeze, data.nc) if settings.freeze else {}
    texts = {spec.label: spec.yaml_path.read_text() for spec in models}
    plugin_fields = {label: plugin_key_fields(text) for label, text in texts.items()}
    for seed in range(settings.seeds):
        for spec in models:
            key = digest({
                "model_yaml": texts[spec.label],
                "model_file": spec.yaml_path.name,  # carries the scale letter
                "data": data.fingerprint,
                "eval_split": data.eval_split,
                "train_args": {**settings.train_args(seed, spec.end_to_end), **frozen.get(spec.label, {})},
                "threads_per_run": settings.threads_per_run,  # a thread count changes the numbers (settings.py)
                "val_every": settings.val_every,
                "weights_sha256": weights_hash,  # the checkpoint's content, not only its path
                "versions": stamp,
                **plugin_fields[spec.label],
            })[:10]
            extra = tuple((name, tuple(value)) for name, value in frozen.get(spec.label, {}).items())  # hashable
            runs.append(RunSpec(spec, seed, key, out / "runs" / f"{spec.label}-s{seed}-{key}", extra))
    return runs


def frozen_layers(models: list[ModelSpec], n: int, nc: int) -> dict[str, dict]:
    """{label: {"freeze": [...]}}: the first ``n`` layers of the base (models[0]) and, in each variant, what
    the transfer aligns with them (``transfer.frozen_in_variant``), so an inserted layer shifts nothing and
    the new attention stays trainable."""
    from ..integration.transfer import frozen_in_variant

    def build(spec: ModelSpec):
        return build_model(spec.yaml_path, nc=nc)

    base = build(models[0])
    frozen = {models[0].label: {"freeze": list(range(n))}}
    for spec in models[1:]:
        frozen[spec.label] = {"freeze": frozen_in_variant(base, build(spec), n)}
    return frozen


def _file_hash(path: str) -> str:
    import hashlib

    with open(Path(path).expanduser(), "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _train_fraction(state: dict) -> float | None:
    """Share of a run's training epochs done, from its progress.json (None before training starts)."""
    if state.get("phase") == "val":
        return 1.0
    if state.get("phase") != "train" or not state.get("epochs"):
        return None
    batches = max(1, state.get("batches") or 1)
    return min(1.0, (state.get("epoch", 1) - 1 + min(state.get("batch", 0), batches) / batches) / state["epochs"])


def estimate_remaining(durations: list[float], running: list[tuple[float, float | None]], pending: int,
                       slots: int) -> float | None:
    """Seconds until every run is done, or None when nothing can be estimated yet.

    ``durations``: wall times of the runs that finished in this session; ``running``: (seconds since it
    started, share of its epochs done or None) per running run; ``pending``: runs not started yet;
    ``slots``: runs at a time. A run is expected to take the mean finished duration; before any run has
    finished, a running run's own pace (elapsed / share done, once 5 % is done and 10 s have passed)
    stands in for it. The pending runs take the earliest free slot each, as ``execute`` starts them.
    """
    def paced(elapsed: float, done: float | None) -> bool:
        return bool(done) and done >= 0.05 and elapsed >= 10.0

    mean = sum(durations) / len(durations) if durations else None
    projected = [elapsed / done for elapsed, done in running if paced(elapsed, done)]
    per_run = mean if mean is not None else (sum(projected) / len(projected) if projected else None)
    free_at = []
    for elapsed, done in running:
        if mean is not None:
            free_at.append(max(0.0, mean - elapsed))
        elif paced(elapsed, done):
            free_at.append(elapsed * (1 - done) / done)
        else:
            return None
    if pending and per_run is None:
        return None
    free_at += [0.0] * max(0, slots - len(free_at))
    free_at.sort()
    finish = list(free_at)
    for _ in range(pending):
        start = free_at.pop(0)
        finish.append(start + per_run)
        free_at.append(start + per_run)
        free_at.sort()
    return max(finish) if finish else 0.0


class _Progress:
    """One status line: a rewritten line on a terminal, otherwise a line on change or every 30 s.

    The line ends with an ETA (``estimate_remaining``) from the durations of the runs that finished
    since the comparison started (and, until one has, from the running runs' own pace).
    """

    def __init__(self, stream: TextIO, total: int):
        self.stream, self.total = stream, total
        self.tty = hasattr(stream, "isatty") and stream.isatty()
        self.started = time.monotonic()
        self._last_text, self._last_print = "", 0.0
        self._run_started: dict[RunSpec, float] = {}
        self.durations: list[float] = []  # wall seconds of the runs that finished successfully here

    def say(self, text: str) -> None:
        """A permanent line (run started/finished), printed above the status line."""
        self.stream.write(("\r\033[K" if self.tty else "") + text + "\n")
        self.stream.flush()
        self._last_text = ""

    def _track(self, running: list[RunSpec], now: float) -> None:
        for run in running:
            self._run_started.setdefault(run, now)
        for run in [r for r in self._run_started if r not in running]:
            started = self._run_started.pop(run)
            if run.finished():  # a failed run's time says nothing about the others
                self.durations.append(now - started)

    def eta(self, done: int, running: list[tuple[RunSpec, dict]], now: float | None = None) -> float | None:
        now = time.monotonic() if now is None else now
        pending = max(0, self.total - done - len(running))
        slots = max(1, len(running))  # execute() fills every slot while runs are pending
        return estimate_remaining(self.durations, [(now - self._run_started.get(run, now), _train_fraction(state))
                                                   for run, state in running], pending, slots)

    def status(self, done: int, running: list[tuple[RunSpec, dict]], waiting: int = 0) -> None:
        """Rewrite (or print) the status line: each running run's epoch and batch; ``waiting``: runs not
        started yet (not submitted, or Ray tasks waiting for resources)."""
        now = time.monotonic()
        self._track([run for run, _ in running], now)
        parts = []
        for run, state in running:
            if state.get("phase") == "train" and state.get("epochs"):
                pct = 100 * state.get("batch", 0) // max(1, state.get("batches", 1))
                parts.append(f"{run.label} epoch {state['epoch']}/{state['epochs']} {min(pct, 100)}%")
            else:
                parts.append(f"{run.label} {state.get('phase', 'starting')}")
        if waiting and running:
            parts.append(f"{waiting} waiting")
        eta = self.eta(done, running, now)
        clock = format_duration(now - self.started) + ("" if eta is None else f", ETA {format_duration(eta)}")
        text = f"[{done}/{self.total} runs done, {clock}] " + " | ".join(parts)
        if self.tty:
            width = shutil.get_terminal_size((120, 20)).columns - 1
            self.stream.write("\r\033[K" + text[:width])
            self.stream.flush()
        else:
            coarse = re.sub(r" \d+%", "", " | ".join(parts))  # epoch and phase changes, not batch progress
            if coarse != self._last_text or now - self._last_print >= QUIET_LOG_EVERY_S:
                self.stream.write(text + "\n")
                self.stream.flush()
                self._last_text, self._last_print = coarse, now


def worker_spec(run: RunSpec, data: PreparedData, settings: CompareSettings) -> WorkerSpec:
    """What one attempt of ``run`` is asked to do; the device is its kind, which the executor makes concrete."""
    return WorkerSpec(key=run.key, model=run.model.label, seed=run.seed, model_yaml=str(run.model.yaml_path),
                      data_yaml=str(data.run_yaml), run_dir=str(run.run_dir), threads=settings.threads_per_run,
                      train_args={**settings.train_args(run.seed, run.model.end_to_end),
                                  **{k: list(v) for k, v in run.extra_args}},
                      val_every=settings.val_every, attempt=uuid.uuid4().hex[:12])


def _fresh_run_dir(run: RunSpec, spec: WorkerSpec) -> None:
    """An empty run folder with the attempt's spec.json: an interrupted or failed attempt starts clean."""
    if run.run_dir.exists():
        shutil.rmtree(run.run_dir)
    run.run_dir.mkdir(parents=True)
    spec.write(run.run_dir / "spec.json")


def _write_returned(run: RunSpec, attempt: RunAttempt) -> None:
    """Files a Ray worker without OUT's storage sent back, written into the run folder (result.json last:
    its presence marks the run finished)."""
    for relative, content in sorted(attempt.files.items(), key=lambda item: item[0] == "result.json"):
        path = run.run_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)


def execute(runs: list[RunSpec], data: PreparedData, settings: CompareSettings, executor: Executor,
            progress: _Progress, outcome: CompareOutcome, done_before: int) -> None:
    """Run ``runs`` through ``executor``, ``executor.capacity`` at a time, into ``outcome``.

    An attempt whose worker died (killed by a signal, out of memory, a lost Ray node) is started again,
    up to ``settings.retries`` more times; one that failed by itself (an exception in training, a node
    without the dataset or a package) is not: the same settings would fail the same way. A run that does
    not finish gets ``failure.json`` (``records.RunFailure``) with its last cause. Ctrl-C cancels the runs
    in flight; finished runs stay.
    """
    pending, running = list(runs), set()
    attempts: dict[RunSpec, int] = {}
    done = done_before
    try:
        while pending or running:
            while pending and len(running) < executor.capacity:
                run = pending.pop(0)
                attempts[run] = attempts.get(run, 0) + 1
                spec = worker_spec(run, data, settings)
                _fresh_run_dir(run, spec)
                executor.submit(run, spec)
                running.add(run)
            time.sleep(POLL_S)
            started, ended = executor.poll()
            for run, where in started:
                progress.say(f"started  {run.label}  ({run.run_dir.name})" + (f" {where}" if where else ""))
            for run, attempt in ended:
                running.discard(run)
                _write_returned(run, attempt)
                result = run.result() if attempt.status == "finished" else None
                host = f" on {attempt.host}" if attempt.host and settings.executor == "ray" else ""
                if result is not None:
                    done += 1
                    outcome.trained.append(run.label)
                    progress.say(f"finished {run.label}  mAP50 {result.map50:.3f}  mAP50-95 "
                                 f"{result.map50_95:.3f}  ({result.train_s:.0f} s)")
                elif attempt.status == "died" and attempts[run] <= settings.retries:
                    outcome.retried.append(run.label)
                    progress.say(f"RETRY    {run.label}{host}: {attempt.cause}; attempt {attempts[run] + 1} of "
                                 f"{settings.retries + 1}")
                    pending.insert(0, run)
                else:
                    done += 1
                    cause = attempt.cause or ("no result.json under this run's key" if attempt.status == "finished"
                                              else attempt.status)
                    failure = RunFailure(run.model.label, run.seed, run.key, attempt.status, cause, attempts[run],
                                         attempt.host, attempt.exit_code)
                    failure.write(run.run_dir / "failure.json")
                    outcome.failed.append(run.label)
                    outcome.failures.append(failure)
                    tail = log_tail(run.run_dir) if attempt.status == "failed" else ""
                    progress.say(f"FAILED   {run.label}{host} after {attempts[run]} attempt(s): {cause}"
                                 + (f"; end of {run.run_dir / 'log.txt'}:\n{tail}" if tail else ""))
            states = [(run, executor.state(run)) for run in running]
            active = [(run, state) for run, state in states if state.get("phase") != "queued"]
            progress.status(done, active, waiting=len(states) - len(active) + len(pending))
    except KeyboardInterrupt:
        executor.cancel()
        outcome.interrupted = True


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    return f"{cpu}, {os.cpu_count()} CPU cores, {platform.system()} {platform.release()}"


def _measure_models(models: list[ModelSpec], settings: CompareSettings, data: PreparedData, out: Path,
                    say: Callable[[str], None]) -> dict[str, dict]:
    from ..bench import param_basis

    costs = measure_all(models, settings.imgsz, data.nc, settings.latency_threads, out / "measure", progress=say,
                        nms=settings.nms)
    for label, c in costs.items():
        say(f"cost     {label}: {c['params'] / 1e6:.3f} M params ({param_basis(True, data.nc)}), "
            f"{c['gflops']:.3f} GFLOPs, {c['latency_p50_ms']:.1f} ms torch, {c['latency_ort_p50_ms']:.1f} ms ORT "
            f"at {settings.imgsz}px")
    return costs


COST_COLUMNS = ("params", "gflops", "latency_p50_ms", "latency_p90_ms", "latency_ort_p50_ms", "latency_ort_p90_ms")


def _result_rows(runs: list[tuple[RunSpec, RunResult]], costs: dict[str, dict], settings: CompareSettings) -> list[dict]:
    rows = []
    for run, result in runs:
        rows.append({
            "model": run.model.label, "module": run.model.module, "where": run.model.where, "seed": run.seed,
            **{k: costs[run.model.label][k] for k in COST_COLUMNS},
            **{k: getattr(result, k) for k in ("map50", "map50_95", "precision", "recall", *stats.SIZE_METRICS,
                                                "train_s")},
            "threads": result.env.threads, "host": result.env.host, "torch": result.env.torch, "ultralytics": result.env.ultralytics,
            "epochs": settings.epochs, "imgsz": settings.imgsz, "run_key": run.key, "run_dir": str(run.run_dir),
            "curve": result.curve, "val_curve": result.val_curve, "objects_by_size": result.objects_by_size,
            "weights": result.weights, "transferred": result.transferred, "total_tensors": result.total_tensors,
            "base_kept": result.base_kept,
        })
    return rows


HEATMAP_IMAGES = 4  # evaluation images in the heatmap panel


def _heatmaps(models: list[ModelSpec], rows: list[dict], data: PreparedData, settings: CompareSettings, out: Path,
              say: Callable[[str], None]) -> Path | str | None:
    """``OUT/heatmaps.png``: EigenCAM of each model's lowest finished seed at the layer its module changed,
    the baseline at each of those layers; None when there is nothing to draw, or the reason (a str, also
    said) when it cannot be drawn. A failure here costs the panel, never the report of runs that took hours."""
    from .heatmaps import changed_layers, heatmap_panel
    from .sizes import split_images

    weights = {}
    for row in sorted(rows, key=lambda r: r["seed"]):
        weights.setdefault(row["model"], row["weights"])
    base = models[0]
    variants = [spec for spec in models[1:] if spec.label in weights]
    if base.label not in weights or not variants:
        return None
    elsewhere = sorted(label for label, path in weights.items() if not Path(path).is_file())
    if elsewhere:
        reason = (f"the weights of {', '.join(elsewhere)} stayed on the node(s) that trained them "
                  "(--collect-weights copies them under OUT)")
        say(f"heatmaps skipped: {reason}")
        return reason
    try:
        def layers(spec: ModelSpec) -> list:
            d = yaml.safe_load(spec.yaml_path.read_text())
            return [*d["backbone"], *d["head"]]

        def load(label: str):
            return wrapper(weights[label]).model.float().eval()

        base_rows, base_model = layers(base), load(base.label)
        columns, seen = [], set()
        for spec in variants:
            base_layer, layer = changed_layers(base_rows, layers(spec))
            if base_layer not in seen:
                seen.add(base_layer)
                columns.append((f"{base.label} (layer {base_layer})", base_model, base_layer))
            columns.append((f"{spec.module}@{spec.where} (layer {layer})", load(spec.label), layer))
        images = [Path(p) for p in split_images(data.run_yaml, "val")[:HEATMAP_IMAGES]]
        return heatmap_panel(columns, images, settings.imgsz, out / "heatmaps.png")
    except Exception as err:  # noqa: BLE001 - see the docstring
        reason = f"{type(err).__name__}: {err}"
        say(f"heatmaps skipped: {reason}")
        return reason


def _write_outputs(out: Path, rows: list[dict], summary: list[dict], baseline: str, context: dict) -> tuple[Path, Path]:
    report.write_csv(out / "results.csv", rows, report.RESULT_COLUMNS)
    report.write_csv(out / "summary.csv", summary, report.SUMMARY_COLUMNS)
    context["plots"] = [plots.plot_pareto(summary, out / "pareto.png", baseline),
                        plots.plot_curves(rows, out / "curves.png", baseline)]
    return report.write_markdown(out / "report.md", context), report.write_html(out / "report.html", context)


def run_compare(settings: CompareSettings, command: str = "", stream: TextIO | None = None,
                dry_run: bool = False, target_delta: float | None = None) -> CompareOutcome:
    """Run (or resume) a comparison and write its report; see the module docstring.

    ``target_delta``: also say how many seeds per model would detect a Δ mAP50-95 of that size, from
    this comparison's seed spread (a pilot run with 2-3 seeds is enough; rerunning with more seeds
    reuses its runs).

    ``dry_run``: check every option, prepare and check the dataset, write the model YAMLs and the plan
    (``OUT/models``, ``OUT/data``), print what would be trained and stop before measuring or training.
    """
    stream = stream or sys.stdout

    def say(text: str) -> None:
        stream.write(text + "\n")
        stream.flush()

    settings = check_settings(settings)
    plan = plan_variants(settings)  # an unknown base or placement stops here, before anything is written
    base = resolve_model(settings.base)
    # a user's base YAML may be mis-wired: say so (rows named) before it is built or trained for hours
    report_wiring(base, stream=stream, label=Path(base).stem)
    settings = check_imgsz(settings, base)
    out = Path(settings.out).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    models, where = plan_models(settings, out, plan)
    for line in plan.skipped:
        say(line)
    if settings.nms and not models[0].end_to_end:
        say(f"note: --nms changes nothing here: {plan.stem} has no end-to-end head (YOLO26 and YOLOv10 have one)")
    for spec in models[1:]:
        report_wiring(spec.yaml_path, stream=stream, label=spec.label)
    data = prepare_data(settings, out)
    runs = plan_runs(settings, models, data, out)
    todo = [r for r in runs if not r.finished()]
    if settings.executor == "local":  # Ray places runs by their resources; --jobs only caps it when given
        settings = dataclasses.replace(settings, jobs=settings.jobs or default_jobs(
            len(todo) or 1, settings.threads_per_run, settings.device, settings.runs_per_gpu))
    outcome = CompareOutcome(out, reused=[r.label for r in runs if r not in todo])

    say(f"data: {data.data_yaml} (evaluating on '{data.eval_split}'); models: "
        f"{', '.join(m.label for m in models)}; output: {out}")
    if data.report and data.report.skipped:
        say(f"data: going on without {len(data.report.skipped)} images that Ultralytics skips (--allow-skipped) "
            f"{data.report.describe_skipped()}")
    plan = f", {settings.jobs} in parallel with {settings.threads_per_run} torch thread(s) each" if todo else ""
    address = ray_address(settings)
    if todo and settings.executor == "ray":
        plan = f", through Ray ({address[1] if address else 'a local instance'})"
    say(f"runs: {len(runs)} ({len(runs) - len(todo)} already finished, {len(todo)} to train){plan}")
    # a cluster is joined before the costs are measured (and in a dry run), so that a wrong address or a run
    # no node fits fails in seconds; a local Ray instance starts after, so that its processes do not share
    # the CPU with the latency phase
    executor = make_executor(settings, data.source) if todo and address and settings.executor == "ray" else None
    if dry_run:
        if executor is not None:
            say(f"executor: {executor.describe()}")
            executor.close()
        say("dry run: every option and the dataset are checked; nothing was measured or trained")
        outcome.dry_run = True
        return outcome
    try:
        costs = _measure_models(models, settings, data, out, say)  # its own phase: no training runs yet
        if todo:
            executor = executor or make_executor(settings, data.source)
            if settings.executor == "ray":
                say(f"executor: {executor.describe()}")
            execute(todo, data, settings, executor, _Progress(stream, len(runs)), outcome, len(runs) - len(todo))
    finally:
        if executor is not None:
            executor.close()
    if outcome.interrupted:
        say("\ninterrupted: finished runs are kept; rerun the same command to resume")
        return outcome

    results = [(run, result) for run in runs if (result := run.result()) is not None]
    rows = _result_rows(results, costs, settings)
    if not rows:
        say("no finished runs: nothing to report")
        return outcome
    baseline = models[0].label
    planned = {spec.label: list(range(settings.seeds)) for spec in models}
    outcome.summary = stats.summarize(rows, baseline, planned)
    failures = {(f.model, f.seed): f for run in runs if (f := run.failure()) is not None and run.result() is None}
    outcome.problems = stats.run_problems(rows, planned, {k: _failure_text(f) for k, f in failures.items()})
    context = {
        "title": f"{baseline} + attention modules on {_data_label(settings, data)}",
        "settings": settings, "summary": outcome.summary, "rows": rows, "data_yaml": data.data_yaml,
        "eval_split": data.eval_split, "where": where, "data_report": data.report,
        "end_to_end": models[0].end_to_end,
        "matmul_peak": costs[baseline]["matmul_peak_gflops_s"], "versions": versions(), "machine": _machine(),
        "latency_machine": costs[baseline]["machine"],  # every cost record has it (its key hashes measure.py)
        "command": command or "yoloattn compare ...", "nc": data.nc, "problems": outcome.problems,
        "summary_notes": [*report.power_lines(outcome.summary, target_delta),
                          *report.transfer_lines(outcome.summary, settings.weights)],
    }
    panel = _heatmaps(models, rows, data, settings, out, say)
    context["heatmaps"], context["heatmaps_skipped"] = (panel, None) if not isinstance(panel, str) else (None, panel)
    outcome.report_md, outcome.report_html = _write_outputs(out, rows, outcome.summary, baseline, context)
    say("\n" + report.text_table(*report.summary_table(outcome.summary, data.nc)))
    grid = report.placement_table(outcome.summary)
    if grid is not None and (len(grid[0]) > 2 or len(grid[1]) > 1):  # more than one cell: worth a grid
        say("\n" + report.text_table(*grid))
    for line in context["summary_notes"]:
        say(line)
    if outcome.problems:
        say("\nleft out of the statistics or flagged:\n" + "\n".join(f"  {p}" for p in outcome.problems))
    if outcome.failed:
        say(f"\n{len(outcome.failed)} run(s) failed: {', '.join(outcome.failed)}; their logs are in {out / 'runs'}")
    return outcome


def _failure_text(failure: RunFailure) -> str:
    where = f" on {failure.host}" if failure.host else ""
    return f"failed{where} after {failure.attempts} attempt(s): {failure.cause}"


def _data_label(settings: CompareSettings, data: PreparedData) -> str:
    if settings.data == "embedded":
        return f"the embedded '{settings.preset}' dataset"
    return str(data.data_yaml)
