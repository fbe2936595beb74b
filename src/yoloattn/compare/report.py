"""The comparison's outputs: ``results.csv``, ``summary.csv``, ``report.md``, ``report.html`` and a terminal table.

``results.csv`` has one row per model and seed (``rows.ResultRow``); ``summary.csv`` one row per model
(``rows.SummaryRow``: mean and sample std over seeds, Δ of the means against the baseline with its
bootstrap interval, Welch's and Holm's p, Hedges' g, the smallest detectable Δ and the verdict, see
``stats.py``). Their headers, and the columns of the summary table and the table of runs, are those rows'
fields (``rows.py``). ``report.html`` is self-contained: the plots and heatmaps are embedded as base64 PNG.

``params`` everywhere is the fused model's count at the dataset's class count; the tables say so once in
their column header ("params (M, fused, 5 classes)", wording from ``bench.param_basis``) and the
report's notes say what fused means.
"""

from __future__ import annotations

import base64
import csv
import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

from ..bench import param_basis
from ..flops import DESCRIPTION

from .rows import (BlockRow, ClassApRow, Int8SummaryRow, LatencyRow, ResultRow, SummaryRow, columns, csv_values,
                   mean_std_text, table)
from .stats import ALPHA, CONFIDENCE, POWER, SIZE_METRICS, RunProblem, pooled_seed_sd, seeds_needed

if TYPE_CHECKING:  # types only: the renderer needs no dataset or settings code at run time
    from ..data.validate import DatasetReport
    from .settings import CompareSettings

Table = tuple[list[str], list[list[str]]]  # (header, body) of a report table


def write_csv(path: Path, row_type: type, rows: Iterable) -> Path:
    """Write ``rows`` (instances of ``row_type``, e.g. ``rows.ResultRow``) as CSV: the header is ``row_type``'s
    column fields (``rows.columns``), each cell its field's CSV text. Returns ``path``; raises TypeError for a
    row of another type (its cells would not match the header)."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns(row_type))
        for row in rows:
            if type(row) is not row_type:
                raise TypeError(f"write_csv: a {type(row).__name__} in a CSV of {row_type.__name__} rows")
            writer.writerow(csv_values(row))
    return path


def params_header(nc: int | None) -> str:
    """The params column's header: ``"params (M, fused, 5 classes)"`` (``"params (M, fused)"`` without nc)."""
    return f"params (M, {param_basis(True, nc)})" if nc is not None else "params (M, fused)"


def summary_table(summary: list[SummaryRow], nc: int | None = None) -> Table:
    """The summary as (header, rows): the fields of ``SummaryRow`` (and its cost) with a ``"summary"`` cell, in
    field order; ``nc``, the dataset's class count, goes into the params header."""
    return table(summary, SummaryRow, "summary", params=params_header(nc), confidence=f"{CONFIDENCE:.0%}")


def size_table(summary: list[SummaryRow], rows: list[ResultRow]) -> Table | None:
    """COCO AP@[.50:.95] per object size (mean ± std over seeds); the header gives each size's box count
    on the evaluation split. None when no run measured it."""
    counts = next((r.objects_by_size for r in rows if r.objects_by_size), None)
    if counts is None:
        return None
    header = ["model", *(f"AP {size} ({n} boxes)" for size, n in zip(("small", "medium", "large"), counts))]
    body = []
    for s in summary:
        cells = [s.model]
        for metric, n in zip(SIZE_METRICS, counts):
            mean = getattr(s, f"{metric}_mean")
            cells.append("n/a" if not n or mean is None else mean_std_text(mean, getattr(s, f"{metric}_std")))
        body.append(cells)
    return header, body


def class_table(per_class: list[ClassApRow]) -> Table | None:
    """AP per class: one row per class, one column per model (mean ± std over seeds); None without per-class AP."""
    if not per_class:
        return None
    models = list(dict.fromkeys(r.model for r in per_class))
    cells = {(r.class_name, r.model): mean_std_text(r.ap_mean, r.ap_std) for r in per_class}
    classes = list(dict.fromkeys(r.class_name for r in per_class))
    return ["class", *models], [[name, *(cells.get((name, m), "n/a") for m in models)] for name in classes]


