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

A model built from a YAML still has that file's class count and placeholder names (``{0: "0", ...}``);
loaded from a checkpoint of another class count it is first rebuilt at the checkpoint's classes and takes
their names, so the whole Detect head transfers and the tutorials' ``.load()`` then ``.train()`` on the
checkpoint's dataset starts where ``pretrained=`` does (the trainer then builds at the dataset's classes).
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


def adopt_classes(model, source) -> str | None:
    """Rebuild ``model`` in place at ``source``'s class count, with its names, when ``model`` still has its
    YAML's class count and placeholder names and the two differ; returns what was done, or None.

    The model keeps its identity (a ``YOLO`` object's ``.model`` stays the same object), device and dtype;
    its tensors are fresh, as after building from the YAML (the transfer that follows fills them).
    """
    mine, theirs = model.yaml.get("nc"), source.yaml.get("nc")
    if not isinstance(theirs, int) or not isinstance(mine, int) or theirs == mine:
        return None
    if getattr(model, "names", None) != {i: str(i) for i in range(mine)}:  # classes the user chose: kept
        return None
    first = next(model.parameters(), None)
    type(model).__init__(model, cfg={**model.yaml, "nc": theirs}, ch=model.yaml.get("channels", 3), nc=theirs,
                         verbose=False)
    if first is not None:
        model.to(first.device, first.dtype)
    names = getattr(source, "names", None)
    if isinstance(names, dict) and len(names) == theirs:
        model.names = dict(names)
    return f"the model takes the checkpoint's {theirs} classes and their names (its YAML has {mine})"


def install() -> None:
    """Wrap ``ultralytics.nn.tasks.BaseModel.load`` (idempotent)."""

    def make_wrapper(original):
        def load(self, weights, verbose=True):
            if not needs_transfer(self, weights):
                return original(self, weights, verbose=verbose)
            from ultralytics.utils import LOGGER

            from .transfer import transfer_weights

            source = _source_model(weights).float()
            adopted = adopt_classes(self, source)
            report = transfer_weights(self, source)
            self.pt_path = getattr(source, "pt_path", None)  # provenance, as Ultralytics keeps it
            if verbose:
                LOGGER.info(f"yoloattn: {adopted + '; ' if adopted else ''}{report}")
            return None

        return load

    wrap(tasks.BaseModel, "load", make_wrapper)


def uninstall() -> None:
    unwrap(tasks.BaseModel, "load")
