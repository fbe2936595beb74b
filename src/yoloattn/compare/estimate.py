"""What a comparison will cost before it is spent: a wall-time estimate from a short measured calibration.

For each model still to train, a few training steps are timed here, at the planned image size, batch and
torch threads per run, on the planned device (forward in train mode, a backward of the summed outputs and
an SGD step; one untimed warm-up step first), and one evaluation forward. A run then costs

    epochs × ceil(train images / batch) × step + ceil(eval images / batch) × eval forward,

and the plan's runs are spread over ``jobs`` slots (each the longest remaining run first). What is not
timed (the detection loss's label assignment, data loading and augmentation, NMS in validation,
contention between parallel runs) makes a real run slower: the estimate is a floor, and says so
(docs/compare.md, "Cost before it is spent", compares it with a measured run).
"""

from __future__ import annotations

import contextlib
import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .measure import ModelSpec, format_duration
from .plan import PreparedData, RunSpec
from .settings import CompareSettings, device_kind

#: Timed training steps per model (after one warm-up step).
CALIBRATION_STEPS = 2
#: ``off`` skips the calibration (the test suite's many small comparisons and documented dry runs set it;
#: tests/test_compare.py and tests/test_options.py exercise the estimate with it unset).
ENV_VAR = "YOLOATTN_ESTIMATE"


def enabled() -> bool:
    """Whether the plan estimate runs (``$YOLOATTN_ESTIMATE`` is not ``off``)."""
    import os

    return os.environ.get(ENV_VAR, "").strip().lower() != "off"
#: A plan longer than this (seconds) gets a warning.
LONG_PLAN_S = 3600.0


@dataclass(frozen=True)
class PlanEstimate:
    """The measured step times (s) per model label and the plan's estimated wall time (s, a floor)."""

    step_s: dict[str, float]  # one training step (forward, backward, SGD) at batch and imgsz
    eval_s: dict[str, float]  # one evaluation forward at batch and imgsz
    run_s: dict[str, float]  # one run of each model: its epochs plus the final validation
    total_s: float | None  # every run to train, over the slots (None: the slots are Ray's to decide)
    train_images: int
    eval_images: int

    def lines(self, settings: CompareSettings, runs: int, slots: int | None) -> list[str]:
        """The plan's estimate as printed under the ``runs:`` line (and a warning when it means hours);
        ``slots`` None: Ray places the runs, so only a run's time is given."""
        steps = ", ".join(f"{label} {s:.2f} s" for label, s in self.step_s.items())
        if self.total_s is None or slots is None:
            how = (f"at least {format_duration(max(self.run_s.values()))} per run of the slowest model on this machine "
                   f"({runs} runs; Ray decides how many run at once)")
        else:
            how = f"at least {format_duration(self.total_s)} for {runs} runs, {slots} at a time, on this machine"
        batch = settings.recipe.get("batch")
        out = [f"estimate: {how} (measured: one training step at batch {batch}, {settings.imgsz} px, "
               f"{settings.threads_per_run} thread(s): {steps}; {self.train_images} training and "
               f"{self.eval_images} evaluation images; data loading and the loss's assignment come on top)"]
        if self.total_s is not None and self.total_s > LONG_PLAN_S:
            out.append(f"warning: this plan means hours on this machine (≥ {self.total_s / 3600:.1f} h); a pilot "
                       "with fewer --epochs, a smaller --imgsz or fewer --seeds answers sooner, and --jobs / "
                       "--executor ray spread it")
        return out


def split_images(data: PreparedData) -> tuple[int, int]:
    """(training images, evaluation images) of the dataset the runs train on."""
    from ..data.resolve import resolve_dataset

    with tempfile.TemporaryDirectory(prefix="yoloattn-estimate-") as tmp:
        resolved = resolve_dataset(data.run_yaml, out_dir=tmp)
    return len(resolved.images.get("train", [])), len(resolved.images.get("val", []))


def time_steps(spec: ModelSpec, nc: int, settings: CompareSettings) -> tuple[float, float]:
    """(seconds per training step, seconds per evaluation forward) of one model at the plan's settings."""
    import logging

    import torch

    from ..integration.config import ultralytics_log_level
    from ..integration.heads import build_model, output_tensors

    device = "cuda" if device_kind(settings.device) == "cuda" else "cpu"
    threads = torch.get_num_threads()
    torch.set_num_threads(settings.threads_per_run or 1)
    # the build's "Overriding model.yaml nc=80 with nc=5" is no news here
    with contextlib.ExitStack() as stack:
        stack.enter_context(ultralytics_log_level(logging.WARNING))
        stack.callback(torch.set_num_threads, threads)
        model = build_model(str(spec.yaml_path), nc=nc).to(device).train()
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-6)
        batch = int(settings.recipe.get("batch", 8))
        x = torch.rand(batch, 3, settings.imgsz, settings.imgsz, device=device)

        def step() -> None:
            optimizer.zero_grad(set_to_none=True)
            sum(t.float().mean() for t in output_tensors(model(x))).backward()
            optimizer.step()

        step()  # warm-up: allocations, kernel selection
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(CALIBRATION_STEPS):
            step()
        if device == "cuda":
            torch.cuda.synchronize()
        train_s = (time.perf_counter() - start) / CALIBRATION_STEPS
        model.eval()
        with torch.no_grad():
            start = time.perf_counter()
            model(x)
            if device == "cuda":
                torch.cuda.synchronize()
            eval_s = time.perf_counter() - start
        return train_s, eval_s


def estimate_plan(models: list[ModelSpec], todo: list[RunSpec], settings: CompareSettings,
                  data: PreparedData) -> PlanEstimate:
    """Time each model of ``todo`` (:func:`time_steps`) and spread its runs over ``settings.execution.jobs``
    slots, longest first (no total when ``jobs`` is None: Ray places the runs)."""
    train_images, eval_images = split_images(data)
    batch = int(settings.recipe.get("batch", 8))
    needed = list(dict.fromkeys(run.model.label for run in todo))
    step_s, eval_s, run_s = {}, {}, {}
    for spec in models:
        if spec.label not in needed:
            continue
        step_s[spec.label], eval_s[spec.label] = time_steps(spec, data.nc, settings)
        run_s[spec.label] = (settings.epochs * math.ceil(train_images / batch) * step_s[spec.label]
                             + math.ceil(eval_images / batch) * eval_s[spec.label])
    if not settings.execution.jobs:  # Ray places runs by their resources
        return PlanEstimate(step_s, eval_s, run_s, None, train_images, eval_images)
    slots = [0.0] * settings.execution.jobs
    for seconds in sorted((run_s[run.model.label] for run in todo), reverse=True):
        slots.sort()
        slots[0] += seconds
    return PlanEstimate(step_s, eval_s, run_s, max(slots), train_images, eval_images)