def power_lines(summary: list[SummaryRow], target_delta: float | None = None) -> list[str]:
    """What this comparison could detect, and (``target_delta``) the seeds a given Δ mAP50-95 needs."""
    pooled = pooled_seed_sd(summary)
    seeds = sorted({s.seeds for s in summary})
    if pooled is None:
        if seeds == [1]:
            lines = ["seed spread unknown (1 seed per model): no interval, test or detectable Δ; run with --seeds 3 "
                     "or more (the finished seed is reused)"]
            fix = "a pilot comparison with --seeds 2 or more"
        else:
            lines = ["seed spread unknown (every seed of every model gave the same mAP50-95, e.g. all 0): no "
                     "interval, test or detectable Δ; train longer or on more data so that seeds differ"]
            fix = "seeds whose mAP50-95 differ: train longer or on more data"
        if target_delta is not None:
            lines.append(f"--target-delta {target_delta:g}: needs the seed spread of {fix}")
        return lines
    sd, models = pooled
    detectable = sorted({f"{s.min_detectable_delta:.3f}" for s in summary if s.min_detectable_delta})
    lines = [f"seed standard deviation of mAP50-95: {sd:.4f} (pooled over {models} model(s), "
             f"{'/'.join(map(str, seeds))} seeds each); this comparison can detect Δ ≥ "
             f"{' to '.join(detectable) if detectable else 'n/a'} (two-sided α {ALPHA}, power {POWER}, "
             "before Holm's adjustment)"]
    if target_delta is not None:
        n = seeds_needed(target_delta, sd)
        lines.append(f"to detect Δ mAP50-95 = {target_delta:g} with power {POWER} at this spread: {n} seeds per "
                     "model (the answer above gives the command; finished seeds are reused)")
    return lines


MIN_BASE_KEPT = 0.9  # below this share of the checkpoint's tensors, a fine-tuned variant is not comparable


def transfer_lines(summary: list[SummaryRow], weights: str | None) -> list[str]:
    """With ``--weights``: per model, the tensors that started from the checkpoint, and a warning for each
    variant that kept less than ``MIN_BASE_KEPT`` of the checkpoint's tensors."""
    if not weights:
        return []
    lines = [f"every run started from {weights}: the baseline loads it whole, each variant through "
             "yoloattn.transfer_weights (layers matched by structure, not index)"]
    for s in summary:
        if s.transferred is None:
            continue
        lines.append(f"{s.model}: {s.transferred}/{s.total_tensors} tensors from the checkpoint, "
                     f"{s.base_kept:.1%} of its tensors kept")
        if s.module and s.base_kept < MIN_BASE_KEPT:
            lines.append(f"WARNING: {s.model} kept only {s.base_kept:.1%} of the checkpoint's tensors: its Δ "
                         "mixes the module with weights that started from scratch")
    return lines


def problem_lines(problems: list[RunProblem]) -> list[str]:
    """One line per run left out of the statistics (or flagged), for the report's notes."""
    return [str(p) + (" — left out of the statistics" if p.kind != "identical" else "") for p in problems]


