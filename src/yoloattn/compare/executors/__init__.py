"""Where a comparison's runs execute: the seam between the runner and the machines.

The runner (``runner.py``) plans the runs, keys them, skips finished ones, retries killed ones and writes
the report; an executor only starts a run and says how its attempt ended. The executors are a table,
:data:`EXECUTORS` (name -> lazy class path, like ``modules.py``), and the runner names none of them:

- ``local`` (``local.py``, the default): worker subprocesses on this machine, ``jobs`` at a time; with
  ``--device 0,1,2,3`` one run per listed GPU at a time (``--runs-per-gpu N`` to share one);
- ``ray`` (``ray.py``): one Ray task per run on a local Ray instance or a cluster (``--ray-address``), with
  ``--gpus-per-run`` / ``--cpus-per-run`` as its resources; the task trains through ``remote.py``.

Adding an executor is one row of :data:`EXECUTORS` and a class that implements :class:`Executor`;
its own options are fields of ``settings.ExecutionSettings`` that it lists in ``options``. Every
executor has the same interface, so planning, keys, resume and the report are the same whichever ran
the runs, and a rerun reuses finished runs of any.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import TYPE_CHECKING, ClassVar, Protocol

from ..records import DataSource, RunAttempt, WorkerSpec
from ..settings import CompareError, CompareSettings, ExecutionSettings

if TYPE_CHECKING:  # the planner's RunSpec: label, key, run_dir
    from ..plan import RunSpec


class Executor(Protocol):
    """Starts runs and reports how their attempts end.

    Class-level (asked before the executor exists): ``options``, ``summary``, ``names_hosts``, :meth:`check`,
    :meth:`default_capacity`, :meth:`joins_cluster`, :meth:`plan_text`. Instance: ``capacity`` (runs the
    runner keeps in flight) and the run methods.
    """

    options: ClassVar[tuple[str, ...]]  # the ExecutionSettings fields only this executor reads
    summary: ClassVar[str]  # what it does, in the error for another executor's option
    names_hosts: ClassVar[bool]  # runs may land on other machines: the runner names the host of a failure
    capacity: int

    def __init__(self, settings: CompareSettings, data: DataSource) -> None:
        """Raises CompareError (one line) when the executor cannot start (Ray missing, cluster unreachable, ...)."""

    @classmethod
    def check(cls, settings: CompareSettings) -> None:
        """Raise CompareError (one line naming the option and the fix) for options this executor cannot run."""

    @classmethod
    def default_capacity(cls, settings: CompareSettings, runs: int) -> int | None:
        """``jobs`` when ``--jobs`` is not given, for ``runs`` runs to train (None: no cap)."""

    @classmethod
    def joins_cluster(cls, settings: CompareSettings) -> bool:
        """Whether the runs go to machines that already exist: the executor is then made before the costs
        are measured (a wrong address fails in seconds, in a dry run too), and this machine's device is
        not checked against ``--device``."""

    @classmethod
    def plan_text(cls, settings: CompareSettings) -> str:
        """How runs go, for the plan line, e.g. "2 in parallel with 1 torch thread(s) each"."""

    def describe(self) -> str | None:
        """What the executor found where it runs (nodes, resources) for an ``executor:`` line; None: nothing
        beyond :meth:`plan_text`."""

    def submit(self, run: RunSpec, spec: WorkerSpec) -> None:
        """Start one attempt of ``run``; ``spec`` (written to ``run.run_dir/spec.json``) has the device kind."""

    def poll(self) -> tuple[list[tuple[RunSpec, str]], list[tuple[RunSpec, RunAttempt]]]:
        """(runs that started since the last poll, with where: "" or e.g. "GPU 1" / "on node-3"),
        (runs whose attempt ended, with how)."""

    def state(self, run: RunSpec) -> dict:
        """The run's ``progress.json`` state: phase, epoch, epochs, batch, batches (``worker.Progress``);
        ``{"phase": "queued"}`` while it waits for resources."""

    def cancel(self) -> None:
        """Stop every run in flight (Ctrl-C); finished results stay."""

    def close(self) -> None:
        """Release what the executor holds (a Ray instance it started)."""


# name -> "module:Class", imported only when used (Ray is optional)
EXECUTORS: dict[str, str] = {
    "local": "yoloattn.compare.executors.local:LocalExecutor",
    "ray": "yoloattn.compare.executors.ray:RayExecutor",
}


def executor_class(name: str) -> type[Executor]:
    """The class of executor ``name``. Raises CompareError for a name not in :data:`EXECUTORS`."""
    if name not in EXECUTORS:
        raise CompareError(f"--executor must be one of {', '.join(EXECUTORS)}, got {name!r}")
    module, _, cls = EXECUTORS[name].partition(":")
    return getattr(importlib.import_module(module), cls)


def option_flag(name: str) -> str:
    """The command-line spelling of an ``ExecutionSettings`` field: ``gpus_per_run`` -> ``--gpus-per-run``."""
    return "--" + name.replace("_", "-")


def check(settings: CompareSettings) -> type[Executor]:
    """The executor's class after checking the execution options: none that belongs to another executor
    is set, and the executor's own :meth:`Executor.check` passes. Raises CompareError (one line)."""
    chosen = executor_class(settings.execution.executor)
    defaults = ExecutionSettings()
    for name in EXECUTORS:
        if name == settings.execution.executor:
            continue
        for option in executor_class(name).options:
            value = getattr(settings.execution, option)
            if option not in chosen.options and value != getattr(defaults, option):
                raise CompareError(f"{option_flag(option)} is an option of --executor {name}: add --executor {name}, "
                                   f"or drop it ({chosen.summary})")
    chosen.check(settings)
    return chosen


def make_executor(settings: CompareSettings, data: DataSource) -> Executor:
    """The executor ``settings.execution.executor`` names; ``data`` is the dataset as any node rebuilds it.

    Raises CompareError (one line) when it cannot start (Ray missing, its cluster unreachable or unable to fit
    a run).
    """
    return executor_class(settings.execution.executor)(settings, data)


def with_jobs(settings: CompareSettings, runs: int) -> CompareSettings:
    """``settings`` with ``jobs`` filled by the executor's default for ``runs`` runs when it was not given."""
    if settings.execution.jobs:
        return settings
    jobs = executor_class(settings.execution.executor).default_capacity(settings, runs)
    return dataclasses.replace(settings, execution=dataclasses.replace(settings.execution, jobs=jobs))
