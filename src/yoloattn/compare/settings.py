"""What a comparison runs: the settings object, the training recipe, the calibrated demo, run keys.

Every run trains with the same explicit recipe (``RECIPE``), never ``optimizer=auto``, which ignores
``lr0`` and picks a learning rate from the iteration count. ``val=False`` makes Ultralytics validate
only once, after the last epoch. Each run's results are keyed by a hash of everything that decides
them (model YAML text, dataset fingerprint, recipe, epochs, image size, seed, evaluation split, torch
threads per run, validation interval, the yoloattn / Ultralytics / torch versions and a hash of
yoloattn's model code), so a rerun reuses a finished run only when nothing changed.

Threads per run are part of that key because they change the numbers: a CPU convolution sums in a
different order on 1 and on 2 threads, and those rounding differences grow over an epoch (measured:
final box loss 5.67 vs 5.58, same model and seed). The thread count is therefore a setting of its own
(``threads_per_run``), never derived from ``--jobs``: the same settings give bit-identical runs
whether they run one at a time or in parallel.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import YoloattnError
from ..modules import builtin_names
from ..recipe import RECIPE



class CompareError(YoloattnError):
    """Settings that cannot be run (bad module name, seeds < 1, ...); the message says how to fix them."""


@dataclass(frozen=True)
class ExecutionSettings:
    """Where and how many runs execute (``executors/``). Nothing here is in a run's key: any executor, at
    any ``jobs``, reproduces a run's numbers. Each executor owns the fields it names in its ``options``
    (the others are shared); giving another executor's option is an error (``executors.check``)."""

    executor: str = "local"  # a name of executors.EXECUTORS: "local" (subprocesses here) or "ray" (one Ray task per run)
    jobs: int | None = None  # runs in flight; None: the executor's default_capacity
    retries: int = 2  # new attempts of a run whose worker was killed (signal, OOM, lost node)
    runs_per_gpu: int = 1  # local with --device 0,1,..: runs that share one GPU
    ray_address: str | None = None  # ray: None: a new local Ray instance; "auto" or "ray://host:port": a cluster
    gpus_per_run: int | None = None  # ray: GPUs per task (None: 1 on a GPU --device, else 0)
    cpus_per_run: int | None = None  # ray: CPUs per task (None: threads_per_run)
    collect_weights: bool = False  # ray: copy each run's last.pt / best.pt back under OUT


@dataclass(frozen=True)
class CompareSettings:
    """One comparison, as the user asked for it: the experiment (what decides the numbers), the report
    options, and the nested :class:`ExecutionSettings`. ``imgsz`` and ``threads_per_run`` None are filled
    by :meth:`resolved` (``resolve.resolve`` applies every default and check once); the CLI builds its
    options from these fields (``cli.py``)."""

    # experiment: every field here is in the run keys (plan.py), through the model YAMLs or train_args
    data: str = "embedded"  # "embedded" or the path of a YOLO data.yaml
    preset: str = "demo"  # embedded dataset preset (tiny / demo / bench)
    data_overrides: dict = field(default_factory=dict)  # embedded generator knobs, e.g. {"n_train": 600}
    data_seed: int = 0
    base: str = "yolo11n"
    modules: tuple[str, ...] = field(default_factory=builtin_names)  # the built-in modules
    # placement rules: None (the base's own attention block, zoo.variants.default_rule), one rule, a list ("csp,psa" or
    # ("csp", "psa")) or "all"; every module is placed by every rule, against one baseline
    where: str | tuple[str, ...] | None = None
    epochs: int = 10
    seeds: int = 3  # seeds 0 .. seeds-1; with until_decided, the seeds each batch adds
    # adaptive seeds (sequential.py): train seeds in batches until AdaStop decides each variant, up to max_seeds
    until_decided: bool = False
    max_seeds: int | None = None  # until_decided: most seeds per model (None: 4 batches)
    min_effect: float | None = None  # until_decided: the smallest Δ mAP50-95 that matters ("no difference ≥ D")
    imgsz: int | None = None  # None: the embedded preset's image size, or 640 for a user dataset
    recipe: dict = field(default_factory=lambda: dict(RECIPE))
    device: str = "cpu"
    threads_per_run: int | None = None  # torch threads per training run; None: default_threads_per_run()
    val_every: int = 0  # validate every k epochs for the mAP curves (0: only after the last epoch)
    weights: str | None = None  # a base checkpoint every run starts from (None: from scratch); see transfer.py
    freeze: int | None = None  # freeze the first N layers of the base, and the same (aligned) layers of each variant
    # End-to-end heads (YOLO26, YOLOv10): False evaluates and times the one-to-one NMS-free head
    # (Ultralytics' nms=False), True the one-to-many head with NMS. No effect on other models.
    nms: bool = False
    # report
    latency_threads: int = 1  # threads of every runtime for the batch-1 latency
    # deployment runtimes timed beside eager torch (names of deploy.runtimes.RUNTIMES, "a,b" or a tuple);
    # None: default_runtimes(), every installed one
    runtimes: str | tuple[str, ...] | None = None
    # runtimes whose post-training INT8 accuracy every finished run gets (deploy.int8: "openvino", "onnxruntime")
    int8: str | tuple[str, ...] = ()
    out: str = "runs/compare"
    allow_skipped: bool = False  # go on when Ultralytics would skip images of a user dataset (not in run keys)
    execution: ExecutionSettings = field(default_factory=ExecutionSettings)

    def resolved(self, preset_imgsz: int | None = None) -> CompareSettings:
        """With ``imgsz`` filled: the embedded preset's largest image side, else 640."""
        imgsz = self.imgsz or (preset_imgsz if self.data == "embedded" and preset_imgsz else 640)
        return dataclasses.replace(self, imgsz=imgsz, threads_per_run=self.threads_per_run or default_threads_per_run())

    def train_args(self, seed: int, end_to_end: bool = False) -> dict:
        """Ultralytics' training arguments of a run; ``end_to_end``: the model has an end-to-end head
        (``integration.heads.is_end_to_end``), whose NMS mode is then fixed by ``nms``."""
        # the kind of device, not which one: the executor gives each run its GPU (executors/), and a run's
        # numbers do not depend on which GPU of a kind trained it
        args = {**self.recipe, "epochs": self.epochs, "imgsz": self.imgsz, "seed": seed,
                "device": device_kind(self.device)}
        if self.weights:  # the baseline loads it whole, a variant through yoloattn.transfer_weights
            args["pretrained"] = str(Path(self.weights).expanduser().resolve())
        if end_to_end and not self.nms:
            args["nms"] = False  # validation (and predict) use the one-to-one head, never NMS
        return args


