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
import math
from pathlib import Path

import pytest
import yaml

from yoloattn.cli import main
from yoloattn.compare import DEMO, CompareError, CompareSettings, parse_modules
from yoloattn.compare import settings as settings_module
from yoloattn.compare.plots import Point, noisy_front
from yoloattn.compare.records import RunEnv, RunResult
from yoloattn.compare.plan import RunSpec, plan_models, plan_runs, plan_variants, prepare_data
from yoloattn.compare.resolve import resolve

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
    for name in ("results.csv", "summary.csv", "per_class.csv", "report.md", "report.html", "pareto.png", "curves.png"):
        assert (out / name).stat().st_size > 0, name
    # the answer in words comes before the table: one line per variant, or one line that nothing was learned
    answer = stdout.split("\nmodel ")[0].rstrip().splitlines()
    assert answer[-1].startswith("Nothing was learned") or \
        [line.split(":")[0] for line in answer[-4:]] == ["MQA@psa", "ACmix@psa", "MLLA@psa", "iRMB@psa"], answer[-6:]
    assert "## Answer" in (out / "report.md").read_text().split("## Summary")[0]
    assert sorted(p.stem for p in (out / "models").glob("*.yaml")) == sorted(MODELS)
    assert f"report: {out / 'report.html'}" in stdout
    header = stdout.split("\nmodel ")[1].splitlines()[0]
    assert "mAP50-95" in header and "Δ mAP50-95 [95% CI]" in header and "verdict" in header
    # one tiny epoch may leave every mAP at 0: then the report says it has no spread to test against
    assert re.search(r"this comparison can detect Δ ≥ \d|seed spread unknown \(every seed of every model gave the same", stdout)


def test_results_have_one_row_per_model_and_seed(compared):
    out, _ = compared
    rows = read_csv(out / "results.csv")
    assert sorted((r["model"], r["seed"]) for r in rows) == sorted((m, s) for m in MODELS for s in ("0", "1"))
    for r in rows:
        assert 0.0 <= float(r["map50_95"]) <= float(r["map50"]) <= 1.0
        assert int(r["params"]) > 2_000_000 and float(r["gflops"]) > 0 and r["epochs"] == "1" and r["imgsz"] == "64"
        assert float(r["latency_p90_ms"]) >= float(r["latency_p50_ms"]) > 0 and float(r["train_s"]) > 0
        assert float(r["latency_ort_p90_ms"]) >= float(r["latency_ort_p50_ms"]) > 0
        assert r["threads"] == str(settings_module.default_threads_per_run())  # recorded, with the versions
        assert r["torch"] and r["ultralytics"]
        assert 0.0 <= float(r["map50_95_small"]) <= 1.0  # tiny's digits are all small objects
        assert Path(r["run_dir"]).name.startswith(f"{r['model']}-s{r['seed']}-{r['run_key']}")
    assert {r["module"] for r in rows} == {"", "MQA", "ACmix", "MLLA", "iRMB"} and {r["where"] for r in rows} == {"", "psa"}
    summary = read_csv(out / "summary.csv")
    assert [s["model"] for s in summary] == MODELS
    assert summary[0]["verdict"] == "baseline" and all(s["seeds"] == "2" for s in summary)
    for s in summary[1:]:
        assert re.fullmatch(r"better|worse|not shown \(could detect Δ ≥ \d\.\d{3}\)|n/a \(no spread\)", s["verdict"])


def test_run_results_and_curves_come_from_ultralytics(compared):
    out, _ = compared
    for result_path in (out / "runs").glob("*/result.json"):
        result = json.loads(result_path.read_text())
        assert len(result["curve"]) == 1 and "train/cls_loss" in result["curve"][0]
        assert result["val_curve"] == [{"epoch": 1, "map50": result["map50"], "map50_95": result["map50_95"]}]
        assert result["env"]["threads"] == settings_module.default_threads_per_run()
        assert result["ap_per_class"] and set(result["ap_per_class"]) <= {"0", "1", "2", "3", "4"}  # tiny's digits
        assert all(0.0 <= ap <= 1.0 for ap in result["ap_per_class"].values())
        assert set(result["env"]) >= {"torch", "ultralytics", "python", "machine"}
        args = yaml.safe_load((result_path.parent / "train" / "args.yaml").read_text())
        assert args["optimizer"] == "SGD" and args["lr0"] == 0.01 and args["batch"] == 8 and args["cls"] == 1.0
        assert args["val"] is False and args["amp"] is False and args["seed"] == result["seed"]
    run_data = yaml.safe_load((out / "data" / "run-data.yaml").read_text())
    assert run_data["val"] == run_data["test"]  # evaluated on the held-out test split
    assert Path(run_data["val"]).is_absolute() and run_data["val"].endswith("images/test")  # resolved for Ultralytics


