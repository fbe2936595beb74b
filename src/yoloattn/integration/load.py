"""Route every load of another architecture's checkpoint into a yoloattn model through the structural transfer.

The tutorials fine-tune with ``m = YOLO("variant.yaml"); m.load("yolov8n.pt"); m.train(...)``. Both that
``load`` and the trainer's own load of ``pretrained=`` end in ``BaseModel.load`` (``ultralytics.nn.tasks``),
which copies tensors by state-dict key and shape: one inserted row shifts every later index and the neck
and head start random ("Transferred 162/369 items"). The wrapper installed here sends such a load through
:func:`yoloattn.transfer_weights` and logs its report, exactly as ``pretrained=`` with a yoloattn trainer:

- the model holds a yoloattn block or an inserted yoloattn row (a top-level layer whose class is
  registered in ``REGISTRY``, plug-ins included), and
- the checkpoint's YAML rows differ from the model's (another architecture).

Everything else (a stock model, the same architecture with another class count, a module without a YAML)
goes to Ultralytics' own ``load`` unchanged.
"""

from __future__ import annotations

from ultralytics.nn import tasks

from .patching import unwrap, wrap
from .registry import REGISTRY


def has_yoloattn_layers(model) -> bool:
    """Whether a top-level layer of the DetectionModel ``model`` is a yoloattn block or row (plug-ins included)."""
    ours = {entry.cls for entry in REGISTRY.entries()}
    layers = getattr(model, "model", None)
    return layers is not None and any(type(layer) in ours for layer in layers)


def _source_model(weights):
    """The module inside ``weights`` as Ultralytics' ``load`` reads it (a checkpoint dict: ``ema`` first)."""
    return (weights.get("ema") or weights.get("model")) if isinstance(weights, dict) else weights


def needs_transfer(model, weights) -> bool:
    """Whether ``model.load(weights)`` should align by structure: a yoloattn model, another architecture."""
    from ..yaml_model import ModelYamlError, rows

    source = _source_model(weights)
    mine, theirs = getattr(model, "yaml", None), getattr(source, "yaml", None)
    if not (isinstance(mine, dict) and isinstance(theirs, dict)) or not has_yoloattn_layers(model):
        return False
    try:
        return rows(mine) != rows(theirs)
    except ModelYamlError:  # a malformed row: Ultralytics' own load decides
        return False


def install() -> None:
    """Wrap ``ultralytics.nn.tasks.BaseModel.load`` (idempotent)."""

    def make_wrapper(original):
        def load(self, weights, verbose=True):
            if not needs_transfer(self, weights):
                return original(self, weights, verbose=verbose)
            from ultralytics.utils import LOGGER

            from .transfer import transfer_weights

            report = transfer_weights(self, _source_model(weights).float())
            self.pt_path = getattr(_source_model(weights), "pt_path", None)  # provenance, as Ultralytics keeps it
            if verbose:
                LOGGER.info(f"yoloattn: {report}")
            return None

        return load

    wrap(tasks.BaseModel, "load", make_wrapper)


def uninstall() -> None:
    unwrap(tasks.BaseModel, "load")
