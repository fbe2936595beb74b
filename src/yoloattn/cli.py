"""The ``yoloattn`` command line: list, inspect, benchmark, train and compare attention variants of YOLO.

Every command runs Ultralytics offline (``yoloattn.offline.setup_offline``: no downloads, no pip
installs, settings and fonts in yoloattn's cache folder); heavy modules are imported inside the commands,
after that setup. Model names may be bundled zoo names (``yolo11n-mlla-psa``), Ultralytics YAML
names (``yolo11n``, ``yolov8s.yaml``) or paths (``.yaml``, local ``.pt``); a bare ``yolo11n.pt`` is
refused because Ultralytics would download it.

Bad input (a missing data.yaml, an unknown module or model, an empty label folder, ...) prints one
line on stderr and exits with code 2. ``yoloattn COMMAND --help`` shows examples for each command.
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
import textwrap

from .errors import YoloattnError

PROG = "yoloattn"
EXIT_USAGE, EXIT_FAILED, EXIT_INTERRUPTED = 2, 1, 130


class CLIError(YoloattnError):
    """A user mistake, reported as one line and exit code 2."""


# --------------------------------------------------------------------------------------------- helpers


class _Parser(argparse.ArgumentParser):
    """argparse with errors as one line (``yoloattn compare: error: argument --jobs: ...``), exit code 2,
    and no prefix abbreviations (``--epoch`` is an error, not ``--epochs``)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def _at_least(minimum: int):
    """An argparse ``type`` for integers >= ``minimum``; the error names the value and what is allowed."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {value}")
        return value

    parse.__name__ = f"integer >= {minimum}"
    return parse


POSITIVE, NON_NEGATIVE = _at_least(1), _at_least(0)


def _fraction(text: str) -> float:
    """A number in (0, 1), e.g. a Δ mAP50-95."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1 (a Δ mAP50-95 such as 0.01), got {text}")
    return value


def _parse_pairs(items: list[str], what: str) -> dict:
    """["epochs=3", "lr0=0.02", "name=None"] -> {"epochs": 3, "lr0": 0.02, "name": None}: YAML scalars and lists."""
    import yaml

    pairs = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise CLIError(f"expected {what} as key=value, got {item!r}")
        if value.lower() in ("none", "null", "~"):
            pairs[key.strip()] = None
            continue
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError:
            parsed = value
        pairs[key.strip()] = value if parsed is None else parsed
    return pairs


def _ultralytics_args(items: list[str]) -> dict:
    """key=value Ultralytics arguments, checked up front with Ultralytics' own rules (names, types, ranges)."""
    from .integration.config import UltralyticsArgumentError, check_ultralytics_args

    args = _parse_pairs(items, "Ultralytics arguments")
    try:
        check_ultralytics_args(args)
    except UltralyticsArgumentError as err:
        raise CLIError(str(err)) from None
    return args


def _task_data(model, name: str, value: str, command: str, allow_skipped: bool, splits: tuple[str, ...],
               single_cls: bool) -> str:
    """``_resolve_data`` for the model's task (``integration.heads.TASKS``). The embedded dataset has boxes
    only: a segment, pose or OBB model needs the user's dataset (CLIError otherwise). yoloattn's label
    check reads box and polygon rows, so a pose dataset (class, box, keypoints) goes to Ultralytics as
    given, checked by Ultralytics."""
    from pathlib import Path

    from .integration.heads import embedded_refusal, task_info

    d = model.model.yaml
    refusal = embedded_refusal(d, name)
    if refusal and str(value).partition(":")[0] == "embedded":
        raise CLIError(refusal)
    if not task_info(d).label_check:
        return str(Path(str(value)).expanduser())
    return _resolve_data(value, command, allow_skipped, splits, single_cls)


def _resolve_data(value: str, command: str = "train", allow_skipped: bool = False,
                  splits: tuple[str, ...] | None = None, single_cls: bool = False) -> str:
    """``embedded`` / ``embedded:PRESET`` -> the generated dataset; a path -> that data.yaml. Returns the path
    of the resolved data.yaml (absolute paths only, in yoloattn's cache) to hand to Ultralytics.

    Raises DatasetError for a broken dataset, and when Ultralytics would skip images of ``splits``
    unless ``allow_skipped`` (then one warning line on stderr); images Ultralytics alters get a warning.
    """
    from pathlib import Path

    from .data import generate
    from .data.validate import check_yolo_dataset

    name, _, preset = str(value).partition(":")
    if name == "embedded":
        try:
            path = generate(preset or "demo")
        except ValueError as err:
            raise CLIError(str(err)) from None
    else:
        path = Path(str(value)).expanduser()
    verb = "train" if command == "train" else "validate"
    report = check_yolo_dataset(path, allow_skipped=allow_skipped, splits=splits, single_cls=single_cls,
                                fix=f"fix those files, or pass --allow-skipped to {verb} without them")
    if report.skipped:
        print(f"{PROG} {command}: warning: going on without {len(report.skipped)} of {report.images} images that "
              f"Ultralytics skips (--allow-skipped) {report.describe_skipped()}", file=sys.stderr)
    if report.altered:
        print(f"{PROG} {command}: warning: {report.altered_message()}", file=sys.stderr)
    return str(report.resolved_yaml)


def _checkpoint_data(model) -> str | None:
    """The data.yaml a loaded .pt checkpoint was trained on (what Ultralytics falls back to), if recorded."""
    data = (getattr(model, "overrides", None) or {}).get("data")
    return str(data) if data else None


_NOT_ULTRALYTICS = {"allow_skipped": "--allow-skipped", "allow-skipped": "--allow-skipped"}


def _yoloattn_only(items: list[str]) -> None:
    """Point at the yoloattn option when a yoloattn flag was written as an Ultralytics key=value."""
    for item in items:
        key = item.partition("=")[0].strip()
        if key in _NOT_ULTRALYTICS:
            raise CLIError(f"{key!r} is a yoloattn option, not an Ultralytics argument: write {_NOT_ULTRALYTICS[key]}")


def _cpu_defaults(args: dict) -> dict:
    """Offline-safe defaults: the CPU when there is no GPU, and no AMP on the CPU (its check downloads weights)."""
    import torch

    if "device" not in args and not torch.cuda.is_available():
        args["device"] = "cpu"
    if str(args.get("device", "")).lower() == "cpu":
        args.setdefault("amp", False)
    return args


