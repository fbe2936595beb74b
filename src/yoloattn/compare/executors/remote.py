"""One attempt of a run inside a Ray task, on whichever node Ray picked (``ray.py`` submits it).

The node may share nothing with the driver but the installed packages, so the attempt:

1. checks the node: the same yoloattn, model code, Ultralytics and torch as the driver (they are in the
   run key) and the driver's plug-ins importable; otherwise a ``setup`` attempt whose one-line cause
   names what is missing;
2. finds out whether it sees the driver's storage: the driver wrote ``spec.json`` with a random attempt
   id into the run folder; reading the same id back at the same path means OUT is shared (or this is
   the driver's machine), and the worker writes there as the local executor does. Otherwise it trains in
   a staging folder under the node's yoloattn cache (``cache_root()/ray-runs``) and returns the run's
   small files (and with ``collect_weights`` its weights) for the driver to write under OUT;
3. rebuilds the dataset: the embedded one is regenerated (deterministic, cached per node) and checked
   against the driver's cache key; a user data.yaml must be readable at the same path, else a ``setup``
   attempt says so in one line;
4. runs the training worker as a child process (``process.py``) and mirrors its ``progress.json`` into
   the driver's progress board every second.

``YOLOATTN_WORKER_STORAGE=local`` in a node's environment makes it stage even when it sees OUT: how a
cluster without shared storage behaves, on one machine (the tests use it).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import socket
import subprocess
from pathlib import Path

import yaml

from ..records import DataSource, RemoteRun, RunAttempt, RunResult, WorkerSpec
from ..settings import digest
from .process import attempt_of, child_env, launch, stop

STORAGE_ENV = "YOLOATTN_WORKER_STORAGE"
MAX_RETURNED_FILE = 64 * 2**20  # bytes; larger files (none but weights in practice) stay on the node
BOARD_EVERY_S = 1.0


class NodeError(Exception):
    """This node cannot run the comparison's runs; the message is one line naming what to install or mount."""


def run_data_text(source: str | Path, data: dict, eval_split: str) -> str:
    """``run-data.yaml``: a resolved dataset dict with ``val`` mapped to the evaluation split."""
    header = f"# {source} with val -> its '{eval_split}' split (written by yoloattn compare)\n"
    return header + yaml.safe_dump({**data, "val": data[eval_split]}, sort_keys=False, allow_unicode=True)


def check_node(task: RemoteRun) -> None:
    """Raise NodeError when this node's code differs from the driver's or a plug-in is not importable."""
    import importlib.util

    from ...plugins import is_plugin_file
    from ..settings import versions

    here = versions()
    differ = [f"{name} {here.get(name)} here, {value} on the driver" for name, value in task.versions.items()
              if here.get(name) != value]
    if differ:
        raise NodeError(f"{'; '.join(differ)}: install the driver's yoloattn, Ultralytics and torch on every node "
                        "(runs are keyed by them)")
    for plugin in task.plugins:
        if is_plugin_file(plugin):
            if not Path(plugin).is_file():
                raise NodeError(f"plug-in file {plugin} is not here: put it on storage every node mounts at the "
                                "same path, or install it as a package")
        elif importlib.util.find_spec(plugin.split(".")[0]) is None:
            raise NodeError(f"plug-in module {plugin!r} cannot be imported here: install it on every node")


def node_data(source: DataSource, where: Path) -> Path:
    """Rebuild the run's data.yaml on this node into ``where``; NodeError when the dataset is not here."""
    from ...data import generate
    from ...data.resolve import DatasetError, resolve_dataset

    if source.path:
        data_yaml = Path(source.path)
        if not data_yaml.is_file():
            raise NodeError(f"the dataset {data_yaml} is not readable here: put it on storage every node mounts "
                            "at the same path, or copy it to that path on every node")
    else:
        data_yaml = generate(source.preset, seed=source.seed, **source.overrides)
        manifest = json.loads((data_yaml.parent / "manifest.json").read_text())
        if manifest.get("cache_key") != source.cache_key:
            raise NodeError(f"the embedded dataset generated here differs from the driver's (cache key "
                            f"{manifest.get('cache_key')} vs {source.cache_key}): install the driver's yoloattn, "
                            "numpy, scikit-image and mlxtend on every node")
    try:
        resolved = resolve_dataset(data_yaml, where)
    except DatasetError as err:
        raise NodeError(f"dataset: {err} (a user dataset must be at the same path on every node)") from None
    if not resolved.data.get(source.eval_split):
        raise NodeError(f"the dataset {data_yaml} here has no '{source.eval_split}' split, the driver's has")
    run_yaml = where / "run-data.yaml"
    run_yaml.write_text(run_data_text(resolved.source, resolved.data, source.eval_split))
    return run_yaml


