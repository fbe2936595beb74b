"""`yoloattn compare`: outputs, one row per model and seed, resume without retraining, keys, statistics."""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import re
import shutil
import time
from pathlib import Path

import pytest
import yaml

from yoloattn.cli import main
from yoloattn.compare import DEMO, CompareError, CompareSettings, parse_modules
from yoloattn.compare import settings as settings_module
from yoloattn.compare.plots import pareto_front
from yoloattn.compare.runner import plan_models, plan_runs, prepare_data
from yoloattn.compare.stats import compare_to_baseline, summarize, welch_p

MODELS = ["yolo11n", "yolo11n-mqa-psa", "yolo11n-acmix-psa", "yolo11n-mlla-psa", "yolo11n-irmb-psa"]
# The documented command with its default modules (all four, ACmix's 7x7 window on 2x2 P5 maps included).
ARGS = ["compare", "--preset", "tiny", "--base", "yolo11n", "--epochs", "1", "--seeds", "2", "--imgsz", "64"]


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def result_files(out: Path) -> dict[str, float]:
    return {p.parent.name: p.stat().st_mtime_ns for p in (out / "runs").glob("*/result.json")}


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    """One tiny comparison, then the same command again."""
    out = tmp_path_factory.mktemp("compare")
    capture = {}
    for attempt in ("first", "rerun"):
        stdout = io.StringIO()
        started = time.perf_counter()
        with contextlib.redirect_stdout(stdout):
            code = main([*ARGS, "--out", str(out)])
        capture[attempt] = (code, stdout.getvalue(), time.perf_counter() - started, result_files(out))
    return out, capture


def test_compare_writes_every_output(compared):
    out, capture = compared
    code, stdout, _, _ = capture["first"]
    assert code == 0, stdout
    for name in ("results.csv", "summary.csv", "report.md", "report.html", "pareto.png", "curves.png"):
        assert (out / name).stat().st_size > 0, name
    assert sorted(p.stem for p in (out / "models").glob("*.yaml")) == sorted(MODELS)
    assert f"report: {out / 'report.html'}" in stdout
    header = stdout.split("\nmodel ")[1].splitlines()[0]
    assert "mAP50-95" in header and "Δ > seed noise?" in header


def test_results_have_one_row_per_model_and_seed(compared):
    out, _ = compared
    rows = read_csv(out / "results.csv")
    assert sorted((r["model"], r["seed"]) for r in rows) == sorted((m, s) for m in MODELS for s in ("0", "1"))
    for r in rows:
        assert 0.0 <= float(r["map50_95"]) <= float(r["map50"]) <= 1.0
        assert int(r["params"]) > 2_000_000 and float(r["gflops"]) > 0 and r["epochs"] == "1" and r["imgsz"] == "64"
        assert float(r["latency_ms"]) > 0 and float(r["latency_ort_ms"]) > 0 and float(r["train_s"]) > 0
        assert Path(r["run_dir"]).name.startswith(f"{r['model']}-s{r['seed']}-{r['run_key']}")
    assert {r["module"] for r in rows} == {"", "MQA", "ACmix", "MLLA", "iRMB"} and {r["where"] for r in rows} == {"", "psa"}
    summary = read_csv(out / "summary.csv")
    assert [s["model"] for s in summary] == MODELS
    assert summary[0]["significant_map50_95"] == "baseline" and all(s["seeds"] == "2" for s in summary)
    for s in summary[1:]:
        assert s["significant_map50_95"] in ("yes", "no", "n/a (no spread)")


def test_run_results_and_curves_come_from_ultralytics(compared):
    out, _ = compared
    for result_path in (out / "runs").glob("*/result.json"):
        result = json.loads(result_path.read_text())
        assert len(result["curve"]) == 1 and "train/cls_loss" in result["curve"][0]
        args = yaml.safe_load((result_path.parent / "train" / "args.yaml").read_text())
        assert args["optimizer"] == "SGD" and args["lr0"] == 0.01 and args["batch"] == 8 and args["cls"] == 1.0
        assert args["val"] is False and args["amp"] is False and args["seed"] == result["seed"]
    run_data = yaml.safe_load((out / "data" / "run-data.yaml").read_text())
    assert run_data["val"] == run_data["test"]  # evaluated on the held-out test split
    assert Path(run_data["val"]).is_absolute() and run_data["val"].endswith("images/test")  # resolved for Ultralytics


