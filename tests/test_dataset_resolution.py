"""Datasets resolved the way the user means them, and the images Ultralytics would drop reported before training.

A. relative ``path:`` and image-list lines resolve against the file that names them, from any working
   directory, into absolute copies under yoloattn's cache (never next to the data);
B. the check's skipped / altered images are exactly those of Ultralytics' own loader, and train, val
   and compare refuse them in one line unless ``--allow-skipped``;
C. ``yoloattn train last.pt resume=True`` uses the dataset the checkpoint recorded.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml
from PIL import Image

from yoloattn.cli import main
from yoloattn.data import DatasetError
from yoloattn.data.resolve import resolve_dataset
from yoloattn.data.validate import check_yolo_dataset


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("YOLOATTN_CACHE", str(tmp_path_factory.getbasetemp() / "yoloattn-cache"))


def make_dataset(root: Path, n_train: int = 4, n_val: int = 2, size: int = 64, nc: int = 2, seed: int = 0) -> Path:
    """Coloured rectangles on noise in the YOLO layout, one box per image; data.yaml with an absolute root."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("val", n_val)):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            img = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)
            c, w, h = i % nc, size // 3, size // 4
            x0, y0 = int(rng.integers(0, size - w)), int(rng.integers(0, size - h))
            img[y0:y0 + h, x0:x0 + w] = (230, 40, 40) if c == 0 else (40, 200, 40)
            Image.fromarray(img).save(root / "images" / split / f"{i:04d}.png")
            cx, cy = (x0 + w / 2) / size, (y0 + h / 2) / size
            row = f"{c} {cx:.6f} {cy:.6f} {w / size:.6f} {h / size:.6f}\n"
            (root / "labels" / split / f"{i:04d}.txt").write_text(row)
    names = "".join(f"  {i}: c{i}\n" for i in range(nc))
    (root / "data.yaml").write_text(f"path: {root}\ntrain: images/train\nval: images/val\nnames:\n{names}")
    return root / "data.yaml"


def files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def one_error_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# ------------------------------------------------------------------------------------ A. path resolution


def test_relative_root_resolves_from_the_yaml_folder(tmp_path, monkeypatch):
    make_dataset(tmp_path / "project" / "mydata")
    data_yaml = tmp_path / "project" / "data.yaml"
    data_yaml.write_text("path: mydata\ntrain: images/train\nval: images/val\nnames: [a, b]\n")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # Ultralytics would look in ./mydata and its datasets_dir
    before = files_under(tmp_path / "project")

    report = check_yolo_dataset(Path("../project/data.yaml"))
    written = yaml.safe_load(report.resolved_yaml.read_text())
    assert written["path"] == str((tmp_path / "project" / "mydata").resolve())
    assert written["train"] == str((tmp_path / "project" / "mydata" / "images" / "train").resolve())
    assert report.splits["train"].images == 4 and report.splits["val"].images == 2 and not report.skipped
    # the resolved copy lives in yoloattn's cache, never next to the user's data
    assert Path(os.environ["YOLOATTN_CACHE"]) in report.resolved_yaml.parents
    assert files_under(tmp_path / "project") == before


