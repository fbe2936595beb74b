"""The ``ray`` executor: one plain Ray task per run (Ray core, not Ray Tune: no early stopping, no search).

Without ``--ray-address`` it starts a local Ray instance sized to this machine (its CPUs, and the GPUs of
``--device``); with ``auto`` or ``ray://host:port`` it joins that cluster. Each task asks for
``--cpus-per-run`` CPUs (default: the run's torch threads) and ``--gpus-per-run`` GPUs (default 1 on a GPU
``--device``, else 0); Ray places it, and sets ``CUDA_VISIBLE_DEVICES`` so the run trains on device 0
(0,1 with two GPUs per run) of what it was given. The task trains through ``remote.run_attempt`` and
returns a ``records.RunAttempt``; its progress comes back through a small actor (:class:`ProgressBoard`).

Ray's own task retries are off (``max_retries=0``): the runner retries killed attempts itself
(``--retries``), the same way for both executors, and records why a run kept failing.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import re

from ...plugins import loaded
from ..records import DataSource, RemoteRun, RunAttempt, WorkerSpec
from ..settings import CompareError, CompareSettings, device_kind, gpu_indices, versions

RAY_ADDRESS_ENV = "RAY_ADDRESS"  # Ray's own variable, honoured as --ray-address is


def ray_address(settings: CompareSettings) -> tuple[str, str] | None:
    """(address, how it was given) of the Ray cluster to join: ``--ray-address`` or ``$RAY_ADDRESS``; None for
    a new local instance."""
    if settings.execution.ray_address:
        return settings.execution.ray_address, f"--ray-address {settings.execution.ray_address}"
    if os.environ.get(RAY_ADDRESS_ENV):
        return os.environ[RAY_ADDRESS_ENV], f"{RAY_ADDRESS_ENV}={os.environ[RAY_ADDRESS_ENV]}"
    return None


class ProgressBoard:
    """A Ray actor: the latest ``progress.json`` state of each run, by run folder name."""

    def __init__(self):
        self.states: dict[str, dict] = {}

    def put(self, name: str, state: dict) -> None:
        self.states[name] = state

    def snapshot(self) -> dict[str, dict]:
        return dict(self.states)


def train_task(task: RemoteRun, board) -> RunAttempt:
    """The Ray task: one attempt of one run on the node Ray picked."""
    from .remote import run_attempt

    return run_attempt(task, board)


def attempt_of_error(err: Exception) -> RunAttempt:
    """A Ray error as an attempt: a dead worker or node is retried; a missing package stops the run."""
    from ray import exceptions as rx

    missing = re.search(r"No module named '([^']+)'", str(err))
    if missing:
        return RunAttempt("setup", f"a Ray worker cannot import {missing.group(1)!r}: install it on every node "
                                   "(pip install 'yoloattn[ray]' and your plug-ins, the driver's versions)")
    died = (rx.WorkerCrashedError, rx.NodeDiedError, rx.OutOfMemoryError, rx.ObjectLostError, rx.TaskCancelledError)
    if isinstance(err, died):
        return RunAttempt("died", f"the Ray worker died ({type(err).__name__})")
    if isinstance(err, rx.RayTaskError):
        lines = [line for line in str(err).splitlines() if line.strip()]
        return RunAttempt("failed", f"the Ray task raised: {lines[-1].strip()[:300] if lines else type(err).__name__}")
    return RunAttempt("died", f"Ray: {type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''}")


PROBE_TIMEOUT_S = 5.0


def _hint(address: str | None, given: str, error: str) -> str:
    if not address:
        return "see `ray status`"
    if "ray[client]" in error:
        return 'ray:// addresses need Ray Client: pip install "ray[client]"'
    drop = "unset RAY_ADDRESS" if given.startswith("RAY_ADDRESS") else "leave --ray-address out"
    return (f"start the cluster with `ray start --head` (and `ray start --address=HEAD:6379` on the others), or {drop} "
            "for a local instance")


def _probe(address: str, given: str) -> None:
    """Fail in seconds when a HOST:PORT address does not answer (Ray itself retries for minutes)."""
    import socket

    target = address.removeprefix("ray://")
    where = ""
    if address == "auto":
        # Ray reads the cluster file of the last `ray start` here; when that cluster died without removing it
        # (a crash, a killed head), ray.init retries its dead address for minutes: probe it first
        target = _last_started_cluster()
        if target is None:
            return  # no cluster file: Ray says so at once
        where = " (the cluster Ray's cluster file names, from the last `ray start` on this machine)"
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=PROBE_TIMEOUT_S).close()
    except OSError as err:
        raise CompareError(f"{given}: nothing answers at {host}:{port}{where} ({err.strerror or err}); "
                           f"{_hint(address, given, '')}") from None


def _last_started_cluster() -> str | None:
    """HOST:PORT that ``ray.init(address="auto")`` would join (Ray's own reader of its cluster file, private:
    None when this Ray has no such function, or no file)."""
    try:
        from ray._private.utils import read_ray_address
    except ImportError:
        return None
    try:
        return read_ray_address(None) or None
    except Exception:  # noqa: BLE001 - an unreadable file: let Ray report it
        return None


class RayExecutor:
    """One Ray task per run; see the module docstring."""

    options = ("ray_address", "gpus_per_run", "cpus_per_run", "collect_weights")
    summary = ("one Ray task per run, on a local Ray instance or the cluster of --ray-address "
               "(pip install 'yoloattn[ray]')")
    names_hosts = True

    def __init__(self, settings: CompareSettings, data: DataSource):
        try:
            import ray
        except ImportError:
            raise CompareError("--executor ray needs Ray, which is not installed: pip install 'yoloattn[ray]'") from None
        execution = settings.execution
        self.ray, self.settings, self.data = ray, settings, data
        self.cpus = execution.cpus_per_run or settings.threads_per_run
        self.gpus = execution.gpus_per_run if execution.gpus_per_run is not None else \
            int(device_kind(settings.device) == "cuda")
        self.capacity = execution.jobs or 10**6  # Ray queues what does not fit; --jobs caps runs in flight
        self._refs: dict = {}  # ObjectRef -> run
        self._attempts: dict = {}  # run -> its attempt id
        self._started: set = set()
        self._states: dict[str, dict] = {}
        self._owns = not ray.is_initialized()
        if self._owns:
            self._connect()
        self._check_fit()
        self.board = ray.remote(num_cpus=0)(ProgressBoard).remote()
        self.task = ray.remote(train_task).options(num_cpus=self.cpus, num_gpus=self.gpus, max_retries=0)

    @classmethod
    def check(cls, settings: CompareSettings) -> None:
        execution, kind = settings.execution, device_kind(settings.device)
        if importlib.util.find_spec("ray") is None:
            raise CompareError("--executor ray needs Ray, which is not installed: pip install 'yoloattn[ray]'")
        if execution.gpus_per_run and kind != "cuda":
            raise CompareError(f"--gpus-per-run {execution.gpus_per_run} needs a GPU --device (e.g. --device 0), "
                               f"got --device {settings.device}")
        if ray_address(settings):
            return  # the cluster's nodes have the CPUs and GPUs, not necessarily this one (_check_fit)
        cpus = execution.cpus_per_run or settings.threads_per_run or 1
        if cpus > (os.cpu_count() or 1):
            raise CompareError(f"--cpus-per-run {cpus}: the local Ray instance has {os.cpu_count()} CPU(s); lower "
                               "--cpus-per-run (or --threads-per-run), or join a cluster with --ray-address")
        gpus_listed = len(gpu_indices(settings.device))
        if (execution.gpus_per_run or 0) > gpus_listed:
            raise CompareError(f"--gpus-per-run {execution.gpus_per_run}: --device {settings.device} gives the local "
                               f"Ray instance {gpus_listed} GPU(s); list more GPUs or lower --gpus-per-run")

    @classmethod
    def default_capacity(cls, settings: CompareSettings, runs: int) -> None:
        return None  # Ray places runs by their resources; --jobs only caps it when given

    @classmethod
    def joins_cluster(cls, settings: CompareSettings) -> bool:
        return ray_address(settings) is not None

    @classmethod
    def plan_text(cls, settings: CompareSettings) -> str:
        address = ray_address(settings)
        return f"through Ray ({address[1] if address else 'a local instance'})"

    def _connect(self) -> None:
        ray = self.ray
        address, given = ray_address(self.settings) or (None, "a local Ray instance")
        # Ray warns, on every start, that token authentication is on (its default): not news to act on
        logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
        if address:
            _probe(address, given)
        try:
            if address:
                ray.init(address=address, log_to_driver=False, logging_level="WARNING")
                return
            gpus = gpu_indices(self.settings.device)
            visible = os.environ.get("CUDA_VISIBLE_DEVICES")
            if gpus:  # the local instance offers exactly the listed GPUs
                os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, gpus))
            try:
                ray.init(num_cpus=os.cpu_count(), num_gpus=len(gpus), include_dashboard=False, log_to_driver=False,
                         logging_level="WARNING")
            finally:
                if gpus:
                    if visible is None:
                        os.environ.pop("CUDA_VISIBLE_DEVICES", None)
                    else:
                        os.environ["CUDA_VISIBLE_DEVICES"] = visible
        except (ConnectionError, RuntimeError, ValueError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise CompareError(f"{given}: cannot start or reach Ray ({first}); {_hint(address, given, first)}") from None

    def _check_fit(self) -> None:
        nodes = [n.get("Resources", {}) for n in self.ray.nodes() if n.get("Alive")]
        if any(r.get("CPU", 0) >= self.cpus and r.get("GPU", 0) >= self.gpus for r in nodes):
            return
        largest = max(((r.get("CPU", 0), r.get("GPU", 0)) for r in nodes), default=(0, 0))
        self.close()
        raise CompareError(f"no node of the Ray cluster has {self.cpus} CPU(s) and {self.gpus} GPU(s) for a run (the "
                     f"largest has {largest[0]:g} CPU(s), {largest[1]:g} GPU(s)): lower --cpus-per-run / "
                     "--threads-per-run / --gpus-per-run, or add such a node")

    def describe(self) -> str:
        resources = self.ray.cluster_resources()
        nodes = sum(1 for n in self.ray.nodes() if n.get("Alive"))
        each = f"{self.cpus} CPU(s)" + (f" and {self.gpus} GPU(s)" if self.gpus else "")
        jobs = self.settings.execution.jobs
        cap = f", at most {jobs} at a time" if jobs else ""
        return (f"one Ray task each ({each}, {self.settings.threads_per_run} torch thread(s)){cap} on "
                f"{nodes} node(s) with {resources.get('CPU', 0):g} CPU(s), {resources.get('GPU', 0):g} GPU(s)")

    def submit(self, run, spec: WorkerSpec) -> None:
        task = RemoteRun(spec=spec, model_yaml_text=run.model.yaml_path.read_text(), data=self.data,
                         versions=versions(), plugins=tuple(loaded()), gpus=self.gpus,
                         collect_weights=self.settings.execution.collect_weights)
        self._refs[self.task.remote(task, self.board)] = run
        self._attempts[run] = spec.attempt

    def poll(self):
        ray = self.ray
        with contextlib.suppress(Exception):  # a slow board only delays the progress line
            self._states = ray.get(self.board.snapshot.remote(), timeout=10)
        started = []
        for run, attempt in self._attempts.items():
            state = self._states.get(run.run_dir.name, {})
            if run not in self._started and state.get("attempt") == attempt:
                self._started.add(run)
                started.append((run, f"on {state.get('host', '?')}"))
        ended = []
        if self._refs:
            ready, _ = ray.wait(list(self._refs), num_returns=len(self._refs), timeout=0)
            for ref in ready:
                run = self._refs.pop(ref)
                try:
                    attempt = ray.get(ref)
                except Exception as err:  # noqa: BLE001 - every Ray failure becomes a typed attempt
                    attempt = attempt_of_error(err)
                self._attempts.pop(run, None)
                self._started.discard(run)
                ended.append((run, attempt))
        return started, ended

    def state(self, run) -> dict:
        state = self._states.get(run.run_dir.name)
        if state and state.get("attempt") == self._attempts.get(run):
            return state
        return {"phase": "queued"}

    def cancel(self) -> None:
        for ref in list(self._refs):
            with contextlib.suppress(Exception):
                self.ray.cancel(ref, force=True)
        self._refs.clear()

    def close(self) -> None:
        if self._refs:
            self.cancel()
        if self._owns and self.ray.is_initialized():
            self.ray.shutdown()
