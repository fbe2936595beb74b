"""Every option is checked before any work starts: one line naming the option, the value and what is
allowed, exit code 2, nothing written (issue "Options checked before work starts")."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from yoloattn.cli import main
from yoloattn.compare import CompareError, CompareSettings, ExecutionSettings, run_compare

NO_GPU = not torch.cuda.is_available()


def run(capsys, argv: list[str]) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse's own refusals
        code = exit_.code
    return code, capsys.readouterr().err


def one_line(code: int, err: str, pattern: str) -> None:
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert re.search(pattern, lines[0]), lines[0]


COMPARE_CASES = [
    (["--jobs", "0"], r"argument --jobs: expected an integer >= 1, got 0"),
    (["--seeds", "0"], r"argument --seeds: expected an integer >= 1, got 0"),
    (["--epochs", "-2"], r"argument --epochs: expected an integer >= 1, got -2"),
    (["--epochs", "two"], r"argument --epochs: expected an integer >= 1, got 'two'"),
    (["--latency-threads", "0"], r"argument --latency-threads: expected an integer >= 1, got 0"),
    (["--imgsz", "100"], r"--imgsz 100 is not a multiple of the model's largest stride 32; use 96 or 128"),
    (["--imgsz", "16"], r"--imgsz 16 is not a multiple of the model's largest stride 32; use 32"),
    (["--set", "batch=abc"], r"'batch=abc' is of invalid type str"),
    (["--set", "momentum=3"], r"'momentum=3' is an invalid value"),
    (["--set", "lr=0.1"], r"'lr' is not an Ultralytics argument; did you mean .*lr0"),
    (["--set", "epochs=3"], r"--set cannot change epochs"),
    (["--modules", "mqa,transformer"], r"unknown module\(s\) transformer"),
    (["--modules", "mla"], r"unknown module\(s\) mla; .*\(did you mean MLLA\b"),  # names match case-insensitively
    (["--where", "nowhere"], r"unknown placement 'nowhere'"),
    (["--data-opt", "n_trian=3"], r"n_trian"),
    (["--preset", "huge"], r"argument --preset: invalid choice: 'huge'"),
]
if NO_GPU:
    COMPARE_CASES.append((["--device", "0"], r"--device 0: no CUDA GPU is visible to torch here; use --device cpu"))


@pytest.mark.parametrize("extra, pattern", COMPARE_CASES, ids=[" ".join(c[0]) for c in COMPARE_CASES])
def test_compare_refuses_bad_options_before_any_work(extra, pattern, capsys, tmp_path):
    out = tmp_path / "cmp"
    code, err = run(capsys, ["compare", "--preset", "tiny", "--out", str(out), *extra])
    one_line(code, err, pattern)
    assert not out.exists()  # refused before the output folder, the dataset or any run


@pytest.mark.parametrize("argv, pattern", [
    (["info", "yolov8n", "--imgsz", "100"], r"--imgsz 100 is not a multiple of the model's largest stride 32"),
    (["info", "yolov8n", "--nc", "0"], r"argument --nc: expected an integer >= 1, got 0"),
    (["bench", "yolov8n", "--iters", "0"], r"argument --iters: expected an integer >= 1"),
    (["bench", "yolov8n", "--warmup", "-1"], r"argument --warmup: expected an integer >= 0, got -1"),
    (["bench", "yolov8n", "--batch", "0"], r"argument --batch: expected an integer >= 1"),
    (["bench", "yolov8n", "--threads", "0"], r"argument --threads: expected an integer >= 1"),
    (["bench", "yolov8n", "--imgsz", "70"], r"--imgsz 70 is not a multiple of the model's largest stride 32"),
    (["nosuchcommand"], r"invalid choice: 'nosuchcommand'"),
    (["compare", "--epoch", "1"], r"^yoloattn compare: error: unrecognized arguments: --epoch 1; did you mean --epochs\?"),
    (["train", "yolov8n", "--dryrun"], r"^yoloattn train: error: unrecognized arguments: --dryrun; did you mean --dry-run"),
    (["train", "yolov8n", "data=embedded:tiny", "imgsz=70"], r"imgsz=70 is not a multiple of the model's largest stride 32"),
    (["val", "yolov8n", "data=embedded:tiny", "imgsz=[64, 100]"], r"imgsz=100 is not a multiple"),
    (["export", "yolov8n", "imgsz=abc"], r"imgsz=abc: expected a positive integer"),
    # a typo in a path is "file not found", not a lecture about downloads
    (["val", "nope/best.pt", "data=embedded:tiny"], r"file not found: nope/best\.pt \(looked for /.*/nope/best\.pt\)"),
    (["export", "runs/detect/trian/weights/best.pt"], r"file not found: runs/detect/trian/weights/best\.pt"),
    (["info", "best.pt"], r"file not found: best\.pt"),
    (["info", "my/model.yaml"], r"file not found: my/model\.yaml"),
    (["bench", "yolo11n.pt"], r"yolo11n\.pt is not a local file, and yoloattn never downloads weights"),
])
def test_other_commands_refuse_bad_options(argv, pattern, capsys):
    code, err = run(capsys, argv)
    one_line(code, err, pattern)


@pytest.mark.parametrize("bad, pattern", [
    ("batch=abc", r"'batch=abc' is of invalid type str"),
    ("epochs=1.5", r"'epochs=1.5' is of invalid type float"),
    ("fraction=1.5", r"'fraction=1.5' invalid"),
    ("amp=maybe", r"'amp=maybe' is invalid"),
    ("workers=None", r"'workers=None' is invalid"),
    ("batch=-5", r"'batch=-5' is invalid: use a batch size >= 1, batch=-1 \(AutoBatch\) or a fraction"),
])
def test_train_val_export_check_ultralytics_arguments_with_ultralytics_rules(bad, pattern, capsys, tmp_path,
                                                                               monkeypatch):
    monkeypatch.chdir(tmp_path)
    for command in (["train", "yolov8n", "data=embedded:tiny"], ["val", "yolov8n", "data=embedded:tiny"],
                    ["export", "yolov8n"]):
        code, err = run(capsys, [*command, bad])
        one_line(code, err, pattern)
    assert not (tmp_path / "runs").exists()


def test_python_api_checks_settings_too(tmp_path):
    for bad, pattern in ((dict(execution=ExecutionSettings(jobs=0)), r"--jobs must be an integer >= 1, got 0"),
                         (dict(seeds=0), r"--seeds must be an integer >= 1"),
                         (dict(recipe={"batch": "abc"}), r"training recipe \(--set\): 'batch=abc'")):
        with pytest.raises(CompareError, match=pattern):
            run_compare(CompareSettings(preset="tiny", out=str(tmp_path / "c"), **bad))
    assert not Path(tmp_path / "c").exists()


@pytest.mark.skipif(not NO_GPU, reason="checks the refusal on a machine without a GPU")
def test_train_refuses_a_gpu_device_on_a_cpu_machine_before_work(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, err = run(capsys, ["train", "yolov8n", "data=embedded:tiny", "device=0"])
    one_line(code, err, r"device=0: no CUDA GPU is visible to torch here; use device=cpu")
    assert not (tmp_path / "runs").exists()


def test_dry_runs_check_everything_and_train_nothing(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("YOLOATTN_ESTIMATE", raising=False)  # the dry run's wall-time estimate, on as for users
    assert main(["train", "yolov8n-mqa-csp", "data=embedded:tiny", "epochs=3", "imgsz=64", "--dry-run"]) == 0
    assert "dry run" in capsys.readouterr().out and not (tmp_path / "runs").exists()
    out = tmp_path / "cmp"
    assert main(["compare", "--preset", "tiny", "--modules", "mqa", "--epochs", "1", "--imgsz", "64",
                 "--out", str(out), "--dry-run"]) == 0
    stdout = capsys.readouterr().out
    assert "runs: 6 (0 already finished, 6 to train)" in stdout and "no cost was measured and nothing was trained" in stdout
    assert "estimate: at least " in stdout and "16 training and 8 evaluation images" in stdout  # the tiny preset
    assert sorted(p.name for p in (out / "models").iterdir()) == ["yolo11n-mqa-psa.yaml", "yolo11n.yaml"]
    assert not (out / "runs").exists() and not (out / "measure").exists()


def test_renamed_ultralytics_arguments_pass_as_ultralytics_maps_them():
    """int8=True / half=True are Ultralytics arguments it renamed (8.4: quantize=8 / 16), not unknown ones."""
    from ultralytics.cfg import DEFAULT_CFG_DICT

    from yoloattn.integration.config import UltralyticsArgumentError, check_ultralytics_args

    for batch in (1, 16, -1, 0.5):  # a size, AutoBatch, AutoBatch's GPU memory fraction
        check_ultralytics_args({"batch": batch})
    args = {"int8": True, "half": False, "imgsz": 64}
    check_ultralytics_args(args)  # does not raise
    assert args == {"int8": True, "half": False, "imgsz": 64}  # the caller's dict is left as it was
    with pytest.raises(UltralyticsArgumentError, match=r"'int9' is not an Ultralytics argument; did you mean int8"
                       if "int8" in DEFAULT_CFG_DICT else r"'int9' is not an Ultralytics argument"):
        check_ultralytics_args({"int9": True})