def shares_storage(spec: WorkerSpec) -> bool:
    """Whether this node sees the driver's run folder (see the module docstring)."""
    if os.environ.get(STORAGE_ENV, "").lower() == "local":
        return False
    try:
        return WorkerSpec.read(Path(spec.run_dir) / "spec.json").attempt == spec.attempt
    except (OSError, ValueError, TypeError):
        return False


def staging_root(spec: WorkerSpec) -> Path:
    """This node's folder for a comparison: ``cache_root()/ray-runs/<hash of host and OUT>``, with ``data/<run>``
    (the node's run-data.yaml) and, when OUT is not shared, ``models/`` and ``runs/<run>``."""
    from ...data.sources import cache_root

    out = Path(spec.run_dir).parents[1]
    return cache_root() / "ray-runs" / digest([socket.gethostname(), str(out)])[:12]


def returned_files(run_dir: Path, driver_run_dir: Path, collect_weights: bool) -> dict[str, bytes]:
    """The run folder's files for the driver (weights only with ``collect_weights``); result.json's
    ``weights`` then names where the driver writes them."""
    if collect_weights and (run_dir / "result.json").is_file():
        result = RunResult.read(run_dir / "result.json")
        weights = Path(result.weights)
        if weights.is_relative_to(run_dir):
            dataclasses.replace(result, weights=str(driver_run_dir / weights.relative_to(run_dir))).write(
                run_dir / "result.json")
    files = {}
    for path in sorted(p for p in run_dir.rglob("*") if p.is_file()):
        if (path.suffix == ".pt" and not collect_weights) or path.stat().st_size > MAX_RETURNED_FILE:
            continue
        files[path.relative_to(run_dir).as_posix()] = path.read_bytes()
    return files


def run_attempt(task: RemoteRun, board=None) -> RunAttempt:
    """Train one attempt of ``task`` on this node and say how it ended (see the module docstring).

    ``board``: the driver's progress board (a Ray actor handle with ``put.remote(name, state)``), or None.
    """
    host = socket.gethostname()
    spec = task.spec
    name = Path(spec.run_dir).name

    def report(state: dict) -> None:
        if board is not None:
            board.put.remote(name, {**state, "attempt": spec.attempt, "host": host})

    report({"phase": "starting"})
    proc = None
    try:
        check_node(task)
        shared = shares_storage(spec)
        root = Path(spec.run_dir).parents[1] if shared else staging_root(spec)
        run_dir = root / "runs" / name
        model_yaml = Path(spec.model_yaml)
        if not shared:
            shutil.rmtree(run_dir, ignore_errors=True)
            run_dir.mkdir(parents=True)
            model_yaml = root / "models" / model_yaml.name  # the name carries the scale letter
            model_yaml.parent.mkdir(parents=True, exist_ok=True)
            model_yaml.write_text(task.model_yaml_text)
        data_dir = staging_root(spec) / "data" / name  # the node's own resolution, never under OUT
        data_dir.mkdir(parents=True, exist_ok=True)
        data_yaml = node_data(task.data, data_dir)
        device = ",".join(str(i) for i in range(task.gpus)) if task.gpus else spec.train_args["device"]
        spec = dataclasses.replace(spec, run_dir=str(run_dir), model_yaml=str(model_yaml), data_yaml=str(data_yaml),
                                   train_args={**spec.train_args, "device": device})
        spec.write(run_dir / "spec.json")
        proc = launch(run_dir / "spec.json", child_env(spec.threads, task.plugins))
        last = None
        while True:
            try:
                proc.wait(timeout=BOARD_EVERY_S)  # returns as soon as the worker exits
                break
            except subprocess.TimeoutExpired:
                pass
            try:
                state = json.loads((run_dir / "progress.json").read_text())
            except (OSError, ValueError):
                continue
            if state != last:
                report(state)
                last = state
        attempt = attempt_of(proc, run_dir, spec.key, host)
        proc = None
        files = {} if shared else returned_files(run_dir, Path(task.spec.run_dir), task.collect_weights)
        if files and task.collect_weights:
            shutil.rmtree(run_dir, ignore_errors=True)  # everything is on its way to the driver
        return dataclasses.replace(attempt, files=files)
    except NodeError as err:
        return RunAttempt("setup", str(err), host)
    finally:
        if proc is not None:  # cancelled (KeyboardInterrupt from ray.cancel) or an error above
            stop([proc])
        shutil.rmtree(staging_root(task.spec) / "data" / name, ignore_errors=True)  # only needed while training
