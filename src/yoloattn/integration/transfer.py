"""Carry a base model's trained weights into an attention variant: layers matched by structure, not index.

Ultralytics copies a checkpoint into a model by state-dict key and shape (``intersect_dicts``). Keys
carry the layer index (``model.12.cv1.conv.weight``), so one inserted row shifts every later index
and the neck and head of a variant silently start from random weights (yolov8n -> iRMB after SPPF:
162 of 369 tensors). :func:`transfer_weights` instead aligns the two layer sequences:

1. each top-level layer is a list of (key suffix, shape) tensors (``cv1.conv.weight``: (16, 32, 1, 1));
2. a base layer can land on a variant layer of the same class, or of a class that extends it by name
   (``C2f`` -> ``C2f_iRMB``, ``C3k2`` -> ``C3k2_MLLA``, ``C2PSA`` -> ``C2PSA_MQA``, ``RepNCSPELAN4`` ->
   ``MMQARepNCSPELAN4``); the pair is worth the number of tensors whose suffix and shape agree;
3. an order-preserving alignment maximising the tensors copied (the longest-common-subsequence
   recursion over the two sequences; inserted rows stay unmatched, replaced blocks pair with the block
   they replaced);
4. every tensor of a matched pair whose suffix and shape agree is copied; inside a replaced block the
   unchanged parts (cv1, cv2, the bottlenecks that stayed, ...) transfer, the attention starts fresh;
   a Detect head for another class count keeps the classification layers whose width depends on it at init.

It works on any two models, zoo or hand-written (shifted ``from`` indices need no provenance: the
alignment follows the layer classes and shapes); between unrelated models it matches little and says
so. Bit-identical copies are tested against an independent alignment in ``tests/test_transfer.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import YoloattnError
from ..yaml_model import rows


class WeightsError(YoloattnError):
    """A weights argument that is not an Ultralytics checkpoint (missing file, another format)."""


@dataclass(frozen=True)
class TransferReport:
    """What :func:`transfer_weights` copied. Counts are state-dict tensors (BatchNorm buffers included,
    as Ultralytics counts them)."""

    transferred: int  # variant tensors that now hold the base's values
    total: int  # variant tensors
    base_total: int  # base tensors
    pairs: tuple[tuple[int, int], ...]  # (base layer, variant layer) matched
    unmatched_base: tuple[str, ...] = field(default=())  # base keys that found no home
    fresh_layers: tuple[int, ...] = field(default=())  # variant layers with nothing copied (new or changed)
    stock: int | None = None  # what Ultralytics' key-and-shape load would copy, for comparison
    classes: tuple[int, int] | None = None  # (checkpoint, model) class counts

    @property
    def fraction_of_base(self) -> float:
        """Share of the base's tensors that found a home (0..1)."""
        return (self.base_total - len(self.unmatched_base)) / self.base_total if self.base_total else 0.0

    def __str__(self) -> str:
        kept = self.base_total - len(self.unmatched_base)
        text = (f"transferred {self.transferred}/{self.total} variant tensors from the base checkpoint "
                f"({kept} of its {self.base_total} tensors found a home, {self.fraction_of_base:.1%})")
        if self.classes and self.classes[0] != self.classes[1]:
            text += (f"; the checkpoint has {self.classes[0]} classes and the model {self.classes[1]}, so the "
                     "Detect head's classification layers that depend on the class count start at init")
        if self.fraction_of_base < 0.5:
            text += "; the two models share little: is the checkpoint one of this model's base?"
        if self.stock is not None:
            text += f"; Ultralytics' index-keyed load would copy {self.stock}"
        if self.fresh_layers:
            text += f"; layers starting fresh (by index): {', '.join(map(str, self.fresh_layers))}"
        if self.unmatched_base:
            layers = sorted({int(k.split(".")[1]) for k in self.unmatched_base})
            text += (f"; {len(self.unmatched_base)} base tensors without a home, in base layers "
                     f"{', '.join(map(str, layers))}")
        return text + "."


