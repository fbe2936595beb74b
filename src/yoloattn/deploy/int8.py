"""Post-training INT8 accuracy of a trained checkpoint, through Ultralytics' own export and validator.

``int8_accuracy`` exports the checkpoint twice for one runtime at a static ``imgsz``: fp32, and INT8
with Ultralytics' post-training quantization (``quantize=8``; OpenVINO: NNCF's MIXED preset; ONNX:
ONNX Runtime's static quantizer on Conv/Gemm/MatMul, Softmax and the head's decode left in float),
calibrated on the first ``CALIBRATION_IMAGES`` images of the training split (a fixed set: the same
images for every model and seed). Both artifacts are then validated by Ultralytics' validator on the
evaluation split (``YOLO(artifact).val``, batch 1, square letterbox at ``imgsz``), so that
Δ(INT8 − fp32) compares two numbers measured the same way: the fp32 number here can differ slightly
from the training run's own final validation (PyTorch, rectangular batches).

Retention = mAP50-95(INT8) / mAP50-95(fp32 export). INT8 latency: batch-1 median of ``ITERS`` passes
of the INT8 artifact in the runtime's client (fp32 input), ``threads`` threads.

Needs Ultralytics' INT8 export for the runtime (``runtimes.Runtime.int8``; OpenVINO also needs ``nncf``);
``Int8Unavailable`` says which package is missing.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import YoloattnError
from .export import export_checkpoint, quiet
from .runtimes import EXTRA, runtime

__all__ = ["CALIBRATION_IMAGES", "Int8Accuracy", "int8_accuracy", "check_int8", "INT8_PACKAGES", "train_files"]

CALIBRATION_IMAGES = 128  # the first N training images (all of them when fewer)
WARMUP, ITERS = 3, 30
INT8_PACKAGES = {"openvino": ("openvino", "nncf"), "onnxruntime": ("onnx", "onnxruntime")}


def check_int8(name: str) -> str:
    """The canonical runtime name for ``--int8 NAME``; ``YoloattnError`` in one line when the runtime has no
    post-training INT8 path in Ultralytics or a package it needs is missing."""
    import importlib.util

    row = runtime(name)
    if not row.int8:
        choices = ", ".join(n for n in INT8_PACKAGES)
        raise YoloattnError(f"--int8 {name}: Ultralytics has no post-training INT8 export for {row.name}; "
                            f"choose from {choices}")
    absent = [p for p in INT8_PACKAGES[row.name] if importlib.util.find_spec(p) is None]
    if absent:
        raise YoloattnError(f"--int8 {row.name} needs {', '.join(absent)}, which is not installed: "
                            f"pip install 'yoloattn[{EXTRA}]'")
    return row.name


@dataclass(frozen=True)
class Int8Accuracy:
    """One checkpoint's INT8 result on one runtime (fractions in [0, 1], ms)."""

    runtime: str
    map50_fp32: float
    map50_95_fp32: float
    map50_int8: float
    map50_95_int8: float
    latency_int8_p50_ms: float
    latency_fp32_p50_ms: float
    calibration_images: int
    seconds: float

    @property
    def retention(self) -> float | None:
        return self.map50_95_int8 / self.map50_95_fp32 if self.map50_95_fp32 > 0 else None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _validate(artifact: Path, data: str, imgsz: int, task: str, log: Path) -> tuple[float, float]:
    from ..integration.heads import wrapper

    with quiet(log):
        model = wrapper(str(artifact)) if str(artifact).endswith(".pt") else _exported(artifact, task)
        metrics = model.val(data=data, split="val", imgsz=imgsz, batch=1, device="cpu", plots=False, verbose=False,
                            workers=0, project=str(log.parent / "val"), name=artifact.name, exist_ok=True)
    return float(metrics.box.map50), float(metrics.box.map)


def _exported(artifact: Path, task: str):
    from ultralytics import YOLO

    return YOLO(str(artifact), task=task)


def _latencies_ms(name: str, artifacts: tuple[Path, ...], imgsz: int, threads: int) -> list[float]:
    """Median ms of each artifact, timed in alternating rounds (``bench.time_interleaved``) so that INT8 and fp32
    meet the same load."""
    import torch

    from ..bench import time_interleaved

    x = np.zeros((1, 3, imgsz, imgsz), np.float32)
    forwards = {}
    for k, artifact in enumerate(artifacts):
        with quiet(artifact.parent / "latency.log"):  # OpenVINO's CPU plugin may log its graph transformations
            session = runtime(name).load(artifact, threads)
        forwards[k] = lambda session=session: session(x)
    times = time_interleaved(forwards, torch.device("cpu"), WARMUP, ITERS)
    return [statistics.median(times[k]) for k in range(len(artifacts))]


def int8_accuracy(checkpoint: str | Path, name: str, data: str | Path, imgsz: int, work_dir: str | Path,
                  task: str = "detect", threads: int = 1, nms: bool | None = None) -> Int8Accuracy:
    """fp32 and INT8 exports of ``checkpoint`` for runtime ``name``, both validated on ``data``'s ``val`` split
    (see the module doc). ``data``: a data.yaml whose ``train`` split calibrates and whose ``val`` split
    evaluates. ``nms`` as for ``export.export_checkpoint``. Raises ``YoloattnError`` for a runtime without
    INT8 or a missing package, ``ExportFailed`` when an export fails."""
    name = check_int8(name)
    started = time.perf_counter()
    work_dir = Path(work_dir)
    n_train = len(train_files(data))
    if not n_train:
        raise YoloattnError(f"{data}: no training images to calibrate the INT8 quantization on")
    fraction = _calibration_fraction(n_train)
    fp32 = export_checkpoint(checkpoint, name, work_dir / "fp32", imgsz, nms=nms)
    int8 = export_checkpoint(checkpoint, name, work_dir / "int8", imgsz, int8=True, data=str(data), split="train",
                             fraction=fraction, nms=nms)
    map50_fp32, map_fp32 = _validate(fp32, str(data), imgsz, task, work_dir / "val-fp32.log")
    map50_int8, map_int8 = _validate(int8, str(data), imgsz, task, work_dir / "val-int8.log")
    int8_ms, fp32_ms = _latencies_ms(name, (int8, fp32), imgsz, threads)
    return Int8Accuracy(name, map50_fp32, map_fp32, map50_int8, map_int8, round(int8_ms, 3), round(fp32_ms, 3),
                        min(CALIBRATION_IMAGES, n_train), time.perf_counter() - started)


def train_files(data: str | Path) -> list[Path]:
    """The training images of a data.yaml (folders searched recursively, sorted; list files as listed), in the
    order Ultralytics' ``fraction`` takes its first ones."""
    from ultralytics.data.utils import IMG_FORMATS, check_det_dataset

    with quiet(Path(data).with_suffix(".check.log")):
        info = check_det_dataset(str(data))
    sources = info["train"] if isinstance(info["train"], list) else [info["train"]]
    files: list[Path] = []
    for source in map(Path, sources):
        if source.is_dir():
            files += sorted(p for p in source.rglob("*") if p.suffix.lower().lstrip(".") in IMG_FORMATS)
        elif source.is_file():
            files += [Path(line.strip()) for line in source.read_text().splitlines() if line.strip()]
    return files


def _calibration_fraction(n: int) -> float:
    """Ultralytics' ``fraction`` that keeps the first ``CALIBRATION_IMAGES`` of ``n`` training images."""
    return 1.0 if n <= CALIBRATION_IMAGES else CALIBRATION_IMAGES / n