def _load_torch_model(name: str, nc: int | None = None):
    """The Ultralytics model (DetectionModel, RTDETRDetectionModel, ...) of a YAML name/path (random init) or
    a local checkpoint."""
    from .compare.models import resolve_model
    from .integration.heads import load_model

    return load_model(resolve_model(name), nc)


def _check_imgsz(imgsz, models: dict, option: str = "--imgsz ") -> None:
    """``imgsz`` (an int, or [height, width] for key=value) must be a multiple of every model's largest
    stride: Ultralytics would otherwise round it up with a warning, per run. ``models`` maps a name to a
    DetectionModel; ``option`` is how the message spells the argument (``"--imgsz "`` or ``"imgsz="``)."""
    from .compare.models import imgsz_error

    if imgsz is None:
        return
    sizes = list(imgsz) if isinstance(imgsz, (list, tuple)) else [imgsz]
    if not sizes or len(sizes) > 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in sizes):
        raise CLIError(f"{option}{imgsz}: expected a positive integer (or [height, width])")
    for name, model in models.items():
        for size in sizes:
            message = imgsz_error(size, int(model.stride.max()))
            if message:
                raise CLIError(f"{option}{message} ({name})")


def _table(header: list[str], rows: list[list[str]]) -> str:
    from .compare.report import text_table

    return text_table(header, rows)


# -------------------------------------------------------------------------------------------- commands


def cmd_modules(args: argparse.Namespace) -> int:
    from . import modules
    from .blocks.families import FAMILIES
    from .integration import REGISTRY
    from . import rules

    if args.name:
        return _module_detail(modules.get(args.name))
    entries = REGISTRY.entries()
    width = 18  # longer names (one alias) overflow rather than push every line right
    print("Attention modules (for --module / --modules): " + ", ".join(modules.names()))
    print("\nsource, name, cost in the map size, what it is")
    for spec in modules.table():
        origin = f" ({spec.origin})" if spec.source == "plug-in" else ""
        print(f"  {spec.source + origin:<9}  {spec.name:<{width}}  {'quadratic' if spec.quadratic else 'linear':<9}  "
              f"{spec.summary}")
    print("\nYAML names (modules, blocks, aliases): name, channel contract, what it is, parameters of the module")
    print(f"(every module M gives M and {', '.join(f + '_M' for f in FAMILIES)})")
    for e in entries:
        print(f"  {e.name:<{width}}  {e.contract:<5}  {e.summary}  [params: {e.params or 'see the block'}]")
    print(f"\nPlacement rules (--where): {rules.rule_names_text()}; see `yoloattn variant --help`")
    floors = rules.floors_text(modules.table())
    if floors:
        print(floors)
    return 0


def _module_detail(spec) -> int:
    """`yoloattn modules NAME`: what the module table and the class's signature and docstring say of one module."""
    import inspect

    from . import modules, rules
    from .blocks.families import FAMILIES

    target = spec.cls()
    where = f"{getattr(target, '__module__', '?')}:{getattr(target, '__qualname__', type(target).__name__)}"
    doc = (inspect.getdoc(target) or "").strip().splitlines()
    print(f"{spec.name}: {spec.summary or (doc[0] if doc else 'no summary')}")
    print(f"  source: {spec.source} ({where}); cost {'quadratic' if spec.quadratic else 'linear'} in the map size")
    if spec.quadratic and spec.dense_map_options:
        given = ", ".join(f"{k}={v}" for k, v in spec.dense_map_options.items())
        print(f"  placements on maps of stride <= {modules.DENSE_STRIDE} pass {given} unless the row sets it")
    floors = [f"{rule.name} from stride {spec.floor(rule.name)}" for rule in rules.floored_rules()
              if spec.floor(rule.name) > 1]
    if floors:
        print(f"  placement rules without named strides: {', '.join(floors)}")
    print(f"  parameters (C = channels): {spec.params or 'see the class'}")
    print(f"  YAML names: {spec.name}, {', '.join(f'{family}_{spec.name}' for family in FAMILIES)}")
    options = modules.module_options(spec)
    if not options:
        print("  options: none besides the channels")
        return 0
    import textwrap

    import yaml

    example = next((o for o in options if o.name in spec.dense_map_options), options[0])
    value = spec.dense_map_options.get(example.name, example.default)
    value = "VALUE" if value in (inspect.Parameter.empty, None) else yaml.safe_dump(value).removesuffix("\n...\n").strip()
    print(f"\noptions (a YAML row's trailing mapping sets them, e.g. [-1, 1, C2f_{spec.name}, "
          f"[1024, {{{example.name}: {value}}}]]):")

    def shown(default) -> str:
        if default is inspect.Parameter.empty:
            return "(required)"
        return getattr(default, "__qualname__", None) or repr(default)

    def in_blocks(option) -> str:
        if not option.in_block:
            return "n/a"
        return "=" if option.block_default is inspect.Parameter.empty else shown(option.block_default)

    blocks = any(o.block_default is not inspect.Parameter.empty or not o.in_block for o in options)
    header = ("option", "default", *(("in blocks",) if blocks else ()), "meaning")
    rows = [(o.name, shown(o.default),
             *((in_blocks(o),) if blocks else ()),
             " ".join(o.meaning.replace("``", "`").split()) or "-") for o in options]
    widths = [max(len(r[i]) for r in [*rows, header]) for i in range(len(header) - 1)]
    indent = 2 + sum(w + 2 for w in widths)
    print("  " + "".join(f"{h:<{w}}  " for h, w in zip(header, widths)) + header[-1])
    for row in rows:
        lines = textwrap.wrap(row[-1], width=max(40, 110 - indent)) or ["-"]
        print("  " + "".join(f"{c:<{w}}  " for c, w in zip(row, widths)) + lines[0])
        for line in lines[1:]:
            print(" " * indent + line)
    if blocks:
        block = modules.block_class(spec)
        what = f"the layer `{spec.name}`" if block is modules.resolve(spec.layer, spec) else \
            f"the units of C2f/C3k2/RepNCSPELAN4_{spec.name}"
        print(f"\n`in blocks`: the default in {block.__name__} ({what}); `=`: the class's; n/a: it does not take "
              "the option.")
    built = [(names, builder) for names, builder in
             ((f"C2f/C3k2/RepNCSPELAN4_{spec.name} units", spec.unit), (f"C2PSA/PSA/A2C2f_{spec.name}", spec.psa))
             if builder not in (None, "bottleneck", "residual")]
    for names, builder in built:
        doc = (inspect.getdoc(modules.resolve(builder, spec)) or "").strip().splitlines()
        if doc:
            print(f"{names}: {doc[0]}")
    return 0


