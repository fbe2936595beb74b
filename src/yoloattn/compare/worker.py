"""One training run of a comparison, in its own process: ``python -m yoloattn.compare.worker SPEC.json``.

The spec (written by the runner into the run's folder) names the model YAML, the run's data.yaml,
the Ultralytics arguments and the torch thread count. The worker trains with
``yoloattn.DetectionTrainer``, reports progress into ``progress.json`` from Ultralytics callbacks
(epoch, batch, phase), and, only when everything succeeded, writes ``result.json`` by
write-temp-then-rename: its presence is what marks the run finished. Ultralytics' runs, datasets and
weights folders are pinned to the comparison's output folder (``integration/locations.py``).

The run's data.yaml maps ``val:`` to the evaluation split. With ``val=False`` Ultralytics evaluates
only the final weights (after the last epoch, and again as ``best.pt``, which then equals
``last.pt``), so nothing is selected on that split; the final evaluation is the run's measurement.
"""

from __future__ import annotations

import csv
import json
import os
import sys
import time
from pathlib import Path

PROGRESS_EVERY_S = 1.0


def write_json_atomic(path: Path, obj) -> None:
    """Write JSON so that readers see either the old file or the complete new one."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    partial.write_text(json.dumps(obj, indent=2, default=str) + "\n")
    os.replace(partial, path)


class Progress:
    """Ultralytics callbacks that mirror the trainer's position into ``progress.json``."""

    def __init__(self, path: Path, threads: int):
        self.path, self.threads = path, threads
        self.state = {"phase": "starting", "epoch": 0, "epochs": 0, "batch": 0, "batches": 0}
        self._last_write = 0.0

    def _update(self, force: bool = False, **changes) -> None:
        self.state.update(changes)
        now = time.monotonic()
        if force or now - self._last_write >= PROGRESS_EVERY_S:
            write_json_atomic(self.path, self.state)
            self._last_write = now

    def mark(self, phase: str) -> None:
        self._update(force=True, phase=phase)

    def _use_threads(self, _owner) -> None:
        import torch

        # Ultralytics' select_device resets the CPU thread count; parallel runs must share the cores
        torch.set_num_threads(self.threads)

    def on_pretrain_routine_start(self, trainer) -> None:
        self._use_threads(trainer)
        self._update(force=True, phase="setup", epochs=trainer.epochs)

    def on_train_epoch_start(self, trainer) -> None:
        self._update(force=True, phase="train", epoch=trainer.epoch + 1, batch=0,
                     batches=len(trainer.train_loader))

    def on_train_batch_end(self, trainer) -> None:
        self._update(batch=self.state["batch"] + 1)

    def on_val_start(self, validator) -> None:
        self._use_threads(validator)
        self._update(force=True, phase="val")

    def callbacks(self) -> dict:
        return {name: getattr(self, name) for name in
                ("on_pretrain_routine_start", "on_train_epoch_start", "on_train_batch_end", "on_val_start")}


def read_curve(results_csv: Path) -> list[dict]:
    """Ultralytics' per-epoch results.csv as a list of {column: float}."""
    if not results_csv.is_file():
        return []
    with open(results_csv, newline="") as f:
        return [{k.strip(): float(v) for k, v in row.items() if v not in (None, "")} for row in csv.DictReader(f)]


def run(spec_path: Path) -> None:
    spec = json.loads(spec_path.read_text())
    run_dir = Path(spec["run_dir"])

    import yoloattn  # the runner passed the offline environment (yoloattn.offline) to this process
    from ultralytics import YOLO

    from yoloattn.integration.locations import pin_output_dirs

    pin_output_dirs(run_dir.parents[1])  # the comparison's OUT (runs live in OUT/runs/<run>), not the git checkout

    progress = Progress(run_dir / "progress.json", spec["threads"])
    model = YOLO(spec["model_yaml"])
    for event, callback in progress.callbacks().items():
        model.add_callback(event, callback)
    args = {"verbose": False, **spec["train_args"], "data": spec["data_yaml"], "project": str(run_dir),
            "name": "train", "exist_ok": True}
    started = time.perf_counter()
    metrics = model.train(trainer=yoloattn.DetectionTrainer, **args)
    train_s = time.perf_counter() - started
    result = {
        "key": spec["key"],
        "model": spec["model"],
        "seed": spec["seed"],
        "map50": float(metrics.box.map50),
        "map50_95": float(metrics.box.map),
        "precision": float(metrics.box.mp),
        "recall": float(metrics.box.mr),
        "train_s": round(train_s, 2),
        "threads": spec["threads"],
        "curve": read_curve(run_dir / "train" / "results.csv"),
        "weights": str(run_dir / "train" / "weights" / "last.pt"),
    }
    progress.mark("done")
    write_json_atomic(run_dir / "result.json", result)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m yoloattn.compare.worker SPEC.json")
    run(Path(sys.argv[1]))
