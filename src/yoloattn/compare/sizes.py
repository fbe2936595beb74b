"""COCO box AP per object size (small / medium / large) of a trained detector on a YOLO dataset split.

Follows the COCO evaluation protocol as implemented by ``pycocotools`` (``COCOeval``, ``iouType="bbox"``):
AP@[.50:.95] averaged over the classes that have ground truth, at most 100 detections per image, with the
COCO area ranges in ORIGINAL image pixels: small < 32^2, medium 32^2..96^2, large > 96^2 px^2. A YOLO
label has no mask, so the area of a ground-truth object is its box area (COCO proper uses the mask area).

Predictions come from ``model.predict`` with the thresholds of Ultralytics' validator (conf 0.001, IoU
0.7, 300 boxes), so ``all`` is close to, not equal to, Ultralytics' mAP50-95: the validator letterboxes
rectangular batches, keeps several classes per box (multi-label NMS), keeps 300 boxes per image where COCO
scores the top 100, and integrates precision with its own interpolation.
"""

from __future__ import annotations

import contextlib
import copy
import io
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import YoloattnError

CHUNK = 512  # image paths per predict call: a bounded list whatever the split's size


@dataclass(frozen=True)
class SizeAP:
    """COCO AP@[.50:.95] (0..1) over all objects and per size; None where the split has no such object."""

    all: float | None
    small: float | None
    medium: float | None
    large: float | None
    objects: tuple[int, int, int]  # ground-truth boxes per size (small, medium, large)