def cmd_zoo(args: argparse.Namespace) -> int:
    from . import zoo

    plan = {name: (base, module, rule) for base, module, rule, name in zoo.planned()}
    width = max(len(n) for n in zoo.names())
    families: dict[str, list[str]] = {}
    for name in zoo.names():
        base = plan.get(name, ("?",))[0]
        families.setdefault(zoo.family_of(base) if base != "?" else "other", []).append(name)
    order = [zoo.family_of(base) for base in zoo.PLACEMENTS]
    for family in sorted(families, key=lambda f: order.index(f) if f in order else len(order)):
        print(f"{family}:")
        for name in families[family]:
            base, module, rule = plan.get(name, ("?", "?", "?"))
            print(f"  {name:<{width}}  {base.split('/')[-1]} + {module} ({rule} placement)")
    print(f"\n{len(zoo.names())} files, named <base>-<module>-<rule> as `yoloattn variant` and `compare` name "
          "them. YOLOv8/YOLO11/YOLO26/YOLO12 files take a scale letter in the name: yolo26n-mlla-psa.yaml, "
          "yolov8s-irmb-csp.yaml. RT-DETR files are built with RTDETR(...), not YOLO(...). The former names "
          "(yolov8-*-c2f, yolo11-*-c3k2, yolov9*-*-elan, yolov9t-*-sppelan) still work as aliases.")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from . import bench, flops
    from .compare.models import resolve_model
    from .integration.wiring import report_wiring

    report_wiring(resolve_model(args.model))  # warnings with row numbers; one line if it cannot build
    model = _load_torch_model(args.model, args.nc).eval()
    _check_imgsz(args.imgsz, {args.model: model})
    costs = bench.layer_costs(model, args.imgsz)
    rows = [[str(c.index), str(c.source).replace(" ", ""), str(c.repeats), f"{c.params:,}", f"{c.flops / 1e9:.4f}",
             c.module, "x".join(map(str, c.out_shape))] for c in costs]
    print(_table(["idx", "from", "n", "params (unfused)", "GFLOPs", "module", "output"], rows))
    total_params, total_flops, nc = bench.count_params(model), sum(c.flops for c in costs) / 1e9, bench.model_nc(model)
    print(f"\n{len(costs)} layers, {bench.describe_params(total_params, False, nc)}, {total_flops:.3f} GFLOPs "
          f"at {args.imgsz}x{args.imgsz} ({flops.DESCRIPTION})")
    fused = bench.count_params(bench.prepare(model))
    print(f"{bench.describe_params(fused, True, nc)}: BatchNorm folded into the convolutions, as `bench` and "
          "`compare` time and count the model")
    try:
        from ultralytics.utils.torch_utils import get_flops

        print(f"Ultralytics' thop count for comparison: {get_flops(model, args.imgsz):.3f} GFLOPs (thop adds "
              "norms and activations, misses ACmix's window attention, and before ultralytics-thop 2.2 also "
              "functional matmuls and attention)")
    except Exception as err:  # thop is optional in Ultralytics; the cross-check is informational
        print(f"(thop cross-check unavailable: {err})")
    return 0


