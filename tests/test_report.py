"""The comparison's report: CSV headers, report tables and the docs' column tables all come from the fields
of ``yoloattn.compare.rows`` (one field and its formatter per column), the cost cache reads back, and the
Markdown and HTML reports format one list of sections."""

from __future__ import annotations

import csv
import dataclasses
import html
import re
from pathlib import Path

import pytest

from yoloattn.compare import report
from yoloattn.compare.rows import (CostRow, ResultRow, SummaryRow, column_spec, columns, csv_values, doc_blocks,
                                   update_doc)
from yoloattn.compare.stats import summarize

DOC = Path(__file__).resolve().parents[1] / "docs" / "compare.md"


def cost(i: int = 0) -> CostRow:
    return CostRow(params=3_000_000 + i, gflops=8.25, latency_p50_ms=20.5, latency_p90_ms=22.25, latency_ort_p50_ms=10.0,
                   latency_ort_p90_ms=11.5, peak_mem_mb=45.67 + i, nc=5, efficiency=0.12, efficiency_ort=0.23,
                   matmul_peak_gflops_s=55.5, threads=1, machine="host: cpu")


def result(model: str, seed: int, m: float, i: int = 0) -> ResultRow:
    module, where = ("", "") if "-" not in model else ("iRMB", "sppf")
    return ResultRow(model=model, module=module, where=where, seed=seed, cost=cost(i), map50=2 * m, map50_95=m,
                     map50_95_small=m / 2, map50_95_medium=m, map50_95_large=None, precision=0.5, recall=0.4,
                     train_s=12.5, threads=1, torch="2.0", ultralytics="8.3", epochs=1, imgsz=64, transferred=None,
                     total_tensors=None, base_kept=None, host="node-1", run_key=f"k{seed}", run_dir=f"runs/{model}-s{seed}",
                     curve=[{"epoch": 1, "train/box_loss": 3.0 - seed}], objects_by_size=(7, 3, 0))


@pytest.fixture
def rows() -> list[ResultRow]:
    return [result("yolov8n", s, 0.10 + 0.01 * s) for s in range(3)] + \
           [result("yolov8n-irmb-sppf", s, 0.13 + 0.012 * s, i=1) for s in range(3)]


def read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    with open(path, newline="") as f:
        header, *body = list(csv.reader(f))
    return header, body


def test_the_csv_headers_are_the_rows_column_fields_with_the_cost_in_place(rows, tmp_path):
    summary = summarize(rows, "yolov8n")
    for row_type, written in ((ResultRow, rows), (SummaryRow, summary)):
        header, body = read_csv(report.write_csv(tmp_path / "out.csv", row_type, written))
        assert tuple(header) == columns(row_type)
        assert body == [csv_values(row) for row in written]
        cost_columns = list(columns(CostRow))
        at = header.index(cost_columns[0])
        assert header[at:at + len(cost_columns)] == cost_columns  # spliced where the cost field stands
        assert header.index("where") < at  # after the model's name, before the metrics
    hidden = {"curve", "val_curve", "objects_by_size", "weights", "cost"}
    assert not hidden & set(columns(ResultRow)) and {"nc", "machine", "efficiency"}.isdisjoint(columns(SummaryRow))
    with pytest.raises(TypeError, match="a SummaryRow in a CSV of ResultRow rows"):
        report.write_csv(tmp_path / "mixed.csv", ResultRow, [rows[0], summary[0]])


def test_the_report_tables_are_the_fields_with_a_cell(rows):
    summary = summarize(rows, "yolov8n")
    header, body = report.summary_table(summary, nc=5)
    assert header[:5] == ["model", "params (M, fused, 5 classes)", "GFLOPs", "torch ms p50/p90", "ORT ms p50/p90"]
    assert header[-4:] == ["Δ mAP50-95 [95% CI]", "P(better) [95% CI]", "paired Δ (same seed)", "verdict"]
    assert body[0][:5] == ["yolov8n", "3.000", "8.250", "20.5/22.2", "10.0/11.5"] and body[0][-2:] == ["", "baseline"]
    assert body[1][-1].startswith(summary[1].verdict + ", p_Holm ")
    header, body = report.run_table(rows)
    assert header == ["model", "seed", "mAP50", "mAP50-95", "precision", "recall", "train s"]
    assert body[1] == ["yolov8n", "1", "0.2200", "0.1100", "0.500", "0.400", "12"]


