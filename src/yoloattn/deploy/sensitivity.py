"""Which block costs the INT8 accuracy: per-block post-training INT8 sensitivity of any detection model.

The checkpoint is exported to ONNX through Ultralytics (fp32, static ``imgsz``), and quantized with ONNX
Runtime's static QDQ quantizer (``onnxruntime.quantization.quantize_static``) under Ultralytics' own
policy for ONNX INT8: only Conv, Gemm and MatMul nodes are quantized (so Q·Kᵀ and attn·V of an attention
block too), Softmax and the head's decode stay in float. For every *attention block* (a top-level layer
``model.model[i]`` holding a module of yoloattn's module table, or Ultralytics' own ``Attention`` /
``AAttn``; its ONNX nodes are those named ``/model.<i>/...``) two more models are quantized:

- **all but this block**: every other block INT8, this one in float: how much accuracy this block's
  quantization costs (the gain over "all INT8");
- **only this block**: this block INT8, everything else in float: how much it costs on its own.

Each model is validated by Ultralytics' validator on the data's ``val`` split (batch 1, square letterbox),
beside the fp32 export and the all-INT8 model. Calibration: the first ``CALIBRATION_IMAGES`` training
images, letterboxed to ``imgsz`` as the validator does (Ultralytics' ``LetterBox``), RGB in [0, 1].

This is the module-agnostic form of what YOLO-Master reports for its own blocks.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import YoloattnError
from .export import export_checkpoint, quiet
from .int8 import CALIBRATION_IMAGES, train_files

__all__ = ["BlockSensitivity", "Sensitivity", "attention_blocks", "int8_sensitivity", "WEIGHTED_OPS"]

WEIGHTED_OPS = ("Conv", "Gemm", "MatMul")  # Ultralytics' ONNX INT8 policy (utils/export/onnx.py)


@dataclass(frozen=True)
class BlockSensitivity:
    """One attention block: its layer index, class, and mAP50-95 with all-but-it and only-it in INT8."""

    layer: int
    block: str  # the layer's class, e.g. C2f_MLLA
    modules: str  # the attention classes inside, e.g. MLLABlock
    map50_95_all_but: float  # every other block INT8, this one float
    map50_95_only: float  # this block INT8, the rest float


@dataclass(frozen=True)
class Sensitivity:
    """fp32 and all-INT8 mAP50-95 of the ONNX export, and one ``BlockSensitivity`` per attention block."""

    map50_95_fp32: float
    map50_95_int8: float
    blocks: tuple[BlockSensitivity, ...]
    calibration_images: int

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def lines(self) -> list[str]:
        """The table the command prints."""
        head = f"fp32 {self.map50_95_fp32:.4f}, all INT8 {self.map50_95_int8:.4f} " \
               f"({self.map50_95_int8 - self.map50_95_fp32:+.4f}) mAP50-95"
        rows = [f"  layer {b.layer:>2} {b.block:<16} ({b.modules}): all but it INT8 {b.map50_95_all_but:.4f} "
                f"({b.map50_95_all_but - self.map50_95_int8:+.4f} vs all INT8), only it INT8 {b.map50_95_only:.4f} "
                f"({b.map50_95_only - self.map50_95_fp32:+.4f} vs fp32)" for b in self.blocks]
        return [head, *rows] if rows else [head, "  no attention block in this model"]


def _attention_classes() -> tuple[type, ...]:
    from ultralytics.nn.modules import block as ultralytics_blocks

    from .. import modules

    classes = []
    for spec in modules.table():
        try:
            classes.append(spec.cls())
        except Exception:  # noqa: BLE001 - an unimportable plug-in is simply not looked for
            continue
    classes += [getattr(ultralytics_blocks, name) for name in ("Attention", "AAttn") if hasattr(ultralytics_blocks,
                                                                                                   name)]
    return tuple(c for c in classes if isinstance(c, type))


def attention_modules(model) -> list:
    """Every outermost attention module inside ``model`` (see the module doc), in module order."""
    classes = _attention_classes()
    found, inside = [], set()
    for module in model.modules():
        if id(module) in inside:
            continue
        if isinstance(module, classes):
            found.append(module)
            inside.update(id(m) for m in module.modules())
    return found


def attention_blocks(model) -> list[tuple[int, str, str]]:
    """(layer index, layer class, attention classes inside) of every top-level layer of an Ultralytics model that
    holds an attention module (see the module doc)."""
    classes = _attention_classes()
    found = []
    for i, layer in enumerate(model.model):
        inner = sorted({type(m).__name__ for m in layer.modules() if isinstance(m, classes)})
        if inner:
            found.append((i, type(layer).__name__, ", ".join(inner)))
    return found


class _Calibration:
    """ONNX Runtime calibration reader over the first training images, letterboxed like the validator."""

    def __init__(self, files: list[Path], imgsz: int, input_name: str):
        self.files, self.imgsz, self.input_name, self.i = files, imgsz, input_name, 0

    def get_next(self):
        import cv2
        from ultralytics.data.augment import LetterBox

        if self.i >= len(self.files):
            return None
        image = cv2.imread(str(self.files[self.i]))
        self.i += 1
        boxed = LetterBox((self.imgsz, self.imgsz), auto=False)(image=image)
        x = boxed[:, :, ::-1].transpose(2, 0, 1)[None].astype(np.float32) / 255.0
        return {self.input_name: np.ascontiguousarray(x)}

    def rewind(self):
        self.i = 0


def _quantize(fp32: Path, out: Path, exclude: list[str], files: list[Path], imgsz: int) -> Path:
    import onnx
    from onnxruntime.quantization import QuantFormat, quantize_static

    model = onnx.load(str(fp32))
    reader = _Calibration(files, imgsz, model.graph.input[0].name)
    with quiet(out.with_suffix(".log")):
        quantize_static(str(fp32), str(out), reader, quant_format=QuantFormat.QDQ, nodes_to_exclude=exclude)
    quantized = onnx.load(str(out))  # keep Ultralytics' metadata (names, stride, imgsz) for its validator
    del quantized.metadata_props[:]
    quantized.metadata_props.extend(model.metadata_props)
    onnx.save(quantized, str(out))
    return out


def _val(path: Path, data: str, imgsz: int, task: str) -> float:
    from ultralytics import YOLO

    with quiet(path.with_suffix(".val.log")):
        metrics = YOLO(str(path), task=task).val(data=data, split="val", imgsz=imgsz, batch=1, device="cpu",
                                                 plots=False, verbose=False, workers=0,
                                                 project=str(path.parent / "val"), name=path.stem, exist_ok=True)
    return float(metrics.box.map)


def int8_sensitivity(checkpoint: str | Path, data: str | Path, imgsz: int, work_dir: str | Path,
                     task: str = "detect") -> Sensitivity:
    """Per-block INT8 sensitivity of ``checkpoint`` on ``data`` (see the module doc). Raises ``YoloattnError``
    when the data has no training images to calibrate on, ``ExportFailed`` when the ONNX export fails."""
    import onnx

    from .runtimes import reference_model

    work_dir = Path(work_dir)
    files = train_files(data)[:CALIBRATION_IMAGES]
    if not files:
        raise YoloattnError(f"{data}: no training images to calibrate the INT8 quantization on")
    blocks = attention_blocks(reference_model(checkpoint))
    fp32 = export_checkpoint(checkpoint, "onnxruntime", work_dir / "fp32", imgsz)
    nodes = list(onnx.load(str(fp32)).graph.node)
    unweighted = [n.name for n in nodes if n.op_type not in WEIGHTED_OPS]

    def in_block(node, layer: int) -> bool:
        return node.name.startswith(f"/model.{layer}/")

    def quantized(name: str, exclude: list[str]) -> float:
        return _val(_quantize(fp32, work_dir / f"{name}.onnx", sorted(set(exclude)), files, imgsz), str(data), imgsz,
                    task)

    map_fp32 = _val(fp32, str(data), imgsz, task)
    map_int8 = quantized("int8-all", unweighted)
    results = []
    for layer, block, inner in blocks:
        all_but = quantized(f"int8-all-but-{layer}", unweighted + [n.name for n in nodes if in_block(n, layer)])
        only = quantized(f"int8-only-{layer}", unweighted + [n.name for n in nodes if not in_block(n, layer)])
        results.append(BlockSensitivity(layer, block, inner, all_but, only))
    return Sensitivity(map_fp32, map_int8, tuple(results), len(files))
