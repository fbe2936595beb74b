"""The ``local`` executor: worker subprocesses on this machine.

``jobs`` runs at a time, each on ``threads_per_run`` torch threads. On a GPU device
(``--device 0,1,2,3``) each run gets one of the listed GPUs as its Ultralytics device, the least busy
one, and a GPU holds at most ``runs_per_gpu`` runs (default 1: a run never shares a GPU).
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
from collections import Counter

from ...plugins import loaded
from ..records import DataSource, WorkerSpec
from ..settings import CompareError, CompareSettings, device_kind, gpu_indices
from .process import attempt_of, child_env, launch, stop


def default_jobs(runs: int, threads_per_run: int, device: str = "cpu", runs_per_gpu: int = 1) -> int:
    """Parallel runs that fit the machine: on a GPU device, ``runs_per_gpu`` per listed GPU (``--device 0,1,2,3``:
    4); on the CPU, ``cores // threads_per_run`` slots.

    When CPU runs would end in a partial wave that leaves cores idle (5 runs on 2 slots: 2 + 2 + 1), up
    to three waves' worth of runs start together instead (5 runs at once take 2.5 run-times instead of
    3). The thread count of a run does not change with this choice, so neither do its numbers.
    """
    if device_kind(device) == "mps":
        return 1
    if device_kind(device) == "cuda":
        return max(1, min(runs, len(gpu_indices(device)) * runs_per_gpu))
    slots = max(1, (os.cpu_count() or 1) // max(1, threads_per_run))
    if runs % slots and runs <= 3 * slots:
        return runs
    return max(1, min(runs, slots))


def least_busy(gpus: list[int], busy: Counter) -> int:
    """The GPU of ``gpus`` with the fewest runs in ``busy`` (device string -> runs on it), the lowest index on a
    tie: a run never shares a GPU while another listed one is free."""
    return min(gpus, key=lambda gpu: (busy[str(gpu)], gpu))


class LocalExecutor:
    """Subprocess pool on this machine; see the module docstring."""

    options = ("runs_per_gpu",)
    summary = "worker subprocesses on this machine, training under OUT (one run per GPU of --device)"
    names_hosts = False

    def __init__(self, settings: CompareSettings, data: DataSource | None = None):
        self.settings = settings
        self.gpus = gpu_indices(settings.device)
        self.capacity = settings.execution.jobs or 1
        self._running: dict = {}  # run -> (Popen, device)
        self._started: list = []

    @classmethod
    def check(cls, settings: CompareSettings) -> None:
        execution = settings.execution
        if execution.runs_per_gpu != 1 and device_kind(settings.device) != "cuda":
            raise CompareError("--runs-per-gpu shares GPUs of --device 0,1,.. between local runs; with --executor ray "
                               "use --gpus-per-run, on the CPU --jobs")
        gpu_slots = len(gpu_indices(settings.device)) * execution.runs_per_gpu
        if device_kind(settings.device) == "cuda" and execution.jobs and execution.jobs > gpu_slots:
            raise CompareError(f"--jobs {execution.jobs} is more than the {gpu_slots} GPU slot(s) of --device "
                               f"{settings.device} with --runs-per-gpu {execution.runs_per_gpu}: raise --runs-per-gpu "
                               "to share GPUs, or list more GPUs")

    @classmethod
    def default_capacity(cls, settings: CompareSettings, runs: int) -> int:
        return default_jobs(runs or 1, settings.threads_per_run or 1, settings.device, settings.execution.runs_per_gpu)

    @classmethod
    def joins_cluster(cls, settings: CompareSettings) -> bool:
        return False

    @classmethod
    def plan_text(cls, settings: CompareSettings) -> str:
        text = f"{settings.execution.jobs} in parallel with {settings.threads_per_run} torch thread(s) each"
        gpus = gpu_indices(settings.device)
        if gpus:
            per_gpu = settings.execution.runs_per_gpu
            share = "one run per GPU" if per_gpu == 1 else f"{per_gpu} runs per GPU"
            text += f" on GPU {','.join(map(str, gpus))} ({share})"
        return text

    def describe(self) -> str | None:
        return None  # plan_text says it all

    def free_gpu(self) -> int:
        """The listed GPU with the fewest runs now (lowest index on a tie)."""
        return least_busy(self.gpus, Counter(device for _, device in self._running.values()))

    def submit(self, run, spec: WorkerSpec) -> None:
        device = str(self.free_gpu()) if self.gpus else spec.train_args["device"]
        spec = dataclasses.replace(spec, train_args={**spec.train_args, "device": device})
        spec_path = run.run_dir / "spec.json"
        spec.write(spec_path)
        proc = launch(spec_path, child_env(spec.threads, loaded()))
        self._running[run] = (proc, device)
        self._started.append((run, f"GPU {device}" if self.gpus else ""))

    def poll(self):
        started, self._started = self._started, []
        ended = []
        for run, (proc, _) in list(self._running.items()):
            if proc.poll() is not None:
                del self._running[run]
                ended.append((run, attempt_of(proc, run.run_dir, run.key, socket.gethostname())))
        return started, ended

    def state(self, run) -> dict:
        try:
            return json.loads((run.run_dir / "progress.json").read_text())
        except (OSError, ValueError):
            return {"phase": "starting"}

    def cancel(self) -> None:
        stop([proc for proc, _ in self._running.values()])
        self._running.clear()

    def close(self) -> None:
        self.cancel()

