"""What a finished comparison writes: result rows, statistics, plots, heatmaps and the report.

:func:`write_report` takes the finished runs and the measured costs and writes into OUT:
``results.csv`` (one row per run), ``summary.csv`` (``stats.summarize``: intervals, Holm, detectable Δ,
with diverged and missing runs left out and listed), ``pareto.png``, ``curves.png``, ``heatmaps.png``
(EigenCAM, ``heatmaps.py``), ``report.md`` and a self-contained ``report.html`` (``report.py``). It
returns the summary and the lines the terminal shows at the end.
"""

from __future__ import annotations

import dataclasses
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import yaml

from ..yaml_model import rows as model_rows
from . import plots, report, stats
from .answer import answer_lines
from .measure import ModelSpec
from .plan import PreparedData, RunSpec
from .records import RunFailure, RunResult, machine_description
from .resolve import ResolvedCompare
from .sequential import SequentialState
from .int8 import int8_summary
from .rows import BlockRow, ClassApRow, CostRow, Int8Row, Int8SummaryRow, LatencyRow, ResultRow, SummaryRow
from .settings import CompareSettings, versions

HEATMAP_IMAGES = 4  # evaluation images in the heatmap panel


@dataclass
class Report:
    """What :func:`write_report` wrote and what the terminal shows."""

    summary: list[SummaryRow]
    problems: list[stats.RunProblem]
    markdown: Path
    html: Path
    lines: list[str] = field(default_factory=list)  # the summary table, notes and flagged runs, for the terminal


def result_rows(runs: list[tuple[RunSpec, RunResult]], costs: dict[str, CostRow],
                settings: CompareSettings) -> list[ResultRow]:
    """One row per finished run: its model's cost, its metrics, where and with what it ran.

    Raises KeyError for a run whose model has no entry in ``costs``.
    """
    rows = []
    for run, result in runs:
        rows.append(ResultRow(
            model=run.model.label, module=run.model.module, where=run.model.where, seed=run.seed,
            cost=costs[run.model.label],
            **{k: getattr(result, k) for k in ("map50", "map50_95", "precision", "recall", *stats.SIZE_METRICS,
                                                "train_s", "transferred", "total_tensors", "base_kept", "curve",
                                                "val_curve", "objects_by_size", "weights", "ap_per_class")},
            threads=result.env.threads, host=result.env.host, torch=result.env.torch,
            ultralytics=result.env.ultralytics, epochs=settings.epochs, imgsz=settings.imgsz, run_key=run.key,
            run_dir=str(run.run_dir),
        ))
    return rows


def heatmaps(models: list[ModelSpec], rows: list[ResultRow], data: PreparedData, settings: CompareSettings, out: Path,
             say: Callable[[str], None]) -> Path | str | None:
    """``OUT/heatmaps.png``: EigenCAM of each model's lowest finished seed at the layer its module changed,
    the baseline at each of those layers; None when there is nothing to draw, or the reason (a str, also
    said) when it cannot be drawn. A failure here costs the panel, never the report of runs that took hours."""
    from ..integration.heads import wrapper
    from .heatmaps import changed_layers, heatmap_panel
    from .sizes import split_images

    weights = {}
    for row in sorted(rows, key=lambda r: r.seed):
        weights.setdefault(row.model, row.weights)
    base = models[0]
    variants = [spec for spec in models[1:] if spec.label in weights]
    if base.label not in weights or not variants:
        return None
    elsewhere = sorted(label for label, path in weights.items() if not Path(path).is_file())
    if elsewhere:
        reason = (f"the weights of {', '.join(elsewhere)} stayed on the node(s) that trained them "
                  "(--collect-weights copies them under OUT)")
        say(f"heatmaps skipped: {reason}")
        return reason
    try:
        def layers(spec: ModelSpec) -> list:
            d = yaml.safe_load(spec.yaml_path.read_text())
            return model_rows(d)

        def load(label: str):
            return wrapper(weights[label]).model.float().eval()

        base_rows, base_model = layers(base), load(base.label)
        columns, seen = [], set()
        for spec in variants:
            base_layer, layer = changed_layers(base_rows, layers(spec))
            if base_layer not in seen:
                seen.add(base_layer)
                columns.append((f"{base.label} (layer {base_layer})", base_model, base_layer))
            columns.append((f"{spec.module}@{spec.where} (layer {layer})", load(spec.label), layer))
        images = [Path(p) for p in split_images(data.run_yaml, "val")[:HEATMAP_IMAGES]]
        return heatmap_panel(columns, images, settings.imgsz, out / "heatmaps.png")
    except Exception as err:  # noqa: BLE001 - see the docstring
        reason = f"{type(err).__name__}: {err}"
        say(f"heatmaps skipped: {reason}")
        return reason


def failure_text(failure: RunFailure) -> str:
    """How a run failed for good, for the list of runs left out of the statistics."""
    where = f" on {failure.host}" if failure.host else ""
    return f"failed{where} after {failure.attempts} attempt(s): {failure.cause}"


def _machine() -> str:
    """The machine that ran the comparison (the report's header; each run's own is in results.csv)."""
    return f"{machine_description(host=False)} {platform.release()}"


