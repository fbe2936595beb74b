"""Compare attention variants of a YOLO model against the model itself: accuracy, cost and seed noise.

``yoloattn compare`` (and ``yoloattn demo``) call :func:`run_compare`: it builds one variant per
attention module with ``zoo.make_variant``, trains the base model and every variant with the same
explicit recipe and seeds in parallel subprocesses (resumable), measures parameters, GFLOPs and
batch-1 CPU latency, and writes ``results.csv``, ``summary.csv``, plots, heatmaps, ``report.md`` and a
self-contained ``report.html``. See ``docs/compare.md``.

Modules: ``settings`` (what runs, the recipe, ``DEMO``), ``models`` (model names), ``measure``
(cost), ``records`` (the typed spec / result records between processes), ``worker`` (one training
run), ``sizes`` (COCO AP per object size), ``runner`` (planning, parallel execution, resume),
``stats`` (intervals, Welch, Holm, Hedges' g, detectable Δ, flagged runs), ``plots``, ``heatmaps``
(EigenCAM panel) and ``report``.
"""

from .runner import CompareError, CompareOutcome, parse_modules, run_compare
from .settings import DEMO, RECIPE, CompareSettings

__all__ = ["DEMO", "RECIPE", "CompareError", "CompareOutcome", "CompareSettings", "parse_modules", "run_compare"]
