"""COCO AP per object size (compare/sizes.py): ground truth from YOLO labels, detections, COCOeval, end to end."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml
from PIL import Image

from yoloattn.compare.sizes import SizeAP, detections, evaluate_sizes, ground_truth, size_ap
from yoloattn.errors import YoloattnError

# (W, H) and boxes as (class, x, y, w, h) in pixels: 2 small (< 32^2), 1 medium, 1 large (> 96^2 px^2).
IMAGES = {
    "a.png": ((200, 120), [(0, 10, 20, 20, 10), (1, 100, 50, 60, 40)]),
    "b.png": ((640, 480), [(2, 300, 200, 200, 150), (0, 40, 400, 16, 16)]),
    "c.png": ((100, 100), None),  # no label file
    "d.png": ((64, 80), []),  # empty label file
}


def _label_line(cls, x, y, w, h, size) -> str:
    return f"{cls} {(x + w / 2) / size[0]} {(y + h / 2) / size[1]} {w / size[0]} {h / size[1]}"


def write_dataset(root: Path, images=IMAGES) -> tuple[list[Path], list[Path]]:
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    paths, labels = [], []
    for name, (size, boxes) in images.items():
        Image.new("RGB", size, (90, 120, 150)).save(root / "images" / name)
        label = root / "labels" / f"{Path(name).stem}.txt"
        if boxes is not None:
            label.write_text("".join(_label_line(*box, size) + "\n" for box in boxes))
        paths.append(root / "images" / name)
        labels.append(label)
    return paths, labels


@pytest.fixture
def gt(tmp_path):
    return ground_truth(*write_dataset(tmp_path), nc=3)


def ap(all_, small, medium, large, objects) -> SizeAP:
    """A SizeAP to compare with ==, the APs within float rounding (pycocotools averages float64 arrays)."""
    near = lambda v: v if v is None else pytest.approx(v)  # noqa: E731
    return SizeAP(near(all_), near(small), near(medium), near(large), objects=objects)


def perfect(gt: dict, shift=lambda ann: 0.0) -> list[dict]:
    """One detection per ground-truth box, score 1, moved right by ``shift(ann)`` pixels."""
    return [{"image_id": a["image_id"], "category_id": a["category_id"], "score": 1.0,
             "bbox": [a["bbox"][0] + shift(a), *a["bbox"][1:]]} for a in gt["annotations"]]


def test_ground_truth_boxes_areas_ids_and_categories(gt, tmp_path):
    assert [(i["id"], Path(i["file_name"]).name, i["width"], i["height"]) for i in gt["images"]] == [
        (1, "a.png", 200, 120), (2, "b.png", 640, 480), (3, "c.png", 100, 100), (4, "d.png", 64, 80)]
    assert gt["images"][0]["file_name"] == str(tmp_path / "images" / "a.png")
    expected = [(1, 1, [10, 20, 20, 10], 200), (1, 2, [100, 50, 60, 40], 2400),
                (2, 3, [300, 200, 200, 150], 30000), (2, 1, [40, 400, 16, 16], 256)]
    got = gt["annotations"]
    assert [a["id"] for a in got] == [1, 2, 3, 4]
    assert all(a["iscrowd"] == 0 for a in got)
    for ann, (image_id, category, box, area) in zip(got, expected, strict=True):
        assert (ann["image_id"], ann["category_id"]) == (image_id, category)
        assert ann["bbox"] == pytest.approx(box)
        assert ann["area"] == pytest.approx(area)
    assert gt["categories"] == [{"id": 1, "name": "0"}, {"id": 2, "name": "1"}, {"id": 3, "name": "2"}]


def test_ground_truth_polygon_label_and_exif_rotation(tmp_path):
    image = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[274] = 6  # rotate 90 degrees: Ultralytics (and cv2) see it as 120 x 200
    Image.new("RGB", (200, 120)).save(image, exif=exif)
    label = tmp_path / "rotated.txt"
    label.write_text("1 0.1 0.2 0.5 0.2 0.3 0.6\n")  # a triangle: box x 0.1..0.5, y 0.2..0.6
    gt = ground_truth([image], [label], nc=2)
    assert (gt["images"][0]["width"], gt["images"][0]["height"]) == (120, 200)
    assert gt["annotations"][0]["bbox"] == pytest.approx([12, 40, 48, 80])
    assert gt["annotations"][0]["category_id"] == 2


@pytest.mark.parametrize("line, problem", [
    ("0 0.5 0.5 0.2", "line 2: expected 'class cx cy w h'"),
    ("0 0.5 0.5 0.2 x", "line 2: expected 'class cx cy w h'"),
    ("0 0.5 nan 0.2 0.2", "line 2: expected 'class cx cy w h'"),
    ("3 0.5 0.5 0.2 0.2", "line 2: class 3 is not an integer in 0..2"),
    ("0.5 0.5 0.5 0.2 0.2", "line 2: class 0.5 is not an integer"),
])
def test_bad_label_line_names_file_and_line(tmp_path, line, problem):
    paths, labels = write_dataset(tmp_path, {"a.png": ((50, 50), [(0, 1, 1, 10, 10)])})
    labels[0].write_text(labels[0].read_text() + line + "\n")
    with pytest.raises(YoloattnError, match="a.txt " + problem.replace(".", r"\.")):
        ground_truth(paths, labels, nc=3)
    with pytest.raises(YoloattnError, match="1 images but 2 label paths"):
        ground_truth(paths, labels * 2, nc=3)


def test_perfect_detections_give_ap_1_and_none_for_absent_sizes(gt):
    assert size_ap(gt, perfect(gt)) == ap(1.0, 1.0, 1.0, 1.0, objects=(2, 1, 1))
    only_a = {**gt, "images": gt["images"][:1], "annotations": gt["annotations"][:2]}
    assert size_ap(only_a, perfect(only_a)) == ap(1.0, 1.0, 1.0, None, objects=(1, 1, 0))


def test_shifted_boxes_lower_ap(gt):
    # Moved by 30 % of its width a box keeps IoU 0.7 / 1.3 = 0.54: a match at IoU .50 only, 1 of 10 thresholds.
    shifted = size_ap(gt, perfect(gt, lambda a: 0.3 * a["bbox"][2]))
    assert shifted == ap(0.1, 0.1, 0.1, 0.1, objects=(2, 1, 1))
    # Only the small boxes (all of class 0) moved: only small AP drops; "all" averages the 3 classes.
    small_moved = size_ap(gt, perfect(gt, lambda a: 0.3 * a["bbox"][2] if a["area"] < 32**2 else 0.0))
    assert small_moved.small == pytest.approx(0.1)
    assert (small_moved.medium, small_moved.large) == pytest.approx((1.0, 1.0))
    assert small_moved.all == pytest.approx((0.1 + 1 + 1) / 3)


def test_no_detections_score_zero_where_there_are_objects(gt):
    assert size_ap(gt, []) == SizeAP(0.0, 0.0, 0.0, 0.0, objects=(2, 1, 1))
    only_a = {**gt, "images": gt["images"][:1], "annotations": gt["annotations"][:2]}
    assert size_ap(only_a, []) == SizeAP(0.0, 0.0, 0.0, None, objects=(1, 1, 0))
    empty = {**gt, "annotations": []}
    assert size_ap(empty, []) == SizeAP(None, None, None, None, objects=(0, 0, 0))


def test_size_ap_leaves_its_inputs_unchanged(gt):
    dets = perfect(gt)
    before = (repr(gt), repr(dets))
    size_ap(gt, dets)
    assert (repr(gt), repr(dets)) == before


def _result(path: str, xyxy, conf, cls):
    boxes = SimpleNamespace(xyxy=torch.tensor(xyxy, dtype=torch.float32).reshape(-1, 4),
                            conf=torch.tensor(conf, dtype=torch.float32), cls=torch.tensor(cls, dtype=torch.float32))
    return SimpleNamespace(path=path, boxes=boxes)


def test_detections_convert_xyxy_to_coco_xywh():
    results = [_result("/d/a.png", [[10, 20, 30, 60], [0, 0, 5, 5]], [0.9, 0.25], [2, 0]),
               _result("/d/b.png", [], [], [])]
    dets = detections(results, {"/d/a.png": 7, "/d/b.png": 8})
    assert [(d["image_id"], d["category_id"]) for d in dets] == [(7, 3), (7, 1)]
    assert dets[0]["bbox"] == pytest.approx([10, 20, 20, 40])
    assert dets[1]["bbox"] == pytest.approx([0, 0, 5, 5])
    assert [d["score"] for d in dets] == pytest.approx([0.9, 0.25])
    with pytest.raises(YoloattnError, match="/d/c.png"):
        detections([_result("/d/c.png", [], [], [])], {"/d/a.png": 7})


def _five_class_model(tmp_path: Path):
    from ultralytics import YOLO
    from ultralytics.nn.tasks import yaml_model_load

    cfg = yaml_model_load("yolov8n.yaml")
    cfg["nc"] = 5
    (tmp_path / "yolov8n-5cls.yaml").write_text(yaml.safe_dump(cfg))
    return YOLO(str(tmp_path / "yolov8n-5cls.yaml"))


def test_evaluate_sizes_end_to_end(tmp_path, tiny_data):
    data_yaml = tiny_data
    truth, areas = {}, []  # image path -> (xyxy, cls) in pixels, read here independently of the module
    for image in sorted((data_yaml.parent / "images" / "test").iterdir()):
        width, height = Image.open(image).size
        rows = [list(map(float, line.split()))
                for line in (data_yaml.parent / "labels" / "test" / f"{image.stem}.txt").read_text().splitlines()]
        truth[str(image)] = ([[(cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height]
                              for _, cx, cy, w, h in rows], [c for c, *_ in rows])
        areas += [w * width * h * height for _, _, _, w, h in rows]
    expected = (sum(a < 32**2 for a in areas), sum(32**2 <= a <= 96**2 for a in areas), sum(a > 96**2 for a in areas))
    assert sum(expected) == len(areas) > 0

    # A stand-in model that predicts the labels: every path, id and box must line up to give AP 1.
    calls = []

    def predict(source, **kwargs):
        calls.append(kwargs)
        return (_result(path, truth[path][0], [1.0] * len(truth[path][1]), truth[path][1]) for path in source)

    oracle = SimpleNamespace(names={i: str(i) for i in range(5)}, predict=predict)
    perfect_result = evaluate_sizes(oracle, data_yaml, "test", imgsz=64, batch=4)
    assert perfect_result == ap(1.0, *(1.0 if n else None for n in expected), objects=expected)
    assert calls == [dict(imgsz=64, conf=0.001, iou=0.7, max_det=300, device="cpu", batch=4, verbose=False,
                          stream=True)]

    model = _five_class_model(tmp_path)  # untrained: any AP in 0..1, but the same counts
    with pytest.raises(YoloattnError, match="no 'minival' split"):
        evaluate_sizes(model, data_yaml, "minival", imgsz=64)
    result = evaluate_sizes(model, data_yaml, "test", imgsz=64, batch=4)
    assert result.objects == expected
    for size, count in zip((result.small, result.medium, result.large), expected, strict=True):
        assert (size is None) == (count == 0)
    assert all(v is None or 0.0 <= v <= 1.0 for v in (result.all, result.small, result.medium, result.large))
    assert result.all is not None


def test_evaluate_sizes_refuses_a_model_with_other_classes(tmp_path):
    from ultralytics import YOLO

    paths, _ = write_dataset(tmp_path / "ds", {"a.png": ((50, 50), [(0, 1, 1, 10, 10)])})
    data_yaml = tmp_path / "ds" / "data.yaml"
    data_yaml.write_text("train: images\nval: images\nnames: {0: a, 1: b, 2: c}\n")
    with pytest.raises(YoloattnError, match="predicts 80 classes but .*data.yaml has 3"):
        evaluate_sizes(YOLO("yolov8n.yaml"), data_yaml, "val", imgsz=64)
