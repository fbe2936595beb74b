"""Cost of each compared architecture (``rows.CostRow``): parameters, GFLOPs, batch-1 CPU latency in eager torch and
in each deployment runtime of ``--runtimes`` (ms; the model exported through Ultralytics and run in the runtime's
own client, ``bench``) and the peak activation memory of one batch-1 torch inference pass (MiB).

Measured once per model (not per seed: the cost does not depend on the weights) from the model YAML
with the dataset's class count, in the comparison's own process on the driver machine (recorded as
``machine``), before any training starts and while nothing else of the comparison runs, whichever
executor then trains the runs. All models are timed together, in alternating blocks
(``bench.time_interleaved``), 30 passes each after 3 warm-up passes. Latency uses ``latency_threads``
threads (default 1: the edge-device regime, and the steadiest number on a shared machine). Results
are cached under ``OUT/measure/`` (one ``CostRow`` as a JSON dict per model) keyed by the YAML text, image
size, class count, thread count, runtimes and versions; a cached dict of another ``CostRow`` version is measured
again. The matmul peak is measured only when something is timed.

Parameters are those of the fused model (``bench.param_basis``: "fused, N classes", N the dataset's).
Measuring takes about a minute for five nano models at 640 px on a small CPU, so ``progress`` gets a
line per model and per timed round with an ETA (``progress_line``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .records import machine_description, write_json_atomic
from .rows import CostRow
from .settings import cost_code_hash, digest, versions

WARMUP, ITERS = 3, 30
DEFAULT_TIMED = ("torch", "onnxruntime")


@dataclass(frozen=True)
class ModelSpec:
    label: str  # e.g. yolov8n or yolov8n-mlla-csp
    module: str  # "" for the baseline
    where: str  # "" for the baseline
    yaml_path: Path
    end_to_end: bool = False  # the head has a one-to-one NMS-free branch (YOLO26, YOLOv10): integration/heads.py


def format_duration(seconds: float) -> str:
    """``"0:40"``, ``"12:05"``, ``"1:02:03"`` (rounded up to whole seconds)."""
    total = max(0, math.ceil(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def progress_line(step: str, eta_s: float | None) -> str:
    """``"measuring costs 2/5: yolo11n-mqa-psa ... ETA 0:40"``, ``"measuring costs: latency round 1/3 ... ETA
    0:20"`` for a ``bench.benchmark_many`` progress step (no ETA before the first model is measured)."""
    head = f"measuring costs {step}" if step[:1].isdigit() else f"measuring costs: {step}"
    return f"{head} ..." + ("" if eta_s is None else f" ETA {format_duration(eta_s)}")


def _cost_fields(spec: ModelSpec, imgsz: int, nc: int, threads: int, nms: bool, runtimes: tuple[str, ...]) -> dict:
    from ..plugins import plugin_key_fields

    text = spec.yaml_path.read_text()
    head = {"nms": nms} if spec.end_to_end else {}  # which head is timed
    timed = {} if runtimes == DEFAULT_TIMED else {"runtimes": list(runtimes)}  # older caches stay valid
    return {"yaml": text, "imgsz": imgsz, "nc": nc, "threads": threads, "versions": versions(),
            "cost code": cost_code_hash(), **head, **timed, **plugin_key_fields(text)}


def measure_all(specs: list[ModelSpec], imgsz: int, nc: int, threads: int, out_dir: Path,
                progress: Callable[[str], None] | None = None, nms: bool = False,
                runtimes: tuple[str, ...] = DEFAULT_TIMED) -> dict[str, CostRow]:
    """{label: its ``CostRow``} (params, GFLOPs, latency in ms, peak MiB, ...); uncached models are timed together.

    ``progress`` (e.g. ``print``) gets a plan line, a ``progress_line`` per model and per timed round, and
    the time it took, only when something is measured. A model with an end-to-end head (YOLO26,
    YOLOv10) is counted and timed with that head (the NMS-free one-to-one branch, what the comparison
    evaluates), or with ``nms`` its one-to-many head (NMS itself is not timed).
    """
    keys = {spec.label: digest(_cost_fields(spec, imgsz, nc, threads, nms, runtimes))[:10] for spec in specs}
    caches = {spec.label: out_dir / f"{spec.label}-{keys[spec.label]}.json" for spec in specs}
    costs = {label: cost for label, path in caches.items()
             if path.is_file() and (cost := CostRow.from_dict(json.loads(path.read_text()))) is not None}
    todo = [spec for spec in specs if spec.label not in costs]
    if todo:
        out_dir.mkdir(parents=True, exist_ok=True)
        say = progress or (lambda text: None)
        cached = f", {len(specs) - len(todo)} cached" if len(todo) < len(specs) else ""
        exported = [name for name in runtimes if name != "torch"]
        say(f"measuring costs of {len(todo)} model(s) at {imgsz}px{cached}: params, GFLOPs, memory, "
            + (f"export to {', '.join(exported)}, then " if exported else "")
            + f"{WARMUP} warm-up + {ITERS} timed passes each with {', '.join(runtimes)} ({threads} thread(s))")
        started = time.monotonic()
        measured = _measure(todo, imgsz, nc, threads, lambda step, eta_s: say(progress_line(step, eta_s)), nms,
                            runtimes)
        say(f"measured costs in {format_duration(time.monotonic() - started)}")
        for label, cost in measured.items():
            write_json_atomic(caches[label], dataclasses.asdict(cost))
            costs[label] = cost
    return {spec.label: costs[spec.label] for spec in specs}


def _measure(specs: list[ModelSpec], imgsz: int, nc: int, threads: int,
             progress: Callable[[str, float | None], None] | None = None, nms: bool = False,
             runtimes: tuple[str, ...] = DEFAULT_TIMED) -> dict[str, CostRow]:
    import torch

    from .. import bench
    from ..integration.heads import load_model

    models = {}
    for spec in specs:
        torch.manual_seed(0)
        models[spec.label] = load_model(spec.yaml_path, nc, end_to_end=not nms)  # the trained model's head
    peak = bench.matmul_peak_gflops("cpu", threads=threads)
    runtimes = tuple(dict.fromkeys(("torch", *runtimes)))  # eager torch also gives params, GFLOPs and memory
    timed = bench.benchmark_many(models, imgsz, 1, runtimes, "cpu", threads, WARMUP, ITERS, matmul_peak=peak,
                                 progress=progress)
    costs = {}
    for label in models:
        eager, ort = timed[label, "torch"], timed.get((label, "onnxruntime"))
        costs[label] = CostRow(
            params=eager.params,  # fused, nc classes
            nc=nc,
            gflops=round(eager.gflops, 4),
            latency_p50_ms=round(eager.latency_ms, 3),  # bench's latency is the median
            latency_p90_ms=round(eager.p90_ms, 3),
            latency_ort_p50_ms=round(ort.latency_ms, 3) if ort else None,
            latency_ort_p90_ms=round(ort.p90_ms, 3) if ort else None,
            peak_mem_mb=round(eager.peak_mem_mb, 2),
            efficiency=round(eager.efficiency, 4),
            efficiency_ort=round(ort.efficiency, 4) if ort else None,
            matmul_peak_gflops_s=round(peak, 2),
            threads=threads,
            machine=machine_description(),  # the driver, in its own phase before any training
            latency={name: {"p50_ms": round(timed[label, name].latency_ms, 3),
                            "p90_ms": round(timed[label, name].p90_ms, 3),
                            "efficiency": round(timed[label, name].efficiency, 4)} for name in runtimes},
        )
    return costs
