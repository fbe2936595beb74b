"""The comparison's outputs: ``results.csv``, ``summary.csv``, ``report.md``, ``report.html`` and a terminal table.

``results.csv`` has one row per model and seed (``RESULT_COLUMNS``); ``summary.csv`` one row per model
(``SUMMARY_COLUMNS``: mean and sample std over seeds, the delta of the means against the baseline and
Welch's test of that delta, see ``stats.py``). ``report.html`` is self-contained: the plots are
embedded as base64 PNG.

``params`` everywhere is the fused model's count at the dataset's class count; the tables say so once in
their column header ("params (M, fused, 5 classes)", wording from ``bench.param_basis``) and the
report's notes say what fused means.
"""

from __future__ import annotations

import base64
import csv
import html
import math
from pathlib import Path

from ..bench import param_basis
from ..flops import DESCRIPTION

RESULT_COLUMNS = ("model", "module", "where", "seed", "params", "gflops", "latency_ms", "latency_ort_ms",
                  "map50", "map50_95", "precision", "recall", "train_s", "threads", "epochs", "imgsz", "run_key",
                  "run_dir")
SUMMARY_COLUMNS = ("model", "module", "where", "seeds", "params", "gflops", "latency_ms", "latency_ort_ms",
                   "map50_mean", "map50_std", "map50_95_mean", "map50_95_std", "delta_map50", "delta_map50_95",
                   "p_map50", "p_map50_95", "significant_map50", "significant_map50_95", "train_s_mean")


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def write_csv(path: Path, rows: list[dict], columns: tuple[str, ...]) -> Path:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_cell(row.get(c)) for c in columns])
    return path


def _pm(mean: float, std: float | None) -> str:
    return f"{mean:.3f} ± {std:.3f}" if std is not None else f"{mean:.3f}"


def _signed(value: float | None) -> str:
    return "" if value is None else f"{value:+.3f}"


def _verdict(entry: dict, metric: str) -> str:
    verdict, p = entry.get(f"significant_{metric}", ""), entry.get(f"p_{metric}")
    return f"{verdict} (p={p:.3f})" if p is not None else verdict


def params_header(nc: int | None) -> str:
    """The params column's header: ``"params (M, fused, 5 classes)"`` (``"params (M, fused)"`` without nc)."""
    return f"params (M, {param_basis(True, nc)})" if nc is not None else "params (M, fused)"


def summary_table(summary: list[dict], nc: int | None = None) -> tuple[list[str], list[list[str]]]:
    """The summary as (header, rows); ``nc``, the dataset's class count, goes into the params header."""
    header = ["model", params_header(nc), "GFLOPs", "torch ms", "ORT ms", "mAP50", "mAP50-95", "Δ mAP50-95",
              "Δ > seed noise?"]
    body = [[s["model"], f"{s['params'] / 1e6:.3f}", f"{s['gflops']:.3f}", f"{s['latency_ms']:.1f}",
             f"{s['latency_ort_ms']:.1f}", _pm(s["map50_mean"], s["map50_std"]),
             _pm(s["map50_95_mean"], s["map50_95_std"]), _signed(s.get("delta_map50_95")),
             _verdict(s, "map50_95")] for s in summary]
    return header, body


def placement_table(summary: list[dict]) -> tuple[list[str], list[list[str]]] | None:
    """Module x placement grid of Δ mAP50-95 against the baseline, with the test's verdict; the best
    Δ is marked ★ (unless tied) and a pair that was not trained (skipped placement) is "—". None without
    variants."""
    variants = [s for s in summary if s.get("module")]
    if not variants:
        return None
    modules = list(dict.fromkeys(s["module"] for s in variants))
    rules = list(dict.fromkeys(s["where"] for s in variants))
    cells = {(s["module"], s["where"]): s for s in variants}
    deltas = [s["delta_map50_95"] for s in variants if s.get("delta_map50_95") is not None]
    best = max(deltas) if deltas and deltas.count(max(deltas)) == 1 else None  # a tie has no best cell
    body = []
    for module in modules:
        row = [module]
        for rule in rules:
            s = cells.get((module, rule))
            if s is None or s.get("delta_map50_95") is None:
                row.append("—")
                continue
            mark = " ★" if best is not None and len(deltas) > 1 and s["delta_map50_95"] == best else ""
            row.append(f"{s['delta_map50_95']:+.3f}, {s.get('significant_map50_95', '')}{mark}")
        body.append(row)
    return ["Δ mAP50-95, Δ > seed noise?", *rules], body


def run_table(rows: list[dict]) -> tuple[list[str], list[list[str]]]:
    header = ["model", "seed", "mAP50", "mAP50-95", "precision", "recall", "train s"]
    body = [[r["model"], str(r["seed"]), f"{r['map50']:.4f}", f"{r['map50_95']:.4f}", f"{r['precision']:.3f}",
             f"{r['recall']:.3f}", f"{r['train_s']:.0f}"] for r in rows]
    return header, body


def text_table(header: list[str], body: list[list[str]]) -> str:
    """Plain-text table: first column left-aligned, the others right-aligned."""
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]

    def line(row: list[str]) -> str:
        return "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))

    return "\n".join([line(header), "  ".join("-" * w for w in widths), *map(line, body)])


