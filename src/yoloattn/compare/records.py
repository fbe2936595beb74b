"""The records that cross the runner / worker process boundary, as typed, versioned JSON.

``WorkerSpec`` (``spec.json``) is what the runner asks one worker to do; ``RunResult`` (``result.json``)
is what a finished worker reports, with the ``RunEnv`` it ran in. Both are written by rename
(``write_json_atomic``) and read back with :meth:`from_json`, which refuses a file with missing or
unknown fields (an older yoloattn's run, a hand edit) instead of passing a loose dict along.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path


def write_json_atomic(path: Path, obj) -> None:
    """Write JSON so that readers see either the old file or the complete new one."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    partial.write_text(json.dumps(obj, indent=2, default=str) + "\n")
    os.replace(partial, path)


class RecordError(ValueError):
    """A spec.json / result.json that is not this version's record (missing or unknown fields)."""


def _from_dict(cls, data: dict, where: str):
    names = {f.name for f in dataclasses.fields(cls)}
    required = {f.name for f in dataclasses.fields(cls)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
    missing, unknown = required - set(data), set(data) - names
    if missing or unknown:
        raise RecordError(f"{where}: not a {cls.__name__} of this yoloattn version (missing {sorted(missing)}, "
                          f"unknown {sorted(unknown)})")
    return cls(**data)


@dataclass(frozen=True)
class RunEnv:
    """Where a run trained: what decides its numbers beyond the settings (threads above all)."""

    threads: int  # torch intra-op threads (torch.get_num_threads() during training)
    device: str  # the Ultralytics device argument, e.g. "cpu"
    python: str
    torch: str
    ultralytics: str
    numpy: str
    yoloattn: str
    machine: str  # processor, cores, OS

    @classmethod
    def current(cls, threads: int, device: str) -> RunEnv:
        import numpy
        import torch
        import ultralytics

        from .. import __version__

        machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {platform.system()}"
        return cls(threads, device, platform.python_version(), torch.__version__, ultralytics.__version__,
                   numpy.__version__, __version__, machine)


@dataclass(frozen=True)
class WorkerSpec:
    """One training run, as the runner hands it to ``python -m yoloattn.compare.worker SPEC.json``."""

    key: str  # the run key (settings.py): the result is valid only under it
    model: str  # model label, e.g. yolov8n-irmb-sppf
    seed: int
    model_yaml: str
    data_yaml: str  # the run's data.yaml (val: the evaluation split)
    run_dir: str
    threads: int  # torch threads for training and validation (part of the key)
    train_args: dict  # Ultralytics train() arguments (recipe, epochs, imgsz, seed, device)
    val_every: int = 0  # validate every k epochs for the mAP curve (0: only after the last epoch)

    def write(self, path: Path) -> None:
        write_json_atomic(path, dataclasses.asdict(self))

    @classmethod
    def read(cls, path: Path) -> WorkerSpec:
        return _from_dict(cls, json.loads(path.read_text()), str(path))


@dataclass(frozen=True)
class RunResult:
    """A finished run. Metrics are fractions in [0, 1]; ``train_s`` is wall seconds of ``model.train``.

    ``map50`` / ``map50_95`` / ``precision`` / ``recall`` are Ultralytics' final validation on the
    evaluation split; ``map50_95_small`` / ``_medium`` / ``_large`` are COCO AP@[.50:.95] per COCO area
    range (pycocotools, ``sizes.py``), None where the split has no object of that size.
    ``curve`` is Ultralytics' per-epoch results.csv; ``val_curve`` the per-epoch validation
    (``{"epoch", "map50", "map50_95"}``, every ``val_every`` epochs and after the last).
    """

    key: str
    model: str
    seed: int
    map50: float
    map50_95: float
    precision: float
    recall: float
    map50_95_small: float | None
    map50_95_medium: float | None
    map50_95_large: float | None
    objects_by_size: tuple[int, int, int]  # evaluation-split boxes (small, medium, large)
    train_s: float
    env: RunEnv
    weights: str
    curve: list[dict] = field(default_factory=list)
    val_curve: list[dict] = field(default_factory=list)
    transferred: int | None = None  # with --weights: tensors that started from the checkpoint (transfer.py)
    total_tensors: int | None = None  # the model's state-dict tensors
    base_kept: float | None = None  # share of the checkpoint's tensors that found a home (0..1)

    def write(self, path: Path) -> None:
        write_json_atomic(path, dataclasses.asdict(self))

    @classmethod
    def read(cls, path: Path) -> RunResult:
        data = json.loads(path.read_text())
        if isinstance(data.get("env"), dict):
            data["env"] = _from_dict(RunEnv, data["env"], f"{path} (env)")
        if isinstance(data.get("objects_by_size"), list):
            data["objects_by_size"] = tuple(data["objects_by_size"])
        return _from_dict(cls, data, str(path))