def test_missing_relative_root_names_what_was_tried(tmp_path, monkeypatch):
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "data.yaml").write_text("path: nowhere\ntrain: images/train\nval: images/val\nnames: [a]\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DatasetError, match=r"'path: nowhere' not found \(tried .*p/nowhere.*YAML's folder") as err:
        check_yolo_dataset(tmp_path / "p" / "data.yaml")
    assert "\n" not in str(err.value)


def test_list_lines_resolve_relative_to_the_list_file(tmp_path, monkeypatch):
    root = tmp_path / "ds"
    make_dataset(root)
    images = sorted((root / "images" / "train").glob("*.png"))
    # no ./, with ./, absolute: Ultralytics itself reads only the last two correctly from another folder
    (root / "lists").mkdir()
    (root / "lists" / "train.txt").write_text(
        f"../images/train/{images[0].name}\n./../images/train/{images[1].name}\n{images[2]}\n\n")
    (root / "val.txt").write_text("images/val/0000.png\nimages/val/0001.png\n")
    data_yaml = root / "lists.yaml"
    data_yaml.write_text(f"path: {root}\ntrain: lists/train.txt\nval: val.txt\nnames: [a, b]\n")
    monkeypatch.chdir(tmp_path)
    before = files_under(root)

    resolved = resolve_dataset(data_yaml)
    assert resolved.images["train"] == [str(p) for p in images[:3]]
    assert resolved.images["val"] == [str(root / "images" / "val" / f"000{i}.png") for i in range(2)]
    for split in ("train", "val"):
        list_file = Path(resolved.data[split])
        assert list_file.parent == resolved.out_dir and list_file.suffix == ".txt"
        lines = list_file.read_text().split()
        assert all(Path(line).is_absolute() and Path(line).is_file() for line in lines)
    assert files_under(root) == before
    assert not check_yolo_dataset(data_yaml).skipped


def test_list_line_found_nowhere_is_a_skipped_image(tmp_path):
    root = tmp_path / "ds"
    make_dataset(root)
    (root / "train.txt").write_text("images/train/0000.png\nimages/train/gone.png\nimages/train/notes.gif\n")
    (root / "data.yaml").write_text(f"path: {root}\ntrain: train.txt\nval: images/val\nnames: [a, b]\n")
    report = check_yolo_dataset(root / "data.yaml", allow_skipped=True)
    skipped = {Path(i.image).name: i.kind for i in report.skipped}
    assert skipped == {"gone.png": "image not found", "notes.gif": "not an image file"}
    assert report.splits["train"].images == 3 and report.splits["train"].kept == 1


# ------------------------------------------------------------------ B. what Ultralytics drops or alters


def _break(root: Path) -> dict[str, str]:
    """Damage a copy in every way Ultralytics drops an image; return {image name: expected kind}."""
    labels, images = root / "labels" / "train", root / "images" / "train"
    for i in range(4, 11):  # more images to break, each in one way
        Image.fromarray(np.full((64, 64, 3), 90, np.uint8)).save(images / f"{i:04d}.png")
        (labels / f"{i:04d}.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    with open(labels / "0000.txt", "a") as f:
        f.write("0 0.30 0.30 0.60 0.30 0.60 0.60 0.30 0.60\n")
    (labels / "0001.txt").write_text("0 0.5 0.5 0.2 0.2\n5 0.5 0.5 0.2 0.2\n")
    (labels / "0002.txt").write_text("0 0.5 0.5 0.2\n")
    (labels / "0003.txt").write_text("1 0.5 1.4 0.2 0.2\n")
    (labels / "0004.txt").write_text("0 0.5 0.5 0.2 abc\n")
    (images / "0005.png").write_bytes(b"not an image at all")
    Image.fromarray(np.zeros((5, 5, 3), np.uint8)).save(images / "0006.png")
    (labels / "0007.txt").write_text("0.5 0.5 0.5 0.2 0.2\n")
    # kept but altered: a duplicated row, a zero-area box
    (labels / "0008.txt").write_text("0 0.5 0.5 0.2 0.2\n0 0.5 0.5 0.2 0.2\n")
    (labels / "0009.txt").write_text("1 0.5 0.5 0.0 0.2\n0 0.3 0.3 0.2 0.2\n")
    return {"0000.png": "box and polygon rows mixed", "0001.png": "class id out of range",
            "0002.png": "wrong column count", "0003.png": "coordinates outside [0, 1]",
            "0004.png": "non-numeric values", "0005.png": "unreadable image", "0006.png": "unreadable image",
            "0007.png": "non-integer class id"}


def _ultralytics_kept(resolved_yaml: Path, split: str) -> tuple[list[str], list[dict]]:
    """The images and labels Ultralytics' own loader keeps for ``split`` of a data.yaml."""
    from ultralytics.data.dataset import YOLODataset
    from ultralytics.data.utils import check_det_dataset

    data = check_det_dataset(str(resolved_yaml))
    dataset = YOLODataset(img_path=data[split], imgsz=64, augment=False, data=data, task="detect")
    return dataset.im_files, dataset.labels


def test_skipped_images_are_exactly_those_ultralytics_drops(tmp_path):
    root = tmp_path / "ds"
    make_dataset(root)
    expected = _break(root)
    report = check_yolo_dataset(root / "data.yaml", allow_skipped=True)

    kept, labels = _ultralytics_kept(report.resolved_yaml, "train")
    all_images = sorted(str(p) for p in (root / "images" / "train").glob("*.png"))
    dropped_by_ultralytics = set(all_images) - set(kept)
    assert {i.image for i in report.skipped} == dropped_by_ultralytics
    assert {Path(i.image).name: i.kind for i in report.skipped} == expected
    assert report.skipped_by_split() == {"train": 8, "val": 0}

    altered = {(Path(i.image).name, i.kind) for i in report.altered}
    assert altered == {("0008.png", "duplicate label rows"), ("0009.png", "zero-area boxes")}
    boxes = {Path(lb["im_file"]).name: len(lb["cls"]) for lb in labels}
    assert boxes["0008.png"] == 1  # Ultralytics removed the duplicate row, as reported

    listing = report.listing.read_text()
    assert all(Path(name).stem in listing for name in expected) and report.listing.parent == report.resolved_yaml.parent
    message = report.skipped_message()
    assert "\n" not in message and message.startswith("8 of 13 images would be skipped by Ultralytics (train 8)")


def test_zero_area_boxes_are_removed_by_ultralytics():
    """Why zero-area boxes are reported: Ultralytics' augmentation clips boxes and removes those with no area."""
    from ultralytics.utils.instance import Instances

    boxes = np.array([[32, 32, 32, 40], [10, 10, 30, 30]], dtype=np.float32)  # xyxy pixels; the first has w=0
    instances = Instances(boxes, bbox_format="xyxy", normalized=False)
    assert instances.remove_zero_area_boxes().tolist() == [False, True]


def test_jpeg_repairs_are_reported_not_done_and_failed_repairs_skip(tmp_path):
    root = tmp_path / "ds"
    make_dataset(root)
    val = root / "images" / "val"
    for name in ("0000", "0001"):
        Image.open(val / f"{name}.png").save(val / f"{name}.jpg", quality=90)
        (val / f"{name}.png").unlink()
    trailing, truncated = val / "0000.jpg", val / "0001.jpg"
    trailing.write_bytes(trailing.read_bytes() + b"\0\0")  # no end marker last: Ultralytics rewrites the file
    truncated.write_bytes(truncated.read_bytes()[:-200])  # cut short: the rewrite fails and the image is dropped
    before = trailing.read_bytes()

    report = check_yolo_dataset(root / "data.yaml", allow_skipped=True)
    assert [(Path(i.image).name, i.kind) for i in report.altered] == [("0000.jpg", "JPEG rewritten")]
    assert [(Path(i.image).name, i.kind) for i in report.skipped] == [("0001.jpg", "unreadable image")]
    assert trailing.read_bytes() == before  # the check itself wrote nothing

    kept, _ = _ultralytics_kept(report.resolved_yaml, "val")
    assert [Path(p).name for p in kept] == ["0000.jpg"]
    assert trailing.read_bytes() != before  # ... while Ultralytics' own scan did rewrite it


# ----------------------------------------------------------------------------------------------- the CLI


def test_train_and_val_refuse_skipped_images_in_one_line(tmp_path, capsys):
    root = tmp_path / "ds"
    make_dataset(root)
    with open(root / "labels" / "train" / "0002.txt", "a") as f:
        f.write("5 0.5 0.5 0.2 0.2\n")
    code = main(["train", "yolov8n", f"data={root / 'data.yaml'}", "epochs=1", "imgsz=64",
                 f"project={tmp_path / 'runs'}"])
    line = one_error_line(capsys.readouterr().err)
    assert code == 2 and line.startswith("yoloattn train: error: 1 of 6 images would be skipped by Ultralytics")
    assert re.search(r"labels/train/0002\.txt:2: class id 5 out of range; data\.yaml names 2 classes \(ids 0\.\.1\)",
                     line)
    assert "--allow-skipped to train without them" in line and not (tmp_path / "runs").exists()

    # val checks only the split it evaluates: a broken train split does not matter there
    (root / "labels" / "val" / "0001.txt").write_text("0 0.5 0.5 0.2 0.2\n0 0.1 0.1 0.2 0.2 0.3 0.3 0.1 0.3\n")
    code = main(["val", "yolov8n.yaml", f"data={root / 'data.yaml'}", "imgsz=64", f"project={tmp_path / 'runs'}"])
    line = one_error_line(capsys.readouterr().err)
    assert code == 2 and "1 of 2 images would be skipped" in line and "(val 1)" in line
    assert "val/0001.txt: mixes box rows" in line and "--allow-skipped to validate without them" in line

    code = main(["train", "yolov8n", f"data={root / 'data.yaml'}", "allow_skipped=True"])
    assert code == 2 and "write --allow-skipped" in one_error_line(capsys.readouterr().err)


@pytest.fixture(scope="module")
def trained_relative(tmp_path_factory) -> tuple[Path, str]:
    """A 1-epoch run on a dataset given by a relative root and a relative list, one image skipped, run
    from another folder with --allow-skipped: returns (run folder, stderr)."""
    base = tmp_path_factory.mktemp("relative")
    make_dataset(base / "project" / "mydata", n_train=6)
    mydata = base / "project" / "mydata"
    (mydata / "labels" / "train" / "0005.txt").write_text("7 0.5 0.5 0.2 0.2\n")  # only 2 classes
    (mydata / "val.txt").write_text("images/val/0000.png\nimages/val/0001.png\n")
    (base / "project" / "data.yaml").write_text("path: mydata\ntrain: images/train\nval: val.txt\nnames: [a, b]\n")
    (base / "run").mkdir()
    cwd = os.getcwd()
    os.chdir(base / "run")
    err = io.StringIO()  # a module fixture cannot use capsys
    try:
        with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stderr(err):
            mp.setenv("YOLOATTN_CACHE", str(base / "cache"))
            code = main(["train", "yolov8n", "data=../project/data.yaml", "epochs=1", "imgsz=64", "batch=2",
                         "workers=0", "plots=False", "val=False", f"project={base / 'runs'}", "name=t",
                         "--allow-skipped"])
    finally:
        os.chdir(cwd)
    assert code == 0, err.getvalue()
    return base / "runs" / "t", err.getvalue()


def test_resolved_dataset_trains_with_allow_skipped(trained_relative):
    run, err = trained_relative
    assert (run / "weights" / "last.pt").is_file()
    warnings = [line for line in err.splitlines() if line.startswith("yoloattn train: warning")]
    assert len(warnings) == 1 and "going on without 1 of 8 images" in warnings[0] and "0005.txt" in warnings[0]
    data = yaml.safe_load((run / "args.yaml").read_text())["data"]
    assert "resolved" in data and Path(data).is_file() and not (run.parents[1] / "project" / "resolved").exists()


def test_resume_uses_the_dataset_recorded_in_the_checkpoint(trained_relative, tmp_path, capsys, monkeypatch):
    from ultralytics import YOLO

    run, _ = trained_relative
    calls = []
    def fake_train(self, **kwargs):  # what cmd_train hands Ultralytics, without training again
        calls.append(kwargs)
        self.trainer = SimpleNamespace(save_dir=run)

    monkeypatch.setattr(YOLO, "train", fake_train)
    code = main(["train", str(run / "weights" / "last.pt"), "resume=True", "--allow-skipped"])
    capsys.readouterr()
    assert code == 0 and calls and calls[0]["resume"] is True
    assert Path(calls[0]["data"]).is_file() and yaml.safe_load(Path(calls[0]["data"]).read_text())["val"]

    # without --allow-skipped the recorded dataset is checked like any other
    code = main(["train", str(run / "weights" / "last.pt"), "resume=True"])
    assert code == 2 and "would be skipped by Ultralytics" in one_error_line(capsys.readouterr().err)


def test_resume_without_a_recorded_dataset_says_what_to_pass(trained_relative, tmp_path, capsys):
    import torch

    run, _ = trained_relative
    ckpt = torch.load(run / "weights" / "last.pt", weights_only=False)
    ckpt["train_args"]["data"] = str(tmp_path / "gone" / "data.yaml")  # the dataset was moved away since
    torch.save(ckpt, tmp_path / "last.pt")
    code = main(["train", str(tmp_path / "last.pt"), "resume=True"])
    line = one_error_line(capsys.readouterr().err)
    assert code == 2 and "gone/data.yaml" in line and "resume with data=PATH/data.yaml" in line


# --------------------------------------------------------------------------------------------- compare


def test_compare_refuses_skipped_images_and_reports_counts(tmp_path):
    from yoloattn.compare import report
    from yoloattn.compare import CompareSettings
    from yoloattn.compare.plan import prepare_data

    root = tmp_path / "ds"
    make_dataset(root)
    (root / "labels" / "train" / "0003.txt").write_text("3 0.5 0.5 0.2 0.2\n")
    settings = CompareSettings(data=str(root / "data.yaml"), out=str(tmp_path / "out"), epochs=1, seeds=1)
    before = files_under(root)
    with pytest.raises(DatasetError, match=r"1 of 6 images would be skipped .*0003\.txt:1: class id 3 out of range"
                                           r".*--allow-skipped to compare"):
        prepare_data(settings, tmp_path / "out")

    data = prepare_data(dataclasses.replace(settings, allow_skipped=True), tmp_path / "out")
    assert data.report.skipped_by_split() == {"train": 1, "val": 0}
    run = yaml.safe_load(data.run_yaml.read_text())
    assert Path(run["path"]).is_absolute() and Path(run["val"]).is_absolute()
    assert data.report.listing.parent == tmp_path / "out" / "data" and files_under(root) == before

    context = report.ReportContext(
        title="t", settings=settings.resolved(), summary=[], rows=[], problems=[], summary_notes=[],
        data_yaml=data.data_yaml, eval_split="val", data_report=data.report, where="csp", nc=None, end_to_end=False,
        matmul_peak=1.0, latency_machine="m", machine="m", versions={}, command="c")
    for path in (report.write_markdown(tmp_path / "r.md", context), report.write_html(tmp_path / "r.html", context)):
        assert "images skipped by Ultralytics (corrupt image/label): train 1 of 4, val 0 of 2" in path.read_text()


def test_a_dataset_folder_given_as_data_names_the_yaml_inside(tmp_path, capsys, monkeypatch):
    from yoloattn.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "shapes").mkdir()
    (tmp_path / "shapes" / "data.yaml").write_text("train: images/train\nval: images/val\nnames: [a]\n")
    code = main(["train", "yolov8n", "data=shapes", "--dry-run"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert "shapes is a folder, not a data.yaml; give the file inside: data=" in err[0]
    assert err[0].endswith(str(Path("shapes") / "data.yaml")), err
    (tmp_path / "empty").mkdir()
    assert main(["train", "yolov8n", "data=empty", "--dry-run"]) == 2
    assert "it holds no .yaml file" in capsys.readouterr().err