def _markdown_table(header: list[str], body: list[list[str]]) -> str:
    rows = [header, ["---"] + ["---:"] * (len(header) - 1), *body]
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)


def _html_table(header: list[str], body: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in body)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def _html_list(text: str) -> str:
    return "<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in text.splitlines()) + "</ul>"


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


def _sections(context: dict) -> list[tuple[str, str]]:
    """(title, plain text) pairs shared by the Markdown and HTML reports."""
    s = context["settings"]
    seeds = "0" if s.seeds == 1 else f"0..{s.seeds - 1}"
    recipe = ", ".join(f"{k}={v}" for k, v in {**s.train_args(0), "seed": seeds}.items())
    setup = [
        f"data: {context['data_yaml']} (evaluated on the '{context['eval_split']}' split)",
        _skipped_line(context.get("data_report")),
        f"base: {s.base}; modules: {', '.join(s.modules)}; placement: {context['where']}",
        f"training (identical for every model): {recipe}",
        f"torch threads per training run: {', '.join(sorted({str(r['threads']) for r in context['rows']}))} "
        "(see train_s in results.csv for each run's time)",
        f"latency: batch 1, {s.imgsz}x{s.imgsz}, fused eval model, {s.latency_threads} thread(s), no pre/post-"
        f"processing or NMS; matmul peak {context['matmul_peak']:.1f} GFLOP/s",
        f"versions: {', '.join(f'{k} {v}' for k, v in context['versions'].items())}; "
        f"{context['machine']}",
    ]
    notes = [
        "Δ is the difference of the means against the baseline. 'Δ > seed noise?' is Welch's t-test of the "
        "per-seed mAP50-95 values, significant at p < 0.05; it needs >= 2 seeds per model, and with few seeds "
        "a 'no' means the effect is not shown, not that there is none.",
        f"GFLOPs: {DESCRIPTION}.",
        "params (here and in results.csv / summary.csv) count the fused model, as it is timed: BatchNorm "
        "folded into the convolutions, with the dataset's classes in the Detect head; `yoloattn info` prints "
        "the unfused count too.",
    ]
    return [("Setup", "\n".join(setup)), ("Notes", "\n".join(notes))]


def _placement_markdown(summary: list[dict]) -> list[str]:
    table = placement_table(summary)
    if table is None:
        return []
    return ["## Module × placement", "", PLACEMENT_NOTE, "", _markdown_table(*table), ""]


PLACEMENT_NOTE = ("Δ mAP50-95 of each module at each placement against the one baseline (mean over seeds), with "
                  "Welch's test against the seed noise; ★ marks the largest Δ (none on a tie), — a placement the "
                  "base does not have.")


def write_markdown(path: Path, context: dict) -> Path:
    summary_header, summary_body = summary_table(context["summary"], context.get("nc"))
    runs_header, runs_body = run_table(context["rows"])
    setup, notes = _sections(context)
    text = [
        f"# {context['title']}",
        "",
        "## Summary",
        "",
        _markdown_table(summary_header, summary_body),
        "",
        *_placement_markdown(context["summary"]),
        f"## {setup[0]}",
        "",
        *[f"- {line}" for line in setup[1].splitlines()],
        "",
        "## Plots",
        "",
        *[f"![{p.stem}]({p.name})" for p in context["plots"]],
        "",
        "## Runs",
        "",
        _markdown_table(runs_header, runs_body),
        "",
        f"## {notes[0]}",
        "",
        *[f"- {line}" for line in notes[1].splitlines()],
        "",
        f"Reproduce (reuses finished runs): `{context['command']}`",
        "",
    ]
    path.write_text("\n".join(text))
    return path


_CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:14px}th,td{border:1px solid #ccc;padding:4px 8px;
text-align:right}th:first-child,td:first-child{text-align:left}thead{background:#f2f2f2}img{max-width:100%}
code{background:#f4f4f4;padding:1px 4px}li{margin:.2em 0}"""


def _placement_html(summary: list[dict]) -> str:
    table = placement_table(summary)
    if table is None:
        return ""
    return f"<h2>Module × placement</h2><p>{html.escape(PLACEMENT_NOTE)}</p>{_html_table(*table)}"


def write_html(path: Path, context: dict) -> Path:
    summary_header, summary_body = summary_table(context["summary"], context.get("nc"))
    runs_header, runs_body = run_table(context["rows"])
    setup, notes = _sections(context)
    images = "".join(
        f'<p><img alt="{html.escape(p.stem)}" src="data:image/png;base64,'
        f'{base64.b64encode(p.read_bytes()).decode()}"></p>' for p in context["plots"]
    )
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(context['title'])}</title>
<style>{_CSS}</style></head><body>
<h1>{html.escape(context['title'])}</h1>
<h2>Summary</h2>{_html_table(summary_header, summary_body)}
{_placement_html(context["summary"])}
<h2>{setup[0]}</h2>{_html_list(setup[1])}
<h2>Plots</h2>{images}
<h2>Runs</h2>{_html_table(runs_header, runs_body)}
<h2>{notes[0]}</h2>{_html_list(notes[1])}
<p>Reproduce (reuses finished runs): <code>{html.escape(context['command'])}</code></p>
</body></html>
"""
    path.write_text(page)
    return path