def placement_table(summary: list[SummaryRow]) -> Table | None:
    """Module x placement grid of Δ mAP50-95 against the baseline, with the test's verdict; the best
    Δ is marked ★ (unless tied) and a pair that was not trained (skipped placement) is "—". None without
    variants."""
    variants = [s for s in summary if s.module]
    if not variants:
        return None
    modules = list(dict.fromkeys(s.module for s in variants))
    rules = list(dict.fromkeys(s.where for s in variants))
    cells = {(s.module, s.where): s for s in variants}
    deltas = [s.delta_map50_95 for s in variants if s.delta_map50_95 is not None]
    shown = [s.delta_map50_95 for s in variants if s.delta_map50_95 is not None and s.verdict.startswith("better")]
    # ★ only on a "better" verdict: the largest Δ among noise is no winner
    best = max(shown) if shown and shown.count(max(shown)) == 1 else None
    body = []
    for module in modules:
        row = [module]
        for rule in rules:
            s = cells.get((module, rule))
            if s is None or s.delta_map50_95 is None:
                row.append("—")
                continue
            mark = " ★" if best is not None and s.verdict.startswith("better") and s.delta_map50_95 == best else ""
            row.append(f"{s.delta_map50_95:+.3f}, {s.verdict}{mark}")
        body.append(row)
    return ["Δ mAP50-95, verdict", *rules], body


def run_table(rows: list[ResultRow]) -> Table:
    """The runs as (header, rows): the fields of ``ResultRow`` with a ``"runs"`` cell, in field order."""
    return table(rows, ResultRow, "runs")


def text_table(header: list[str], body: list[list[str]]) -> str:
    """Plain-text table: first column left-aligned, the others right-aligned."""
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]

    def line(row: list[str]) -> str:
        return "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))

    return "\n".join([line(header), "  ".join("-" * w for w in widths), *map(line, body)])


def markdown_table(header: list[str], body: list[list[str]]) -> str:
    rows = [header, ["---"] + ["---:"] * (len(header) - 1), *body]
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)


def _html_table(header: list[str], body: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in body)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def _html_list(lines: tuple[str, ...]) -> str:
    return "<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in lines) + "</ul>"


def _skipped_line(data_report) -> str:
    """Images per split that Ultralytics skipped (a run with --allow-skipped trains and evaluates without them)."""
    if data_report is None:
        return "images skipped by Ultralytics: not checked"
    counts = ", ".join(f"{split} {len(s.skipped)} of {s.images}" for split, s in data_report.splits.items())
    line = f"images skipped by Ultralytics (corrupt image/label): {counts}"
    if data_report.skipped:
        line += f"; every file is listed in {data_report.listing}"
    if data_report.altered:
        line += f"; {len(data_report.altered)} more kept but altered (duplicate rows, zero-area boxes, JPEG repairs)"
    return line


def _head_line(s) -> str:
    if s.nms:
        return ("head: the one-to-many branch with NMS (--nms), for evaluation and latency (NMS itself is not "
                "timed); these models also have an end-to-end head")
    return ("head: the end-to-end one-to-one branch, NMS-free (Ultralytics' nms=False), for evaluation and latency "
            "(--nms would use the one-to-many branch with NMS)")


@dataclass(frozen=True)
class ReportContext:
    """Everything the report shows: the rows of its tables and what it says about the comparison."""

    title: str
    settings: CompareSettings
    summary: list[SummaryRow]
    rows: list[ResultRow]
    problems: list[RunProblem]  # runs left out of the statistics, or flagged
    summary_notes: list[str]  # under the summary table: power_lines, transfer_lines
    data_yaml: Path | str
    eval_split: str
    data_report: DatasetReport | None  # images Ultralytics skips or alters (None: not checked)
    where: str  # the placements that gave variants
    nc: int | None  # the dataset's classes (the params header)
    end_to_end: bool  # the base has an NMS-free head (the setup says which head was used)
    matmul_peak: float  # GFLOP/s of the machine that measured latency
    latency_machine: str  # that machine
    machine: str  # the machine that ran the comparison
    versions: dict[str, str]
    command: str  # quoted as the way to reproduce
    plots: list[Path] = field(default_factory=list)
    heatmaps: Path | None = None
    heatmaps_skipped: str | None = None  # why there is no heatmaps.png
    latency: list[LatencyRow] = field(default_factory=list)  # every model on every measured runtime
    int8: list[Int8SummaryRow] = field(default_factory=list)  # with --int8
    blocks: list[BlockRow] = field(default_factory=list)  # with --int8: per-block sensitivity of seed 0
    answer: list[str] = field(default_factory=list)  # answer.answer_lines: the answer in words, first
    per_class: list[ClassApRow] = field(default_factory=list)  # stats.per_class


