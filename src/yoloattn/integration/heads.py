"""What a model YAML's head decides: its task, its model class, trainer and wrapper, its NMS mode.

Ultralytics picks these from the head row: ``guess_model_task`` for the task; RT-DETR's
``RTDETRDecoder`` needs ``RTDETRDetectionModel``, ``RTDETRTrainer`` and the ``RTDETR`` wrapper
(``YOLO(...)`` would build it as a plain ``DetectionModel`` whose loss cannot train it); and
YOLO26 (``end2end: True``) and YOLOv10 (``v10Detect``) carry an end-to-end one-to-one head next to
the one-to-many head, chosen at inference by Ultralytics' ``nms`` argument (``nms=False``: the
NMS-free head; ``None``: one-to-many outputs through NMS). Everything here reads a model dict (an
Ultralytics YAML as loaded) or a built model, so callers never test class names themselves.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..yaml_model import head_row

END_TO_END_HEADS = {"v10Detect"}  # heads that are end-to-end whatever the YAML's end2end key says


def output_tensors(out) -> list:
    """Every tensor in a built model's output, in order: a tensor, or lists, tuples (a ``None`` slot included,
    as in TTA's ``(y, None)``) and dicts of them, whose layout differs between heads and Ultralytics versions."""
    import torch

    if out is None:
        return []
    if isinstance(out, torch.Tensor):
        return [out]
    items = out.values() if isinstance(out, dict) else out
    return [t for item in items for t in output_tensors(item)]


def head_name(d: dict) -> str:
    """The module name of the last row: ``Detect``, ``Segment``, ``v10Detect``, ``RTDETRDecoder``, ...

    Raises ModelYamlError when the dict has no rows or a malformed one (``yaml_model.head_row``)."""
    return str(head_row(d).module)


def task_of(d: dict) -> str:
    """Ultralytics' task of a model dict: ``detect``, ``segment``, ``pose``, ``obb`` or ``classify``."""
    from ultralytics.nn.tasks import guess_model_task

    if is_rtdetr(d):  # guess_model_task knows the RT-DETR model class, not its YAML head
        return "detect"
    return guess_model_task(d)


def is_rtdetr(d: dict) -> bool:
    """Whether the model is RT-DETR (``RTDETRDecoder`` head): built by ``RTDETR(...)``, trained by ``RTDETRTrainer``."""
    return head_name(d) == "RTDETRDecoder"


def is_end_to_end(d: dict) -> bool:
    """Whether the head has an end-to-end (one-to-one, NMS-free) branch: YOLO26 (``end2end: True``), YOLOv10."""
    return head_name(d) in END_TO_END_HEADS or bool(d.get("end2end"))


def model_dict(cfg) -> dict:
    """A model dict from a dict, a YAML path (the scale read from its name, as Ultralytics does) or a built model."""
    if isinstance(cfg, dict):
        return cfg
    if hasattr(cfg, "yaml"):
        return cfg.yaml
    from ultralytics.nn.tasks import yaml_model_load

    return yaml_model_load(str(cfg))


def build_model(cfg, nc: int | None = None, verbose: bool = False, end_to_end: bool | None = None):
    """The Ultralytics model of ``cfg`` (dict or YAML path) with the right class for its head.

    ``end_to_end``: for a model with an end-to-end head, select that head (True) or the one-to-many head
    (False) for inference; None leaves Ultralytics' default.
    """
    from ultralytics.nn.tasks import DetectionModel, RTDETRDetectionModel

    d = model_dict(cfg)
    cls = RTDETRDetectionModel if is_rtdetr(d) else DetectionModel
    model = cls(cfg if isinstance(cfg, dict) else str(cfg), nc=nc, verbose=verbose)
    if end_to_end is not None and is_end_to_end(d):
        model.end2end = end_to_end
    return model


def load_model(source, nc: int | None = None, end_to_end: bool | None = None):
    """The Ultralytics model of a resolved model name (``compare.models.resolve_model``): a local ``.pt``
    checkpoint's model in float32, or a YAML built with random weights, its scale read from the file name
    as Ultralytics does, with ``nc`` classes when given (set in the dict, so Ultralytics does not log an
    override). ``end_to_end`` as for :func:`build_model`. The one way yoloattn builds a model from a name."""
    if str(source).endswith(".pt"):
        return wrapper(source).model.float()
    cfg = dict(model_dict(str(source)))
    if nc:
        cfg["nc"] = nc
    return build_model(cfg, end_to_end=end_to_end)