def test_report_html_is_self_contained(compared):
    out, _ = compared
    html = (out / "report.html").read_text()
    assert html.count('src="data:image/png;base64,') == 2
    assert not re.search(r'src="(?!data:)', html) and "<link" not in html
    for model in MODELS:
        assert model in html and model in (out / "report.md").read_text()


def test_rerun_reuses_finished_runs(compared):
    _, capture = compared
    first_code, _, first_s, first_files = capture["first"]
    code, stdout, seconds, files = capture["rerun"]
    assert code == 0 and len(files) == 2 * len(MODELS) and files == first_files  # no result was rewritten
    assert f"{2 * len(MODELS)} already finished, 0 to train" in stdout and "started" not in stdout
    assert seconds < min(30.0, first_s / 2)


def test_interrupted_run_restarts_clean(compared, capsys):
    out, _ = compared
    victim = sorted((out / "runs").glob("yolo11n-mqa-psa-s1-*"))[0]
    (victim / "result.json").unlink()  # as if the worker was killed before it finished
    (victim / "partial-marker").write_text("left over")
    before = result_files(out)
    assert main([*ARGS, "--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert f"{2 * len(MODELS) - 1} already finished, 1 to train" in stdout and stdout.count("started ") == 1
    assert not (victim / "partial-marker").exists() and (victim / "result.json").is_file()
    after = result_files(out)
    assert {k: v for k, v in after.items() if k != victim.name} == before


def test_compare_says_what_it_measures_and_counts(compared):
    out, capture = compared
    _, stdout, _, _ = capture["first"]
    nc = len(yaml.safe_load((out / "data" / "run-data.yaml").read_text())["names"])
    lines = stdout.splitlines()
    measuring = [line for line in lines if line.startswith("measuring costs")]
    assert measuring[0].startswith(f"measuring costs of {len(MODELS)} model(s) at 64px")
    for i, model in enumerate(MODELS, 1):  # one line per model, an ETA once a model has been measured
        pattern = rf"measuring costs {i}/{len(MODELS)}: {model} \.\.\.( ETA \d+:\d\d)?"
        assert re.fullmatch(pattern, measuring[i]), measuring
        assert (" ETA " in measuring[i]) == (i > 1)
    assert any(re.fullmatch(r"measuring costs: latency round 3/3 \.\.\. ETA \d+:\d\d", line) for line in lines)
    assert any(re.fullmatch(r"measured costs in \d+:\d\d", line) for line in lines)
    assert all(f"M params (fused, {nc} classes)" in line for line in lines if line.startswith("cost "))
    header = stdout.split("\nmodel ")[1].splitlines()[0]
    assert f"params (M, fused, {nc} classes)" in header
    assert f"params (M, fused, {nc} classes)" in (out / "report.md").read_text()
    assert "measuring costs" not in capture["rerun"][1]  # cached: nothing measured, nothing said


def test_eta_formatting_and_estimates():
    from yoloattn import bench
    from yoloattn.compare.measure import format_duration, progress_line
    from yoloattn.compare.runner import _train_fraction, estimate_remaining

    assert [format_duration(s) for s in (0, 0.2, 40, 59.5, 61, 3599, 3723)] == \
        ["0:00", "0:01", "0:40", "1:00", "1:01", "59:59", "1:02:03"]
    assert progress_line("2/5: yolo11n-mqa-psa", 40) == "measuring costs 2/5: yolo11n-mqa-psa ... ETA 0:40"
    assert progress_line("1/5: yolo11n", None) == "measuring costs 1/5: yolo11n ..."
    assert progress_line("latency round 1/3", 20.2) == "measuring costs: latency round 1/3 ... ETA 0:21"
    # cost measurement: 2 of 5 models prepared in 3 s and 5 s, their timed passes will take 10 s and 14 s
    assert bench.eta([], [], 5) is None
    assert bench.eta([3.0, 5.0], [10.0, 14.0], 5) == pytest.approx(3 * 4.0 + 24.0 + 3 * 12.0)
    # training: mean finished run 100 s; 2 slots busy for 30 and 80 s more; 3 pending runs of 100 s each
    assert estimate_remaining([90.0, 110.0], [(70.0, 0.5), (20.0, 0.1)], pending=3, slots=2) == pytest.approx(230.0)
    assert estimate_remaining([100.0], [], pending=0, slots=2) == 0.0
    assert estimate_remaining([100.0], [(150.0, 0.9)], pending=0, slots=1) == 0.0  # overdue: about to finish
    # before any run finished: the running runs' own pace (60 s for 25 % -> 180 s left, 240 s per run)
    assert estimate_remaining([], [(60.0, 0.25)], pending=1, slots=1) == pytest.approx(180.0 + 240.0)
    assert estimate_remaining([], [(5.0, None)], pending=0, slots=1) is None  # nothing to go by yet
    assert _train_fraction({"phase": "train", "epoch": 2, "epochs": 4, "batch": 5, "batches": 10}) == 0.375
    assert _train_fraction({"phase": "setup"}) is None and _train_fraction({"phase": "val"}) == 1.0


def test_progress_line_has_an_eta_and_stays_quiet_off_a_terminal(tmp_path, monkeypatch):
    from yoloattn.compare import runner
    from yoloattn.compare.measure import ModelSpec

    def run(label):
        return runner.RunSpec(ModelSpec(label, "", "", tmp_path / f"{label}.yaml"), 0, "k", tmp_path / label)

    clock = [1000.0]
    monkeypatch.setattr(runner.time, "monotonic", lambda: clock[0])
    stream = io.StringIO()  # not a terminal
    progress = runner._Progress(stream, total=4)
    a, b, c = run("a"), run("b"), run("c")
    state = {"phase": "train", "epoch": 1, "epochs": 2, "batch": 1, "batches": 10}
    progress.status(0, [(a, state), (b, state)])
    assert stream.getvalue().splitlines() == ["[0/4 runs done, 0:00] a s0 epoch 1/2 10% | b s0 epoch 1/2 10%"]
    for second in range(1, 20):  # batch progress alone prints nothing more off a terminal
        clock[0] += 1
        progress.status(0, [(a, {**state, "batch": 1 + second % 9}), (b, state)])
    assert len(stream.getvalue().splitlines()) == 1
    clock[0] = 1100.0  # a finishes after 100 s; c takes its slot
    a.run_dir.mkdir()
    (a.run_dir / "result.json").write_text(json.dumps({"key": "k"}))
    progress.status(1, [(b, {**state, "epoch": 2}), (c, {"phase": "starting"})])
    assert progress.durations == [100.0]
    # b: 0 s left of a 100 s run; c: 100 s; the 4th run after b -> ETA 1:40
    assert stream.getvalue().splitlines()[-1] == "[1/4 runs done, 1:40, ETA 1:40] b s0 epoch 2/2 10% | c s0 starting"
    clock[0] += runner.QUIET_LOG_EVERY_S  # unchanged phases: one line per QUIET_LOG_EVERY_S
    progress.status(1, [(b, {**state, "epoch": 2}), (c, {"phase": "starting"})])
    assert len(stream.getvalue().splitlines()) == 3


def test_run_keys_change_with_every_setting_that_decides_a_result(tmp_path, monkeypatch):
    base = CompareSettings(preset="tiny", base="yolov8n", modules=("iRMB",), epochs=1, seeds=2, imgsz=64,
                           out=str(tmp_path))
    data = prepare_data(base, tmp_path)
    models, where = plan_models(base, tmp_path)
    assert where == "csp"  # the YOLOv8 default placement

    def keys(settings, data=data):
        return [r.key for r in plan_runs(settings, models, data, tmp_path)]

    reference = keys(base)
    assert len(set(reference)) == 4 and keys(base) == reference
    for change in (dict(epochs=2), dict(imgsz=96), dict(recipe={**base.recipe, "lr0": 0.02})):
        changed = keys(dataclasses.replace(base, **change))
        assert not set(changed) & set(reference), change
    other_data = dataclasses.replace(data, fingerprint={"embedded": "another dataset"})
    assert not set(keys(base, other_data)) & set(reference)
    assert keys(dataclasses.replace(base, jobs=7, out="elsewhere")) == reference  # not part of the result
    with monkeypatch.context() as patch:  # an edited attention module
        patch.setattr(settings_module, "model_code_hash", lambda: "edited")
        assert not set(keys(base)) & set(reference)


def test_compare_bad_input_exits_2(capsys, tmp_path):
    code = main(["compare", "--data", str(tmp_path / "missing" / "data.yaml"), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "data.yaml not found" in err[0]
    code = main(["compare", "--preset", "tiny", "--modules", "mlla,swin", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == ["yoloattn compare: error: unknown module(s) swin; choose from MQA, ACmix, MLLA, "
                                 "iRMB or 'all'"]
    from yoloattn.data import generate

    root = tmp_path / "empty"
    shutil.copytree(generate("tiny", out=tmp_path / "tiny").parent, root)
    data = yaml.safe_load((root / "data.yaml").read_text())
    data["path"] = str(root)
    (root / "data.yaml").write_text(yaml.safe_dump(data))
    for label in (root / "labels" / "val").glob("*.txt"):
        label.unlink()
    code = main(["compare", "--data", str(root / "data.yaml"), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "label folder for 'val' is empty" in err[0]


def test_command_line_settings_start_from_the_preset(capsys):
    from yoloattn.cli import _compare_settings, build_parser

    def settings(*argv):
        return _compare_settings(build_parser().parse_args(list(argv)))

    assert settings("compare") == DEMO and settings("demo", "--jobs", "3").jobs == 3
    tiny = settings("compare", "--data", "embedded:tiny", "--modules", "mlla", "--set", "lr0=0.02")
    assert (tiny.preset, tiny.base, tiny.modules, tiny.recipe["lr0"], tiny.recipe["batch"]) == \
        ("tiny", "yolo11n", "mlla", 0.02, 8)
    code = main(["compare", "--preset", "tiny", "--set", "epochs=3"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--set cannot change epochs" in err[0]


def test_parse_modules():
    assert parse_modules("all") == ("MQA", "ACmix", "MLLA", "iRMB")
    assert parse_modules("IRMB, mlla,irmb") == ("iRMB", "MLLA")
    with pytest.raises(CompareError, match="unknown module"):
        parse_modules("mqa,vit")


def test_default_jobs_fit_the_cores(monkeypatch):
    monkeypatch.setattr(settings_module.os, "cpu_count", lambda: 2)
    assert settings_module.default_jobs(4) == 2 and settings_module.threads_per_job(2) == 1
    assert settings_module.default_jobs(5) == 5  # 2.5 run-times at once instead of 2 + 2 + 1 waves
    assert settings_module.default_jobs(7) == 2 and settings_module.default_jobs(1) == 1
    monkeypatch.setattr(settings_module.os, "cpu_count", lambda: 16)
    assert settings_module.default_jobs(16) == 8 and settings_module.threads_per_job(8) == 2
    assert settings_module.default_jobs(3) == 3 and settings_module.default_jobs(3, device="0") == 1


def test_welch_test_matches_scipy_and_handles_small_samples():
    from scipy.stats import ttest_ind

    a, b = [0.21, 0.25, 0.23], [0.18, 0.17, 0.19, 0.18]
    assert welch_p(a, b) == pytest.approx(ttest_ind(a, b, equal_var=False).pvalue, rel=1e-9)
    assert compare_to_baseline(a, b).verdict == "yes"
    assert compare_to_baseline([0.20, 0.22], [0.21, 0.20]).verdict == "no"
    assert compare_to_baseline([0.2], [0.1, 0.3]).verdict == "n/a (1 seed)"
    assert compare_to_baseline([0.0, 0.0], [0.0, 0.0]).verdict == "n/a (no spread)"


def test_summary_means_stds_and_deltas():
    def row(model, seed, m):
        return dict(model=model, module="", where="", seed=seed, params=1, gflops=1.0, latency_ms=1.0,
                    latency_ort_ms=1.0, map50=2 * m, map50_95=m, train_s=10.0)

    rows = [row("base", 0, 0.10), row("base", 1, 0.12), row("v", 0, 0.15), row("v", 1, 0.19)]
    base, variant = summarize(rows, baseline="base")
    assert base["map50_95_mean"] == pytest.approx(0.11) and base["map50_95_std"] == pytest.approx(0.0141421, 1e-4)
    assert variant["delta_map50_95"] == pytest.approx(0.06) and variant["delta_map50"] == pytest.approx(0.12)
    assert base["significant_map50_95"] == "baseline" and variant["seeds"] == 2
    single = summarize([row("base", 0, 0.1), row("v", 0, 0.2)], baseline="base")
    assert single[0]["map50_95_std"] is None and single[1]["significant_map50_95"] == "n/a (1 seed)"


def test_pareto_front():
    points = [(10.0, 0.30), (12.0, 0.28), (15.0, 0.35), (9.0, 0.20), (15.0, 0.34)]
    assert pareto_front(points) == [3, 0, 2]


def test_demo_settings_are_the_documented_ones():
    doc = (Path(__file__).resolve().parents[1] / "docs" / "compare.md").read_text()
    n_train = DEMO.data_overrides["n_train"]
    for value in (f"base `{DEMO.base}`", f"epochs {DEMO.epochs}", f"imgsz {DEMO.imgsz}", f"n_train={n_train}"):
        assert value in doc, value