@dataclass(frozen=True)
class Section:
    """One section of the report, its parts in this order: a paragraph (``text``, then ``code`` quoted in it),
    a table, a bulleted list, images. An empty title: a closing paragraph under no heading."""

    title: str
    text: str = ""
    code: str = ""
    table: Table | None = None
    items: tuple[str, ...] = ()
    images: tuple[Path, ...] = ()


def _setup_lines(c: ReportContext) -> list[str]:
    """What was compared, how, and on what: data, recipe, threads, latency conditions, hosts, versions."""
    s = c.settings
    trained = max((r.seed for r in c.rows), default=0) + 1 if s.until_decided else s.seeds
    seeds = "0" if trained == 1 else f"0..{trained - 1}"
    if s.until_decided:
        seeds += f" (--until-decided: batches of {s.seeds}, the baseline's seeds)"
    recipe = ", ".join(f"{k}={v}" for k, v in {**s.train_args(0), "seed": seeds}.items())
    return [
        f"data: {c.data_yaml} (evaluated on the '{c.eval_split}' split)",
        _skipped_line(c.data_report),
        f"base: {s.base}; modules: {', '.join(s.modules)}; placement: {c.where}",
        f"training (identical for every model): {recipe}",
        *([f"started from {s.weights} (the baseline whole, each variant through yoloattn.transfer_weights)"
           + (f"; the first {s.freeze} base layers frozen, and their aligned twins in every variant" if s.freeze
              else "")] if s.weights else []),
        *([_head_line(s)] if c.end_to_end else []),
        "validation on the evaluation split: after the last epoch" + (
            "" if not s.val_every else ", and after every epoch for the curves" if s.val_every == 1 else
            f", and every {s.val_every} epochs for the curves"),
        f"torch threads per training run: {', '.join(sorted({str(r.threads) for r in c.rows}))} "
        "(part of every run key: --threads-per-run with this value reproduces these numbers bit for bit; "
        "train_s in results.csv is each run's time)",
        f"latency: batch 1, {s.imgsz}x{s.imgsz}, fused eval model, {s.latency_threads} thread(s), no pre/post-"
        f"processing or NMS; matmul peak {c.matmul_peak:.1f} GFLOP/s; measured on "
        f"{c.latency_machine or c.machine} before any training",
        f"runs trained on: {', '.join(sorted({r.host or '?' for r in c.rows}))} (each result.json's "
        "host; the executor does not change a run's numbers)",
        f"versions: {', '.join(f'{k} {v}' for k, v in c.versions.items())}; "
        f"{c.machine}",
    ]


def _notes_lines(sequential: bool = False) -> list[str]:
    """How to read the numbers: Δ and verdicts, AP by size, GFLOPs, params; ``sequential``: the verdicts are
    ``--until-decided``'s."""
    verdicts = (
        "The verdicts are the decisions of the group-sequential test that chose the seeds (AdaStop, family-wise "
        f"error ≤ {ALPHA}; docs/compare.md, Adaptive seeds): 'better' / 'worse', 'no difference ≥ D' with "
        "--min-effect, 'undecided' after the last batch, each with the seeds it rests on. Welch's p and Holm's "
        "are in summary.csv but are not the rule: a p-value after a data-dependent stop is biased."
        if sequential else
        f"A variant is 'better' or 'worse' only when Welch's t-test, Holm-adjusted across this comparison's "
        f"variants, gives p < {ALPHA} and the interval excludes 0; otherwise 'not shown (could detect Δ ≥ X)', X "
        f"being the smallest Δ a t-test with these seeds and this spread detects with power {POWER}. 'Not shown' "
        "is not 'no effect'.")
    return [
        f"Δ is the difference of the means against the baseline, with its {CONFIDENCE:.0%} percentile bootstrap "
        f"interval over seeds. {verdicts} summary.csv adds Hedges' g (effect_size).",
        "AP small / medium / large: COCO AP@[.50:.95] (pycocotools) of each run's final weights on the evaluation "
        "split, over objects of area < 32², 32²-96² and > 96² pixels in the original images; Ultralytics' mAP in "
        "the other columns interpolates differently, so the two differ slightly.",
        f"GFLOPs: {DESCRIPTION}.",
        "params (here and in results.csv / summary.csv) count the fused model, as it is timed: BatchNorm "
        "folded into the convolutions, with the dataset's classes in the Detect head; `yoloattn info` prints "
        "the unfused count too.",
    ]


