"""Make processes that Ultralytics spawns import yoloattn before they rebuild a model.

- DDP: Ultralytics cloudpickles the trainer *class* into the worker's state file. A trainer class
  that lives in yoloattn is pickled by reference, so unpickling it in every rank imports yoloattn,
  which installs the parse_model wrapper before the worker rebuilds the model from its YAML.
  (The older launchers wrote ``from <trainer module> import <Trainer>``: same effect.)
- Ray Tune: trials run in Ray workers that rebuild from YAML; they need yoloattn importable there,
  which `ray_runtime_env` provides when yoloattn is not installed into the workers' environment.
"""

from __future__ import annotations

from pathlib import Path

from ultralytics.models.rtdetr.train import RTDETRTrainer as _UltralyticsRTDETRTrainer
from ultralytics.models.yolo.detect import DetectionTrainer as _UltralyticsDetectionTrainer
from ultralytics.models.yolo.obb import OBBTrainer as _UltralyticsOBBTrainer
from ultralytics.models.yolo.pose import PoseTrainer as _UltralyticsPoseTrainer
from ultralytics.models.yolo.segment import SegmentationTrainer as _UltralyticsSegmentationTrainer


class _StructuralLoad:
    """``get_model`` that loads pretrained weights into a changed architecture by structure (see below)."""

    transfer_report = None

    def get_model(self, cfg=None, weights=None, verbose=True):
        from ultralytics.utils import LOGGER

        from .transfer import load_weights_model, same_architecture, transfer_weights

        pretrained = getattr(self.args, "pretrained", None)
        if weights is not None and isinstance(pretrained, (str, Path)) and not getattr(self.args, "resume", False):
            # Ultralytics 8.3 hands over the model after its own index-keyed load of that file: start from the file
            weights = load_weights_model(pretrained)
        if weights is None or same_architecture(cfg, weights):
            model = super().get_model(cfg=cfg, weights=weights, verbose=verbose)
            if weights is not None:  # loaded by Ultralytics; counted the same way as a transfer
                self.transfer_report = transfer_weights(model, weights)
            return model
        model = super().get_model(cfg=cfg, weights=None, verbose=verbose)
        self.transfer_report = transfer_weights(model, weights)
        LOGGER.info(f"yoloattn: {self.transfer_report}")
        return model


class DetectionTrainer(_StructuralLoad, _UltralyticsDetectionTrainer):
    """Ultralytics' DetectionTrainer, importable from yoloattn so spawned workers import yoloattn, and
    loading pretrained weights into a changed architecture by structure rather than by layer index.

    Pass it to every training call: ``YOLO(cfg).train(trainer=yoloattn.DetectionTrainer, ...)``. With
    ``pretrained=PATH`` (or a ``.pt`` model) whose layers differ from the model's, the weights go through
    :func:`yoloattn.transfer_weights` instead of Ultralytics' index-keyed load, and the report is logged
    and kept in ``trainer.transfer_report``; the same architecture loads exactly as in Ultralytics.
    """


class RTDETRTrainer(_StructuralLoad, _UltralyticsRTDETRTrainer):
    """Ultralytics' RTDETRTrainer with what :class:`DetectionTrainer` adds, for RT-DETR models:
    ``RTDETR(cfg).train(trainer=yoloattn.RTDETRTrainer, ...)``."""


class SegmentationTrainer(_StructuralLoad, _UltralyticsSegmentationTrainer):
    """Ultralytics' SegmentationTrainer with what :class:`DetectionTrainer` adds (``-seg`` models)."""


class PoseTrainer(_StructuralLoad, _UltralyticsPoseTrainer):
    """Ultralytics' PoseTrainer with what :class:`DetectionTrainer` adds (``-pose`` models)."""


class OBBTrainer(_StructuralLoad, _UltralyticsOBBTrainer):
    """Ultralytics' OBBTrainer with what :class:`DetectionTrainer` adds (``-obb`` models)."""


def ray_runtime_env(extra: dict | None = None) -> dict:
    """A Ray ``runtime_env`` that ships the yoloattn package to every worker.

    Use it before tuning: ``ray.init(runtime_env=yoloattn.ray_runtime_env())`` and then
    ``model.tune(use_ray=True, ...)``; Ultralytics reuses the running Ray session. Plug-ins loaded
    in this process are named in the workers' ``YOLOATTN_PLUGINS``; their files must be reachable
    there (a shared path, or added to ``py_modules``).
    """
    from ..plugins import ENV_VAR, loaded

    package = Path(__file__).resolve().parents[1]  # the yoloattn package folder
    env = dict(extra or {})
    env["py_modules"] = [*env.get("py_modules", []), str(package)]
    if loaded():  # workers import the same plug-ins on `import yoloattn` (they must be importable there)
        env["env_vars"] = {**env.get("env_vars", {}), ENV_VAR: ",".join(loaded())}
    return env
