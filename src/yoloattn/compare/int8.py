"""The comparison's INT8 phase (``--int8 RUNTIME``): every finished run's weights quantized post-training and
validated (``deploy.int8.int8_accuracy``), then summarized per model with the seed statistics of fp32.

Each (run, runtime) result is cached in the run's folder as ``int8-<runtime>-<key>.json``, keyed by the
weights' SHA-256, the runtime, the image size, the dataset fingerprint, the calibration size, the
package versions (with the runtime's own and NNCF's) and a hash of ``deploy/``: a rerun reuses a finished
quantization and an added seed or placement quantizes only its new runs. A run whose weights are not on
this machine (trained on a Ray node without ``--collect-weights``) is reported and left out.

The statistics are about the INT8 loss: each run's ``delta_int8`` = mAP50-95(INT8) − mAP50-95(fp32), both
of the same exported model and validator; a variant is tested against the baseline with Welch's t-test,
Holm-adjusted across variants, and a bootstrap interval (``stats.compare_variants``), and the verdict says
whether it loses more (or less) under INT8 than the baseline does.

Which block costs it: for each model's first seed, ``deploy.sensitivity.int8_sensitivity`` quantizes with ONNX
Runtime's QDQ quantizer everything, everything but one attention block, and only that block
(``int8_blocks.csv``; cached like the rest as ``int8-blocks-<key>.json``).
"""

from __future__ import annotations

import hashlib
import json
import statistics
from pathlib import Path
from typing import Callable

from ..deploy.export import last_line as _last_line
from .measure import ModelSpec
from .plan import PreparedData
from .records import write_json_atomic
from .rows import BlockRow, Int8Row, Int8SummaryRow, ResultRow
from .settings import CompareSettings, deploy_code_hash, digest, versions
from .stats import compare_variants, mean_std

__all__ = ["int8_rows", "int8_summary", "block_rows"]

_VERDICTS = {"better": "loses less than the baseline", "worse": "loses more than the baseline"}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _runtime_versions(name: str) -> dict[str, str]:
    from ..deploy.int8 import INT8_PACKAGES
    from .settings import package_versions

    return package_versions(INT8_PACKAGES[name])


def int8_rows(rows: list[ResultRow], models: list[ModelSpec], data: PreparedData, settings: CompareSettings,
              say: Callable[[str], None]) -> list[Int8Row]:
    """One ``Int8Row`` per finished run and ``settings.int8`` runtime (cached; see the module doc)."""
    from ..deploy.int8 import CALIBRATION_IMAGES, int8_accuracy

    end_to_end = {spec.label: spec.end_to_end for spec in models}
    out: list[Int8Row] = []
    todo = [(row, name) for name in settings.int8 for row in rows]
    for k, (row, name) in enumerate(todo, 1):
        weights = Path(row.weights) if row.weights else None
        who = f"{row.model} s{row.seed} {name}"
        if weights is None or not weights.is_file():
            say(f"int8     {who}: left out, its weights are not on this machine (trained on {row.host or '?'}; "
                "--collect-weights brings them back)")
            continue
        nms = False if end_to_end.get(row.model) and not settings.nms else None  # the head the run was evaluated with
        key = digest({"weights": _sha256(weights), "runtime": name, "imgsz": settings.imgsz,
                      "data": data.fingerprint, "eval split": data.eval_split, "calibration": CALIBRATION_IMAGES,
                      "nms": nms, "threads": settings.latency_threads, "versions": versions(),
                      "runtime versions": _runtime_versions(name), "deploy code": deploy_code_hash()})[:10]
        cache = Path(row.run_dir) / f"int8-{name}-{key}.json"
        if cache.is_file():
            result = json.loads(cache.read_text())
        else:
            say(f"int8     {k}/{len(todo)}: {who}: export fp32 and INT8, validate both ...")
            try:
                accuracy = int8_accuracy(weights, name, data.run_yaml, settings.imgsz,
                                         Path(row.run_dir) / f"int8-{name}", threads=settings.latency_threads, nms=nms)
            except Exception as err:  # noqa: BLE001 - one run's converter or runtime failing must not cost the report
                say(f"int8     {who}: left out: {_last_line(err)}")
                continue
            result = accuracy.to_dict()
            write_json_atomic(cache, result)
        fp32, int8 = result["map50_95_fp32"], result["map50_95_int8"]
        entry = Int8Row(model=row.model, seed=row.seed, runtime=name, map50_95_fp32=fp32, map50_95_int8=int8,
                        delta_int8=int8 - fp32, retention=int8 / fp32 if fp32 > 0 else None,
                        map50_fp32=result["map50_fp32"], map50_int8=result["map50_int8"],
                        latency_int8_p50_ms=result["latency_int8_p50_ms"],
                        latency_fp32_p50_ms=result["latency_fp32_p50_ms"],
                        calibration_images=result["calibration_images"])
        say(f"int8     {who}: mAP50-95 {fp32:.4f} fp32 -> {int8:.4f} INT8 ({entry.delta_int8:+.4f})")
        out.append(entry)
    return out