def test_the_docs_column_tables_are_generated_from_the_fields(tmp_path):
    text = DOC.read_text()
    for name, block in doc_blocks().items():
        assert block in text, (f"docs/compare.md's {name} table is not the rows' fields: run python -c \"from pathlib "
                               "import Path; from yoloattn.compare.rows import update_doc; "
                               "update_doc(Path('docs/compare.md'))\"")
    every = {c for row_type in (ResultRow, SummaryRow) for c in columns(row_type)}
    assert all(f"`{c}`" in text for c in every)
    stale = tmp_path / "compare.md"
    stale.write_text(text.replace("| `seed` | training seed |", "| `seed` | an old text |"))
    assert update_doc(stale) and stale.read_text() == text and not update_doc(stale)


def test_a_cost_reads_back_from_its_cache_dict_and_an_older_dict_is_measured_again():
    measured = cost()
    assert CostRow.from_dict(dataclasses.asdict(measured)) == measured
    older = dataclasses.asdict(measured)
    del older["peak_mem_mb"]
    assert CostRow.from_dict(older) is None
    assert CostRow.from_dict({**dataclasses.asdict(measured), "watts": 3.0}) is None


@pytest.fixture
def context(rows, tmp_path) -> report.ReportContext:
    from yoloattn.compare import CompareSettings

    summary = summarize(rows, "yolov8n")
    images = []
    for name in ("pareto.png", "curves.png", "heatmaps.png"):
        images.append(tmp_path / name)
        images[-1].write_bytes(b"\x89PNG not really")
    return report.ReportContext(
        title="yolov8n + attention modules on a test", settings=CompareSettings(base="yolov8n", modules=("iRMB",)),
        summary=summary, rows=rows, problems=[], summary_notes=report.power_lines(summary), data_yaml="data.yaml",
        eval_split="test", data_report=None, where="sppf", nc=5, end_to_end=False, matmul_peak=55.5,
        latency_machine="host: cpu", machine="cpu, 2 CPU cores", versions={"yoloattn": "0"},
        command="yoloattn compare --base yolov8n", plots=images[:2], heatmaps=images[2])


def test_markdown_and_html_format_the_same_sections_in_the_same_order(context, tmp_path):
    sections = report.sections(context)
    titles = [s.title for s in sections if s.title]
    assert titles == ["Summary", "Runs left out or flagged", "Module × placement", "AP by object size", "Setup", "Plots",
                      "Where the models look", "Runs", "Notes"]
    markdown = report.write_markdown(tmp_path / "report.md", context).read_text()
    page = report.write_html(tmp_path / "report.html", context).read_text()
    assert [line[3:] for line in markdown.splitlines() if line.startswith("## ")] == titles
    assert re.findall(r"<h2>(.*?)</h2>", page) == [html.escape(t) for t in titles]
    assert markdown.startswith(f"# {context.title}\n\n## Summary\n\n| model | params (M, fused, 5 classes) |")
    assert "![heatmaps](heatmaps.png)" in markdown and page.count('src="data:image/png;base64,') == 3
    assert markdown.endswith("\n\nReproduce (reuses finished runs): `yoloattn compare --base yolov8n`\n")
    assert "<p>Reproduce (reuses finished runs): <code>yoloattn compare --base yolov8n</code></p>" in page
    for section in sections:  # every table's cells and every item reach both formats
        for cell in [*(section.table[0] if section.table else []), *section.items]:
            assert cell in markdown and html.escape(cell) in page
    skipped = dataclasses.replace(context, heatmaps=None, heatmaps_skipped="no weights here")
    markdown = report.write_markdown(tmp_path / "report.md", skipped).read_text()
    assert "## Where the models look\n\nNot drawn: no weights here\n" in markdown


def test_peak_mem_mb_is_one_field_that_reaches_both_csvs_the_summary_table_and_the_docs(rows, tmp_path):
    """The proof of the rows' promise: peak_mem_mb (measure.py's batch-1 inference activation memory, MiB) is a
    report column because of its one CostRow field and its formatter, nothing else."""
    (peak,) = [f for f in dataclasses.fields(CostRow) if f.name == "peak_mem_mb"]
    summary = summarize(rows, "yolov8n")
    for name, row_type, written in (("results.csv", ResultRow, rows), ("summary.csv", SummaryRow, summary)):
        header, body = read_csv(report.write_csv(tmp_path / name, row_type, written))
        assert "peak_mem_mb" in header and tuple(header) == columns(row_type)
        assert [line[header.index("peak_mem_mb")] for line in body] == [f"{r.cost.peak_mem_mb:.6g}" for r in written]
    header, body = report.summary_table(summary, nc=5)
    cell = column_spec(peak).cells["summary"]
    assert header[header.index("ORT ms p50/p90") + 1] == cell.header == "inference peak MiB"
    assert [line[header.index(cell.header)] for line in body] == ["45.7", "46.7"]
    assert "| `peak_mem_mb` | peak MiB of one batch-1 PyTorch inference pass" in DOC.read_text()
    assert "not training memory" in column_spec(peak).doc
