"""The export matrix: does a model convert to each runtime, and does the runtime's output match PyTorch?

One ``Cell`` per (model, runtime[, opset]): the checkpoint is exported through Ultralytics
(``export.export_checkpoint``), loaded in the runtime's own client (``runtimes``) and run on the same
inputs as the PyTorch model the exporter traced (``export.reference_model``), at every size of
``sizes`` (h, w). Every runtime is exported with a static input at each size (a runtime with dynamic shapes
at the first size only) and a runtime with dynamic shapes once more with ``dynamic=True``, run at every
size.

The error of one output is the largest over its channels c of
``max|out_c - exact_c| / max(1, max|exact_c|)``: relative for channels in pixels (boxes, keypoints),
absolute for channels in [0, 1] (class scores), so one number is comparable across tasks and sizes.
``exact`` is the same PyTorch model run in float64. The runtime's error is set against PyTorch's own
in fp32 (its *floor*, the rounding of fp32 arithmetic in this network): a cell ``matches`` when the
runtime's error is at most ``max(tol, FLOOR_FACTOR × floor)`` at every size, i.e. when it is 1e-4 or
within a factor 10 of PyTorch fp32's own error (on one thread, so that the floor is the same on every
machine; ncnn's vectorized exp and sigmoid approximate, so its errors sit highest).

A match is evidence only if a wrong attention would not match: the cell also records how far a 1 % error
of the attention modules' output moves the head's output (``attention_sensitivity``), and a cell whose
bound is not ``MARGIN`` times below that is ``insensitive``, not ``matches``. With Ultralytics' default
initialization the head's output hardly depends on the features and any export would "match" to 1e-6, so
``make_checkpoint`` re-draws the attention weights and sets BatchNorm statistics from the network's own
activations. docs/deploy.md gives the measured errors, floors and sensitivities of the whole grid.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import YoloattnError
from .export import export_checkpoint
from .runtimes import Runtime, reference_model, runtime

__all__ = ["Cell", "TOLERANCE", "FLOOR_FACTOR", "MARGIN", "attention_sensitivity", "cell_bound", "judge", "SIZES", "output_error", "make_checkpoint", "check_cell", "check_matrix"]

TOLERANCE = 1e-4
FLOOR_FACTOR = 10  # the grid's correct exports measured up to 5.7x PyTorch fp32's own error (ncnn)
MARGIN = 5  # a cell is a check only if a 1 % attention error would show at MARGIN x its bound (0.2 % is caught)
WARMUP_SIZE = 320  # BatchNorm warm-up input: at 64 px the P5 map has 2x2 pixels, too few for stable statistics
SIZES = ((64, 96), (96, 96))  # (h, w): one non-square; the tests' sizes (docs/deploy.md uses larger ones)


@dataclass(frozen=True)
class Cell:
    """One cell of the matrix.

    status: ``"matches"`` (error within the bound at every size, see the module doc), ``"differs"``
    (converted, error above it), ``"insensitive"`` (within the bound, but a 1 % error of the attention modules'
    output would not show at ``MARGIN`` times the bound: no evidence either way), ``"fails"`` (export or runtime
    raised; ``message`` is its last line) or ``"unavailable"`` (runtime not installed). error: the runtime's worst
    ``output_error`` against float64 PyTorch over the sizes that ran (None if none did); floor: PyTorch fp32's
    at the same sizes; sensitivity: ``attention_sensitivity`` at the first size (None: no attention module).
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
    floor: float | None = None
    sensitivity: float | None = None

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


def attention_sensitivity(model, x) -> float | None:
    """How far a 1 % error of every attention module's output moves the head's output: ``output_error`` of
    ``model(x)`` with each attention module's output scaled by 1.01 against ``model(x)``, the raw head output.
    None when the model has no attention module (``sensitivity.attention_modules``). ``model`` is left as it was.
    """
    import torch

    from .sensitivity import attention_modules

    modules = attention_modules(model)
    if not modules:
        return None
    with torch.inference_mode():
        ref = _first(model(x))
        hooks = [m.register_forward_hook(lambda m, i, out: out * 1.01) for m in modules]
        try:
            moved = _first(model(x))
        finally:
            for hook in hooks:
                hook.remove()
    return output_error(moved, ref)


