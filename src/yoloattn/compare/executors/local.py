"""The ``local`` executor: worker subprocesses on this machine.

``settings.jobs`` runs at a time, each on ``threads_per_run`` torch threads. On a GPU device
(``--device 0,1,2,3``) each run gets one of the listed GPUs as its Ultralytics device, the least busy
one, and a GPU holds at most ``runs_per_gpu`` runs (default 1: a run never shares a GPU).
"""

from __future__ import annotations

import dataclasses
import json
import socket
from collections import Counter

from ...plugins import loaded
from ..records import WorkerSpec
from ..settings import CompareSettings, gpu_indices
from .process import attempt_of, child_env, launch, stop


class LocalExecutor:
    """Subprocess pool on this machine; see the module docstring."""

    def __init__(self, settings: CompareSettings):
        self.settings = settings
        self.gpus = gpu_indices(settings.device)
        self.capacity = settings.jobs or 1
        self._running: dict = {}  # run -> (Popen, device)
        self._started: list = []

    def describe(self) -> str:
        text = f"{self.capacity} in parallel with {self.settings.threads_per_run} torch thread(s) each"
        if self.gpus:
            share = "one run per GPU" if self.settings.runs_per_gpu == 1 else f"{self.settings.runs_per_gpu} runs per GPU"
            text += f" on GPU {','.join(map(str, self.gpus))} ({share})"
        return text

    def free_gpu(self) -> int:
        """The listed GPU with the fewest runs now (lowest index on a tie)."""
        busy = Counter(device for _, device in self._running.values())
        return min(self.gpus, key=lambda gpu: (busy[str(gpu)], gpu))

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