def _parse_label(label: Path, nc: int, size: tuple[int, int]) -> list[tuple[int, list[float]]]:
    """(class, [x, y, w, h] in pixels) per line; a polygon line (class x1 y1 x2 y2 ...) becomes its bounding
    box, as Ultralytics does for a detection dataset with segment labels."""
    width, height = size
    boxes = []
    for number, line in enumerate(label.read_text(encoding="utf-8-sig").splitlines(), 1):
        if not line.strip():
            continue
        try:
            values = [float(v) for v in line.split()]
        except ValueError:
            values = []
        polygon = len(values) >= 7 and len(values) % 2 == 1
        if (len(values) != 5 and not polygon) or not all(math.isfinite(v) for v in values):
            raise YoloattnError(f"{label} line {number}: expected 'class cx cy w h' (or a polygon), got {line.strip()!r}")
        cls = values[0]
        if cls != int(cls) or not 0 <= cls < nc:
            raise YoloattnError(f"{label} line {number}: class {values[0]:g} is not an integer in 0..{nc - 1}")
        if polygon:
            xs, ys = values[1::2], values[2::2]
            cx, cy, w, h = (min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2, max(xs) - min(xs), max(ys) - min(ys)
        else:
            cx, cy, w, h = values[1:]
        w, h = w * width, h * height
        boxes.append((int(cls), [cx * width - w / 2, cy * height - h / 2, w, h]))
    return boxes


def ground_truth(images: list[Path], labels: list[Path | None], nc: int) -> dict:
    """COCO ground-truth dict (``images``, ``annotations``, ``categories``) from YOLO label files.

    ``labels[i]`` belongs to ``images[i]``; a label line is ``class cx cy w h`` normalised to 0..1 (one
    box per line); a missing, None or empty file means no objects. Image ids are 1..N in the given order
    and ``file_name`` is ``str(images[i])``; widths and heights are the EXIF-corrected size read with PIL
    (the frame Ultralytics' labels and predictions use). Boxes are ``[x, y, w, h]`` in pixels, ``area`` is
    ``w * h`` in px^2, ``category_id`` is class + 1 (classes 0..nc-1), ``iscrowd`` 0.

    Raises:
        YoloattnError: ``images`` and ``labels`` differ in length, or a label line is not 5 numbers
            (nor a polygon) or has a class outside 0..nc-1; the message names the file and line.
        OSError: an image that PIL cannot open.
    """
    from PIL import Image
    from ultralytics.data.utils import exif_size

    if len(images) != len(labels):
        raise YoloattnError(f"{len(images)} images but {len(labels)} label paths; give one label path per image")
    gt: dict = {"images": [], "annotations": [], "categories": [{"id": c + 1, "name": str(c)} for c in range(nc)]}
    for image_id, (image, label) in enumerate(zip(images, labels), 1):
        with Image.open(image) as im:
            width, height = exif_size(im)
        gt["images"].append({"id": image_id, "file_name": str(image), "width": width, "height": height})
        if label is None or not Path(label).is_file():
            continue
        for cls, box in _parse_label(Path(label), nc, (width, height)):
            gt["annotations"].append({"id": len(gt["annotations"]) + 1, "image_id": image_id, "category_id": cls + 1,
                                      "bbox": box, "area": box[2] * box[3], "iscrowd": 0})
    return gt


def detections(results, image_ids: dict[str, int]) -> list[dict]:
    """COCO detection list from Ultralytics ``Results`` (``r.path``; ``r.boxes.xyxy`` (n, 4) in original
    pixels, ``r.boxes.conf`` (n,), ``r.boxes.cls`` (n,)): ``bbox`` ``[x, y, w, h]`` in pixels, ``score`` the
    confidence, ``category_id`` class + 1, ``image_id`` ``image_ids[r.path]``.

    Raises:
        YoloattnError: a result whose ``path`` is not in ``image_ids``.
    """
    dets = []
    for r in results:
        if str(r.path) not in image_ids:
            raise YoloattnError(f"prediction for {r.path}, which is not one of the evaluated images")
        image_id = image_ids[str(r.path)]
        xyxy, conf, cls = (t.detach().cpu().tolist() for t in (r.boxes.xyxy, r.boxes.conf, r.boxes.cls))
        for (x1, y1, x2, y2), score, c in zip(xyxy, conf, cls):
            dets.append({"image_id": image_id, "category_id": int(c) + 1, "bbox": [x1, y1, x2 - x1, y2 - y1],
                         "score": float(score)})
    return dets


def size_ap(gt: dict, dets: list[dict]) -> SizeAP:
    """Run ``COCOeval`` (bbox) on a ground-truth dict and a detection list (see :func:`ground_truth` and
    :func:`detections`) and return stats[0] (all), stats[3..5] (small, medium, large).

    pycocotools' -1 (no ground truth of that size) becomes None; with no detections at all every size
    that has objects gets 0.0 (pycocotools cannot load an empty result list).
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    areas = [a["area"] for a in gt["annotations"]]
    objects = (sum(a < 32**2 for a in areas), sum(32**2 <= a <= 96**2 for a in areas), sum(a > 96**2 for a in areas))
    if not dets:
        zero = lambda n: 0.0 if n else None  # noqa: E731
        return SizeAP(zero(len(areas)), *(zero(n) for n in objects), objects=objects)
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress and the stats table
        coco_gt = COCO()
        coco_gt.dataset = {"info": {}, **copy.deepcopy(gt)}  # COCOeval and loadRes write into the dicts
        coco_gt.createIndex()
        evaluation = COCOeval(coco_gt, coco_gt.loadRes(copy.deepcopy(dets)), "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    stats = [None if s < 0 else float(s) for s in evaluation.stats]
    return SizeAP(stats[0], stats[3], stats[4], stats[5], objects=objects)


def _split(data_yaml: str | Path, split: str) -> tuple[list[str], int]:
    from ..data.resolve import resolve_dataset

    with tempfile.TemporaryDirectory(prefix="yoloattn-sizes-") as scratch:
        resolved = resolve_dataset(data_yaml, out_dir=scratch)
    if split not in resolved.images:
        raise YoloattnError(f"{data_yaml}: no '{split}' split; it has {', '.join(sorted(resolved.images))}")
    return list(dict.fromkeys(resolved.images[split])), resolved.nc  # a repeated line: one image, one id


def split_images(data_yaml: str | Path, split: str) -> list[str]:
    """The image paths of ``split`` of a YOLO ``data.yaml``, each once, in Ultralytics' order (yoloattn's
    resolution rules, ``data.resolve``). Raises YoloattnError for a missing split, DatasetError for a bad YAML."""
    return _split(data_yaml, split)[0]


def evaluate_sizes(weights, data_yaml: str | Path, split: str, imgsz: int, device: str = "cpu",
                   batch: int = 16, nms: bool | None = None) -> SizeAP:
    """Per-size COCO AP of a detector on ``split`` ("val", "test", ...) of a YOLO ``data.yaml``.

    ``weights``: a checkpoint path, or an already loaded ``ultralytics.YOLO`` (e.g. ``YOLO("yolov8n.yaml")``).
    The YAML is resolved by yoloattn's own rules (``data.resolve``, nothing downloaded or written outside a
    temporary folder); images are the split's, each listed once, in Ultralytics' order, labels found with
    Ultralytics' ``img2label_paths``; ``imgsz`` is the inference size in pixels; ``nms`` is Ultralytics'
    argument (False: an end-to-end model's NMS-free head; None: its default).

    Raises:
        YoloattnError: the YAML has no such split, the model's class count differs from the dataset's, or a
            bad label (see :func:`ground_truth`); ``DatasetError`` (a YoloattnError) for a bad data.yaml.
    """
    from ultralytics import YOLO

    from ..integration.dataset import label_paths

    paths, nc = _split(data_yaml, split)
    model = YOLO(str(weights)) if isinstance(weights, (str, os.PathLike)) else weights
    if len(model.names) != nc:
        raise YoloattnError(f"the model predicts {len(model.names)} classes but {data_yaml} has {nc}")
    gt = ground_truth([Path(p) for p in paths], [Path(p) for p in label_paths(paths)], nc)
    image_ids = {image["file_name"]: image["id"] for image in gt["images"]}
    dets = []
    for start in range(0, len(paths), CHUNK):
        results = model.predict(source=paths[start:start + CHUNK], imgsz=imgsz, conf=0.001, iou=0.7, max_det=300,
                                device=device, batch=batch, verbose=False, stream=True,
                                **({} if nms is None else {"nms": nms}))
        dets += detections(results, image_ids)
    return size_ap(gt, dets)
