"""The export matrix: does a model convert to each runtime, and does the runtime's output match PyTorch?

One ``Cell`` per (model, runtime[, opset]): the checkpoint is exported through Ultralytics
(``export.export_checkpoint``), loaded in the runtime's own client (``runtimes``) and run on the same
inputs as the PyTorch model the exporter traced (``export.reference_model``), at every size of
``sizes`` (h, w). A runtime with dynamic shapes is exported once (``dynamic=True``, at the first
size) and run at every size; the others are exported once per size.

The error of one output is the largest over its channels c of
``max|runtime_c - torch_c| / max(1, max|torch_c|)``: relative for channels in pixels (boxes,
keypoints), absolute for channels in [0, 1] (class scores), so one number is comparable across
tasks and input sizes. A cell ``matches`` when the worst error over sizes is at most ``tol``
(1e-4, fp32).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import YoloattnError
from .export import export_checkpoint, reference_model
from .runtimes import runtime

__all__ = ["Cell", "TOLERANCE", "SIZES", "output_error", "make_checkpoint", "check_cell", "check_matrix"]

TOLERANCE = 1e-4
SIZES = ((64, 96), (96, 96))  # (h, w): one non-square; the tests' sizes (docs/deploy.md uses larger ones)


@dataclass(frozen=True)
class Cell:
    """One cell of the matrix.

    status: ``"matches"`` (error <= tol at every size), ``"differs"`` (converted, error > tol),
    ``"fails"`` (export or runtime raised; ``message`` is its last line) or ``"unavailable"``
    (runtime not installed). error: worst ``output_error`` over the sizes that ran (None if none did).
    seconds: export + check wall time.
    """

    model: str
    runtime: str
    status: str
    error: float | None
    sizes: tuple[tuple[int, int], ...]
    dynamic: bool
    opset: int | None = None
    message: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == "matches"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def output_error(got: np.ndarray, ref: np.ndarray) -> float:
    """Largest over channels (axis 1) of ``max|got - ref| / max(1, max|ref|)``; shapes must agree."""
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    if got.shape != ref.shape:
        raise ValueError(f"output shape {got.shape} != PyTorch's {ref.shape}")
    if ref.ndim < 2:
        return float(np.abs(got - ref).max() / max(1.0, np.abs(ref).max()))
    axes = tuple(i for i in range(ref.ndim) if i != 1)
    scale = np.maximum(1.0, np.abs(ref).max(axis=axes))
    return float((np.abs(got - ref).max(axis=axes) / scale).max())


def make_checkpoint(source: str | Path, path: str | Path, nc: int | None = None, seed: int = 0) -> Path:
    """Build a model (a zoo name, stock YAML or plug-in YAML) with random weights and non-trivial BatchNorm
    statistics (three train-mode passes, so that fusion is exercised) and save it as an Ultralytics
    checkpoint at ``path``."""
    import torch

    from ..compare.models import resolve_model
    from ..integration.heads import wrapper

    torch.manual_seed(seed)
    yolo = wrapper(resolve_model(str(source)))
    if nc:
        yolo.model = type(yolo.model)(yolo.model.yaml | {"nc": nc}, nc=nc, verbose=False)
        yolo.model.names = {i: f"class{i}" for i in range(nc)}
    yolo.model.train()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _ in range(3):
            yolo.model(torch.rand(2, 3, 64, 64, generator=generator))
    yolo.model.eval()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    yolo.save(str(path))
    return path


def _inputs(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((1, 3, h, w), dtype=np.float32)


def check_cell(checkpoint: str | Path, runtime_name: str, work_dir: str | Path,
               sizes: tuple[tuple[int, int], ...] = SIZES, opset: int | None = None, tol: float = TOLERANCE,
               label: str | None = None) -> Cell:
    """Export ``checkpoint`` for one runtime, run it at every size and compare with PyTorch (see module doc).

    Never raises for a conversion or runtime failure: that is the cell's ``fails`` status and message.
    """
    import torch

    row = runtime(runtime_name)
    label = label or Path(checkpoint).stem
    base = dict(model=label, runtime=row.name, sizes=tuple(sizes), dynamic=row.dynamic, opset=opset)
    if not row.available():
        return Cell(status="unavailable", error=None, message=f"pip install 'yoloattn[deploy]'", **base)
    started = time.perf_counter()
    model = reference_model(checkpoint)
    errors: list[float] = []
    try:
        exported = None
        for k, (h, w) in enumerate(sizes):
            if exported is None or not row.dynamic:
                folder = Path(work_dir) / f"{label}-{row.name}{'' if opset is None else f'-opset{opset}'}-{h}x{w}"
                exported = export_checkpoint(checkpoint, row.name, folder, (h, w), dynamic=row.dynamic and
                                             len(sizes) > 1, opset=opset)
                session = row.load(exported, threads=1)
            x = _inputs(h, w, k)
            with torch.inference_mode():
                ref = model(torch.from_numpy(x))
            ref = (ref[0] if isinstance(ref, (list, tuple)) else ref).numpy()
            errors.append(output_error(session(x), ref))
    except YoloattnError as error:
        return Cell(status="fails", error=max(errors, default=None), message=str(error),
                    seconds=time.perf_counter() - started, **base)
    except Exception as error:  # noqa: BLE001 - the runtime's own failure is this cell's result
        text = (str(error).strip().splitlines() or [type(error).__name__])[-1]
        return Cell(status="fails", error=max(errors, default=None), message=f"{type(error).__name__}: {text}"[:300],
                    seconds=time.perf_counter() - started, **base)
    worst = max(errors)
    status = "matches" if worst <= tol else "differs"
    message = "" if status == "matches" else f"error {worst:.1e} > {tol:.0e}"
    return Cell(status=status, error=worst, message=message, seconds=time.perf_counter() - started, **base)


def check_matrix(models: dict[str, str | Path], runtimes: tuple[str, ...], work_dir: str | Path,
                 sizes: tuple[tuple[int, int], ...] = SIZES, opsets: tuple[int, ...] = (), nc: int | None = 2,
                 progress: Callable[[Cell], None] | None = None) -> list[Cell]:
    """Every (model, runtime) cell, plus ONNX Runtime at each of ``opsets``; ``models`` maps labels to
    model names (zoo, stock or plug-in YAMLs) or checkpoints. ``progress`` gets each cell as it is done."""
    cells = []
    work_dir = Path(work_dir)
    for label, source in models.items():
        checkpoint = Path(source) if str(source).endswith(".pt") else make_checkpoint(
            source, work_dir / label / f"{label}.pt", nc=nc)
        plan = [(name, None) for name in runtimes] + [("onnxruntime", opset) for opset in opsets]
        for name, opset in plan:
            cell = check_cell(checkpoint, name, work_dir / label, sizes, opset=opset, label=label)
            cells.append(cell)
            if progress:
                progress(cell)
    return cells