def default_runtimes() -> tuple[str, ...]:
    """The runtimes compare times when ``--runtimes`` is not given: every installed one of
    ``deploy.runtimes.RUNTIMES``, or the comma list in ``$YOLOATTN_RUNTIMES`` (the test suite sets
    ``torch,onnxruntime`` there, so that its many small comparisons do not export each model four times)."""
    from ..deploy.runtimes import installed

    listed = os.environ.get("YOLOATTN_RUNTIMES", "").strip()
    return tuple(part.strip() for part in listed.split(",") if part.strip()) if listed else installed()


def device_kind(device: str) -> str:
    """``"cpu"``, ``"mps"`` or ``"cuda"`` for an Ultralytics device string (``0``, ``0,1``, ``cuda:1``, ``cuda``)."""
    text = str(device).strip().lower()
    if text in ("", "cpu", "mps"):
        return text or "cpu"
    return "cuda"


def gpu_indices(device: str) -> list[int]:
    """The GPU indices a device string lists: ``"0,1,3"`` -> [0, 1, 3]; ``"cuda"`` -> [0]; cpu/mps -> []."""
    if device_kind(device) != "cuda":
        return []
    text = str(device).strip().lower().removeprefix("cuda:").removeprefix("cuda")
    return [int(part) for part in text.split(",") if part.strip().isdigit()] or [0]


def default_threads_per_run() -> int:
    """Torch threads per training run when ``--threads-per-run`` is not given: 1 on a machine with up to
    four cores, else 2. Small models at small image sizes scale far better across processes than across
    threads, so the cores go to parallel runs. The value is recorded in every run's key and result."""
    return 1 if (os.cpu_count() or 1) <= 4 else 2


# The `make demo` / `yoloattn demo` comparison, calibrated on 2 CPU cores (see docs/compare.md): it must
# finish in <= 15 min and still answer something: fewer variants, more seeds, so that the report has
# intervals and states the smallest Δ it could have detected.
DEMO = CompareSettings(
    data="embedded",
    preset="demo",
    data_overrides={"n_train": 1000, "n_test": 200},
    base="yolov8n",
    modules=("MLLA",),
    where="csp",
    epochs=8,
    seeds=3,
    imgsz=128,
    val_every=2,
    out="runs/demo",
)


# Ultralytics arguments compare sets itself: a recipe (--set) that names one is refused
MANAGED_BY_COMPARE = frozenset({"data", "pretrained", "freeze", "epochs", "imgsz", "seed", "device", "project", "name",
                                "exist_ok", "resume", "model", "mode", "task", "nms"})
_COMPOSITE = ("recipe", "data_overrides", "execution")  # fields set through their own arguments


def option_names() -> tuple[str, ...]:
    """The field names a user sets one by one (``yoloattn compare --NAME``): those of
    :class:`CompareSettings` and of :class:`ExecutionSettings`, not the recipe or the embedded knobs."""
    own = tuple(f.name for f in dataclasses.fields(CompareSettings) if f.name not in _COMPOSITE)
    return own + tuple(f.name for f in dataclasses.fields(ExecutionSettings))