def cmd_variant(args: argparse.Namespace) -> int:
    from . import bench
    from .modules import get
    from .variant_file import plan_variant_file

    planned = plan_variant_file(args.base, args.module, args.where, args.output)
    for warning in planned.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    out = planned.write()
    for note in planned.notes:
        print(f"note: {note}")
    model = _load_torch_model(str(out.resolve()))
    params = bench.describe_params(bench.count_params(model), False, bench.model_nc(model))
    from .plugins import specs_for

    plugin = "".join(f" --plugin {p}" for spec in args.plugin or [] for p in specs_for(spec)) \
        if get(planned.module).source == "plug-in" else ""
    data = "data=embedded" if planned.embedded_data else f"data=PATH/{planned.task}-data.yaml"
    print(f"wrote {out.resolve()}: {params}, {bench.count_gflops(model, 640):.2f} GFLOPs at 640. "
          f"Train it with: yoloattn train {out} {data} epochs=10 imgsz=160{plugin}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    import torch

    from . import bench

    from .deploy import runtimes
    from .machine import cpu_summary

    backends = runtimes.installed() if args.backend == "all" else tuple(
        dict.fromkeys(runtimes.runtime(b).name for b in args.backend.split(",") if b.strip()))
    for backend in backends:
        runtimes.runtime(backend).require()  # before anything is built or timed
    threads = args.threads or torch.get_num_threads()
    peak = bench.matmul_peak_gflops(args.device, threads=threads)
    models = {name: _load_torch_model(name, args.nc) for name in dict.fromkeys(args.models)}
    _check_imgsz(args.imgsz, models)
    results = bench.benchmark_many(models, args.imgsz, args.batch, backends, args.device, threads, args.warmup,
                                   args.iters, matmul_peak=peak)
    bases = _listed_bases(models)

    def versus_base(name: str, backend: str) -> str:
        base = bases.get(name)
        return "" if base is None else f"{results[name, backend].latency_ms / results[base, backend].latency_ms:.2f}×"

    rows = [[name, backend, f"{r.params / 1e6:.3f}", f"{r.gflops:.3f}", f"{r.latency_ms:.2f}", f"{r.p90_ms:.2f}",
             versus_base(name, backend), f"{r.throughput:.1f}", "n/a" if r.peak_mem_mb is None else f"{r.peak_mem_mb:.1f}",
             f"{r.achieved_gflops_s:.1f}", f"{100 * r.efficiency:.1f}%"] for (name, backend), r in results.items()]
    classes = {name: r.nc for (name, _), r in results.items()}
    same = len(set(classes.values())) == 1
    params = f"params (M, {bench.param_basis(True, next(iter(classes.values())))})" if same else "params (M, fused)"
    print(_table(["model", "backend", params, "GFLOPs/img", "median ms", "p90 ms", "× base", "img/s", "peak MiB",
                  "GFLOP/s", "of peak"], rows))
    per_model = "" if same else " Classes (params depend on them): " + ", ".join(
        f"{name} {nc}" for name, nc in classes.items()) + "."
    example = next(((name, base) for name, base in bases.items() if name != base), None)
    print(f"\nbatch {args.batch} at {args.imgsz}x{args.imgsz} on {args.device}, {threads} thread(s), fused eval "
          f"models, {args.iters} timed passes each, interleaved across models; peak = fp32 matmul "
          f"{peak:.1f} GFLOP/s measured now. "
          f"Peak MiB: activation memory of one pass (n/a for the exported runtimes). CPU: {cpu_summary()}; "
          f"exported runtimes run the model exported through Ultralytics at this size, fp32.{per_model}"
          + (f" × base: median over that of the listed model the variant extends ({example[1]} for {example[0]}), "
             "same backend." if example else ""))
    return 0


def _listed_bases(models: dict) -> dict[str, str]:
    """Each listed model -> the listed model it extends, the baseline itself -> itself; models with no listed
    base are left out. By name first (``yolo11n-mlla-psa`` -> ``yolo11n``; the longest such prefix), else by
    structure (``my-v8-irmb.yaml`` -> ``yolov8n``: :func:`yoloattn.integration.transfer.extends`)."""
    from .integration.transfer import extends

    stems = {name: os.path.basename(name).removesuffix(".yaml").removesuffix(".pt") for name in models}
    bases = {}
    for name, stem in stems.items():
        candidates = [other for other, o in stems.items() if stem.startswith(o + "-")]
        if not candidates:
            candidates = [other for other in models if other != name and extends(models[name], models[other])]
        if candidates:
            base = max(candidates, key=lambda other: len(stems[other]))
            bases[name] = base
            bases.setdefault(base, base)
    return bases


def cmd_train(args: argparse.Namespace) -> int:
    from .compare.models import resolve_model
    from .integration.heads import build_model, trainer_for, wrapper

    from .recipe import HYPERPARAMETERS

    _yoloattn_only(args.overrides)
    overrides = _cpu_defaults(_ultralytics_args(args.overrides))
    if not overrides.get("resume"):  # a resumed run keeps the arguments it started with
        overrides = {**HYPERPARAMETERS, **overrides}
    model = None
    if "data" not in overrides and overrides.get("resume") and str(args.model).endswith(".pt"):
        # Ultralytics resumes with the dataset recorded in the checkpoint; check that one
        model = wrapper(resolve_model(args.model))
        recorded = _checkpoint_data(model)
        if not recorded or not os.path.isfile(recorded):
            raise CLIError(f"{args.model} records no readable dataset ({recorded or 'none'}); "
                           "resume with data=PATH/data.yaml")
        overrides["data"] = recorded
    if "data" not in overrides:
        raise CLIError("train needs data=PATH/data.yaml (or data=embedded for the built-in dataset)")
    model = model or wrapper(resolve_model(args.model))  # RTDETR(...) for RT-DETR
    overrides["data"] = _task_data(model, args.model, overrides["data"], "train", args.allow_skipped,
                                   ("train", "val"), bool(overrides.get("single_cls")))
    _check_imgsz(overrides.get("imgsz"), {args.model: model.model}, option="imgsz=")
    pretrained = overrides.get("pretrained")
    if isinstance(pretrained, str) and not overrides.get("resume"):
        from .integration.transfer import load_weights_model, transfer_weights

        weights = load_weights_model(pretrained)  # a missing or foreign file fails here, in one line
        if args.dry_run:  # what training will transfer, into the model as it builds it: the dataset's classes
            import yaml

            with open(overrides["data"]) as f:
                nc = len(yaml.safe_load(f)["names"])
            print(f"pretrained {pretrained}: {transfer_weights(build_model(model.model.yaml, nc=nc), weights)}")
    if args.dry_run:
        print(f"dry run: {args.model} builds, the dataset and every option are checked; nothing was trained. "
              f"Training would run with {overrides}")
        return 0
    try:
        trainer = trainer_for(model.model.yaml)
    except YoloattnError as err:
        raise CLIError(f"{args.model}: {err}") from None
    model.train(trainer=trainer, **overrides)
    print(f"results and weights: {model.trainer.save_dir}")
    return 0


def cmd_val(args: argparse.Namespace) -> int:
    from .compare.models import resolve_model
    from .integration.heads import wrapper

    _yoloattn_only(args.overrides)
    overrides = _cpu_defaults(_ultralytics_args(args.overrides))
    if "data" not in overrides and not args.model.endswith(".pt"):
        raise CLIError("val of a model definition needs data=PATH/data.yaml (or data=embedded)")
    model = wrapper(resolve_model(args.model))
    _check_imgsz(overrides.get("imgsz"), {args.model: model.model}, option="imgsz=")
    data = overrides.get("data") or _checkpoint_data(model)
    if "data" in overrides or (data and os.path.isfile(data)):
        # a checkpoint's recorded dataset gets the same check as one given on the command line
        overrides["data"] = _task_data(model, args.model, data, "val", args.allow_skipped,
                                       (str(overrides.get("split") or "val"),),
                                       bool(overrides.get("single_cls", model.overrides.get("single_cls"))))
    metrics = model.val(**overrides)
    print(f"mAP50 {metrics.box.map50:.4f}  mAP50-95 {metrics.box.map:.4f}  ({metrics.save_dir})")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .compare.models import resolve_model
    from .integration.heads import wrapper

    from .deploy.export import check_format

    overrides = _ultralytics_args(args.overrides)
    overrides.setdefault("format", "onnx")
    check_format(str(overrides["format"]))  # a typo or a converter not installed: one line, before anything runs
    overrides.setdefault("device", "cpu")
    # Ultralytics writes next to a .pt, and a model YAML's export (even of a zoo file inside the
    # installed package) under the YAML's bare file name, i.e. into the working directory.
    resolved = resolve_model(args.model)  # refuses unknown names and missing files in one line
    bare = Path(args.model)
    if len(bare.parts) == 1 and bare.suffix in ("", ".yaml", ".yml") and not bare.is_file():
        # A zoo or stock name goes to Ultralytics as typed (yoloattn's name lookup finds it), so the
        # exported file keeps that name, a former zoo name included: ./yolov8n-mqa-c2f.onnx.
        resolved = bare.name if bare.suffix else f"{bare.name}.yaml"
    model = wrapper(resolved)
    _check_imgsz(overrides.get("imgsz"), {args.model: model.model}, option="imgsz=")
    if str(overrides.get("quantize")).lower() in ("8", "int8", "w8a8", "w8a16") or overrides.get("int8"):
        if not overrides.get("data"):  # Ultralytics would fall back to coco8 and try to download it
            raise CLIError("INT8 export calibrates on images: add data=DATA.yaml (or data=embedded), the data the "
                           "model was trained on; yoloattn never downloads Ultralytics' coco8")
    if overrides.get("data"):  # calibration data: the same names and checks as train (embedded, a folder, ...)
        overrides["data"] = _task_data(model, args.model, overrides["data"], "export", True, ("train", "val"),
                                       False)
    path = model.export(**overrides)
    print(f"exported: {Path(path).resolve() if path else path}")
    return 0


def cmd_int8_sensitivity(args: argparse.Namespace) -> int:
    import tempfile
    from pathlib import Path

    from .compare.models import resolve_model
    from .deploy.sensitivity import int8_sensitivity
    from .integration.heads import wrapper

    if not str(args.model).endswith(".pt"):
        raise CLIError(f"int8-sensitivity needs trained weights (a .pt checkpoint), got {args.model!r}: a model "
                       "definition has random weights, whose mAP is 0 in fp32 and INT8 alike")
    model = wrapper(resolve_model(args.model))
    _check_imgsz(args.imgsz, {args.model: model.model}, option="--imgsz")
    data = _task_data(model, args.model, args.data, "int8-sensitivity", args.allow_skipped, ("train", "val"), False)
    work = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="yoloattn-int8-"))
    print(f"quantizing {args.model} with ONNX Runtime's QDQ quantizer (Conv/Gemm/MatMul, Ultralytics' policy), "
          f"once whole and twice per attention block; validating each on {data} ...", flush=True)
    result = int8_sensitivity(args.model, data, args.imgsz, work, task=model.task)
    for line in result.lines():
        print(line)
    print(f"calibrated on the first {result.calibration_images} training images; models and logs in {work}")
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    from .data import check_yolo_dataset, generate

    knobs = _parse_pairs(args.knobs, "dataset options")
    try:
        path = generate(args.preset, out=args.out, seed=args.seed, **knobs)
    except (ValueError, FileExistsError) as err:
        raise CLIError(str(err)) from None
    check_yolo_dataset(path)
    print(path.resolve())
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    import shlex

    from .compare import option_names, run_compare, settings_from_options

    options = {name: getattr(args, name, None) for name in option_names()}  # the demo parser has few of them
    if options.get("int8"):
        options["int8"] = tuple(part for value in options["int8"] for part in value.split(","))
    settings = settings_from_options(
        options, recipe=_ultralytics_args(args.set) if getattr(args, "set", None) else None,
        data_knobs=_parse_pairs(args.data_opt, "dataset options") if getattr(args, "data_opt", None) else None)
    command = " ".join([PROG, *map(shlex.quote, args.argv)])
    outcome = run_compare(settings, command=command, dry_run=args.dry_run, target_delta=args.target_delta)
    if outcome.interrupted:
        return EXIT_INTERRUPTED
    if outcome.dry_run:
        return 0
    if outcome.report_html:
        print(f"\nreport: {outcome.report_html}\n        {outcome.report_md}")
    return EXIT_FAILED if outcome.failed or not outcome.report_html else 0


