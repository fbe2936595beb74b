"""Where does it help: --where lists and 'all', one baseline for every module x placement, the grid in
the report, resuming across changed lists."""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
from pathlib import Path

import pytest

from yoloattn.cli import main
from yoloattn.compare.report import placement_table
from yoloattn.compare.rows import CostRow, SummaryRow
from yoloattn.compare import CompareError, CompareSettings, resolve
from yoloattn.compare.plan import plan_variants
from yoloattn.compare.resolve import parse_where
from yoloattn.zoo import VariantError

ARGS = ["compare", "--preset", "tiny", "--base", "yolo11n", "--modules", "iRMB", "--epochs", "1", "--seeds", "1",
        "--imgsz", "64"]


def test_where_lists_keep_stride_lists_with_their_rule():
    assert parse_where(None) is None
    assert parse_where("csp") == ("csp",)
    assert parse_where("csp, psa ,head,psa") == ("csp", "psa", "head")
    assert parse_where("csp@16,32,head") == ("csp@16,32", "head")
    assert parse_where(("csp", "psa,sppf")) == ("csp", "psa", "sppf")
    assert parse_where("csp,ALL") == ("all",)
    assert parse_where("CSP@32,16,Head") == ("csp@16,32", "head")  # any case; one name per stride set
    with pytest.raises(CompareError, match="at least one placement rule"):
        parse_where(" , ")


def plan(**settings):
    """The variants a comparison with these settings plans (through resolve, as run_compare does)."""
    return plan_variants(resolve(CompareSettings(**settings)))


def test_all_takes_every_rule_the_base_has_and_says_what_it_skipped():
    planned = plan(base="yolov8n", modules=("iRMB", "MLLA"), where="all")
    assert planned.rules == ("csp", "sppf", "head")
    assert [(m, w) for m, w, _, _ in planned.variants] == [
        ("iRMB", "csp"), ("MLLA", "csp"), ("iRMB", "sppf"), ("MLLA", "sppf"), ("iRMB", "head"), ("MLLA", "head")]
    # one line per rule of another family, each naming the family it is for
    assert [line.split(":")[0] for line in planned.skipped] == [
        "placement psa skipped", "placement a2c2f skipped", "placement aifi skipped"]
    assert "no C2PSA or PSA" in planned.skipped[0] and "YOLO12" in planned.skipped[1] and "RT-DETR" in planned.skipped[2]
    eleven = plan(base="yolo11n", modules=("MLLA",), where="all")
    assert eleven.rules == ("csp", "psa", "sppf", "head") and len(eleven.skipped) == 2
    twelve = plan(base="yolo12n", modules=("MLLA",), where="all")
    assert twelve.rules == ("a2c2f", "head")


def test_inapplicable_rules_are_skipped_in_lists_and_refused_alone():
    planned = plan(base="yolov8n", modules=("iRMB",), where="psa,head")
    assert planned.rules == ("head",) and "psa" in planned.skipped[0]
    with pytest.raises(VariantError, match="no placement of --where psa,mmqa applies to yolov8n"):
        plan(base="yolov8n", modules=("iRMB",), where=("psa", "mmqa"))
    with pytest.raises(VariantError, match="no C2PSA"):
        plan(base="yolov8n", modules=("iRMB",), where="psa")  # one rule: as before
    with pytest.raises(VariantError, match="unknown placement 'cps'"):
        plan(base="yolov8n", modules=("iRMB",), where="cps,head")  # a typo is no skip


def _summary(model: str, module: str, where: str, delta: float, verdict: str = "") -> SummaryRow:
    cost = CostRow(params=1, gflops=1.0, latency_p50_ms=1.0, latency_p90_ms=1.0, latency_ort_p50_ms=1.0,
                   latency_ort_p90_ms=1.0, peak_mem_mb=1.0, nc=5, efficiency=0.1, efficiency_ort=0.1,
                   matmul_peak_gflops_s=1.0, threads=1, machine="test")
    return SummaryRow(model=model, module=module, where=where, seeds=1, planned_seeds=1, cost=cost, map50_mean=0.2,
                      map50_std=None, map50_95_mean=0.1, map50_95_std=None, map50_95_small_mean=None,
                      map50_95_small_std=None, map50_95_medium_mean=None, map50_95_medium_std=None,
                      map50_95_large_mean=None, map50_95_large_std=None, delta_map50_95=delta, verdict=verdict)


def test_placement_grid_marks_the_best_cell_and_missing_pairs():
    summary = [
        _summary("b", "", "", 0.0),
        _summary("x", "iRMB", "csp", 0.01, "not shown"),
        _summary("y", "iRMB", "psa", 0.03, "better"),
        _summary("z", "MLLA", "csp", -0.02, "not shown"),
    ]
    header, body = placement_table(summary)
    assert header[1:] == ["csp", "psa"]
    assert body == [["iRMB", "+0.010, not shown", "+0.030, better ★"], ["MLLA", "-0.020, not shown", "—"]]
    assert placement_table(summary[:1]) is None
    tied = [summary[0], dataclasses.replace(summary[1], delta_map50_95=0.03, verdict="better"), summary[2]]
    assert "★" not in str(placement_table(tied)[1])
    noise = [summary[0], dataclasses.replace(summary[2], verdict="not shown (could detect Δ ≥ 0.09)"), summary[3]]
    assert "★" not in str(placement_table(noise)[1])  # the largest Δ among noise is no winner


def _compare(out: Path, where: str) -> str:
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main([*ARGS, "--where", where, "--out", str(out)])
    assert code == 0, stdout.getvalue()[-3000:]
    return stdout.getvalue()


def test_one_baseline_for_every_placement_and_resume_across_lists(tmp_path):
    out = tmp_path / "where"
    first = _compare(out, "csp,psa,head")
    rows = list(csv.DictReader(open(out / "results.csv", newline="")))
    assert [(r["model"], r["module"], r["where"]) for r in rows] == [
        ("yolo11n", "", ""), ("yolo11n-irmb-csp", "iRMB", "csp"), ("yolo11n-irmb-psa", "iRMB", "psa"),
        ("yolo11n-irmb-head", "iRMB", "head")]
    assert "runs: 4 (0 already finished, 4 to train)" in first
    report = (out / "report.md").read_text()
    assert "## Module × placement" in report and "| iRMB |" in report
    summary = list(csv.DictReader(open(out / "summary.csv", newline="")))
    assert {(s["module"], s["where"]) for s in summary} == {("", ""), ("iRMB", "csp"), ("iRMB", "psa"), ("iRMB", "head")}

    again = _compare(out, "csp,psa,head,sppf")  # one more placement: only its variant trains
    assert "runs: 5 (4 already finished, 1 to train)" in again
    rows = list(csv.DictReader(open(out / "results.csv", newline="")))
    assert {r["where"] for r in rows} == {"", "csp", "psa", "head", "sppf"}


def test_cli_reports_a_skipped_placement_in_one_line(tmp_path, capsys):
    code = main(["compare", "--preset", "tiny", "--base", "yolov8n", "--modules", "iRMB", "--where", "csp,psa",
                 "--dry-run", "--out", str(tmp_path / "o")])
    out = capsys.readouterr().out
    assert code == 0
    lines = [line for line in out.splitlines() if " skipped: " in line]
    assert len(lines) == 1 and lines[0].startswith("placement psa skipped: cannot apply placement 'psa'")
    code = main(["compare", "--preset", "tiny", "--base", "yolov8n", "--modules", "iRMB", "--where", "psa,mmqa",
                 "--dry-run", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "no placement of --where psa,mmqa applies" in err[0]