HEATMAP_NOTE = ("EigenCAM (grad-cam package): the first principal component of each model's activations at the "
                "layer its attention module changed (the baseline at the layer that feeds or is replaced by it), "
                "seed 0's final weights, on the first evaluation images.")


PLACEMENT_NOTE = ("Δ mAP50-95 of each module at each placement against the one baseline (mean over seeds), with "
                  "the verdict of the summary; ★ marks the largest Δ among the 'better' verdicts (none on a tie or "
                  "without one), — a placement the base does not have.")

CLASS_NOTE = ("AP@[.50:.95] of each class with a box in the evaluation split, from Ultralytics' final validation "
              "of every run, mean ± std over seeds; per_class.csv has the numbers.")

SIZE_NOTE = ("COCO AP@[.50:.95] per COCO area range, mean ± std over seeds; n/a: no box of that size in the "
             "evaluation split.")


LATENCY_NOTE = ("Batch-1 latency at {imgsz}x{imgsz} in fp32 on {cpu}, {threads} thread(s): eager PyTorch (fused "
                "model) and each runtime of --runtimes, the model exported through Ultralytics and run in the "
                "runtime's own client (docs/deploy.md); × baseline compares with the baseline on the same runtime. "
                "latency.csv has the numbers.")

INT8_NOTE = ("Each run's weights quantized post-training through Ultralytics' own INT8 export (calibrated on the "
             "first training images), then validated like the fp32 export of the same weights: Δ INT8−fp32 and the "
             "retention (INT8 / fp32 mAP50-95) are means over seeds. 'vs baseline' is this model's Δ minus the "
             "baseline's, with its bootstrap interval; the verdict says whether the variant loses more under INT8 "
             "than the baseline (Welch, Holm-adjusted). int8.csv has every run.")


BLOCKS_NOTE = ("Seed 0's weights of each model exported to ONNX and quantized with ONNX Runtime's QDQ quantizer "
               "(Conv/Gemm/MatMul, as Ultralytics' ONNX INT8 export): whole, with one attention block left in float "
               "(all but this), and with only that block in INT8 (only this), each validated on the evaluation "
               "split. A block whose 'all but this' is well above 'all INT8' is where the INT8 accuracy goes; "
               "one seed, so read differences of a few thousandths as noise. int8_blocks.csv has the numbers.")


def int8_table(rows: list[Int8SummaryRow]) -> Table:
    return rows_table(rows, Int8SummaryRow, "int8")


def rows_table(rows: list, row_type: type, name: str) -> Table:
    """The report table ``name`` of typed ``rows`` (``rows.table``) with the interval's confidence filled in."""
    return table(rows, row_type, name, confidence=f"{CONFIDENCE:.0%}")


def _lines(lines: list[str]) -> tuple[str, ...]:
    """One item per line, also where an entry holds several (a run's cause)."""
    return tuple("\n".join(lines).splitlines())


