"""Tests of the embedded "digits in clutter" dataset generator and the YOLO dataset checker."""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from yoloattn.data import PRESETS, DatasetError, check_yolo_dataset, generate, generator, sources
from yoloattn.data.sources import SourceUnavailable

SPLITS = ("train", "val", "test")


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """One cache per test session (the parsed MNIST .npy is reused), never the user's ~/.cache."""
    monkeypatch.setenv("YOLOATTN_CACHE", str(tmp_path_factory.getbasetemp() / "yoloattn-cache"))


@pytest.fixture
def tiny(tiny_data) -> Path:
    """The session's tiny dataset (conftest.py); tests that modify it work on a copy."""
    return tiny_data


def _files(root: Path) -> dict[str, bytes]:
    """The generator's files under ``root``: not the label caches (``*.cache``) Ultralytics writes next to the
    label folders of a dataset other tests of the session trained on."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.suffix != ".cache"}


def _manifest(data_yaml: Path) -> dict:
    return json.loads((data_yaml.parent / "manifest.json").read_text())


def _meta(data_yaml: Path, split: str) -> list[dict]:
    with open(data_yaml.parent / "meta" / f"{split}.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_tiny_layout_labels_and_manifest(tiny):
    root = tiny.parent
    data = yaml.safe_load(tiny.read_text())
    assert Path(data["path"]).is_absolute() and Path(data["path"]) == root
    assert data["names"] == {i: str(i) for i in range(5)}
    check_yolo_dataset(tiny)

    manifest = _manifest(tiny)
    sizes = {"train": 16, "val": 8, "test": 8}
    for split in SPLITS:
        images = sorted((root / "images" / split).glob("*.png"))
        labels = sorted((root / "labels" / split).glob("*.txt"))
        assert len(images) == len(labels) == sizes[split] == manifest["splits"][split]["images"]
        pixel_boxes = {}
        for row in _meta(tiny, split):
            pixel_boxes.setdefault(row["image"], []).append([int(row[k]) for k in ("x1", "y1", "x2", "y2")])
        n_boxes = 0
        for image_file, label_file in zip(images, labels):
            height, width = cv2.imread(str(image_file)).shape[:2]
            assert 64 <= width <= 96 and 64 <= height <= 96
            rows = np.loadtxt(label_file, ndmin=2)
            assert rows.shape[0] >= 1 and rows.shape[1] == 5, f"{label_file} must hold >= 1 box"
            cls, cx, cy, w, h = rows.T
            assert np.all(cls == cls.astype(int)) and np.all((cls >= 0) & (cls < 5))
            assert np.all((w > 0) & (w <= 1) & (h > 0) & (h <= 1))
            assert np.all(cx - w / 2 >= -1e-6) and np.all(cx + w / 2 <= 1 + 1e-6)
            assert np.all(cy - h / 2 >= -1e-6) and np.all(cy + h / 2 <= 1 + 1e-6)
            # the normalised label is the pixel box of the meta file, up to the 6-decimal rounding
            x1, y1, x2, y2 = np.asarray(pixel_boxes[image_file.stem], float).T
            np.testing.assert_allclose(cx, (x1 + x2) / 2 / width, atol=1e-6)
            np.testing.assert_allclose(h, (y2 - y1) / height, atol=1e-6)
            n_boxes += rows.shape[0]
        entry = manifest["splits"][split]
        assert n_boxes == entry["boxes"] == sum(entry["class_histogram"].values())

        digest = hashlib.sha256()
        for label_file in labels:
            digest.update(label_file.name.encode() + b"\0" + label_file.read_bytes())
        assert digest.hexdigest() == manifest["splits"][split]["labels_sha256"]

    assert manifest["generator_version"] == generator.GENERATOR_VERSION
    assert manifest["config"]["n_train"] == 16 and manifest["seed"] == 0 and manifest["preset"] == "tiny"
    assert manifest["sources"]["glyphs"]["name"] == "mnist_5k"
    assert "CC BY-SA 3.0" in manifest["sources"]["glyphs"]["licence"]
    assert manifest["sources"]["fallbacks"] == []
    backgrounds = {b["name"]: b for b in manifest["sources"]["backgrounds"]}
    assert {"astronaut", "grace_hopper", "rocket"} <= set(backgrounds)
    assert all(b["licence"] and b["version"] for b in backgrounds.values())


def test_same_seed_gives_identical_bytes(tiny, tmp_path):
    again = generate("tiny", out=tmp_path / "again", seed=0)
    first, second = _files(tiny.parent), _files(again.parent)
    assert first.keys() == second.keys()
    differing = [name for name in first if first[name] != second[name]]
    assert differing == ["data.yaml"]  # only the absolute `path:` line differs
    assert _manifest(tiny)["splits"] == _manifest(again)["splits"]


def test_different_seed_differs(tiny, tmp_path):
    other = _manifest(generate("tiny", out=tmp_path / "seed1", seed=1))["splits"]
    for split in SPLITS:
        assert other[split]["labels_sha256"] != _manifest(tiny)["splits"][split]["labels_sha256"]
        assert other[split]["images_sha256"] != _manifest(tiny)["splits"][split]["images_sha256"]


def test_images_do_not_depend_on_split_sizes_or_image_format(tiny, tmp_path):
    grown = generate("tiny", out=tmp_path / "grown", seed=0, n_train=20, image_format="jpg")
    for index in range(16):
        name = f"labels/train/{index:06d}.txt"
        assert (grown.parent / name).read_bytes() == (tiny.parent / name).read_bytes()
    assert len(list((grown.parent / "images" / "train").glob("*.jpg"))) == 20
    # labels never depend on pixels, so val/test label hashes survive the format change
    for split in ("val", "test"):
        assert _manifest(grown)["splits"][split]["labels_sha256"] == _manifest(tiny)["splits"][split]["labels_sha256"]


def test_glyph_identities_are_disjoint_across_splits(tiny):
    glyphs, _ = sources.load_glyphs(sources.cache_root())
    pools = sources.split_identities(glyphs.labels)
    used = {}
    for split in SPLITS:
        rows = _meta(tiny, split)
        used[split] = {int(r["glyph_index"]) for r in rows}
        allowed = set(np.concatenate(list(pools[split].values())).tolist())
        assert used[split] <= allowed
        assert all(int(glyphs.labels[int(r["glyph_index"])]) == int(r["digit"]) for r in rows)
    assert not used["train"] & used["val"] and not used["train"] & used["test"] and not used["val"] & used["test"]
    # the pools themselves partition every class 70/15/15 by index
    for digit in range(10):
        parts = [pools[split][digit] for split in SPLITS]
        assert np.array_equal(np.concatenate(parts), np.flatnonzero(glyphs.labels == digit))
        assert [len(p) for p in parts] == [350, 75, 75]


def test_cache_reuse_without_regenerating(monkeypatch):
    first = generate("tiny", seed=3)
    assert first.parent.parent == sources.cache_root().resolve() / "datasets"
    stamp = (first.parent / "manifest.json").stat().st_mtime_ns

    def must_not_run(*args, **kwargs):
        raise AssertionError("a matching cached dataset must be reused")

    monkeypatch.setattr(generator, "_write_dataset", must_not_run)
    assert generate("tiny", seed=3) == first
    assert (first.parent / "manifest.json").stat().st_mtime_ns == stamp
    with pytest.raises(AssertionError, match="must be reused"):
        generate("tiny", seed=3, n_test=9)  # different knobs -> a different cache entry


def test_interrupted_generation_leaves_nothing_that_looks_complete(monkeypatch, tmp_path):
    render = generator.render_image
    calls = []

    def crash_after_five(*args, **kwargs):
        calls.append(1)
        if len(calls) > 5:
            raise KeyboardInterrupt
        return render(*args, **kwargs)

    monkeypatch.setattr(generator, "render_image", crash_after_five)
    with pytest.raises(KeyboardInterrupt):
        generate("tiny", out=tmp_path / "ds", seed=0)
    assert list(tmp_path.iterdir()) == []  # neither the dataset nor its temporary folder remain
    monkeypatch.setattr(generator, "render_image", render)
    check_yolo_dataset(generate("tiny", out=tmp_path / "ds", seed=0))


def _unavailable(*args, **kwargs):
    raise SourceUnavailable("disabled by the test")


def test_fallback_sources_are_used_and_recorded(monkeypatch, tmp_path):
    monkeypatch.setattr(sources, "load_mnist_5k", _unavailable)
    monkeypatch.setattr(sources, "load_sklearn_digits", _unavailable)
    monkeypatch.setattr(sources, "load_skimage_backgrounds", _unavailable)
    data_yaml = generate("tiny", out=tmp_path / "fallback", seed=0)
    check_yolo_dataset(data_yaml)
    manifest = _manifest(data_yaml)
    assert manifest["sources"]["glyphs"]["name"] == "fonts"
    names = [b["name"] for b in manifest["sources"]["backgrounds"]]
    assert names[:-1] == [f"texture_{i:02d}" for i in range(len(names) - 1)] and names[-1] == "grace_hopper"
    notes = " ".join(manifest["sources"]["fallbacks"])
    assert "mnist_5k unavailable" in notes and "sklearn_digits unavailable" in notes
    assert "scikit-image unavailable" in notes and "procedural textures" in notes


def test_sklearn_digits_are_the_first_glyph_fallback(monkeypatch):
    monkeypatch.setattr(sources, "load_mnist_5k", _unavailable)
    glyphs, notes = sources.load_glyphs(sources.cache_root())
    assert glyphs.source["name"] == "sklearn_digits" and glyphs.images.shape[1:] == (28, 28)
    assert sorted(set(glyphs.labels.tolist())) == list(range(10)) and len(notes) == 1


def test_foreign_output_folder_is_not_overwritten(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match=r"not written by yoloattn\.data"):
        generate("tiny", out=tmp_path, seed=0)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_bad_preset_and_options():
    with pytest.raises(ValueError, match="unknown dataset preset 'huge'") as err:
        generate("huge")
    assert all(name in str(err.value) for name in PRESETS)
    with pytest.raises(ValueError, match=r"unknown dataset option\(s\) \['n_trian'\]") as err:
        generate("tiny", n_trian=5)
    assert "n_train" in str(err.value) and "imgsz" in str(err.value)
    with pytest.raises(ValueError, match="imgsz must be >= 32"):
        generate("tiny", imgsz=16)
    with pytest.raises(ValueError, match="glyph_height"):
        generate("demo", imgsz=96)  # 64 px glyphs do not fit a 96 px image
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        generate("tiny", seed=-1)


def _break_missing_yaml(root: Path) -> Path:
    (root / "data.yaml").unlink()
    return root / "data.yaml"


def _break_missing_val(root: Path) -> Path:
    data = yaml.safe_load((root / "data.yaml").read_text())
    del data["val"]
    (root / "data.yaml").write_text(yaml.safe_dump(data))
    return root / "data.yaml"


def _break_image_folder(root: Path) -> Path:
    shutil.rmtree(root / "images" / "val")
    return root / "data.yaml"


def _break_label_folder(root: Path) -> Path:
    for label in (root / "labels" / "train").glob("*.txt"):
        label.unlink()
    return root / "data.yaml"


def _rewrite_first_label(line: str):
    def breaker(root: Path) -> Path:
        (root / "labels" / "val" / "000000.txt").write_text(line)
        return root / "data.yaml"

    return breaker


@pytest.mark.parametrize(
    "breaker, message",
    [
        (_break_missing_yaml, r"data\.yaml not found"),
        (_break_missing_val, r"missing val entry"),
        (_break_image_folder, r"image folder for 'val' not found"),
        (_break_label_folder, r"label folder for 'train' is empty"),
        (_rewrite_first_label("0 0.5 0.5 0.2\n"), r"000000\.txt:1: 4 columns; expected 5"),
        (_rewrite_first_label("0 0.5 0.5 0.2 0.2\n7 0.5 0.5 0.2 0.2\n"), r"000000\.txt:2: class id 7 out of range"),
        (_rewrite_first_label("1 0.5 1.4 0.2 0.2\n"), r"000000\.txt:1: coordinates .* outside \[0, 1\]"),
        (_rewrite_first_label("0 0.5 0.5 0.2 0.2\n0 0.1 0.1 0.3 0.1 0.3 0.3\n"),
         r"^1 of 32 images would be skipped by Ultralytics \(val 1\): box and polygon rows mixed: 1; "
         r"e\.g\. .*000000\.txt: mixes box rows \(5 columns, line 1\) with polygon rows \(line 2\)"),
    ],
    ids=["missing-yaml", "missing-val", "image-folder", "empty-labels", "columns", "class-id", "coords", "mixed"],
)
def test_check_yolo_dataset_names_the_problem(tiny, tmp_path, breaker, message):
    root = tmp_path / "copy"
    shutil.copytree(tiny.parent, root)
    data = yaml.safe_load((root / "data.yaml").read_text())
    data["path"] = str(root)
    (root / "data.yaml").write_text(yaml.safe_dump(data))
    check_yolo_dataset(root / "data.yaml")  # the intact copy passes

    with pytest.raises(DatasetError, match=message) as err:
        check_yolo_dataset(breaker(root))
    assert isinstance(err.value, ValueError) and "\n" not in str(err.value)
