"""Deployment: the runtime table, the export matrix (a representative slice; benchmarks/deploy.py runs the full
grid for docs/deploy.md), bench per runtime, compare's --runtimes and --int8, and the one-line refusals."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest

from yoloattn import bench
from yoloattn.cli import main
from yoloattn.deploy import RUNTIMES, check_cell, make_checkpoint, output_error, runtime
from yoloattn.deploy.matrix import FLOOR_FACTOR, MARGIN, SIZES
from yoloattn.deploy.export import check_format
from yoloattn.errors import YoloattnError

ROOT = Path(__file__).resolve().parents[1]
EXPORTED = tuple(name for name, row in RUNTIMES.items() if row.format)  # onnxruntime, openvino, torchscript, ncnn


def test_runtime_table_is_what_bench_and_the_cli_offer():
    assert bench.BACKENDS == tuple(RUNTIMES)
    assert runtime("ort").name == runtime("ONNX").name == "onnxruntime" and runtime("ov").name == "openvino"
    with pytest.raises(YoloattnError, match=r"unknown runtime 'onxx'; choose from torch, onnxruntime"):
        runtime("onxx")
    assert set(EXPORTED) == {"onnxruntime", "openvino", "torchscript", "ncnn"}
    assert all(RUNTIMES[name].available() for name in RUNTIMES), "make test installs the deploy extra"


def test_output_error_is_relative_for_pixels_and_absolute_for_scores():
    ref = np.zeros((1, 6, 10))
    ref[:, :4] = 640.0  # boxes in pixels
    ref[:, 4:] = 0.5  # class scores
    got = ref.copy()
    got[0, 0, 3] += 0.064  # 1e-4 of the box channel's scale
    assert output_error(got, ref) == pytest.approx(1e-4)
    got = ref.copy()
    got[0, 5, 0] += 1e-3  # a score off by 1e-3 is 1e-3, not 1e-3 / 640
    assert output_error(got, ref) == pytest.approx(1e-3)
    with pytest.raises(ValueError, match="shape"):
        output_error(got[:, :5], ref)


def test_a_cell_matches_only_within_its_bound_and_when_a_wrong_attention_would_show():
    from yoloattn.deploy.matrix import judge

    assert judge(5e-5, 1e-6, 1e-2) == ("matches", "")  # within 1e-4, and a 1 % attention error shows 100x above
    assert judge(8e-4, 1e-4, 1e-1)[0] == "matches"  # above 1e-4 but within FLOOR_FACTOR x PyTorch fp32's own
    status, message = judge(3e-3, 1e-4, 1e-1)
    assert status == "differs" and message == "error 3.0e-03 > 1.0e-03 (PyTorch fp32: 1.0e-04)"
    status, message = judge(5e-5, 1e-4, 4e-3)  # bound 1e-3, but a 1 % error moves the output by only 4e-3
    assert status == "insensitive" and "moves the output by 4.0e-03, under 5x the bound 1.0e-03" in message
    assert judge(5e-5, 1e-6, None)[0] == "matches"  # no attention module (a baseline): nothing to be sensitive to


@pytest.mark.parametrize("fmt, pattern", [
    ("onx", r"unknown export format 'onx': did you mean format=onnx\?"),
    ("tflite", r"format=tflite needs litert-torch, which is not installed here: pip install litert-torch "
               r"\(yoloattn passes tflite through unverified; it installs and verifies onnx, openvino"),
])
def test_export_refuses_unknown_or_unavailable_formats_in_one_line(fmt, pattern, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = main(["export", "yolov8n", f"format={fmt}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and re.search(pattern, err[0]), err
    assert not list(tmp_path.iterdir())  # refused before anything was built or written
    assert check_format("openvino") is RUNTIMES["openvino"]


def test_int8_export_needs_calibration_data_and_takes_the_embedded_dataset(capsys, tmp_path, monkeypatch):
    """Without data= Ultralytics would fall back to coco8 and try to download it (a 109-line traceback offline);
    data=embedded is resolved as train resolves it."""
    monkeypatch.chdir(tmp_path)
    for int8 in ("quantize=8", "quantize=int8", "int8=True"):  # Ultralytics' spellings of static INT8
        code = main(["export", "yolov8n", "format=openvino", int8, "imgsz=64"])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and "INT8 export calibrates on images: add data=DATA.yaml" in err[0], err
    assert not list(tmp_path.iterdir())  # (docs/deploy.md's INT8 export with data=embedded:tiny runs in test_docs)


# ------------------------------------------------------------------------------------------------ the matrix
# every built-in module at its default placement (csp on YOLOv8, the PSA block on YOLO11), every exported runtime,
# (ONNX Runtime and OpenVINO through their dynamic export at 64x96 and 96x96 (h x w), TorchScript and ncnn static at
# 64x96); ONNX also at opset 11 (TensorRT 8 and NPU toolchains) on the YOLO11 models


@pytest.mark.slow
@pytest.mark.parametrize("name", [f"{base}-{module}-{rule}" for base, rule in (("yolov8n", "csp"), ("yolo11n", "psa"))
                                  for module in ("mqa", "acmix", "mlla", "irmb")])
def test_export_matrix_every_runtime_matches_pytorch(name, tmp_path):
    checkpoint = make_checkpoint(name, tmp_path / f"{name}.pt", nc=3)
    plan = [(r, None) for r in EXPORTED] + ([("onnxruntime", 11)] if name.startswith("yolo11") else [])
    # the slice: runtimes with dynamic shapes through their dynamic export at both sizes, the others static at the
    # non-square size (benchmarks/deploy.py checks static and dynamic exports at both sizes for the docs' grid)
    cells = [check_cell(checkpoint, r, tmp_path, sizes=SIZES if RUNTIMES[r].dynamic else SIZES[:1], opset=opset,
                        label=name, static=False) for r, opset in plan]
    bad = [f"{c.runtime}{'' if c.opset is None else f' opset {c.opset}'}: {c.status} {c.message}" for c in cells
           if not c.ok]
    assert not bad, bad
    assert all(c.error is not None and c.error <= max(1e-4, FLOOR_FACTOR * c.floor) for c in cells)
    assert all(c.sensitivity >= MARGIN * max(1e-4, FLOOR_FACTOR * c.floor) for c in cells)  # a real check
    assert {c.dynamic for c in cells if c.runtime in ("onnxruntime", "openvino")} == {True}
    assert {c.sizes for c in cells if c.runtime in ("onnxruntime", "openvino")} == {SIZES}


@pytest.mark.parametrize("name", ["yolov8n-mlla-csp", "yolo11n-acmix-psa"])
def test_matrix_models_are_sensitive_to_their_attention(name, tmp_path):
    """The matrix's random networks pass a wrong attention on to the head: a 1 % change of the attention modules'
    output moves the head's output by far more than the matrix tolerates, and measuring that leaves the model as
    it was."""
    import torch

    from yoloattn.deploy.matrix import TOLERANCE, attention_sensitivity
    from yoloattn.deploy.runtimes import reference_model

    model = reference_model(make_checkpoint(name, tmp_path / "m.pt", nc=3)).double()
    x = torch.rand(1, 3, 64, 96, generator=torch.Generator().manual_seed(0)).double()
    with torch.no_grad():
        before = model(x)[0].numpy()
        moved = attention_sensitivity(model, x)
        assert output_error(model(x)[0].numpy(), before) == 0.0  # the 1 % hooks are gone
    assert moved > MARGIN * TOLERANCE
    baseline = reference_model(make_checkpoint("yolov8n", tmp_path / "b.pt", nc=3)).double()
    assert attention_sensitivity(baseline, x) is None


_PLUGIN_CELLS = """
import json, sys
from pathlib import Path
from yoloattn.cli import main
from yoloattn.deploy import check_cell, make_checkpoint
out, plugin, runtimes = Path(sys.argv[1]), sys.argv[2], sys.argv[3].split(",")
cells = []
for module in ("channelgate", "timm_eca"):
    folder = out / module
    folder.mkdir(parents=True)
    assert main(["variant", "yolov8n", "--module", module, "--where", "sppf", "-o", str(folder / "v.yaml"),
                 "--plugin", plugin]) == 0
    checkpoint = make_checkpoint(folder / "v.yaml", folder / "v.pt", nc=2)
    cells += [check_cell(checkpoint, r, folder, sizes=((64, 96),), label=module).to_dict() for r in runtimes]