def test_report_html_is_self_contained(compared):
    out, _ = compared
    html = (out / "report.html").read_text()
    assert html.count('src="data:image/png;base64,') == 3  # pareto, curves, heatmaps
    assert "Where the models look" in html and "AP by object size" in html
    from matplotlib.image import imread

    from yoloattn.compare.heatmaps import CELL_INCHES, DPI
    from yoloattn.compare.outputs import HEATMAP_IMAGES

    # every variant changes yolo11n's C2PSA (layer 10): one baseline column, then one column per variant
    cell = round(CELL_INCHES * DPI)
    assert imread(out / "heatmaps.png").shape[:2] == (HEATMAP_IMAGES * cell, len(MODELS) * cell)
    assert not re.search(r'src="(?!data:)', html) and "<link" not in html
    for model in MODELS:
        assert model in html and model in (out / "report.md").read_text()


def test_report_renders_in_a_real_browser(compared, tmp_path):
    from tests.browser import check_page, find_chromium

    if find_chromium() is None:
        pytest.skip("chromium not installed (apt-get install chromium; .ci/run installs it): report.html not "
                    "checked in a browser")
    out, _ = compared
    page = check_page(out / "report.html", tmp_path)
    assert page["images"] == 3 and page["broken"] == [] and page["errors"] == [] and page["console"] == [], page
    assert page["painted"] and "attention modules" in page["title"]


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
    from yoloattn.compare.progress import estimate_remaining, train_fraction

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
    assert train_fraction({"phase": "train", "epoch": 2, "epochs": 4, "batch": 5, "batches": 10}) == 0.375
    assert train_fraction({"phase": "setup"}) is None and train_fraction({"phase": "val"}) == 1.0


def test_the_eta_is_smoothed_on_a_recorded_sequence():
    """A user's log: ETA 15:08 -> 9:09 -> 13:19 -> 8:55 on consecutive lines (about 30 s apart)."""
    from yoloattn.compare.progress import EtaSmoother

    raw = [908.0, 549.0, 799.0, 535.0, 700.0, 480.0]
    smoother = EtaSmoother()
    shown = [smoother.update(30.0 * i, r) for i, r in enumerate(raw)]
    raw_swing = max(max(a, b) / min(a, b) for a, b in zip(raw, raw[1:]))
    swing = max(max(a, b) / min(a, b) for a, b in zip(shown, shown[1:]))
    assert raw_swing > 1.45 and swing < 1.2
    assert all(later < earlier for earlier, later in zip(shown, shown[1:]))  # it counts down
    assert shown[0] == raw[0] and smoother.update(200.0, None) == pytest.approx(shown[-1] - 50.0)
    assert EtaSmoother().update(0.0, None) is None


