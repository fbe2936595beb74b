"""Compare attention variants of a YOLO model against the model itself: accuracy, cost and seed noise.

``yoloattn compare`` (and ``yoloattn demo``) call :func:`run_compare`: it builds one variant per
attention module with ``zoo.make_variant``, trains the base model and every variant with the same
explicit recipe and seeds in parallel subprocesses (resumable), measures parameters, GFLOPs and
batch-1 CPU latency, and writes ``results.csv``, ``summary.csv``, plots, heatmaps, ``report.md`` and a
self-contained ``report.html``. See ``docs/compare.md``.

The pipeline, one room per phase: ``settings`` (what the user asked: ``CompareSettings`` with its nested
``ExecutionSettings``, the recipe, ``DEMO``, run keys) -> ``resolve`` (every default and check, once) ->
``plan`` (data, variants, runs, worker specs) -> ``measure`` (cost) -> ``runner`` (the driver and the retry
loop, through ``executors/``, a table of executors) -> ``outputs`` (result rows, heatmaps, report context)
and ``report`` (one list of sections, as Markdown and HTML). ``rows`` holds the typed report rows (cost,
result, summary) whose fields are the CSV columns. Beside them: ``progress`` (events and the terminal listener),
``records`` (typed records between processes), ``worker`` (one training run), ``sizes`` (COCO AP per
object size), ``models`` (model names), ``stats`` (intervals, Welch, Holm, Hedges' g, detectable Δ,
flagged runs), ``plots`` and ``heatmaps`` (EigenCAM panel).
"""

from .resolve import parse_modules, resolve
from .runner import CompareOutcome, run_compare
from .settings import DEMO, RECIPE, CompareError, CompareSettings, ExecutionSettings, option_names, settings_from_options

__all__ = ["DEMO", "RECIPE", "CompareError", "CompareOutcome", "CompareSettings", "ExecutionSettings", "option_names",
           "parse_modules", "resolve", "run_compare", "settings_from_options"]
