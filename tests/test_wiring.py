"""Wiring checks of model YAMLs: unused outputs, head strides, Concat strides, and `yoloattn variant`'s warnings."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

import yoloattn  # noqa: F401  (registers our YAML names, e.g. iRMB, with parse_model)
from yoloattn import zoo
from yoloattn.cli import main
from yoloattn.integration import UnknownModuleError
from yoloattn.integration.wiring import WiringError, WiringIssue, check_wiring, declared_levels, report_wiring

IMGSZ = 64  # enough for P6 (a 1x1 map), and ~10x faster than the 256 of Ultralytics' stride probe

STOCK = [
    "v8/yolov8.yaml", "v8/yolov8-p2.yaml", "v8/yolov8-p6.yaml", "v8/yolov8-ghost.yaml", "v8/yolov8-ghost-p2.yaml",
    "v8/yolov8-ghost-p6.yaml", "v8/yolov8-seg.yaml", "v8/yolov8-seg-p6.yaml", "v8/yolov8-pose.yaml",
    "v8/yolov8-pose-p6.yaml", "v8/yolov8-obb.yaml",
    "v8/yolov8-world.yaml", "v8/yolov8-worldv2.yaml",  # text-guided rows: ImagePoolingAttn feeds the text path
    "v9/yolov9t.yaml", "v9/yolov9s.yaml", "v9/yolov9m.yaml", "v9/yolov9c.yaml", "v9/yolov9e.yaml",
    "v9/yolov9c-seg.yaml", "v9/yolov9e-seg.yaml",
    "11/yolo11.yaml", "11/yolo11-seg.yaml", "11/yolo11-pose.yaml", "11/yolo11-obb.yaml",
]



@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # The probes are tiny; on a shared 2-core machine torch's thread pool only spins (4x slower here).
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


SPPF_ROW = "  - [-1, 1, SPPF, [1024, 5]] # 9\n"


def _scale_n(name: str) -> str:
    """yolov8-p2.yaml -> yolov8n-p2.yaml, yolo11-mlla-psa.yaml -> yolo11n-mlla-psa.yaml; v9 files have no scales."""
    return re.sub(r"^(yolov8|yolo11)(?=[-.])", r"\1n", name)


def _yolov8_text() -> str:
    return (zoo.stock_models_dir() / "v8/yolov8.yaml").read_text()


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _edit(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, old  # the stock file changed: the edit would silently test nothing
    return text.replace(old, new)


def _kinds(issues: list[WiringIssue]) -> list[tuple[int, str]]:
    return [(issue.row, issue.kind) for issue in issues]


# ------------------------------------------------------------------------------ files that are right


@pytest.mark.parametrize("relative", STOCK, ids=lambda r: Path(r).stem)
def test_stock_ultralytics_yamls_have_no_issue(relative):
    path = zoo.stock_models_dir() / relative
    issues = check_wiring(str(path.with_name(_scale_n(path.name))), imgsz=IMGSZ)
    assert issues == [], [str(i) for i in issues]


@pytest.mark.parametrize("name", zoo.names())
def test_bundled_zoo_yamls_have_no_issue(name):
    issues = check_wiring(zoo.path(_scale_n(name)), imgsz=IMGSZ)
    assert issues == [], [str(i) for i in issues]


def test_head_levels_come_from_the_row_comment():
    models = zoo.stock_models_dir()
    assert declared_levels(models / "v8/yolov8.yaml") == (3, 4, 5)
    assert declared_levels(models / "v8/yolov8-p2.yaml") == (2, 3, 4, 5)
    assert declared_levels(models / "v8/yolov8-pose-p6.yaml") == (3, 4, 5, 6)
    assert declared_levels(models / "v9/yolov9e-seg.yaml") == (3, 4, 5)  # "# Segment (P3, P4, P5)", with a space


# ------------------------------------------------------------------------------ files that are wrong


def test_row_inserted_without_renumbering_warns_with_rows(tmp_path):
    # The brief's example: iRMB inserted after SPPF, the head's `from` indices left as they were.
    path = _write(tmp_path, "yolov8n.yaml", _edit(_yolov8_text(), SPPF_ROW, SPPF_ROW + "  - [-1, 1, iRMB, [1024]]\n"))
    issues = check_wiring(str(path), imgsz=IMGSZ)
    assert "unused-output" in {i.kind for i in issues}
    unused = next(i for i in issues if i.kind == "unused-output")
    assert unused.row == 22 and 23 in unused.rows  # the last C2f; the Detect at row 23 reads row 21 instead
    assert str(unused).startswith("row 22: ") and "did you mean 22" in unused.message
    assert "renumbered" in unused.message
    assert not any(i.blocking for i in issues)  # it builds: the danger is that it builds silently


def test_concat_of_different_strides_is_one_issue_not_a_traceback(tmp_path):
    # Row 11 should join the upsampled P5 (stride 16) with row 6 (P4, stride 16), not row 4 (P3, stride 8).
    text = _edit(_yolov8_text(), "[[-1, 6], 1, Concat, [1]]", "[[-1, 4], 1, Concat, [1]]")
    issues = check_wiring(str(_write(tmp_path, "yolov8n.yaml", text)), imgsz=IMGSZ)
    assert _kinds(issues) == [(11, "concat-strides")]
    issue = issues[0]
    assert issue.blocking and set(issue.rows) == {11, 10, 4}
    assert "row 10 (nn.Upsample, stride 16)" in issue.message and "row 4 (C2f, stride 8)" in issue.message
    assert "did you mean row 6 instead of 4" in issue.message
    assert "\n" not in issue.message


def test_detect_at_p2_p4_in_a_p3_p5_file(tmp_path):
    text = _edit(_yolov8_text(), "[[15, 18, 21], 1, Detect", "[[2, 15, 18], 1, Detect")
    issues = check_wiring(str(_write(tmp_path, "yolov8n.yaml", text)), imgsz=IMGSZ)
    head = [i for i in issues if i.kind == "head-strides"]
    assert len(head) == 1 and head[0].row == 22 and set(head[0].rows) == {22, 2, 15, 18}
    assert "strides 8, 16, 32" in head[0].message and "(stride 4)" in head[0].message
    assert "# Detect(P3, P4, P5)" in head[0].message  # says where the expectation came from
    assert (21, "unused-output") in _kinds(issues)  # the P5 block nobody reads any more


def test_the_comment_decides_the_levels(tmp_path):
    # The same P2-P4 head is right once the row says so: the comment is read, not a fixed 8/16/32.
    text = _edit(_yolov8_text(), "[[15, 18, 21], 1, Detect, [nc]] # Detect(P3, P4, P5)",
                 "[[2, 15, 18], 1, Detect, [nc]] # Detect(P2, P3, P4)")
    issues = check_wiring(str(_write(tmp_path, "yolov8n.yaml", text)), imgsz=IMGSZ)
    assert _kinds(issues) == [(21, "unused-output")]
    assert check_wiring(str(_write(tmp_path, "yolov8n-b.yaml", text)), imgsz=IMGSZ, levels=(3, 4, 5))[-1].kind == \
        "head-strides"


def test_head_inputs_out_of_order(tmp_path):
    text = _edit(_yolov8_text(), "[[15, 18, 21], 1, Detect", "[[18, 15, 21], 1, Detect")
    issues = check_wiring(str(_write(tmp_path, "yolov8n.yaml", text)), imgsz=IMGSZ)
    assert _kinds(issues) == [(22, "head-strides")]
    assert "not strictly increasing" in issues[0].message and "[15, 18, 21]" in issues[0].message


def test_from_pointing_forward_is_reported_not_raised(tmp_path):
    text = _edit(_yolov8_text(), "[[15, 18, 21], 1, Detect", "[[15, 18, 25], 1, Detect")
    issues = check_wiring(str(_write(tmp_path, "yolov8n.yaml", text)), imgsz=IMGSZ)
    assert _kinds(issues) == [(22, "bad-from")] and "25" in issues[0].message


def test_dict_input_is_left_alone_and_build_errors_propagate():
    from ultralytics.nn.tasks import yaml_model_load

    d = yaml_model_load("yolov8n.yaml")
    snapshot = repr(d)
    assert check_wiring(d, imgsz=IMGSZ) == []
    assert repr(d) == snapshot
    d["backbone"][2][2] = "NoSuchBlock"
    with pytest.raises(UnknownModuleError):  # not a wiring problem: the caller decides
        check_wiring(d, imgsz=IMGSZ)


# ------------------------------------------------------------------------------------------------ CLI


def test_report_wiring_prints_warnings_and_raises_one_line(capsys, tmp_path):
    inserted_text = _edit(_yolov8_text(), SPPF_ROW, SPPF_ROW + "  - [-1, 1, iRMB, [1024]]\n")
    inserted = _write(tmp_path, "mine-n.yaml", inserted_text)
    issues = report_wiring(str(inserted), label="mine", imgsz=IMGSZ)
    err = capsys.readouterr().err
    assert issues and err.startswith("warning: mine: row 22: output of row 22 (C2f) is never used")

    bad_text = _edit(_yolov8_text(), "[[-1, 6], 1, Concat, [1]]", "[[-1, 4], 1, Concat, [1]]")
    bad = _write(tmp_path, "bad-n.yaml", bad_text)
    with pytest.raises(WiringError, match=r"^bad-n\.yaml would not build: row 11: Concat joins maps of different"):
        report_wiring(str(bad), imgsz=IMGSZ)
    assert capsys.readouterr().err == ""  # the error is not repeated as a warning
    assert report_wiring("weights/last.pt") == []  # a checkpoint was built already


def test_variant_prints_wiring_warnings(capsys, tmp_path):
    base = _write(tmp_path, "mine-n.yaml", _edit(_yolov8_text(), SPPF_ROW, SPPF_ROW + "  - [-1, 1, iRMB, [1024]]\n"))
    out = tmp_path / "mine-n-mqa.yaml"
    code = main(["variant", str(base), "--module", "mqa", "-o", str(out)])
    stdout, stderr = capsys.readouterr()
    assert code == 0 and out.is_file() and "wrote" in stdout
    warnings = [line for line in stderr.splitlines() if line.startswith("warning: ")]
    assert warnings and all(re.match(r"warning: row \d+: ", line) for line in warnings), stderr
    assert any(line.startswith("warning: row 22: output of row 22 (C2f) is never used") for line in warnings)


def test_variant_of_a_clean_base_prints_no_warning(capsys, tmp_path):
    code = main(["variant", "yolov8n", "--module", "irmb", "--where", "head", "-o", str(tmp_path / "v8n-h.yaml")])
    _, stderr = capsys.readouterr()
    assert code == 0 and "warning:" not in stderr


def test_variant_of_a_concat_mismatch_is_one_line(capsys, tmp_path):
    text = _edit(_yolov8_text(), "[[-1, 6], 1, Concat, [1]]", "[[-1, 4], 1, Concat, [1]]")
    base = _write(tmp_path, "bad-n.yaml", text)
    out = tmp_path / "bad-n-mqa.yaml"
    code = main(["variant", str(base), "--module", "mqa", "--where", "head", "-o", str(out)])
    _, stderr = capsys.readouterr()
    lines = stderr.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "Traceback" not in stderr, stderr
    # rows of the base file (the one to fix), although the head placement renumbers the variant's rows
    assert lines[0].startswith(f"yoloattn variant: error: {base} would not build: row 11: Concat joins")
    assert not out.exists()


def test_info_warns_and_refuses_in_one_line(capsys, tmp_path):
    text = _edit(_yolov8_text(), "[[-1, 6], 1, Concat, [1]]", "[[-1, 4], 1, Concat, [1]]")
    bad = _write(tmp_path, "bad-n.yaml", text)
    assert main(["info", str(bad), "--imgsz", "64"]) == 2
    _, stderr = capsys.readouterr()
    assert stderr.strip().count("\n") == 0 and "row 11: Concat joins" in stderr, stderr


def test_compare_checks_the_wiring_of_a_user_base_before_training(capsys, tmp_path):
    text = _edit(_yolov8_text(), "[[-1, 6], 1, Concat, [1]]", "[[-1, 4], 1, Concat, [1]]")
    bad = _write(tmp_path, "bad-n.yaml", text)
    out = tmp_path / "cmp"
    code = main(["compare", "--preset", "tiny", "--base", str(bad), "--modules", "mqa", "--epochs", "1",
                 "--out", str(out)])
    _, stderr = capsys.readouterr()
    assert code == 2 and "would not build: row 11: Concat joins" in stderr, stderr
    assert not (out / "runs").exists()