print("CELLS " + json.dumps(cells))
"""


@pytest.mark.slow
def test_plugin_and_timm_modules_export_to_every_runtime(tmp_path):
    """A user's plug-in module (tests/plugins/channel_gate.py) and a timm module, placed at the SPPF of YOLOv8
    (in a subprocess: a plug-in loaded here would stay registered for the rest of the session)."""
    import subprocess
    import sys

    plugin = str(ROOT / "tests" / "plugins" / "channel_gate.py")
    run = subprocess.run([sys.executable, "-c", _PLUGIN_CELLS, str(tmp_path), plugin, ",".join(EXPORTED)],
                         capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    cells = json.loads(run.stdout.rsplit("CELLS ", 1)[1])
    assert [(c["model"], c["runtime"]) for c in cells] == [(m, r) for m in ("channelgate", "timm_eca")
                                                            for r in EXPORTED]
    assert all(c["status"] == "matches" for c in cells), [(c["model"], c["runtime"], c["message"]) for c in cells]


# ------------------------------------------------------------------------------------------------ bench


@pytest.mark.slow
def test_bench_times_every_runtime_and_names_the_cpu(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = main(["bench", "yolov8n", "yolov8n-mqa-csp", "--imgsz", "64", "--backend", "all", "--iters", "3",
                 "--warmup", "1", "--threads", "1"])
    out = capsys.readouterr().out
    assert code == 0, out
    rows = [line.split() for line in out.splitlines() if line.startswith("yolov8n")]
    assert [r[1] for r in rows] == list(RUNTIMES) * 2
    assert all(float(r[4]) > 0 for r in rows)
    assert re.search(r"CPU: .+, (AVX2|AVX-512|AMX|AVX|SSE4\.2|NEON|SVE)[^,]*, \d+ cores", out), out[-400:]
    assert "1 thread(s)" in out
    assert not list(tmp_path.iterdir())  # exports live in a temporary folder


# ------------------------------------------------------------------------------------------------ compare


@pytest.fixture(scope="module")
def int8_compare(tiny_data, tmp_path_factory):
    """A tiny comparison with every installed runtime timed (the default) and OpenVINO INT8."""
    import os

    out = tmp_path_factory.mktemp("int8") / "c"
    argv = ["compare", "--preset", "tiny", "--base", "yolov8n", "--modules", "mqa", "--where", "csp", "--epochs", "1",
            "--seeds", "1", "--imgsz", "64", "--int8", "openvino", "--out", str(out)]
    saved = os.environ.pop("YOLOATTN_RUNTIMES", None)  # the default: every installed runtime
    try:
        assert main(argv) == 0
    finally:
        if saved is not None:
            os.environ["YOLOATTN_RUNTIMES"] = saved
    return out, argv


@pytest.mark.slow
def test_compare_times_every_installed_runtime_by_default(int8_compare):
    out, _ = int8_compare
    rows = list(csv.DictReader((out / "latency.csv").open()))
    assert [(r["model"], r["runtime"]) for r in rows] == [(m, n) for m in ("yolov8n", "yolov8n-mqa-csp")
                                                          for n in RUNTIMES]
    assert all(float(r["p90_ms"]) >= float(r["p50_ms"]) > 0 for r in rows)
    assert {r["ratio_to_baseline"] for r in rows if r["model"] == "yolov8n"} == {"1"}
    assert all("AVX" in r["cpu"] or "NEON" in r["cpu"] or "SSE" in r["cpu"] for r in rows)
    report = (out / "report.md").read_text()
    assert "## Latency per runtime" in report and "| yolov8n-mqa-csp | ncnn |" in report


@pytest.mark.slow
def test_compare_int8_writes_columns_report_and_reuses_quantizations(int8_compare, capsys):
    out, argv = int8_compare
    rows = list(csv.DictReader((out / "int8.csv").open()))
    assert [(r["model"], r["seed"], r["runtime"]) for r in rows] == [("yolov8n", "0", "openvino"),
                                                                     ("yolov8n-mqa-csp", "0", "openvino")]
    for r in rows:
        assert float(r["delta_int8"]) == pytest.approx(float(r["map50_95_int8"]) - float(r["map50_95_fp32"]))
        assert int(r["calibration_images"]) == 16 and float(r["latency_int8_p50_ms"]) > 0
    summary = list(csv.DictReader((out / "int8_summary.csv").open()))
    assert [s["verdict"] for s in summary] == ["baseline", "n/a (1 seed)"]
    report = (out / "report.md").read_text()
    assert "## INT8" in report and "## Which block costs the INT8 accuracy" in report
    blocks = list(csv.DictReader((out / "int8_blocks.csv").open()))
    assert [(b["model"], b["block"], b["modules"]) for b in blocks] == [("yolov8n-mqa-csp", "C2f_MQA", "MobileMQA")]
    assert len(list(out.glob("runs/*/int8-blocks-*.json"))) == 1  # the baseline has no attention block to cache
    cached = sorted(out.glob("runs/*/int8-openvino-*.json"))
    assert len(cached) == 2 and all(json.loads(p.read_text())["runtime"] == "openvino" for p in cached)
    capsys.readouterr()
    assert main(argv + ["--runtimes", "torch,onnxruntime,openvino,torchscript,ncnn"]) == 0  # same as the default
    again = capsys.readouterr().out
    assert "export fp32 and INT8" not in again and "measuring costs" not in again  # both reused
    assert "per-block sensitivity" not in again
    assert "mAP50-95" in again and "INT8" in again


def test_int8_summary_says_which_variant_loses_more():
    from yoloattn.compare.int8 import int8_summary
    from yoloattn.compare.rows import Int8Row

    def row(model, seed, fp32, int8):
        return Int8Row(model=model, seed=seed, runtime="openvino", map50_95_fp32=fp32, map50_95_int8=int8,
                       delta_int8=int8 - fp32, retention=int8 / fp32, map50_fp32=fp32, map50_int8=int8,
                       latency_int8_p50_ms=1.0, latency_fp32_p50_ms=2.0, calibration_images=128)

    rows = [row("base", s, 0.50 + 0.01 * s, 0.49 + 0.01 * s + 0.001 * (s % 2)) for s in range(5)]
    rows += [row("fragile", s, 0.52 + 0.01 * s, 0.40 + 0.01 * s + 0.002 * (s % 2)) for s in range(5)]
    rows += [row("same", s, 0.51 + 0.01 * s, 0.50 + 0.01 * s + 0.001 * ((s + 1) % 2)) for s in range(5)]
    summary = {s.model: s for s in int8_summary(rows, "base", ["base", "fragile", "same"])}
    assert summary["base"].verdict == "baseline"
    assert summary["fragile"].verdict == "loses more than the baseline"
    assert summary["fragile"].drop_delta == pytest.approx(-0.11, abs=2e-3)
    assert summary["same"].verdict.startswith("not shown")
    assert summary["fragile"].retention_mean == pytest.approx(np.mean([r.retention for r in rows[5:10]]))


@pytest.mark.parametrize("argv, pattern", [
    (["--int8", "ncnn"], r"--int8 ncnn: Ultralytics has no post-training INT8 export for ncnn; choose from openvino, "
                         r"onnxruntime"),
    (["--runtimes", "tensorrt"], r"--runtimes: unknown runtime 'tensorrt'; choose from torch, onnxruntime"),
])
def test_compare_refuses_bad_runtimes_in_one_line(argv, pattern, capsys, tmp_path):
    code = main(["compare", "--preset", "tiny", "--out", str(tmp_path / "o"), *argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and re.search(pattern, err[0]), err


def test_deploy_doc_tables_are_generated_from_the_table_and_the_committed_run():
    import importlib.util

    from yoloattn.deploy.runtimes import runtimes_markdown

    doc = (ROOT / "docs" / "deploy.md").read_text()
    assert runtimes_markdown() in doc
    spec = importlib.util.spec_from_file_location("deploy_benchmark", ROOT / "benchmarks" / "deploy.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    data = json.loads(script.RESULTS.read_text())
    assert f"{script.MARK}\n{script.render_table(data)}\n<!-- end -->" in doc
    assert f"{script.LATENCY_MARK}\n{script.render_latency(data)}\n<!-- end -->" in doc
    assert f"{script.LITERT_MARK}\n{script.render_litert(data)}\n<!-- end -->" in doc
    grid = {(c["model"], c["runtime"]) for c in data["cells"] if c["opset"] is None}
    timed = {(r["model"], r["runtime"]) for r in data["latency"]["rows"] if r["model"] != r["base"]}
    assert grid <= timed, sorted(grid - timed)[:5]  # every converted cell has its latency ratio
    assert data["cells"] and {c["runtime"] for c in data["cells"]} == set(EXPORTED)
    int8, latency = script.render_demo()  # the committed demo comparison's own CSVs, through the report's tables
    assert f"{script.DEMO_INT8_MARK}\n{int8}\n<!-- end -->" in doc
    assert f"{script.DEMO_LATENCY_MARK}\n{latency}\n<!-- end -->" in doc


@pytest.mark.slow
def test_int8_sensitivity_command_names_each_attention_block(int8_compare, capsys, tmp_path):
    out, _ = int8_compare
    weights = next(out.glob("runs/yolov8n-mqa-csp-s0-*/train/weights/last.pt"))
    code = main(["int8-sensitivity", str(weights), "--data", "embedded:tiny", "--imgsz", "64", "--out",
                 str(tmp_path / "s")])
    text = capsys.readouterr().out
    assert code == 0, text
    assert re.search(r"^fp32 \d\.\d{4}, all INT8 \d\.\d{4} \([+-]\d\.\d{4}\) mAP50-95$", text, re.M), text
    assert re.search(r"^  layer +8 C2f_MQA +\(MobileMQA\): all but it INT8 \d\.\d{4} .*only it INT8", text, re.M)
    assert (tmp_path / "s" / "int8-only-8.onnx").is_file() and (tmp_path / "s" / "int8-all-but-8.onnx").is_file()


def test_int8_sensitivity_refuses_a_model_definition(capsys):
    code = main(["int8-sensitivity", "yolov8n-mqa-csp", "--data", "embedded:tiny"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "needs trained weights (a .pt checkpoint)" in err[0], err