def load_weights_model(weights):
    """The ``torch.nn.Module`` inside ``weights``: a path to an Ultralytics checkpoint, a ``YOLO``, a model
    or a checkpoint dict (``ema`` first, as Ultralytics). Raises WeightsError naming the file."""

    if isinstance(weights, (str, Path)):
        path = Path(weights).expanduser()
        if not path.is_file():  # before Ultralytics, which would try to download a bare name
            raise WeightsError(f"weights file not found: {path}")
        try:
            from ultralytics import YOLO

            return YOLO(str(path)).model
        except Exception as err:  # noqa: BLE001 - any failure means "not a checkpoint we can read"
            raise WeightsError(f"{path} is not an Ultralytics checkpoint (.pt from training or export of a "
                               f"detection model): {type(err).__name__}: {str(err).strip().splitlines()[0]}") from None
    if isinstance(weights, dict):
        weights = weights.get("ema") or weights.get("model")
    return detection_model(weights, "weights")


def detection_model(obj, what: str = "model"):
    """The Ultralytics ``DetectionModel`` (a module whose ``.model`` is the layer Sequential) of ``obj``: the
    object itself or the one a ``YOLO`` wraps. Raises WeightsError for anything else."""
    import torch

    for candidate in (obj, getattr(obj, "model", None)):
        if isinstance(candidate, torch.nn.Module) and isinstance(getattr(candidate, "model", None), torch.nn.Sequential):
            return candidate
    raise WeightsError(f"{what}: expected an Ultralytics checkpoint path, a YOLO object or a DetectionModel, got "
                       f"{type(obj).__name__}")


def same_architecture(cfg, weights) -> bool:
    """Whether the YAML rows of ``cfg`` (a dict or a YAML path) equal those the ``weights`` model was built from."""
    from ultralytics.nn.tasks import yaml_model_load

    try:
        mine = cfg if isinstance(cfg, dict) else yaml_model_load(cfg)
        theirs = load_weights_model(weights).yaml
    except (WeightsError, AttributeError, OSError, TypeError):
        return False
    return rows(mine) == rows(theirs)


def _layers(model) -> list[tuple[str, dict]]:
    """Per top-level layer: (class name, {key suffix: tensor})."""
    state = model.state_dict()
    layers = [(type(m).__name__, {}) for m in model.model]
    for key, tensor in state.items():
        _, index, suffix = key.split(".", 2)
        layers[int(index)][1][suffix] = tensor
    return layers


def _related(base_class: str, variant_class: str) -> bool:
    return base_class == variant_class or base_class in variant_class


def _shared(base: tuple[str, dict], variant: tuple[str, dict]) -> list[str]:
    """Key suffixes of ``base``'s tensors that ``variant`` holds with the same shape."""
    return [k for k, t in base[1].items() if k in variant[1] and variant[1][k].shape == t.shape]


def _score(base: tuple[str, dict], variant: tuple[str, dict]) -> int:
    return len(_shared(base, variant)) if _related(base[0], variant[0]) else 0


def align(base_layers: list[tuple[str, dict]], variant_layers: list[tuple[str, dict]]) -> list[tuple[int, int]]:
    """Order-preserving (base, variant) layer pairs that maximise the tensors copied (see the module docstring)."""
    n, m = len(base_layers), len(variant_layers)
    score = [[_score(b, v) for v in variant_layers] for b in base_layers]
    best = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n - 1, -1, -1):
        for j in range(m - 1, -1, -1):
            take = best[i + 1][j + 1] + score[i][j] if score[i][j] else -1
            best[i][j] = max(take, best[i + 1][j], best[i][j + 1])
    pairs, i, j = [], 0, 0
    while i < n and j < m:
        if score[i][j] and best[i][j] == best[i + 1][j + 1] + score[i][j]:
            pairs.append((i, j))
            i, j = i + 1, j + 1
        elif best[i][j] == best[i + 1][j]:
            i += 1
        else:
            j += 1
    return pairs


