"""The records that cross the runner / worker process boundary, as typed, versioned JSON.

``WorkerSpec`` (``spec.json``) is what the runner asks one worker to do; ``RunResult`` (``result.json``)
is what a finished worker reports, with the ``RunEnv`` it ran in. Both are written by rename
(``write_json_atomic``) and read back with :meth:`from_json`, which refuses a file with missing or
unknown fields (an older yoloattn's run, a hand edit) instead of passing a loose dict along.

Between the driver and an executor (``executors/``): ``RemoteRun`` is what a Ray task gets (pickled by
Ray), ``RunAttempt`` what one attempt of a run comes back as, whatever executed it, and ``RunFailure``
(``failure.json``) what the runner records of a run that failed for good.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import socket
from dataclasses import dataclass, field
from pathlib import Path


def write_json_atomic(path: Path, obj) -> None:
    """Write JSON so that readers see either the old file or the complete new one."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    partial.write_text(json.dumps(obj, indent=2, default=str) + "\n")
    os.replace(partial, path)


def machine_description(host: bool = True) -> str:
    """``"<host>: <CPU model>, <ISA>, <N> cores, <OS>"`` (without ``host``: from the CPU on), which machine
    trained a run (``RunEnv.machine``) or measured a latency."""
    from ..machine import cpu_summary

    text = f"{cpu_summary()}, {platform.system()}"  # CPU model and vector ISA: both decide the numbers
    return f"{socket.gethostname()}: {text}" if host else text


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
    host: str = ""  # the node's host name (which machine of a Ray cluster trained it)

    @classmethod
    def current(cls, threads: int, device: str) -> RunEnv:
        import numpy
        import torch
        import ultralytics

        from .. import __version__

        return cls(threads, device, platform.python_version(), torch.__version__, ultralytics.__version__,
                   numpy.__version__, __version__, machine_description(host=False), socket.gethostname())


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
    attempt: str = ""  # a random id per attempt: a Ray worker that reads it back in run_dir shares the driver's storage

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
    # Ultralytics' final validation per class: {class name: AP@[.50:.95]} for the classes with a box in the
    # evaluation split (None: a result written before this field)
    ap_per_class: dict | None = None

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


@dataclass(frozen=True)
class DataSource:
    """The comparison's dataset as any node can rebuild it: the embedded preset (regenerated, cached, and
    checked against the driver's ``cache_key``) or a user data.yaml path that must be readable there."""

    eval_split: str  # the split the runs evaluate on ("test" or "val"); run-data.yaml maps val to it
    path: str = ""  # a user data.yaml ("" for the embedded dataset)
    preset: str = ""  # embedded: preset, seed, generator knobs and the driver's manifest cache key
    seed: int = 0
    overrides: dict = field(default_factory=dict)
    cache_key: str = ""


@dataclass(frozen=True)
class RemoteRun:
    """One attempt of one run as a Ray task receives it: enough to train on a node that shares nothing with
    the driver but the installed packages."""

    spec: WorkerSpec  # as written in the driver's run folder (run_dir, model_yaml, data_yaml are the driver's paths)
    model_yaml_text: str  # the model file's text (its name, spec.model_yaml's, carries the scale letter)
    data: DataSource
    versions: dict  # the driver's settings.versions(): a node with other code would break the run key
    plugins: tuple[str, ...] = ()  # plug-ins loaded on the driver (plugins.loaded())
    gpus: int = 0  # GPUs Ray gave the task (the Ultralytics device is then 0 .. gpus-1 of the visible ones)
    collect_weights: bool = False  # send last.pt / best.pt back to the driver


#: RunAttempt.status values. ``died``: killed from outside (signal, OOM killer, lost node): retried;
#: ``failed``: the run itself raised (the same settings would fail again): not retried; ``setup``: the node
#: cannot run it (missing package or plug-in, other yoloattn, unreadable dataset): not retried.
ATTEMPT_STATUSES = ("finished", "failed", "died", "setup")


@dataclass(frozen=True)
class RunAttempt:
    """What one attempt of a run came back as, from any executor.

    ``files`` maps paths relative to the run folder to their bytes when the run trained in a staging folder
    (no storage shared with the driver); the runner writes them under OUT. Empty when the worker wrote into
    the driver's run folder itself.
    """

    status: str  # one of ATTEMPT_STATUSES
    cause: str = ""  # one line: why it did not finish
    host: str = ""
    exit_code: int | None = None  # the worker process's; negative: killed by that signal
    files: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.status not in ATTEMPT_STATUSES:
            raise ValueError(f"RunAttempt.status must be one of {ATTEMPT_STATUSES}, got {self.status!r}")


@dataclass(frozen=True)
class RunFailure:
    """``failure.json`` of a run that did not finish after its attempts (retries included)."""

    model: str
    seed: int
    key: str
    status: str  # the last attempt's RunAttempt.status
    cause: str
    attempts: int
    host: str = ""
    exit_code: int | None = None

    def write(self, path: Path) -> None:
        write_json_atomic(path, dataclasses.asdict(self))

    @classmethod
    def read(cls, path: Path) -> RunFailure:
        return _from_dict(cls, json.loads(path.read_text()), str(path))
