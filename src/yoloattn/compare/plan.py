"""Plan a comparison: its dataset, its variants, its runs and what each run's worker is asked to do.

From a :class:`resolve.ResolvedCompare`:

1. data (:func:`prepare_data`): the embedded dataset is generated (or reused from the cache); a user
   data.yaml is resolved to absolute paths (``data/resolve.py``, as for ``yoloattn train``), its train and
   evaluation splits are checked with Ultralytics' own verifier (images it would skip are refused unless
   ``--allow-skipped``), and it is evaluated on ``test`` if it has one, else on ``val``.
   ``OUT/data/run-data.yaml`` is the resolved dataset with ``val:`` pointing at the evaluation split
   (see ``worker.py`` for why that is safe);
2. variants (:func:`plan_variants`, in memory: a placement that does not apply stops the comparison
   before anything is written) and models (:func:`plan_models`): ``OUT/models/<base>.yaml`` (the stock
   file, verbatim) and one ``zoo.make_variant`` YAML per module and placement;
3. runs (:func:`plan_runs`): one per model and seed, in ``OUT/runs/<model>-s<seed>-<key>/``; ``key``
   hashes every setting that decides the result (``settings.py``). A run is finished when its
   ``result.json`` exists under that key (the worker writes it by rename, last);
4. worker specs (:func:`worker_spec`): what one attempt of a run is asked to do (``records.WorkerSpec``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from ..data.validate import DatasetReport
from ..integration.heads import build_model, is_end_to_end
from .executors.remote import run_data_text
from .measure import ModelSpec
from .models import default_placement, model_file, variant_stem
from .records import DataSource, RecordError, RunFailure, RunResult, WorkerSpec
from .resolve import ResolvedCompare, all_rules, embedded_config
from .settings import CompareSettings, dataset_fingerprint, digest, versions


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
        embedded_config(settings)  # CompareError for bad options, before anything is generated
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


def plan_variants(resolved: ResolvedCompare) -> VariantPlan:
    """Plan every module x placement variant of the comparison in memory.

    One placement rule (or the default) must apply to every module: its VariantError stops the
    comparison. With a list, or ``all`` (every rule but mmqa that the base has), a rule or a module x
    rule pair that does not apply is skipped with a line in ``skipped``; nothing applying is an error.

    Raises VariantError for placements the base does not have.
    """
    from .. import zoo

    settings, base = resolved.settings, resolved.base
    where = settings.where
    rules = all_rules() if where == ("all",) else where or (default_placement(base),)
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
            variants.append((module, rule, variant_stem(resolved.stem, module, rule), variant))
    lines = _skip_lines(skipped, len(settings.modules))
    if not variants:
        raise zoo.VariantError(f"no placement of --where {','.join(rules)} applies to {settings.base}: "
                               + "; ".join(lines))
    used = tuple(dict.fromkeys(rule for _, rule, _, _ in variants))
    return VariantPlan(base, resolved.stem, used, tuple(variants), tuple(lines))


def _skip_lines(skipped: dict[str, dict[str, str]], n_modules: int) -> list[str]:
    """One line per rule that applies to no module for one reason, else one per module x rule pair."""
    lines = []
    for rule, reasons in skipped.items():
        if len(reasons) == n_modules and len(set(reasons.values())) == 1:
            lines.append(f"placement {rule} skipped: {next(iter(reasons.values()))}")
        else:
            lines.extend(f"{module}@{rule} skipped: {reason}" for module, reason in reasons.items())
    return lines


def plan_models(resolved: ResolvedCompare, plan: VariantPlan) -> list[ModelSpec]:
    """Write the baseline and variant YAMLs of ``plan`` into OUT/models; return their specs, the baseline first."""
    from .. import zoo

    models_dir = resolved.out / "models"
    models_dir.mkdir(parents=True, exist_ok=True)
    base_yaml = models_dir / f"{plan.stem}.yaml"
    source = model_file(resolved.base_path)
    _write_if_changed(base_yaml, f"# {source} (verbatim copy; the scale comes from this file's name)\n"
                      + source.read_text())
    specs = [ModelSpec(plan.stem, "", "", base_yaml, is_end_to_end(plan.base))]
    for module, where, label, variant in plan.variants:
        path = models_dir / f"{label}.yaml"
        _write_if_changed(path, zoo.render(variant, f"{plan.stem} + {module} ({where} placement), "
                                                    "for yoloattn compare"))
        specs.append(ModelSpec(label, module, where, path, is_end_to_end(variant)))
    return specs


def _write_if_changed(path: Path, text: str) -> None:
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)


def plan_runs(settings: CompareSettings, models: list[ModelSpec], data: PreparedData, out: Path,
              seeds: Iterable[int] | None = None) -> list[RunSpec]:
    """Every (seed, model) run, seed-major: ``seeds`` (default 0 .. settings.seeds - 1) of each of ``models``,
    each keyed by everything that decides its numbers (see ``settings.py``)."""
    from ..plugins import plugin_key_fields

    runs, stamp = [], versions()
    weights_hash = _file_hash(settings.weights) if settings.weights else None
    frozen = frozen_layers(models, settings.freeze, data.nc) if settings.freeze else {}
    texts = {spec.label: spec.yaml_path.read_text() for spec in models}
    plugin_fields = {label: plugin_key_fields(text) for label, text in texts.items()}
    for seed in range(settings.seeds) if seeds is None else seeds:
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


def worker_spec(run: RunSpec, data: PreparedData, settings: CompareSettings) -> WorkerSpec:
    """What one attempt of ``run`` is asked to do; the device is its kind, which the executor makes concrete."""
    return WorkerSpec(key=run.key, model=run.model.label, seed=run.seed, model_yaml=str(run.model.yaml_path),
                      data_yaml=str(data.run_yaml), run_dir=str(run.run_dir), threads=settings.threads_per_run,
                      train_args={**settings.train_args(run.seed, run.model.end_to_end),
                                  **{k: list(v) for k, v in run.extra_args}},
                      val_every=settings.val_every, attempt=uuid.uuid4().hex[:12])


