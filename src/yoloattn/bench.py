"""Cost of a YOLO detection model: parameters, FLOPs per layer, latency, peak memory, hardware efficiency.

FLOPs are counted by ``yoloattn.flops.FlopCounter`` around each top-level layer of the model
(``model.model[i]``): ``torch.utils.flop_counter.FlopCounterMode`` for convolutions and matmuls, plus
formulas for the fused ``scaled_dot_product_attention`` kernels (which FlopCounterMode counts as 0 on
the CPU) and for ACmix's window attention, each counted as 2 FLOPs per multiply-add (the convention of
Ultralytics' thop-based GFLOPs). Element-wise ops (softmax, activations, norms, additions) are not
counted. Per-layer inputs follow the model's own routing (``m.f``), as in ``BaseModel._predict_once``.

Latency is the wall time of one forward pass of a *fused* model in eval mode on an input of shape
(batch, 3, imgsz, imgsz) with no pre/post-processing and no NMS, measured ``iters`` times after
``warmup`` passes, either with PyTorch or with ONNX Runtime on a TorchScript-exported ONNX graph.
Several models are timed in alternating blocks (``time_interleaved``) so that load changes on a
shared machine hit them alike. From the per-pass times t_k:

- latency median and p90 of t_k (ms); throughput = batch / median (images per second);
- achieved GFLOP/s = FLOPs(batch) / median;
- efficiency = achieved / peak, where peak is the best GFLOP/s of an n x n fp32 matmul
  (2 n^3 FLOPs) measured in the same process, on the same device and thread count.

Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` during one pass; on CPU the peak of live
tensor storage produced during one pass (tracked with a ``TorchDispatchMode``), i.e. the activation
memory on top of weights and input. ONNX Runtime does not report it (None).
"""

from __future__ import annotations

import copy
import functools
import statistics
import tempfile
import time
import warnings
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn
from torch.utils._python_dispatch import TorchDispatchMode

from .flops import FlopCounter

BACKENDS = ("torch", "onnxruntime")


@dataclass(frozen=True)
class LayerCost:
    index: int
    source: int | list[int]  # Ultralytics' ``from``
    repeats: int
    module: str
    params: int
    flops: int  # at the measured input
    out_shape: tuple[int, ...]  # of the output tensor (the first one for tuple outputs)


@dataclass(frozen=True)
class BenchResult:
    backend: str
    imgsz: int
    batch: int
    threads: int
    params: int
    gflops: float  # per image
    latency_ms: float  # median per forward pass of the whole batch
    p90_ms: float
    throughput: float  # images per second
    peak_mem_mb: float | None
    achieved_gflops_s: float
    matmul_peak_gflops_s: float

    @property
    def efficiency(self) -> float:
        return self.achieved_gflops_s / self.matmul_peak_gflops_s


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _main_shape(x) -> tuple[int, ...]:
    """Shape of a layer's output tensor, or of the first tensor in a tuple/list/dict output (Detect's boxes)."""
    if isinstance(x, torch.Tensor):
        return tuple(x.shape)
    values = x.values() if isinstance(x, dict) else x if isinstance(x, (list, tuple)) else ()
    for value in values:
        shape = _main_shape(value)
        if shape:
            return shape
    return ()


@torch.no_grad()
def layer_costs(model: nn.Module, imgsz: int | tuple[int, int] = 640, batch: int = 1) -> list[LayerCost]:
    """Parameters, FLOPs and output shape of every top-level layer of an Ultralytics model.

    ``model`` is a ``DetectionModel`` (anything with ``.model`` layers carrying ``.f``/``.i``);
    it is run in its current mode on zeros of shape (batch, 3, H, W), H, W = ``imgsz``. Each
    ``LayerCost.flops`` is an int for the whole batch, counted by ``yoloattn.flops.FlopCounter``
    (``yoloattn.flops.DESCRIPTION``). Errors of the forward (e.g. a map too small for a module) propagate.
    """
    h, w = (imgsz, imgsz) if isinstance(imgsz, int) else imgsz
    p = next(model.parameters())
    x = torch.zeros(batch, 3, h, w, device=p.device, dtype=p.dtype)
    outputs, costs = [], []
    for layer in model.model:
        if layer.f != -1:
            x = outputs[layer.f] if isinstance(layer.f, int) else [x if j == -1 else outputs[j] for j in layer.f]
        with FlopCounter() as counter:
            x = layer(x)
        outputs.append(x)
        costs.append(LayerCost(layer.i, layer.f, getattr(layer, "n", 1), _module_name(layer),
                               count_params(layer), counter.total, _main_shape(x)))
    return costs