def sections(c: ReportContext) -> list[Section]:
    """The report, in order: the one list that both ``write_markdown`` and ``write_html`` format."""
    problems = problem_lines(c.problems) or ["every planned run finished and is in the statistics"]
    placement, sizes, classes = placement_table(c.summary), size_table(c.summary, c.rows), class_table(c.per_class)
    if c.heatmaps is not None:
        heatmaps = [Section("Where the models look", HEATMAP_NOTE, images=(c.heatmaps,))]
    elif c.heatmaps_skipped:
        heatmaps = [Section("Where the models look", f"Not drawn: {c.heatmaps_skipped}")]
    else:
        heatmaps = []
    return [
        *([Section("Answer", items=tuple(c.answer))] if c.answer else []),
        Section("Summary", table=summary_table(c.summary, c.nc), items=_lines(c.summary_notes)),
        Section("Runs left out or flagged", items=_lines(problems)),
        *([Section("Module × placement", PLACEMENT_NOTE, table=placement)] if placement is not None else []),
        *([Section("AP by object size", SIZE_NOTE, table=sizes)] if sizes is not None else []),
        *([Section("AP per class", CLASS_NOTE, table=classes)] if classes is not None else []),
        *([Section("Latency per runtime", LATENCY_NOTE.format(cpu=c.latency[0].cpu, threads=c.latency[0].threads,
                                                               imgsz=c.settings.imgsz),
                   table=rows_table(c.latency, LatencyRow, "latency"))] if c.latency else []),
        *([Section("INT8", INT8_NOTE, table=int8_table(c.int8))] if c.int8 else []),
        *([Section("Which block costs the INT8 accuracy", BLOCKS_NOTE, table=rows_table(c.blocks, BlockRow, "blocks"))]
          if c.blocks else []),
        Section("Setup", items=_lines(_setup_lines(c))),
        Section("Plots", images=tuple(c.plots)),
        *heatmaps,
        Section("Runs", table=run_table(c.rows)),
        Section("Notes", items=_lines(_notes_lines(c.settings.until_decided))),
        Section("", "Reproduce (reuses finished runs):", code=c.command),
    ]


def _markdown_section(section: Section) -> list[str]:
    lines = [f"## {section.title}", ""] if section.title else []
    if section.text:
        lines += [section.text + (f" `{section.code}`" if section.code else ""), ""]
    if section.table is not None:
        lines += [markdown_table(*section.table), ""]
    if section.items:
        lines += [*(f"- {item}" for item in section.items), ""]
    if section.images:
        lines += [*(f"![{p.stem}]({p.name})" for p in section.images), ""]
    return lines


def write_markdown(path: Path, context: ReportContext) -> Path:
    """``report.md`` of :func:`sections` (images linked by file name, next to it); returns ``path``."""
    lines = [f"# {context.title}", ""]
    for section in sections(context):
        lines += _markdown_section(section)
    path.write_text("\n".join(lines))
    return path


_CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:14px}th,td{border:1px solid #ccc;padding:4px 8px;
text-align:right}th:first-child,td:first-child{text-align:left}thead{background:#f2f2f2}img{max-width:100%}
code{background:#f4f4f4;padding:1px 4px}li{margin:.2em 0}"""


def _image_html(path: Path) -> str:
    return (f'<p><img alt="{html.escape(path.stem)}" src="data:image/png;base64,'
            f'{base64.b64encode(path.read_bytes()).decode()}"></p>')


def _html_section(section: Section) -> str:
    parts = [f"<h2>{html.escape(section.title)}</h2>"] if section.title else []
    if section.text:
        code = f" <code>{html.escape(section.code)}</code>" if section.code else ""
        parts.append(f"<p>{html.escape(section.text)}{code}</p>")
    if section.table is not None:
        parts.append(_html_table(*section.table))
    if section.items:
        parts.append(_html_list(section.items))
    parts += [_image_html(p) for p in section.images]
    return "".join(parts)


def write_html(path: Path, context: ReportContext) -> Path:
    """Self-contained ``report.html`` of :func:`sections` (images embedded as base64 PNG); returns ``path``.
    Raises OSError when an image cannot be read."""
    body = "\n".join(_html_section(section) for section in sections(context))
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(context.title)}</title>
<style>{_CSS}</style></head><body>
<h1>{html.escape(context.title)}</h1>
{body}
</body></html>
"""
    path.write_text(page)
    return path