def _strengthen_attention(model, generator) -> None:
    """Re-draw the weights inside every attention module with variance-preserving scales.

    Papers' initializations (truncated normal with std 0.02, layer scales of 1e-6 or 0.01) make an untrained
    attention branch so small that a wrong attention in an export would not show in the detector's output;
    after this, it does. Matrices: N(0, 1/fan_in); 1-D scales (``weight``, ``gamma``, ``alpha``, ``scale``):
    U(0.5, 1.5); biases: N(0, 0.1²).
    """
    import torch

    from .sensitivity import attention_modules

    for module in attention_modules(model):
        for name, p in module.named_parameters():
            leaf = name.rsplit(".", 1)[-1]
            with torch.no_grad():
                if p.dim() >= 2:
                    p.copy_(torch.randn(p.shape, generator=generator) / max(1, p[0].numel()) ** 0.5)
                elif leaf == "bias":
                    p.copy_(0.1 * torch.randn(p.shape, generator=generator))
                else:
                    p.copy_(0.5 + torch.rand(p.shape, generator=generator))


def make_checkpoint(source: str | Path, path: str | Path, nc: int | None = None, seed: int = 0) -> Path:
    """Build a model (a zoo name, stock YAML or plug-in YAML) with random weights, its attention modules'
    weights re-drawn so that they matter (``_strengthen_attention``) and BatchNorm statistics of its own
    activations (three train-mode passes of two random images at ``WARMUP_SIZE``; fusion is then exercised on
    real statistics), and save it as an Ultralytics checkpoint at ``path``. A wrong attention in an export then
    shows in the head's output (``attention_sensitivity``; tests/test_deploy.py checks it)."""
    import torch

    from ..compare.models import resolve_model
    from ..integration.heads import wrapper

    torch.manual_seed(seed)
    yolo = wrapper(resolve_model(str(source)))
    if nc:
        yolo.model = type(yolo.model)(yolo.model.yaml | {"nc": nc}, nc=nc, verbose=False)
        yolo.model.names = {i: f"class{i}" for i in range(nc)}
    generator = torch.Generator().manual_seed(seed)
    _strengthen_attention(yolo.model, generator)
    # BatchNorm statistics of the random network itself (a cumulative average over the warm-up passes): with
    # Ultralytics' momentum of 0.03 they would stay near mean 0, var 1, activations would shrink layer by layer
    # and the head's output would hardly depend on anything upstream. Statistics from too few pixels (a 2x2 P5
    # map) make eval-mode activations grow layer by layer until the head saturates (scores 0 or 1, boxes on
    # whole DFL bins) and the output no longer shows small errors.
    norms = [m for m in yolo.model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    yolo.model.train()
    with torch.no_grad():
        for _ in range(3):
            yolo.model(torch.rand(2, 3, WARMUP_SIZE, WARMUP_SIZE, generator=generator))
    yolo.model.eval()
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    yolo.save(str(path))
    return path


def _inputs(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((1, 3, h, w), dtype=np.float32)


def check_cell(checkpoint: str | Path, runtime_name: str | Runtime, work_dir: str | Path,
               sizes: tuple[tuple[int, int], ...] = SIZES, opset: int | None = None, tol: float = TOLERANCE,
               label: str | None = None, static: bool = True) -> Cell:
    """Export ``checkpoint`` for one runtime (a name of the table or a ``Runtime`` row of its own), run it at every
    size and compare with PyTorch (see module doc).

    ``static=False``: a runtime with dynamic shapes is checked only through its dynamic export (run at every size),
    not also through a static export at the first size (the tests' slice; the benchmark grid checks both).
    Never raises for a conversion or runtime failure: that is the cell's ``fails`` status and message.
    """
    import torch

    row = runtime(runtime_name)
    label = label or Path(checkpoint).stem
    base = dict(model=label, runtime=row.name, sizes=tuple(sizes), dynamic=row.dynamic, opset=opset)
    if not row.available():
        return Cell(status="unavailable", error=None, message="pip install 'yoloattn[deploy]'", **base)
    started = time.perf_counter()
    model = reference_model(checkpoint)
    exact = copy.deepcopy(model).double()
    errors: list[float] = []
    floors: list[float] = []
    moved = attention_sensitivity(exact, torch.from_numpy(_inputs(*sizes[0])).double())

    def done(status: str, message: str = "") -> Cell:
        return Cell(status=status, error=max(errors, default=None), floor=max(floors, default=None),
                    sensitivity=moved, message=message, seconds=time.perf_counter() - started, **base)

    # (export size, dynamic, sizes run): static exports at every size; a dynamic runtime also exported once with
    # dynamic=True and run at every size
    static_sizes = sizes if not row.dynamic else sizes[:1] if static else ()
    plan = [(size, False, [size]) for size in static_sizes]
    if row.dynamic and (len(sizes) > 1 or not plan):
        plan.append((sizes[0], True, list(sizes)))
    try:
        for size, dynamic, run_sizes in plan:
            tag = f"{'' if opset is None else f'-opset{opset}'}-{size[0]}x{size[1]}{'-dynamic' if dynamic else ''}"
            exported = export_checkpoint(checkpoint, row, Path(work_dir) / f"{label}-{row.name}{tag}", size,
                                         dynamic=dynamic, opset=opset)
            session = row.load(exported, threads=1)
            for k, (h, w) in enumerate(run_sizes):
                x = _inputs(h, w, k)
                threads = torch.get_num_threads()
                torch.set_num_threads(1)  # the floor must not depend on the machine's thread count (summation order)
                try:
                    with torch.inference_mode():
                        ref64 = _first(exact(torch.from_numpy(x).double()))
                        ref32 = _first(model(torch.from_numpy(x)))
                finally:
                    torch.set_num_threads(threads)
                floors.append(output_error(ref32, ref64))
                errors.append(output_error(session(x), ref64))
    except YoloattnError as error:
        return done("fails", str(error))
    except Exception as error:  # noqa: BLE001 - the runtime's own failure is this cell's result
        text = (str(error).strip().splitlines() or [type(error).__name__])[-1]
        return done("fails", f"{type(error).__name__}: {text}"[:300])
    return done(*judge(max(errors), max(floors), moved, tol))


def cell_bound(floor: float, tol: float = TOLERANCE) -> float:
    """The largest error a cell may have: ``tol``, or ``FLOOR_FACTOR`` times PyTorch fp32's own error if larger."""
    return max(tol, FLOOR_FACTOR * floor)


def judge(error: float, floor: float, sensitivity: float | None, tol: float = TOLERANCE) -> tuple[str, str]:
    """(status, message) of a converted cell from its worst error, PyTorch fp32's floor and the attention
    sensitivity (all ``output_error`` units; see the module doc): ``matches``, ``insensitive`` or ``differs``."""
    bound = cell_bound(floor, tol)
    if error > bound:
        return "differs", f"error {error:.1e} > {bound:.1e} (PyTorch fp32: {floor:.1e})"
    if sensitivity is not None and sensitivity < MARGIN * bound:
        return "insensitive", (f"a 1 % attention error moves the output by {sensitivity:.1e}, under {MARGIN}x the "
                               f"bound {bound:.1e}")
    return "matches", ""


def _first(out) -> np.ndarray:
    return (out[0] if isinstance(out, (list, tuple)) else out).double().numpy()


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