def extends(variant, base) -> bool:
    """Whether ``variant`` is ``base`` with yoloattn blocks swapped in and/or yoloattn rows inserted, judged
    from the built models alone (file names and YAML comments play no part): every base layer that holds
    tensors aligns (:func:`align`) with a variant layer that is either the same class with the same tensor
    names and shapes, or a yoloattn block extending it (``C2f`` -> ``C2f_iRMB``); every other variant layer
    with tensors is a yoloattn layer, and there is at least one. ``yolov8n`` and ``yolov8s`` differ in shapes,
    so a variant of one does not extend the other. Both arguments: a ``YOLO`` or a DetectionModel.
    """
    from .registry import REGISTRY

    ours = {entry.cls.__name__ for entry in REGISTRY.entries()}
    base_layers, variant_layers = _layers(detection_model(base)), _layers(detection_model(variant))
    pairs = dict(align(base_layers, variant_layers))
    if any(tensors and i not in pairs for i, (_, tensors) in enumerate(base_layers)):
        return False
    for i, j in pairs.items():
        (b_class, b_tensors), (v_class, v_tensors) = base_layers[i], variant_layers[j]
        if v_class in ours and b_class != v_class:
            continue
        if b_class != v_class or {k: t.shape for k, t in b_tensors.items()} != {k: t.shape for k, t in v_tensors.items()}:
            return False
    paired = set(pairs.values())
    extra = [cls for j, (cls, tensors) in enumerate(variant_layers) if tensors and j not in paired]
    changed = [variant_layers[j][0] for j in paired if variant_layers[j][0] in ours]
    return all(cls in ours for cls in extra) and bool(extra or changed)


def frozen_in_variant(base, variant, n: int) -> list[int | str]:
    """What to pass as Ultralytics' ``freeze`` list so that ``variant`` freezes what ``freeze=n`` freezes in
    ``base``: the aligned index of each of the first ``n`` base layers, and for a block the variant replaced
    (``C2f`` -> ``C2f_iRMB``) only its parts that came from the base (``"8.cv1"``, ``"8.m.0"``): the new
    attention stays trainable. Ultralytics freezes a parameter whose name contains ``model.{entry}.``."""
    base_layers, variant_layers = _layers(detection_model(base)), _layers(detection_model(variant))
    frozen: list[int | str] = []
    for i, j in align(base_layers, variant_layers):
        if i >= n:
            continue
        shared = set(_shared(base_layers[i], variant_layers[j]))
        if shared == set(variant_layers[j][1]):
            frozen.append(j)
        else:
            frozen += sorted({f"{j}.{s.rsplit('.', 1)[0]}" for s in shared})
    return frozen


def transfer_weights(model, weights) -> TransferReport:
    """Copy every tensor of the base checkpoint ``weights`` that has a home in ``model``, in place.

    ``model``: a ``YOLO`` object or its ``DetectionModel`` (any YAML: zoo, ``make_variant`` or hand-written);
    ``weights``: a checkpoint path, a ``YOLO``, a model or a checkpoint dict of the base. Returns the
    :class:`TransferReport`; ``str(report)`` is one paragraph. Raises WeightsError for a missing or
    unreadable checkpoint.
    """
    import torch

    target = detection_model(model)
    source = load_weights_model(weights)
    base, variant = _layers(source), _layers(target)
    pairs = align(base, variant)
    copied, homed = {}, set()
    for i, j in pairs:
        for suffix in _shared(base[i], variant[j]):
            copied[f"model.{j}.{suffix}"] = base[i][1][suffix]
            homed.add(f"model.{i}.{suffix}")
    target_state = target.state_dict()  # views of the model's tensors: copying into them fills the model
    with torch.no_grad():
        for key, tensor in copied.items():
            target_state[key].copy_(tensor.to(target_state[key].dtype))
    base_keys = [f"model.{i}.{s}" for i, (_, tensors) in enumerate(base) for s in tensors]
    fresh = tuple(j for j, (_, tensors) in enumerate(variant)
                  if tensors and not any(f"model.{j}.{s}" in copied for s in tensors))
    stock = sum(1 for k, t in source.state_dict().items() if k in target_state and target_state[k].shape == t.shape)
    classes = (source.yaml.get("nc"), target.yaml.get("nc")) if hasattr(source, "yaml") and hasattr(target, "yaml") \
        else None
    return TransferReport(len(copied), len(target_state), len(base_keys), tuple(pairs),
                          tuple(k for k in base_keys if k not in homed), fresh, stock, classes)