def _module_name(layer: nn.Module) -> str:
    kind = getattr(layer, "type", None)  # Ultralytics stores the YAML's module path here (nn.Module.type is a method)
    return kind.rsplit(".", 1)[-1] if isinstance(kind, str) else type(layer).__name__


def count_gflops(model: nn.Module, imgsz: int | tuple[int, int] = 640) -> float:
    """GFLOPs (1e9 FLOPs, 2 per multiply-add) of one (3, H, W) image through every layer, H, W = ``imgsz``.

    The sum of ``layer_costs(model, imgsz, batch=1)``; see ``yoloattn.flops`` for what is counted.
    """
    return sum(c.flops for c in layer_costs(model, imgsz, batch=1)) / 1e9


def prepare(model: nn.Module) -> nn.Module:
    """A fused, eval-mode, gradient-free copy of an Ultralytics model for timing."""
    model = copy.deepcopy(model).float().eval()
    if hasattr(model, "fuse"):
        model = model.fuse(verbose=False)
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(run: Callable[[], object], device: torch.device, warmup: int, iters: int) -> list[float]:
    for _ in range(warmup):
        run()
    _sync(device)
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        run()
        _sync(device)
        times.append((time.perf_counter() - start) * 1e3)
    return times


@torch.no_grad()
def matmul_peak_gflops(device: str | torch.device = "cpu", n: int | None = None, repeats: int = 10,
                       threads: int | None = None) -> float:
    """Best GFLOP/s of an n x n fp32 matmul (2 n^3 FLOPs) over ``repeats`` timed runs."""
    device = torch.device(device)
    n = n or (4096 if device.type == "cuda" else 1024)
    a, b = (torch.randn(n, n, device=device) for _ in range(2))
    previous_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        best = min(_timed(lambda: torch.mm(a, b), device, warmup=2, iters=repeats))
    finally:
        torch.set_num_threads(previous_threads)
    return 2 * n**3 / (best / 1e3) / 1e9


class _LiveStorage(TorchDispatchMode):
    """Peak bytes of tensor storage created by ops while active and still referenced."""

    def __init__(self, existing: list[torch.Tensor]):
        super().__init__()
        self.live = self.peak = 0
        self._refs: dict[int, int] = {}  # storage pointer -> number of live tensors using it
        # weights and the input already exist; views of them (a transposed weight) allocate nothing
        self._existing = {t.untyped_storage().data_ptr() for t in existing}

    def _release(self, ptr: int, nbytes: int) -> None:
        self._refs[ptr] -= 1
        if not self._refs[ptr]:
            del self._refs[ptr]
            self.live -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (list, tuple)) else (out,):
            if isinstance(t, torch.Tensor) and t.device.type != "meta":
                storage = t.untyped_storage()
                ptr, nbytes = storage.data_ptr(), storage.nbytes()
                if ptr in self._existing:
                    continue
                if ptr not in self._refs:
                    self._refs[ptr] = 0
                    self.live += nbytes
                    self.peak = max(self.peak, self.live)
                self._refs[ptr] += 1
                weakref.finalize(t, self._release, ptr, nbytes)
        return out


@torch.no_grad()
def peak_memory_mb(model: nn.Module, x: torch.Tensor) -> float:
    """Peak activation memory (MiB) of one forward pass (see the module docstring)."""
    if x.device.type == "cuda":
        torch.cuda.synchronize(x.device)
        base = torch.cuda.memory_allocated(x.device)
        torch.cuda.reset_peak_memory_stats(x.device)
        model(x)
        torch.cuda.synchronize(x.device)
        return (torch.cuda.max_memory_allocated(x.device) - base) / 2**20
    tracker = _LiveStorage([x, *model.parameters(), *model.buffers()])
    with tracker:
        out = model(x)
    del out
    return tracker.peak / 2**20


def export_onnx(model: nn.Module, imgsz: int, batch: int, path: str | Path, opset: int = 17) -> Path:
    """Export a prepared model with a static (batch, 3, imgsz, imgsz) input named ``images``."""
    from ultralytics.nn.modules import Detect

    model = copy.deepcopy(model).cpu()
    for m in model.modules():
        if isinstance(m, Detect):
            m.export, m.format = True, "onnx"  # Detect then returns the decoded tensor alone
    x = torch.zeros(batch, 3, imgsz, imgsz)
    with warnings.catch_warnings():  # the TorchScript exporter's constant-folding notes are not actionable
        warnings.simplefilter("ignore")
        torch.onnx.export(model, x, str(path), opset_version=opset, input_names=["images"],
                          output_names=["output0"], dynamo=False)
    return Path(path)