def wrapper(source):
    """``YOLO(source)`` or, for an RT-DETR YAML or checkpoint, ``RTDETR(source)`` (its predictor and trainer)."""
    from ultralytics import RTDETR, YOLO
    from ultralytics.nn.tasks import RTDETRDetectionModel

    if isinstance(source, (str, Path)) and str(source).endswith((".yaml", ".yml")):
        return RTDETR(str(source)) if is_rtdetr(model_dict(source)) else YOLO(str(source))
    model = YOLO(str(source))
    return RTDETR(str(source)) if isinstance(model.model, RTDETRDetectionModel) else model


@dataclass(frozen=True)
class Task:
    """What yoloattn does with a task of Ultralytics (``task_of``)."""

    name: str
    trainer: str | None  # yoloattn's trainer class in integration/trainer.py; None: not trained
    labels: str  # what its labels carry beyond a class, for messages
    embedded: bool  # the embedded dataset (boxes only, data/) fits it
    compare: bool  # `yoloattn compare` trains and evaluates it
    label_check: bool = True  # yoloattn's dataset check reads its label rows (boxes, polygons); else Ultralytics'


TASKS = {
    "detect": Task("detect", "DetectionTrainer", "boxes", embedded=True, compare=True),
    "segment": Task("segment", "SegmentationTrainer", "masks", embedded=False, compare=False),
    "pose": Task("pose", "PoseTrainer", "keypoints", embedded=False, compare=False, label_check=False),
    "obb": Task("obb", "OBBTrainer", "rotated boxes", embedded=False, compare=False),
    "classify": Task("classify", None, "boxes to classify", embedded=False, compare=False),
}


def task_info(d: dict) -> Task:
    """The :data:`TASKS` row of a model dict (RT-DETR is detection)."""
    return TASKS[task_of(d)]


def _a(word: str) -> str:
    return "an" if word[:1] in "aeio" else "a"


def embedded_refusal(d: dict, name: str) -> str | None:
    """Why the embedded dataset cannot train or validate model ``name`` (its task's labels are not boxes), or
    None when it can."""
    task = task_info(d)
    if task.embedded:
        return None
    return (f"{name} is {_a(task.name)} {task.name} model, but the embedded dataset has boxes only: pass "
            f"data=PATH/data.yaml of a {task.name} dataset (or use the detection model of the family)")


def compare_refusal(task: str, name: str, stem: str) -> str | None:
    """Why ``yoloattn compare`` cannot take base ``name`` (display stem ``stem``) of ``task``, or None."""
    row = TASKS.get(task)
    if row is None or row.compare:
        return None
    detection = re.sub(r"-(seg|pose|obb|cls)(?=-|$)", "", stem)  # Ultralytics' task suffixes of model names
    return (f"--base {name} is {_a(task)} {task} model, but compare trains and evaluates detection "
            f"(the embedded dataset and YOLO box labels have no {row.labels}): use the detection model of the "
            f"family, e.g. --base {detection if detection != stem else 'yolo26n'}")


def trainer_for(d: dict) -> type:
    """yoloattn's trainer class for a model dict: ``RTDETRTrainer`` for RT-DETR, else the trainer of its task's
    :data:`TASKS` row (``DetectionTrainer``, ``SegmentationTrainer``, ``PoseTrainer`` or ``OBBTrainer``).

    Raises YoloattnError for a task yoloattn does not train (classification).
    """
    from ..errors import YoloattnError
    from . import trainer

    if is_rtdetr(d):
        return trainer.RTDETRTrainer
    task = task_info(d)
    if task.trainer is None:
        *others, last = [t.name for t in TASKS.values() if t.trainer]
        trained = f"{', '.join(others)} and {last}"
        raise YoloattnError(f"yoloattn trains {trained} models; this one is {_a(task.name)} {task.name} model")
    return getattr(trainer, task.trainer)