def int8_summary(rows: list[Int8Row], baseline: str, order: list[str]) -> list[Int8SummaryRow]:
    """One ``Int8SummaryRow`` per (model, runtime), models in ``order``; variants tested against the baseline on
    ``delta_int8`` (see the module doc)."""
    summary = []
    for name in dict.fromkeys(r.runtime for r in rows):
        by_model = {model: [r for r in rows if r.runtime == name and r.model == model] for model in order}
        by_model = {model: runs for model, runs in by_model.items() if runs}
        base = [r.delta_int8 for r in by_model.get(baseline, [])]
        variants = {m: [r.delta_int8 for r in runs] for m, runs in by_model.items() if m != baseline}
        tests = compare_variants(variants, base) if base else {}
        for model, runs in by_model.items():
            retained = [r.retention for r in runs if r.retention is not None]
            entry = dict(model=model, runtime=name, seeds=len(runs),
                         drop_mean=statistics.fmean(r.delta_int8 for r in runs),
                         latency_int8_p50_ms=statistics.median(r.latency_int8_p50_ms for r in runs),
                         latency_fp32_p50_ms=statistics.median(r.latency_fp32_p50_ms for r in runs))
            entry["map50_95_int8_mean"], entry["map50_95_int8_std"] = mean_std([r.map50_95_int8 for r in runs])
            entry["retention_mean"], entry["retention_std"] = mean_std(retained) if retained else (None, None)
            test = tests.get(model)
            if model == baseline:
                entry["verdict"] = "baseline"
            elif test is not None:
                entry.update(drop_delta=test.delta, drop_ci_low=test.ci[0] if test.ci else None,
                             drop_ci_high=test.ci[1] if test.ci else None, p_holm=test.p_holm,
                             verdict=_VERDICTS.get(test.verdict, test.verdict))
            summary.append(Int8SummaryRow(**entry))
    return summary


def block_rows(rows: list[ResultRow], data: PreparedData, settings: CompareSettings,
               say: Callable[[str], None]) -> list[BlockRow]:
    """``BlockRow``s of every model's first finished seed that has an attention block (see the module doc)."""
    from ..deploy.int8 import CALIBRATION_IMAGES
    from ..deploy.runtimes import reference_model
    from ..deploy.sensitivity import attention_blocks, int8_sensitivity

    out: list[BlockRow] = []
    first = {}
    for row in sorted(rows, key=lambda r: r.seed):
        first.setdefault(row.model, row)
    for model, row in first.items():
        weights = Path(row.weights) if row.weights else None
        if weights is None or not weights.is_file():
            continue  # int8_rows said so
        key = digest({"weights": _sha256(weights), "imgsz": settings.imgsz, "data": data.fingerprint,
                      "calibration": CALIBRATION_IMAGES, "versions": versions(),
                      "runtime versions": _runtime_versions("onnxruntime"), "deploy code": deploy_code_hash()})[:10]
        cache = Path(row.run_dir) / f"int8-blocks-{key}.json"
        if cache.is_file():
            result = json.loads(cache.read_text())
        elif not attention_blocks(reference_model(weights)):
            continue  # the baseline, or a model whose attention yoloattn does not know: nothing to attribute
        else:
            say(f"int8     {model} s{row.seed}: per-block sensitivity (ONNX Runtime QDQ) ...")
            try:
                result = int8_sensitivity(weights, data.run_yaml, settings.imgsz,
                                          Path(row.run_dir) / "int8-blocks").to_dict()
            except Exception as err:  # noqa: BLE001 - as in int8_rows
                say(f"int8     {model} s{row.seed}: per-block sensitivity left out: {_last_line(err)}")
                continue
            write_json_atomic(cache, result)
        for block in result["blocks"]:
            out.append(BlockRow(model=model, layer=block["layer"], block=block["block"], modules=block["modules"],
                                map50_95_fp32=result["map50_95_fp32"], map50_95_int8=result["map50_95_int8"],
                                map50_95_all_but=block["map50_95_all_but"], map50_95_only=block["map50_95_only"]))
    return out