def _onnxruntime_forward(onnx_path: Path, imgsz: int, batch: int, threads: int) -> Callable[[], object]:
    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: np.zeros((batch, 3, imgsz, imgsz), np.float32)}
    return lambda: session.run(None, feed)


def time_interleaved(forwards: dict[str, Callable[[], object]], device: torch.device, warmup: int, iters: int,
                     rounds: int = 3) -> dict[str, list[float]]:
    """Per-pass milliseconds of each forward, timed in ``rounds`` alternating blocks.

    Every forward is warmed up first; then each round times ``iters / rounds`` passes of every forward
    in turn, so a load change on a shared machine affects all of them alike instead of whichever
    model happened to be timed during it.
    """
    for forward in forwards.values():
        _timed(forward, device, warmup, 0)
    times: dict[str, list[float]] = {name: [] for name in forwards}
    per_round = [iters // rounds + (r < iters % rounds) for r in range(rounds)]
    for count in per_round:
        for name, forward in forwards.items():
            times[name] += _timed(forward, device, 0, count)
    return times


def benchmark_many(models: dict[str, nn.Module], imgsz: int = 640, batch: int = 1,
                   backends: tuple[str, ...] = ("torch",), device: str = "cpu", threads: int | None = None,
                   warmup: int = 5, iters: int = 30,
                   matmul_peak: float | None = None) -> dict[tuple[str, str], BenchResult]:
    """Time several models on each backend, interleaved (see ``time_interleaved``); keys are (name, backend)."""
    unknown = [b for b in backends if b not in BACKENDS]
    if unknown:
        raise ValueError(f"unknown backend {unknown[0]!r}; choose from {', '.join(BACKENDS)}")
    if "onnxruntime" in backends and device != "cpu":
        raise ValueError("the onnxruntime backend runs on the CPU here; use device='cpu'")
    previous_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        return _benchmark_many(models, imgsz, batch, backends, torch.device(device), warmup, iters, matmul_peak)
    finally:
        torch.set_num_threads(previous_threads)


@torch.no_grad()
def _benchmark_many(models: dict[str, nn.Module], imgsz: int, batch: int, backends: tuple[str, ...],
                    dev: torch.device, warmup: int, iters: int,
                    matmul_peak: float | None) -> dict[tuple[str, str], BenchResult]:
    threads = torch.get_num_threads()
    peak = matmul_peak or matmul_peak_gflops(dev)
    x = torch.zeros(batch, 3, imgsz, imgsz, device=dev)
    prepared = {name: prepare(model).to(dev) for name, model in models.items()}
    cost = {name: (count_params(m), count_gflops(m, imgsz)) for name, m in prepared.items()}
    forwards, memory = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, model in prepared.items():
            if "torch" in backends:
                forwards[name, "torch"] = functools.partial(model, x)
                memory[name, "torch"] = peak_memory_mb(model, x)
            if "onnxruntime" in backends:
                onnx_path = export_onnx(model, imgsz, batch, Path(tmp) / f"model{len(forwards)}.onnx")
                forwards[name, "onnxruntime"] = _onnxruntime_forward(onnx_path, imgsz, batch, threads)
        times = time_interleaved(forwards, dev, warmup, iters)
    results = {}
    for (name, backend), t in times.items():
        params, gflops = cost[name]
        median = statistics.median(t)
        p90 = statistics.quantiles(t, n=10)[-1] if len(t) > 1 else t[0]
        achieved = gflops * batch / (median / 1e3)
        results[name, backend] = BenchResult(backend, imgsz, batch, threads, params, gflops, median, p90,
                                             batch / (median / 1e3), memory.get((name, backend)), achieved, peak)
    return results


def benchmark(model: nn.Module, imgsz: int = 640, batch: int = 1, backend: str = "torch",
              device: str = "cpu", threads: int | None = None, warmup: int = 5, iters: int = 30,
              matmul_peak: float | None = None) -> BenchResult:
    """Time one model on one backend (see the module docstring)."""
    return benchmark_many({"model": model}, imgsz, batch, (backend,), device, threads, warmup, iters,
                          matmul_peak)["model", backend]
