"""One training run of a comparison, in its own process: ``python -m yoloattn.compare.worker SPEC.json``.

The spec (``records.WorkerSpec``, written by the runner into the run's folder) names the model YAML,
the run's data.yaml, the Ultralytics arguments and the torch thread count, which is set before
anything runs and again wherever Ultralytics resets it, so a run's numbers do not depend on how many
runs share the machine. The worker trains with
yoloattn's trainer for the model (``DetectionTrainer``; ``RTDETRTrainer`` and the ``RTDETR`` wrapper for
RT-DETR, ``integration/heads.py``), reports progress into ``progress.json`` from Ultralytics callbacks
(epoch, batch, phase), and, only when everything succeeded, writes ``result.json`` by
write-temp-then-rename: its presence is what marks the run finished. Ultralytics' runs, datasets and
weights folders are pinned to the comparison's output folder (``integration/locations.py``).
After training it measures COCO AP per object size on the evaluation split (``sizes.py``) and writes a
``records.RunResult`` with the run's environment (``records.RunEnv``).

The run's data.yaml maps ``val:`` to the evaluation split. With ``val=False`` Ultralytics evaluates
only the final weights (after the last epoch, and again as ``best.pt``, which then equals
``last.pt``), so nothing is selected on that split; the final evaluation is the run's measurement.
``val_every`` k adds a validation of the EMA weights every k epochs for the mAP curve; it calls the
trainer's validator directly (not ``trainer.validate``), so ``best.pt`` and the fitness that picks it
are untouched.
"""

from __future__ import annotations

import csv
import sys
import time
from pathlib import Path

from .records import RunEnv, RunResult, WorkerSpec, write_json_atomic

PROGRESS_EVERY_S = 1.0


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


class Validation:
    """Ultralytics callback that validates every ``every`` epochs into ``curve`` (and records the final one)."""

    def __init__(self, every: int):
        self.every, self.curve = every, []

    def on_fit_epoch_end(self, trainer) -> None:
        epoch = trainer.epoch + 1
        if epoch > trainer.epochs:  # final_eval logs the best.pt metrics again, as epoch epochs + 1
            return
        if epoch == trainer.epochs:  # the trainer validated the last epoch itself
            metrics = trainer.metrics
        elif self.every and epoch % self.every == 0:
            metrics = trainer.validator(trainer=trainer)
        else:
            return
        self.curve.append({"epoch": epoch, "map50": float(metrics["metrics/mAP50(B)"]),
                           "map50_95": float(metrics["metrics/mAP50-95(B)"])})


def _transfer_fields(report) -> dict:
    if report is None:
        return {}
    return {"transferred": report.transferred, "total_tensors": report.total, "base_kept": round(report.fraction_of_base, 4)}


def run(spec_path: Path) -> None:
    spec = WorkerSpec.read(spec_path)
    run_dir = Path(spec.run_dir)

    import torch

    torch.set_num_threads(spec.threads)  # before the model is built: every op runs on the same thread count

    import yoloattn  # noqa: F401  (the runner passed the offline environment (yoloattn.offline) to this process)
    from yoloattn.integration.heads import trainer_for, wrapper
    from yoloattn.integration.locations import pin_output_dirs

    from .sizes import evaluate_sizes

    pin_output_dirs(run_dir.parents[1])  # the comparison's OUT (runs live in OUT/runs/<run>), not the git checkout

    progress = Progress(run_dir / "progress.json", spec.threads)
    validation = Validation(spec.val_every)
    model = wrapper(spec.model_yaml)  # RTDETR(...) for RT-DETR, else YOLO(...)
    for event, callback in {**progress.callbacks(), "on_fit_epoch_end": validation.on_fit_epoch_end}.items():
        model.add_callback(event, callback)
    args = {"verbose": False, **spec.train_args, "data": spec.data_yaml, "project": str(run_dir),
            "name": "train", "exist_ok": True}
    started = time.perf_counter()
    metrics = model.train(trainer=trainer_for(model.model.yaml), **args)
    train_s = time.perf_counter() - started
    progress.mark("sizes")
    weights = run_dir / "train" / "weights" / "last.pt"
    sizes = evaluate_sizes(wrapper(weights), spec.data_yaml, "val", spec.train_args["imgsz"],
                           device=spec.train_args["device"], nms=spec.train_args.get("nms"))
    result = RunResult(
        key=spec.key, model=spec.model, seed=spec.seed,
        map50=float(metrics.box.map50), map50_95=float(metrics.box.map),
        precision=float(metrics.box.mp), recall=float(metrics.box.mr),
        map50_95_small=sizes.small, map50_95_medium=sizes.medium, map50_95_large=sizes.large,
        objects_by_size=sizes.objects, train_s=round(train_s, 2),
        env=RunEnv.current(torch.get_num_threads(), str(spec.train_args["device"])),
        weights=str(weights), curve=read_curve(run_dir / "train" / "results.csv"), val_curve=validation.curve,
        ap_per_class=per_class_ap(metrics),
        **_transfer_fields(getattr(model.trainer, "transfer_report", None)),
    )
    progress.mark("done")
    result.write(run_dir / "result.json")


def per_class_ap(metrics) -> dict[str, float]:
    """{class name: AP@[.50:.95]} of Ultralytics' validation ``metrics`` for each class with a box in the split
    (``box.ap_class_index`` and ``box.all_ap``: per class, AP at the ten IoU thresholds)."""
    box, names = metrics.box, metrics.names
    return {str(names[int(c)]): round(float(box.all_ap[i].mean()), 6) for i, c in enumerate(box.ap_class_index)}


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m yoloattn.compare.worker SPEC.json")
    run(Path(sys.argv[1]))