# ---------------------------------------------------------------------------------------------- parser

_EPILOGS = {
    PROG: """
        examples:
          yoloattn modules                                   # the attention modules and YAML names
          yoloattn info yolo11n-mlla-psa --imgsz 640         # per-layer params and GFLOPs
          yoloattn bench yolo11n yolo11n-mlla-psa --imgsz 320 --backend all
          yoloattn variant yolo11n --module mlla --where psa -o yolo11n-mlla-psa.yaml
          yoloattn train yolo11n-mlla-psa.yaml data=embedded epochs=10 imgsz=160
          yoloattn demo                                      # the calibrated CPU comparison (time: docs/compare.md)
          yoloattn compare --base yolo11n --modules mlla,irmb --epochs 10 --seeds 3 --out runs/cmp

        Everything runs offline: Ultralytics' settings live in ~/.cache/yoloattn/ultralytics ($YOLOATTN_CACHE or
        $XDG_CACHE_HOME move it; $YOLOATTN_CONFIG_DIR or a YOLO_CONFIG_DIR you set wins).
        """,
    "modules": "examples:\n  yoloattn modules\n  yoloattn modules mqa      # MQA's options (kv_stride, compat, ...) and defaults",
    "zoo": "example:\n  yoloattn zoo\n  yoloattn info yolo11n-mlla-psa",
    "info": """
        examples:
          yoloattn info yolo11n                      # Ultralytics' own YAML, scale n
          yoloattn info yolo11n-mlla-psa --imgsz 320 # a bundled variant
          yoloattn info runs/detect/train/weights/best.pt
        """,
    "variant": """
        Placement rules (--where; default: the base's own attention block, else csp):
        {rules}

        examples:
          yoloattn variant yolo11n --module mlla --where psa -o yolo11n-mlla-psa.yaml
          yoloattn variant yolov8s.yaml --module irmb --where csp@16,32 -o my-v8s.yaml  # keeps scale s
          yoloattn variant my/model.yaml --module acmix --where head -o out/acmix.yaml

        Ultralytics reads the scale from the file name (yolo11n-... is scale n). Without a scale letter
        in -o, only the base's scale is written, so the file still builds at that scale.
        """,
    "bench": """
        Latency: median and p90 over --iters passes of a fused eval model (no NMS, no pre/post-processing);
        GFLOP/s achieved and its share of an fp32 matmul peak measured in the same run.

        examples:
          yoloattn bench yolo11n yolo11n-mlla-psa yolo11n-mqa-psa --imgsz 640
          yoloattn bench yolov8n-irmb-csp --imgsz 160 --backend all --threads 1
        """,
    "train": """
        Any Ultralytics key=value argument passes through; yoloattn adds its trainer for the model's task
        (yoloattn.DetectionTrainer, RTDETRTrainer, SegmentationTrainer, PoseTrainer or OBBTrainer),
        device=cpu when there is no GPU and amp=False on the CPU, and starts from the recipe that
        compare uses (yoloattn.recipe.HYPERPARAMETERS; any key=value overrides it):
          {recipe}
        data=embedded[:PRESET] uses the built-in dataset (presets tiny, demo, bench). Results go to ./runs/detect/train here (-2, -3, ...
        when taken; project=/name= change it) and the folder is printed at the end.

        examples:
          yoloattn train yolo11n-mlla-psa data=embedded epochs=10 imgsz=160
          yoloattn train my-variant.yaml data=path/to/data.yaml epochs=100 imgsz=640 device=0
        """,
    "val": """
        Results go to ./runs/detect/val here (-2, -3, ... when taken; project=/name= change it).

        examples:
          yoloattn val runs/detect/train/weights/best.pt split=test
          yoloattn val runs/detect/train/weights/best.pt data=embedded split=test imgsz=160
        """,
    "export": """
        The exported file goes next to a .pt, or for a YAML or zoo name into the working directory
        (yolo11n-mlla-psa.onnx); its path is printed.

        examples:
          yoloattn export runs/detect/train/weights/best.pt format=onnx dynamic=True
          yoloattn export yolo11n-mlla-psa imgsz=320          # random weights: for deployment checks
        """,
    "int8-sensitivity": """
        Quantizes the checkpoint post-training to INT8 with ONNX Runtime (Conv/Gemm/MatMul, as Ultralytics'
        ONNX INT8 export) whole, then with each attention block left in float (all but it) and alone in INT8
        (only it), and validates each: which block costs the accuracy (docs/deploy.md).

        examples:
          yoloattn int8-sensitivity runs/detect/train/weights/best.pt --data path/to/data.yaml --imgsz 640
          yoloattn int8-sensitivity runs/detect/train/weights/best.pt --data embedded:tiny --imgsz 64 --out int8
        """,
    "data": """
        Presets: tiny (16/8/8 images, tests), demo (1000/200/200, 5 digit classes), bench (2000/400/400,
        10 classes). Any generator knob can be overridden as key=value (see docs/dataset.md).

        examples:
          yoloattn data --preset demo
          yoloattn data --preset demo --out data/demo600 n_train=600 imgsz=128
        """,
    "compare": """
        Trains the base model and one variant per module and placement with identical hyper-parameters and seeds (in
        parallel subprocesses), measures params, GFLOPs and batch-1 CPU latency (torch and each --runtimes runtime),
        and writes results.csv, summary.csv, per_class.csv, report.md, report.html, pareto.png, curves.png and heatmaps.png
        into --out. The report gives Δ mAP50-95 with a 95% interval, Holm-adjusted Welch p, Hedges' g and
        the smallest Δ the seeds could detect; per-size COCO AP; per-epoch curves; EigenCAM heatmaps.
        Rerunning the same command reuses finished runs; changed settings train new runs. --dry-run checks
        every option and the dataset, writes the plan into --out and trains nothing. --until-decided trains
        --seeds seeds per batch and stops each variant once a group-sequential test (AdaStop) decides it.
        Without options it is the calibrated demo (`yoloattn demo`); the embedded presets tiny and bench and
        user datasets start from: base yolo11n, all modules, 10 epochs, 3 seeds. Every run trains with
        the recipe (yoloattn.recipe.RECIPE, the hyper-parameters `yoloattn train` also starts from; --set
        overrides them):
          {compare_recipe}

        examples:
          yoloattn compare --base yolo11n --modules mlla,irmb --epochs 1 --seeds 2 --imgsz 128 --out runs/c1
          yoloattn compare --data path/to/data.yaml --base yolov8n --epochs 30 --seeds 3 --imgsz 320
          yoloattn compare --preset demo --set lr0=0.02 --data-opt n_train=600
          yoloattn compare --preset tiny --base yolov8n --modules irmb,mlla --where all --epochs 1 --seeds 1
          yoloattn compare --modules mlla,irmb --seeds 3 --until-decided --max-seeds 12 --min-effect 0.02

        placements (--where, a comma list or all): {rule_names};
        see `yoloattn variant --help`
        """,
    "demo": """
        The calibrated comparison behind `make demo`: does MLLA in yolov8n's P5 C2f beat yolov8n on the
        embedded demo dataset? 3 seeds each, so the report gives intervals and the smallest Δ it could
        detect. Its settings, measured wall time and table: docs/compare.md, "The demo".

        example:
          yoloattn demo --out runs/demo
        """,
}


