"""Training through stock Ultralytics APIs, in this process and in a spawned DDP-style worker."""

import os
import shutil
import subprocess
import sys

import pytest

import yoloattn
from yoloattn import zoo

from ultralytics import YOLO

TRAIN_ARGS = dict(epochs=1, imgsz=64, batch=4, workers=0, device="cpu", plots=False, amp=False, val=True,
                  optimizer="SGD", lr0=0.01, seed=0, deterministic=True, verbose=False)


@pytest.mark.parametrize("name, imgsz", [("yolov8n-irmb-csp.yaml", 64), ("yolo11n-mqa-csp.yaml", 64),
                                         ("yolo11n-mlla-psa.yaml", 64),
                                         # 2x2 P5 maps: smaller than ACmix's 7x7 reflection-padded window
                                         ("yolov9t-acmix-csp.yaml", 64)])
def test_one_epoch_train_val_save_reload(name, imgsz, tiny_data, tmp_path):
    model = YOLO(zoo.path(name))
    model.train(data=str(tiny_data), trainer=yoloattn.DetectionTrainer, project=str(tmp_path), name="run",
                **{**TRAIN_ARGS, "imgsz": imgsz})
    best = tmp_path / "run" / "weights" / "best.pt"
    assert best.is_file()
    metrics = YOLO(str(best)).val(data=str(tiny_data), imgsz=imgsz, batch=4, device="cpu", plots=False, workers=0,
                                  project=str(tmp_path), name="val", verbose=False)
    assert 0.0 <= metrics.box.map50 <= 1.0
    assert type(YOLO(str(best)).model.model[-1]).__name__ == "Detect"


def _ddp_worker_run(trainer_cls, data, tmp_path):
    """Write Ultralytics' DDP worker files for a YAML-built model and run the worker in a fresh process."""
    from ultralytics.utils.dist import generate_ddp_file

    # an existing file under its scaled name: Ultralytics then reads it directly, whatever the folder
    # names (its scale-letter regex over a missing path's full string can hit a folder like /tmp/x8x)
    model = tmp_path / "yolo11n-mlla-psa.yaml"
    shutil.copy(zoo.path("yolo11-mlla-psa.yaml"), model)
    overrides = dict(model=str(model), data=data, project=str(tmp_path), name="ddp",
                     **{k: v for k, v in TRAIN_ARGS.items() if k != "verbose"})
    trainer = trainer_cls(overrides=overrides)
    script = generate_ddp_file(trainer)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    try:
        return subprocess.run([sys.executable, script], capture_output=True, text=True, env=env, timeout=600)
    finally:
        for suffix in (".py", ".pt"):
            p = os.path.splitext(script)[0] + suffix
            if os.path.exists(p):
                os.remove(p)


def test_cli_resume_continues_an_interrupted_run_from_the_checkpoint_alone(tiny_data, tmp_path, capsys):
    """`yoloattn train last.pt resume=True` needs no data=: the checkpoint records it (reliability kind 7)."""
    from yoloattn.cli import main

    def interrupt_after_first_epoch(trainer):
        if trainer.epoch == 0:
            raise KeyboardInterrupt("simulated Ctrl-C after epoch 1 was saved")

    model = YOLO(zoo.path("yolov8n-irmb-csp.yaml"))
    model.add_callback("on_model_save", interrupt_after_first_epoch)
    with pytest.raises(KeyboardInterrupt):
        model.train(data=str(tiny_data), trainer=yoloattn.DetectionTrainer, project=str(tmp_path), name="run",
                    **{**TRAIN_ARGS, "epochs": 2})
    run = tmp_path / "run"
    assert len((run / "results.csv").read_text().strip().splitlines()) == 1 + 1
    assert main(["train", str(run / "weights" / "last.pt"), "resume=True"]) == 0
    capsys.readouterr()
    epochs = [line.split(",")[0].strip() for line in (run / "results.csv").read_text().strip().splitlines()[1:]]
    assert epochs == ["1", "2"]  # continued at epoch 2 in the same run folder, not restarted


def test_ddp_worker_imports_yoloattn(tiny_data, tmp_path):
    result = _ddp_worker_run(yoloattn.DetectionTrainer, str(tiny_data), tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "ddp" / "weights" / "last.pt").is_file()


def test_ddp_worker_with_stock_trainer_cannot_build(tiny_data, tmp_path):
    # the control: without our trainer class nothing makes the worker import yoloattn
    from ultralytics.models.yolo.detect import DetectionTrainer

    result = _ddp_worker_run(DetectionTrainer, str(tiny_data), tmp_path)
    assert result.returncode != 0
    assert "C2PSA_MLLA" in result.stderr


def test_ray_runtime_env_ships_the_package():
    env = yoloattn.ray_runtime_env({"env_vars": {"A": "1"}})
    assert env["env_vars"] == {"A": "1"}
    assert env["py_modules"][-1] == os.path.dirname(yoloattn.__file__)