def latency_rows(summary: list[SummaryRow], baseline: str) -> list[LatencyRow]:
    """One ``LatencyRow`` per model and measured runtime (its ``CostRow.latency``), with the ratio to the baseline's
    p50 on the same runtime."""
    base = next((s.cost.latency for s in summary if s.model == baseline), {})
    out = []
    for s in summary:
        for name, t in s.cost.latency.items():
            ratio = t["p50_ms"] / base[name]["p50_ms"] if name in base and base[name]["p50_ms"] > 0 else None
            out.append(LatencyRow(model=s.model, runtime=name, p50_ms=t["p50_ms"], p90_ms=t["p90_ms"],
                                  ratio_to_baseline=None if ratio is None else round(ratio, 4),
                                  threads=s.cost.threads, cpu=s.cost.machine))
    return out


def data_label(settings: CompareSettings, data: PreparedData) -> str:
    if settings.data == "embedded":
        return f"the embedded '{settings.preset}' dataset"
    return str(data.data_yaml)


def write_report(resolved: ResolvedCompare, models: list[ModelSpec], runs: list[RunSpec], rows: list[ResultRow],
                 costs: dict[str, CostRow], data: PreparedData, where: str, command: str, target_delta: float | None,
                 say: Callable[[str], None], int8: list[Int8Row] | None = None,
                 blocks: list[BlockRow] | None = None, sequential: SequentialState | None = None) -> Report:
    """Statistics, plots, heatmaps, CSVs and the report of the finished ``rows`` (see the module docstring).

    ``runs``: every planned run (those without a result are listed with why); ``where``: the placements
    that gave variants; ``command``: the command line, quoted in the report; ``sequential``: with
    ``--until-decided``, the design's decisions, which are then the verdicts (``sequential.py``).
    """
    settings, out = resolved.settings, resolved.out
    baseline = models[0].label
    planned = {spec.label: [run.seed for run in runs if run.model.label == spec.label] for spec in models}
    summary = stats.summarize(rows, baseline, planned)
    if sequential is not None:
        effect = sequential.design.min_effect
        summary = [dataclasses.replace(s, verdict=sequential.decisions[s.model].text(effect))
                   if s.model in sequential.decisions else s for s in summary]
    failures = {(f.model, f.seed): f for run in runs if (f := run.failure()) is not None and run.result() is None}
    problems = stats.run_problems(rows, planned, {k: failure_text(f) for k, f in failures.items()})
    notes = [*([sequential.design.describe(len(models) - 1)] if sequential else []), *report.power_lines(summary, target_delta),
             *report.transfer_lines(summary, settings.weights)]
    slots = settings.execution.jobs or resolved.executor.default_capacity(settings, len(runs)) or 1
    answer = answer_lines(summary, command or "yoloattn compare", settings.out, settings.epochs, slots, target_delta,
                          sequential=sequential)
    panel = heatmaps(models, rows, data, settings, out, say)
    report.write_csv(out / "results.csv", ResultRow, rows)
    report.write_csv(out / "summary.csv", SummaryRow, summary)
    classes = stats.per_class(rows, [spec.label for spec in models], problems)
    report.write_csv(out / "per_class.csv", ClassApRow, classes)
    latency = latency_rows(summary, baseline)
    report.write_csv(out / "latency.csv", LatencyRow, latency)
    int8_table = int8_summary(int8 or [], baseline, [spec.label for spec in models])
    if int8:
        report.write_csv(out / "int8.csv", Int8Row, int8)
        report.write_csv(out / "int8_summary.csv", Int8SummaryRow, int8_table)
        report.write_csv(out / "int8_blocks.csv", BlockRow, blocks or [])
    context = report.ReportContext(
        title=f"{baseline} + attention modules on {data_label(settings, data)}", settings=settings, summary=summary,
        rows=rows, problems=problems, summary_notes=notes, data_yaml=data.data_yaml, eval_split=data.eval_split,
        data_report=data.report, where=where, nc=data.nc, end_to_end=models[0].end_to_end,
        matmul_peak=costs[baseline].matmul_peak_gflops_s, latency_machine=costs[baseline].machine,
        machine=_machine(), versions=versions(), command=command or "yoloattn compare ...",
        plots=[plots.plot_pareto(summary, out / "pareto.png", baseline),
               plots.plot_curves(rows, out / "curves.png", baseline)],
        heatmaps=None if isinstance(panel, str) else panel, heatmaps_skipped=panel if isinstance(panel, str) else None,
        latency=latency, int8=int8_table, blocks=blocks or [], answer=answer, per_class=classes)
    markdown, html = report.write_markdown(out / "report.md", context), report.write_html(out / "report.html", context)

    lines = ["", *answer, "\n" + report.text_table(*report.summary_table(summary, data.nc))]
    grid = report.placement_table(summary)
    if grid is not None and (len(grid[0]) > 2 or len(grid[1]) > 1):  # more than one cell: worth a grid
        lines.append("\n" + report.text_table(*grid))
    lines += notes
    if int8_table:
        lines.append("\nINT8 (post-training, Ultralytics' export; docs/deploy.md):\n"
                     + report.text_table(*report.int8_table(int8_table)))
    if problems:
        lines.append("\nleft out of the statistics or flagged:\n" + "\n".join(f"  {p}" for p in problems))
    return Report(summary, problems, markdown, html, lines)