def _asked_modules(args) -> list[str]:
    """The module names a command was given (``--modules`` lists, ``--module``, ``modules NAME``): they may name
    undecorated classes of its plug-ins."""
    given = [getattr(args, field, None) for field in ("modules", "module", "name")]
    return [n.strip() for value in given if isinstance(value, str) for n in value.split(",") if n.strip()]


def _subparser(sub, name: str, help_text: str, handler, plugins: bool = True) -> argparse.ArgumentParser:
    from .recipe import HYPERPARAMETERS, RECIPE, describe

    epilog = textwrap.dedent(_EPILOGS[name]).strip().replace("{recipe}", describe(HYPERPARAMETERS))
    epilog = epilog.replace("{compare_recipe}", describe(RECIPE))
    if "{rules}" in epilog or "{rule_names}" in epilog:
        from . import rules

        epilog = epilog.replace("{rules}", "\n".join(rules.rules_help(2))).replace("{rule_names}",
                                                                                   rules.rule_names_text())
    parser = sub.add_parser(name, help=help_text, description=help_text, epilog=epilog,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.set_defaults(handler=handler, plugin=None)
    if plugins:  # every command that lists or builds modules
        parser.add_argument("--plugin", action="append", metavar="FILE.py|package.module",
                            help="import a plug-in that registers attention modules (repeatable; "
                                 "$YOLOATTN_PLUGINS does the same; see docs/plugins.md)")
    return parser


def _add_compare_options(p: argparse.ArgumentParser, demo: bool = False) -> None:
    from .deploy.int8 import INT8_PACKAGES
    from .deploy.runtimes import RUNTIMES

    if not demo:  # the demo takes DEMO's settings: only how it runs and --out
        p.add_argument("--data", help="'embedded' (default), 'embedded:PRESET' or PATH/data.yaml")
        p.add_argument("--preset", choices=("tiny", "demo", "bench"), help="embedded dataset preset (default demo)")
        p.add_argument("--base", help="base model: yolo11n, yolov8n.yaml, a zoo name or a YAML path")
        p.add_argument("--modules", help="'all' or a comma list, e.g. mlla,irmb")
        from . import rules

        p.add_argument("--where", help=f"placement rule(s): one of {rules.rule_names_text()}, a comma list "
                       f"(csp,psa,head; {rules.stride_example()} is one rule) or 'all' (every rule the base has); "
                       f"default: {rules.default_text()}")
        p.add_argument("--epochs", type=POSITIVE, help="training epochs of every run")
        p.add_argument("--seeds", type=POSITIVE, help="number of seeds: 0 .. N-1 (with --until-decided: seeds "
                       "per batch)")
        p.add_argument("--until-decided", action="store_true", default=None,
                       help="adaptive seeds: train --seeds seeds per batch and stop each variant as soon as a "
                            "group-sequential test (AdaStop, family-wise error ≤ 0.05) decides it (docs/compare.md)")
        p.add_argument("--max-seeds", type=POSITIVE, metavar="N",
                       help="--until-decided: at most N seeds per model, a multiple of --seeds and at least two "
                            "batches (default 4 batches)")
        p.add_argument("--min-effect", type=_fraction, metavar="D",
                       help="--until-decided: the smallest Δ mAP50-95 that matters; a variant also stops once "
                            "'no difference ≥ D' is shown")
        p.add_argument("--imgsz", type=POSITIVE, help="training and latency image size, a multiple of the "
                       "base model's largest stride (default: the preset's, 640 for a data.yaml)")
        p.add_argument("--device", help="training device (default cpu); GPU indices 0,1,2,3 train one run per GPU at a "
                       "time (docs/scale-out.md)")
        p.add_argument("--latency-threads", type=POSITIVE, help="threads for the batch-1 latency (default 1)")
        p.add_argument("--runtimes", metavar="NAME[,NAME...]",
                       help=f"runtimes the batch-1 latency is measured in beside eager torch: "
                            f"{', '.join(RUNTIMES)} (default: every installed one; docs/deploy.md)")
        p.add_argument("--int8", action="append", metavar="RUNTIME",
                       help="also quantize every finished run post-training to INT8 for this runtime "
                            f"({', '.join(INT8_PACKAGES)}; repeatable) and validate it: INT8 retention per "
                            "variant with seed statistics (docs/deploy.md)")
        p.add_argument("--set", nargs="+", metavar="KEY=VALUE", help="change the training recipe, e.g. lr0=0.02")
        p.add_argument("--data-opt", nargs="+", metavar="KEY=VALUE", help="embedded dataset knobs, e.g. n_train=600")
        p.add_argument("--allow-skipped", action="store_true", default=None,
                       help="compare even when Ultralytics would skip images of --data (counts go in the report)")
        p.add_argument("--weights", metavar="BASE.pt",
                       help="start every run from this checkpoint of the base model: the baseline loads it whole, "
                            "each variant through yoloattn.transfer_weights (docs/finetune.md)")
        p.add_argument("--freeze", type=NON_NEGATIVE, metavar="N",
                       help="freeze the first N layers of the base and the same layers of every variant (their "
                            "indices shift when a layer is inserted; Ultralytics' freeze=N would not follow)")
        p.add_argument("--nms", action="store_true", default=None,
                       help="end-to-end models (YOLO26, YOLOv10): evaluate and time the one-to-many head with NMS "
                            "instead of the default NMS-free end-to-end head (Ultralytics' nms=False)")
        p.add_argument("--val-every", type=NON_NEGATIVE, metavar="K",
                       help="also validate every K epochs, for the per-epoch mAP curves (default 0: after the "
                            "last epoch only)")
    p.add_argument("--dry-run", action="store_true",
                   help="check every option and the dataset, write the plan into --out, train nothing")
    p.add_argument("--jobs", type=POSITIVE, help="parallel runs (default: fits the CPU cores); does not change "
                   "the numbers")
    p.add_argument("--threads-per-run", type=POSITIVE, metavar="N",
                   help="torch threads per training run (default 1 on up to 4 cores, else 2); part of the run "
                        "key, since the thread count changes the numbers")
    g = p.add_argument_group("where runs execute (docs/scale-out.md; none of these changes a run's numbers)")
    from .compare import ExecutionSettings
    from .compare.executors import EXECUTORS, executor_class

    g.add_argument("--executor", choices=tuple(EXECUTORS),
                   help="; ".join(f"{name}: {executor_class(name).summary}" for name in EXECUTORS)
                   + f" (default {ExecutionSettings().executor})")
    g.add_argument("--ray-address", metavar="auto|HOST:PORT|ray://HOST:PORT",
                   help="join this Ray cluster (default: $RAY_ADDRESS, else start a local instance sized to this "
                        "machine)")
    g.add_argument("--gpus-per-run", type=NON_NEGATIVE, metavar="N",
                   help="ray: GPUs per run (default 1 with a GPU --device, else 0)")
    g.add_argument("--cpus-per-run", type=POSITIVE, metavar="N", help="ray: CPUs per run (default --threads-per-run)")
    g.add_argument("--runs-per-gpu", type=POSITIVE, metavar="N",
                   help="local with --device 0,1,..: runs sharing one GPU (default 1: one run per GPU)")
    g.add_argument("--retries", type=NON_NEGATIVE, metavar="N",
                   help="start a run again up to N times when its worker is killed (OOM, signal, lost node); "
                        "default 2")
    g.add_argument("--collect-weights", action="store_true", default=None,
                   help="ray without shared storage: copy each run's weights back under --out (default: they "
                        "stay on the node that trained them)")
    p.add_argument("--target-delta", type=_fraction, metavar="D",
                   help="also print how many seeds per model would detect a Δ mAP50-95 of D, from this "
                        "comparison's seed spread")
    p.add_argument("--out", help="output folder (default runs/demo for the demo and the demo preset, else "
                   "runs/compare)")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__
    from .deploy.runtimes import RUNTIMES

    parser = _Parser(
        prog=PROG, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Attention modules (Mobile MQA, ACmix, MLLA, iRMB) for Ultralytics YOLO: list, inspect, "
                    "benchmark, train and compare variants, offline.",
        epilog=textwrap.dedent(_EPILOGS[PROG]).strip())
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    parser.commands = sub.choices  # name -> its parser, for errors reported by the command's own parser

    p = _subparser(sub, "modules", "list the attention modules, blocks and aliases with their parameter counts; "
                   "`modules NAME`: one module's options with their defaults and meaning", cmd_modules)
    p.add_argument("name", nargs="?", metavar="NAME", help="a module (any case), e.g. MQA: its options and YAML names")
    _subparser(sub, "zoo", "list the bundled model YAMLs", cmd_zoo, plugins=False)

    p = _subparser(sub, "info", "per-layer table of a model: params, GFLOPs (attention included), shapes", cmd_info)
    p.add_argument("model")
    p.add_argument("--imgsz", type=POSITIVE, default=640, help="a multiple of the model's largest stride")
    p.add_argument("--nc", type=POSITIVE, help="number of classes (default: the YAML's)")

    p = _subparser(sub, "variant", "write a model YAML with an attention module placed into a base model",
                   cmd_variant)
    p.add_argument("base", help="yolo11n, yolov8n.yaml, a zoo name or a YAML path")
    p.add_argument("--module", required=True, help="MQA, ACmix, MLLA, iRMB, timm_eca, ... or a plug-in's (any case; "
                   "`yoloattn modules` lists them)")
    p.add_argument("--where", help="placement rule (see below)")
    p.add_argument("-o", "--output", help="output YAML (default: <base>-<module>-<where>.yaml here)")

    p = _subparser(sub, "bench", "latency, throughput, peak memory and efficiency of models", cmd_bench)
    p.add_argument("models", nargs="+")
    p.add_argument("--imgsz", type=POSITIVE, default=640, help="a multiple of each model's largest stride")
    p.add_argument("--batch", type=POSITIVE, default=1)
    p.add_argument("--backend", default="torch", metavar="NAME[,NAME...]",
                   help=f"runtimes, comma-separated: {', '.join(RUNTIMES)} (aliases ort, ov, ts), or all "
                        "(every installed one; the others install with pip install 'yoloattn[deploy]')")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=POSITIVE, help="threads of every runtime timed (default: torch's)")
    p.add_argument("--iters", type=POSITIVE, default=30)
    p.add_argument("--warmup", type=NON_NEGATIVE, default=5)
    p.add_argument("--nc", type=POSITIVE, help="number of classes (default: the YAML's)")

    for name, handler, help_text in (
        ("train", cmd_train, "train with Ultralytics (yoloattn trainer, offline defaults)"),
        ("val", cmd_val, "validate with Ultralytics"),
        ("export", cmd_export, "export with Ultralytics (default format=onnx)"),
    ):
        p = _subparser(sub, name, help_text, handler)
        p.add_argument("model")
        p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="Ultralytics arguments")
        if name == "train":
            p.add_argument("--dry-run", action="store_true",
                           help="check every option, the dataset and the model, then stop before training")
        if name in ("train", "val"):
            p.add_argument("--allow-skipped", action="store_true",
                           help="go on when Ultralytics would skip images of the dataset (default: refuse, exit 2)")

    p = _subparser(sub, "int8-sensitivity", "which attention block costs the INT8 accuracy of a trained model",
                   cmd_int8_sensitivity)
    p.add_argument("model", metavar="WEIGHTS.pt")
    p.add_argument("--data", required=True, help="PATH/data.yaml or embedded[:PRESET]: calibration on its training "
                   "images, validation on its val split")
    p.add_argument("--imgsz", type=POSITIVE, default=640, help="export and validation size (default 640)")
    p.add_argument("--out", help="folder for the quantized models and logs (default: a new temporary folder)")
    p.add_argument("--allow-skipped", action="store_true",
                   help="go on when Ultralytics would skip images of the dataset (default: refuse, exit 2)")

    p = _subparser(sub, "data", "write the embedded digits-in-clutter dataset and print its data.yaml", cmd_data,
                   plugins=False)
    p.add_argument("--preset", default="demo", choices=("tiny", "demo", "bench"))
    p.add_argument("--out", help="folder (default: the cache, $YOLOATTN_CACHE or "
                   "$XDG_CACHE_HOME/yoloattn, i.e. ~/.cache/yoloattn)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("knobs", nargs="*", metavar="KEY=VALUE", help="generator options, e.g. n_train=600")

    p = _subparser(sub, "compare", "train and compare the base model against its attention variants", cmd_compare)
    _add_compare_options(p)
    p = _subparser(sub, "demo", "run the calibrated demo comparison (what `make demo` runs)", cmd_compare,
                   plugins=False)
    _add_compare_options(p, demo=True)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # reported by the command's parser, with the closest option names
        command = parser.commands.get(args.command, parser)
        options = [o for action in command._actions for o in action.option_strings]
        close = [m for u in unknown if u.startswith("-") for m in difflib.get_close_matches(u.split("=")[0], options, 1)]
        hint = f"; did you mean {', '.join(dict.fromkeys(close))}?" if close else ""
        command.error(f"unrecognized arguments: {' '.join(unknown)}{hint}")
    if args.command is None:
        parser.print_help()
        return 0
    args.argv = argv

    from .offline import setup_offline

    setup_offline()
    try:
        if args.plugin:
            from .plugins import load_plugins

            load_plugins(args.plugin, names=_asked_modules(args))
        return args.handler(args)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # output piped into `head` and closed: not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as err:
        if not isinstance(err, YoloattnError):
            raise
        message = " ".join(str(err).split()) or type(err).__name__
        print(f"{PROG} {args.command}: error: {message}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