def settings_from_options(options: dict, recipe: dict | None = None, data_knobs: dict | None = None) -> CompareSettings:
    """The comparison a user's options ask for.

    ``options`` maps :func:`option_names` to values (None: not given); ``data`` may be ``embedded:PRESET``.
    The embedded demo preset starts from :data:`DEMO` (the calibrated demo), anything else from the
    defaults. ``recipe``: Ultralytics arguments that change the training recipe; ``data_knobs``: embedded
    generator knobs.

    Raises CompareError: ``--preset`` with a data.yaml, ``--data-opt`` with a data.yaml, or a recipe that
    names an argument compare sets itself (:data:`MANAGED_BY_COMPARE`).
    """
    unknown = sorted(set(options) - set(option_names()))
    if unknown:
        raise CompareError(f"unknown comparison option(s) {', '.join(unknown)}; known: {', '.join(option_names())}")
    data, _, embedded_preset = (options.get("data") or "embedded").partition(":")
    if data != "embedded":
        data = options["data"]
        if options.get("preset"):
            raise CompareError("--preset picks the embedded dataset; drop it when --data is a data.yaml")
    preset = options.get("preset") or embedded_preset or "demo"
    settings = DEMO if data == "embedded" and preset == "demo" else CompareSettings(data=data, preset=preset)
    given = {name: value for name, value in options.items() if value is not None and name not in ("data", "preset")}
    execution_fields = {f.name for f in dataclasses.fields(ExecutionSettings)}
    chosen = {name: value for name, value in given.items() if name not in execution_fields}
    execution = dataclasses.replace(settings.execution, **{k: v for k, v in given.items() if k in execution_fields})
    if recipe:
        managed = sorted(set(recipe) & MANAGED_BY_COMPARE)
        if managed:
            raise CompareError(f"--set cannot change {', '.join(managed)}: compare sets them itself "
                               "(use --epochs, --imgsz, --seeds, --device, --data, --weights, --freeze, --nms, --out)")
        chosen["recipe"] = {**settings.recipe, **recipe}
    if data_knobs:
        if data != "embedded":
            raise CompareError("--data-opt sets knobs of the embedded dataset; it does not apply to a data.yaml")
        chosen["data_overrides"] = {**settings.data_overrides, **data_knobs}
    return dataclasses.replace(settings, **chosen, execution=execution)


def digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def versions() -> dict[str, str]:
    """Package versions, plus a hash of the yoloattn code that builds and trains the models.

    The hash covers ``yoloattn.attention``, ``yoloattn.blocks``, ``yoloattn.integration`` and the run's
    worker (``compare/worker.py``, ``compare/sizes.py``), so an edited module invalidates earlier runs
    even when the version number did not change.
    """
    from .. import __version__

    return {"yoloattn": __version__, "yoloattn model code": model_code_hash(),
            **package_versions(("ultralytics", "torch"))}


def package_versions(packages) -> dict[str, str]:
    """Installed version of each named distribution, ``"missing"`` where it is not installed."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for package in packages:
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "missing"
    return found


def model_code_hash() -> str:
    """Hash of the code that builds, trains and measures the models in a run (attention/, blocks/,
    integration/, modules.py, and the worker with its per-size evaluation)."""
    package = Path(__file__).resolve().parents[1]
    code = [p for sub in ("attention", "blocks", "integration") for p in (package / sub).rglob("*.py")]
    return _code_hash([*code, package / "modules.py", package / "compare" / "worker.py",
                       package / "compare" / "sizes.py"])


def cost_code_hash() -> str:
    """Hash of the code that counts, times and records a model's cost (bench.py, flops.py, compare/measure.py):
    keys cached costs, not runs."""
    package = Path(__file__).resolve().parents[1]
    return _code_hash([package / "bench.py", package / "flops.py", package / "compare" / "measure.py"])


def deploy_code_hash() -> str:
    """Hash of the code that exports, quantizes and validates a run's weights (deploy/): keys INT8 results."""
    package = Path(__file__).resolve().parents[1]
    return _code_hash(sorted((package / "deploy").glob("*.py")))


def _code_hash(paths: list[Path]) -> str:
    package = Path(__file__).resolve().parents[1]
    files = sorted(paths)
    h = hashlib.sha256()
    for p in files:
        h.update(str(p.relative_to(package)).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()[:12]


def dataset_fingerprint(data_yaml: Path, root: Path) -> dict:
    """What identifies a dataset: the embedded manifest key, or the YAML plus the label files' sizes and times."""
    manifest = data_yaml.parent / "manifest.json"
    if manifest.is_file():
        try:
            key = json.loads(manifest.read_text()).get("cache_key")
        except ValueError:
            key = None
        if key:
            return {"embedded": key}
    labels = []
    for p in sorted(root.rglob("*.txt")):
        st = p.stat()
        labels.append((str(p.relative_to(root)), st.st_size, st.st_mtime_ns))
    return {"yaml": data_yaml.read_text(), "root": str(root), "labels": digest(labels)}