def test_progress_line_has_an_eta_and_stays_quiet_off_a_terminal(tmp_path, monkeypatch):
    from yoloattn.compare import progress as progress_module
    from yoloattn.compare.measure import ModelSpec
    from yoloattn.compare.progress import RunFinished, RunStarted, Status, TerminalProgress

    def run(label):
        return RunSpec(ModelSpec(label, "", "", tmp_path / f"{label}.yaml"), 0, "k", tmp_path / label)

    clock = [1000.0]
    monkeypatch.setattr(progress_module.time, "monotonic", lambda: clock[0])
    stream = io.StringIO()  # not a terminal
    progress = TerminalProgress(stream, total=4)
    a, b, c = run("a"), run("b"), run("c")
    state = {"phase": "train", "epoch": 1, "epochs": 2, "batch": 1, "batches": 10}
    progress(Status(0, ((a, state), (b, state))))
    assert stream.getvalue().splitlines() == ["[0/4 runs done, 0:00] a s0 epoch 1/2 10% | b s0 epoch 1/2 10%"]
    for second in range(1, 20):  # batch progress alone prints nothing more off a terminal
        clock[0] += 1
        progress(Status(0, ((a, {**state, "batch": 1 + second % 9}), (b, state))))
    assert len(stream.getvalue().splitlines()) == 1
    clock[0] = 1100.0  # a finishes after 100 s; c takes its slot
    env = RunEnv(1, "cpu", "3", "torch", "ultralytics", "numpy", "yoloattn", "machine")
    result = RunResult("k", "a", 0, 0.1, 0.05, 0.2, 0.2, 0.04, None, None, (3, 0, 0), 100.0, env, "w")
    progress(RunFinished(a, result))
    progress(RunStarted(c))
    assert stream.getvalue().splitlines()[-2:] == ["finished a s0  mAP50 0.100  mAP50-95 0.050  (100 s)",
                                                   f"started  c s0  ({c.run_dir.name})"]
    progress(Status(1, ((b, {**state, "epoch": 2}), (c, {"phase": "starting"}))))
    assert progress.durations == [100.0]
    # b: 0 s left of a 100 s run; c: 100 s; the 4th run after b -> ETA 1:40
    assert stream.getvalue().splitlines()[-1] == "[1/4 runs done, 1:40, ETA 1:40] b s0 epoch 2/2 10% | c s0 starting"
    clock[0] += progress_module.QUIET_LOG_EVERY_S  # unchanged phases: one line per QUIET_LOG_EVERY_S
    progress(Status(1, ((b, {**state, "epoch": 2}), (c, {"phase": "starting"}))))
    assert len(stream.getvalue().splitlines()) == 5


@pytest.mark.slow
def test_the_same_settings_give_bit_identical_runs_whatever_jobs_is(tmp_path):
    """Four runs one at a time, then three at a time on this machine's cores: every number identical."""
    argv = ["compare", "--preset", "tiny", "--base", "yolov8n", "--modules", "irmb", "--where", "sppf",
            "--epochs", "1", "--seeds", "2", "--imgsz", "64", "--threads-per-run", "1"]
    outs = [tmp_path / "jobs1", tmp_path / "jobs3"]
    for out, jobs in zip(outs, ("1", "3")):
        if out != outs[0]:
            shutil.copytree(outs[0] / "measure", out / "measure")  # costs are cached; the runs are not
        with contextlib.redirect_stdout(io.StringIO()) as stdout:
            assert main([*argv, "--jobs", jobs, "--out", str(out)]) == 0, stdout.getvalue()
        assert f"{jobs} in parallel with 1 torch thread(s) each" in stdout.getvalue()

    def numbers(out):
        results = {}
        for path in sorted((out / "runs").glob("*/result.json")):
            r = json.loads(path.read_text())
            losses = [{k: v for k, v in epoch.items() if k != "time"} for epoch in r["curve"]]  # all but wall time
            results[r["model"], r["seed"]] = (r["map50"], r["map50_95"], r["precision"], r["recall"],
                                              r["map50_95_small"], losses, r["val_curve"])
        return results

    first, second = numbers(outs[0]), numbers(outs[1])
    assert len(first) == 4 and first == second
    assert first["yolov8n", 0] != first["yolov8n", 1]  # and the seed does take effect


def test_run_keys_change_with_every_setting_that_decides_a_result(tmp_path, monkeypatch):
    base = CompareSettings(preset="tiny", base="yolov8n", modules=("iRMB",), epochs=1, seeds=2, imgsz=64,
                           out=str(tmp_path), threads_per_run=1)
    data = prepare_data(base, tmp_path)
    resolved = resolve(base)
    plan = plan_variants(resolved)
    models = plan_models(resolved, plan)
    assert plan.where == "csp"  # the YOLOv8 default placement

    def keys(settings, data=data):
        return [r.key for r in plan_runs(settings, models, data, tmp_path)]

    reference = keys(base)
    assert len(set(reference)) == 4 and keys(base) == reference
    for change in (dict(epochs=2), dict(imgsz=96), dict(recipe={**base.recipe, "lr0": 0.02})):
        changed = keys(dataclasses.replace(base, **change))
        assert not set(changed) & set(reference), change
    other_data = dataclasses.replace(data, fingerprint={"embedded": "another dataset"})
    assert not set(keys(base, other_data)) & set(reference)
    for change in (dict(threads_per_run=base.threads_per_run + 1), dict(val_every=1)):
        assert not set(keys(dataclasses.replace(base, **change))) & set(reference), change
    elsewhere = dataclasses.replace(base, out="elsewhere", execution=dataclasses.replace(base.execution, jobs=7))
    assert keys(elsewhere) == reference  # not part of the result
    with monkeypatch.context() as patch:  # an edited attention module
        patch.setattr(settings_module, "model_code_hash", lambda: "edited")
        assert not set(keys(base)) & set(reference)


