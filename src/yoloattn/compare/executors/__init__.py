"""Where a comparison's runs execute: the seam between the runner and the machines.

The runner (``runner.py``) plans the runs, keys them, skips finished ones, retries killed ones and writes
the report; an executor only starts a run and says how its attempt ended. Two back ends:

- ``local`` (``local.py``, the default): worker subprocesses on this machine, ``jobs`` at a time; with
  ``--device 0,1,2,3`` one run per listed GPU at a time (``--runs-per-gpu N`` to share one);
- ``ray`` (``ray.py``): one Ray task per run on a local Ray instance or a cluster (``--ray-address``), with
  ``--gpus-per-run`` / ``--cpus-per-run`` as its resources; the task trains through ``remote.py``.

Every executor has the same small interface (:class:`Executor`), so planning, keys, resume and the report
are the same whichever ran the runs, and a rerun reuses finished runs of either.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from ..records import DataSource, RunAttempt, WorkerSpec

if TYPE_CHECKING:  # the runner's RunSpec: label, key, run_dir
    from ..runner import RunSpec
    from ..settings import CompareSettings


class Executor(Protocol):
    """Starts runs and reports how their attempts end. ``capacity``: runs the runner keeps in flight."""

    capacity: int

    def describe(self) -> str:
        """Where and how many runs go at a time, for the plan line, e.g. "2 in parallel with 1 torch thread(s) each"."""

    def submit(self, run: RunSpec, spec: WorkerSpec) -> None:
        """Start one attempt of ``run``; ``spec`` (written to ``run.run_dir/spec.json``) has the device kind."""

    def poll(self) -> tuple[list[tuple[RunSpec, str]], list[tuple[RunSpec, RunAttempt]]]:
        """(runs that started since the last poll, with where: "" or e.g. "GPU 1" / "on node-3"),
        (runs whose attempt ended, with how)."""

    def state(self, run: RunSpec) -> dict:
        """The run's ``progress.json`` state: phase, epoch, epochs, batch, batches (``worker.Progress``)."""

    def cancel(self) -> None:
        """Stop every run in flight (Ctrl-C); finished results stay."""

    def close(self) -> None:
        """Release what the executor holds (a Ray instance it started)."""


EXECUTORS = ("local", "ray")
RAY_ADDRESS_ENV = "RAY_ADDRESS"  # Ray's own variable, honoured as --ray-address is


def ray_address(settings: CompareSettings) -> tuple[str, str] | None:
    """(address, how it was given) of the Ray cluster to join: ``--ray-address`` or ``$RAY_ADDRESS``; None for
    a new local instance."""
    import os

    if settings.ray_address:
        return settings.ray_address, f"--ray-address {settings.ray_address}"
    if os.environ.get(RAY_ADDRESS_ENV):
        return os.environ[RAY_ADDRESS_ENV], f"{RAY_ADDRESS_ENV}={os.environ[RAY_ADDRESS_ENV]}"
    return None


def make_executor(settings: CompareSettings, data: DataSource) -> Executor:
    """The executor ``settings.executor`` names; ``data`` is the dataset as any node rebuilds it (Ray).

    Raises CompareError (one line) when Ray is missing or its cluster cannot be reached or cannot fit a run.
    """
    if settings.executor == "ray":
        from .ray import RayExecutor

        return RayExecutor(settings, data)
    from .local import LocalExecutor

    return LocalExecutor(settings)