def test_a_result_of_another_version_or_key_counts_as_unfinished(tmp_path):
    from yoloattn.compare.measure import ModelSpec

    run = RunSpec(ModelSpec("m", "", "", tmp_path / "m.yaml"), 0, "key", tmp_path / "m")
    run.run_dir.mkdir()
    assert not run.finished()
    (run.run_dir / "result.json").write_text(json.dumps({"key": "key", "map50": 0.1}))  # an older worker's dict
    assert not run.finished()
    env = RunEnv(1, "cpu", "3", "torch", "ultralytics", "numpy", "yoloattn", "machine")
    result = RunResult("key", "m", 0, 0.1, 0.05, 0.2, 0.2, None, None, None, (0, 0, 0), 1.0, env, "w")
    result.write(run.result_path)
    assert run.finished() and run.result() == result  # typed round trip, env included
    dataclasses.replace(result, key="other").write(run.result_path)
    assert not run.finished()


def test_compare_bad_input_exits_2(capsys, tmp_path, tiny_data):
    code = main(["compare", "--data", str(tmp_path / "missing" / "data.yaml"), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "data.yaml not found" in err[0]
    code = main(["compare", "--preset", "tiny", "--modules", "mlla,swin", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == ["yoloattn compare: error: unknown module(s) swin; choose from MQA, ACmix, MLLA, "
                                 "iRMB or 'all'"]
    root = tmp_path / "empty"
    shutil.copytree(tiny_data.parent, root)
    data = yaml.safe_load((root / "data.yaml").read_text())
    data["path"] = str(root)
    (root / "data.yaml").write_text(yaml.safe_dump(data))
    for label in (root / "labels" / "val").glob("*.txt"):
        label.unlink()
    code = main(["compare", "--data", str(root / "data.yaml"), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "label folder for 'val' is empty" in err[0]


def test_command_line_settings_start_from_the_preset(capsys):
    from yoloattn.compare import option_names, settings_from_options

    def settings(**given):
        return settings_from_options({name: given.pop(name, None) for name in option_names()}, **given)

    assert settings() == DEMO and settings(jobs=3).execution.jobs == 3
    tiny = settings(data="embedded:tiny", modules="mlla", recipe={"lr0": 0.02})
    assert (tiny.preset, tiny.base, tiny.modules, tiny.recipe["lr0"], tiny.recipe["batch"]) == \
        ("tiny", "yolo11n", "mlla", 0.02, 8)
    with pytest.raises(CompareError, match="--preset picks the embedded dataset"):
        settings(data="my/data.yaml", preset="tiny")
    code = main(["compare", "--preset", "tiny", "--set", "epochs=3"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--set cannot change epochs" in err[0]


def test_every_compare_option_of_the_command_line_is_a_settings_field():
    """The CLI builds compare's settings from the dataclass fields: an option without a field (or a field
    without an option) would be silently dropped."""
    from yoloattn.cli import build_parser
    from yoloattn.compare import option_names

    parser = build_parser().commands["compare"]
    dests = {action.dest for action in parser._actions if action.option_strings} - {"help", "plugin"}
    own = {"dry_run", "target_delta", "set", "data_opt"}  # run_compare's arguments and the composite fields
    assert dests - own == set(option_names()) - {"data_seed"}


def test_parse_modules():
    assert parse_modules("all") == ("MQA", "ACmix", "MLLA", "iRMB")
    assert parse_modules("IRMB, mlla,irmb") == ("iRMB", "MLLA")
    with pytest.raises(CompareError, match="unknown module"):
        parse_modules("mqa,vit")


def test_default_jobs_fit_the_cores_and_threads_per_run_do_not_follow_them(monkeypatch):
    from yoloattn.compare.executors import local

    monkeypatch.setattr(settings_module.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(local.os, "cpu_count", lambda: 2)
    assert settings_module.default_threads_per_run() == 1
    assert local.default_jobs(4, 1) == 2 and local.default_jobs(4, 2) == 1
    assert local.default_jobs(5, 1) == 5  # 2.5 run-times at once instead of 2 + 2 + 1 waves
    assert local.default_jobs(7, 1) == 2 and local.default_jobs(1, 1) == 1
    monkeypatch.setattr(settings_module.os, "cpu_count", lambda: 16)
    monkeypatch.setattr(local.os, "cpu_count", lambda: 16)
    assert settings_module.default_threads_per_run() == 2
    assert local.default_jobs(16, 2) == 8 and local.default_jobs(3, 2) == 3
    assert local.default_jobs(3, 2, device="0") == 1
    assert CompareSettings(threads_per_run=3).resolved().threads_per_run == 3  # given: kept
    assert CompareSettings().resolved().threads_per_run == 2


def test_the_pareto_front_is_judged_with_the_noise():
    # well separated: (latency p50, p90, mAP, seed std)
    points = [Point(10.0, 10.5, 0.30, 0.005), Point(12.0, 12.5, 0.28, 0.005), Point(15.0, 15.5, 0.35, 0.005),
              Point(9.0, 9.5, 0.20, 0.005), Point(15.0, 15.5, 0.347, 0.005), Point(15.2, 15.6, 0.33, 0.005)]
    assert noisy_front(points) == [3, 0, 2, 4]  # 0.347 is within 0.35's noise; 0.33 is clearly below it
    # the case: 0.1 ms apart inside each other's p50-p90 range, mAP within one std: nobody dominates
    close = [Point(24.45, 24.60, 0.103, 0.023), Point(24.40, 24.55, 0.113, 0.019), Point(24.50, 24.62, 0.110, 0.02)]
    assert noisy_front(close) == [1, 0, 2]
    single_seed = [Point(10.0, 10.5, 0.30, None), Point(10.1, 10.6, 0.10, None)]
    assert noisy_front(single_seed) == [0, 1]  # one seed: no accuracy difference is clear


def test_demo_settings_are_the_documented_ones():
    doc = (Path(__file__).resolve().parents[1] / "docs" / "compare.md").read_text()
    n_train = DEMO.data_overrides["n_train"]
    for value in (f"base `{DEMO.base}`", f"epochs {DEMO.epochs}", f"imgsz {DEMO.imgsz}", f"n_train={n_train}"):
        assert value in doc, value


def test_the_plan_estimate_is_the_measured_steps_times_the_plan(tmp_path, tiny_data):
    """compare/estimate.py: each run = epochs x ceil(train/batch) x step + ceil(eval/batch) x eval forward, spread
    over the slots longest first; a plan of hours is warned about."""
    import dataclasses

    from yoloattn.compare.estimate import LONG_PLAN_S, PlanEstimate, estimate_plan
    from yoloattn.compare.measure import ModelSpec
    from yoloattn.compare.plan import PreparedData
    from yoloattn.compare.settings import ExecutionSettings
    from yoloattn import zoo

    settings = CompareSettings(epochs=3, imgsz=64, threads_per_run=1, execution=ExecutionSettings(jobs=2))
    models = [ModelSpec("yolov8n", "", "", Path(zoo.stock_models_dir() / "v8" / "yolov8.yaml")),
              ModelSpec("v", "iRMB", "csp", Path(zoo.path("yolov8-irmb-csp.yaml")))]
    runs = [RunSpec(m, seed, "k", tmp_path / f"{m.label}{seed}") for m in models for seed in range(3)]
    data = PreparedData(tiny_data, tiny_data, "val", 5, {})
    estimate = estimate_plan(models, runs, settings, data)
    assert (estimate.train_images, estimate.eval_images) == (16, 8)
    batch = settings.recipe["batch"]
    for label in ("yolov8n", "v"):
        assert estimate.step_s[label] > 0 and estimate.eval_s[label] > 0
        assert estimate.run_s[label] == pytest.approx(3 * math.ceil(16 / batch) * estimate.step_s[label]
                                                      + math.ceil(8 / batch) * estimate.eval_s[label])
    # six runs on two slots, longest first: at least half the total, at most the serial sum
    serial = 3 * (estimate.run_s["yolov8n"] + estimate.run_s["v"])
    assert serial / 2 <= estimate.total_s <= serial
    assert not any(line.startswith("warning") for line in estimate.lines(settings, 6, 2))
    long = dataclasses.replace(estimate, total_s=LONG_PLAN_S * 2.5)
    assert long.lines(settings, 6, 2)[1].startswith("warning: this plan means hours on this machine (≥ 2.5 h)")
