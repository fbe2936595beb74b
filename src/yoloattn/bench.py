"""Cost of a YOLO detection model: parameters, FLOPs per layer, latency, peak memory, hardware efficiency.

FLOPs are counted by ``yoloattn.flops.FlopCounter`` around each top-level layer of the model
(``model.model[i]``): ``torch.utils.flop_counter.FlopCounterMode`` for convolutions and matmuls, plus
formulas for the fused ``scaled_dot_product_attention`` kernels (which FlopCounterMode counts as 0 on
the CPU) and for ACmix's window attention, each counted as 2 FLOPs per multiply-add (the convention of
Ultralytics' thop-based GFLOPs). Element-wise ops (softmax, activations, norms, additions) are not
counted. Per-layer inputs follow the model's own routing (``m.f``), as in ``BaseModel._predict_once``.

Latency is the wall time of one forward pass of a *fused* model in eval mode on an input of shape
(batch, 3, imgsz, imgsz) with no pre/post-processing and no NMS, measured ``iters`` times after
``warmup`` passes, with eager PyTorch or in a deployment runtime of ``deploy.runtimes.RUNTIMES``
(ONNX Runtime, OpenVINO, TorchScript, ncnn: the model exported through Ultralytics' own
``model.export`` at that static size, run in the runtime's own client in fp32 on the CPU).
Several models are timed in alternating blocks (``time_interleaved``) so that load changes on a
shared machine hit them alike. From the per-pass times t_k:

- latency median and p90 of t_k (ms); throughput = batch / median (images per second);
- achieved GFLOP/s = FLOPs(batch) / median;
- efficiency = achieved / peak, where peak is the best GFLOP/s of an n x n fp32 matmul
  (2 n^3 FLOPs) measured in the same process, on the same device and thread count.

Parameter counts depend on two things that every printed count states (``param_basis``, the one
place the wording lives): whether the model is *fused* (BatchNorm folded into the preceding
convolution and RepConv branches merged, as ``bench`` and ``compare`` time it; fewer parameters)
or *unfused* (as built and trained), and the class count (the Detect head's classification
convolutions grow with it), e.g. "2,726,352 parameters (unfused, 80 classes)".

Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` during one pass; on CPU the peak of live
tensor storage produced during one pass (tracked with a ``TorchDispatchMode``), i.e. the activation
memory on top of weights and input. The exported runtimes do not report it (None).

Every result names the CPU (model and vector ISA, ``machine.cpu_summary``) and the thread count.
"""

from __future__ import annotations

import copy
import functools
import statistics
import tempfile
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn
from torch.utils._python_dispatch import TorchDispatchMode

from .flops import FlopCounter
from .machine import cpu_summary
from .yaml_model import rows

BACKENDS = ("torch", "onnxruntime", "openvino", "torchscript", "ncnn")  # = deploy.runtimes.RUNTIMES (a test)


@dataclass(frozen=True)
class LayerCost:
    index: int
    source: int | list[int]  # Ultralytics' ``from``
    repeats: int  # the YAML row's depth-scaled n, as Ultralytics' verbose layer table prints it
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
    nc: int | None = None  # classes of the Detect head (params are those of the fused model)
    cpu: str = ""  # machine.cpu_summary(): CPU model, vector ISA, cores

    @property
    def efficiency(self) -> float:
        return self.achieved_gflops_s / self.matmul_peak_gflops_s


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def param_basis(fused: bool, nc: int | None) -> str:
    """What a parameter count counts, in the words every printed count uses: ``"fused, 80 classes"``."""
    classes = "unknown classes" if nc is None else f"{nc} class" + ("" if nc == 1 else "es")
    return f"{'fused' if fused else 'unfused'}, {classes}"


def describe_params(count: int, fused: bool, nc: int | None) -> str:
    """``"2,726,352 parameters (unfused, 80 classes)"``; see ``param_basis``."""
    return f"{count:,} parameters ({param_basis(fused, nc)})"


def model_nc(model: nn.Module) -> int | None:
    """Class count of an Ultralytics model's head (None for a model without one)."""
    layers = getattr(model, "model", None)
    head = layers[-1] if isinstance(layers, (nn.ModuleList, nn.Sequential)) and len(layers) else None
    nc = getattr(head, "nc", None)
    if nc is None and isinstance(getattr(model, "yaml", None), dict):
        nc = model.yaml.get("nc")
    return int(nc) if nc is not None else None


def yaml_repeats(d: dict) -> list[int]:
    """The repeat count ``n`` of every row of a model YAML dict after depth scaling, as Ultralytics'
    ``parse_model`` computes it for its verbose layer table: ``max(round(n * depth), 1) if n > 1 else n``,
    depth from the row of ``scales`` for ``d["scale"]`` (the first row without one) or ``depth_multiple``.

    That count is not kept on the built layer: for C2f/C3k2/C2PSA-style blocks Ultralytics (and
    yoloattn's ``*_M`` blocks through the same parser) moves it into the block's arguments and builds one
    module, and a plain layer's ``n`` attribute may mean something else (SPPF's pooling size).
    """
    depth = d.get("depth_multiple", 1.0)
    scales = d.get("scales")
    if scales:
        depth = scales[d.get("scale") or next(iter(scales))][0]
    return [max(round(row.repeats * depth), 1) if row.repeats > 1 else row.repeats for row in rows(d)]


def _layer_repeats(model: nn.Module) -> list[int] | None:
    """Per top-level layer, the YAML row's scaled n (``yaml_repeats``); None when the model has no YAML."""
    d = getattr(model, "yaml", None)
    if not isinstance(d, dict) or "backbone" not in d:
        return None
    with_rows = yaml_repeats(d)
    return with_rows if len(with_rows) == len(model.model) else None


def _built_repeats(layer: nn.Module) -> int:
    """Fallback without a YAML: copies of a repeated plain layer, or the inner blocks of a CSP block."""
    if type(layer) is nn.Sequential:
        return len(layer)
    inner = getattr(layer, "m", None)
    return len(inner) if isinstance(inner, (nn.ModuleList, nn.Sequential)) else 1


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
    (``yoloattn.flops.DESCRIPTION``). ``LayerCost.repeats`` is the YAML row's depth-scaled n
    (``yaml_repeats``; from the built layer when the model has no YAML). Errors of the forward (e.g. a map
    too small for a module) propagate.
    """
    h, w = (imgsz, imgsz) if isinstance(imgsz, int) else imgsz
    p = next(model.parameters())
    x = torch.zeros(batch, 3, h, w, device=p.device, dtype=p.dtype)
    outputs, costs = [], []
    repeats = _layer_repeats(model)
    for k, layer in enumerate(model.model):
        if layer.f != -1:
            x = outputs[layer.f] if isinstance(layer.f, int) else [x if j == -1 else outputs[j] for j in layer.f]
        with FlopCounter() as counter:
            x = layer(x)
        outputs.append(x)
        n = repeats[k] if repeats else _built_repeats(layer)
        costs.append(LayerCost(layer.i, layer.f, n, _module_name(layer),
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


def _runtime_forward(model: nn.Module, backend: str, imgsz: int, batch: int, threads: int,
                     folder: Path) -> Callable[[], object]:
    """Export ``model`` through Ultralytics for ``backend`` at (batch, 3, imgsz, imgsz) and return one pass in
    the runtime's client on a zero input."""
    import numpy as np

    from .deploy.export import export_checkpoint, save_checkpoint
    from .deploy.runtimes import runtime

    checkpoint = save_checkpoint(model, folder / "model.pt")
    end_to_end = bool(getattr(model, "end2end", False))
    exported = export_checkpoint(checkpoint, backend, folder, imgsz, batch=batch, nms=False if end_to_end else None)
    session = runtime(backend).load(exported, threads)
    x = np.zeros((batch, 3, imgsz, imgsz), np.float32)
    return lambda: session(x)


def time_interleaved(forwards: dict[str, Callable[[], object]], device: torch.device, warmup: int, iters: int,
                     rounds: int = 3, on_round: Callable[[int, int], None] | None = None) -> dict[str, list[float]]:
    """Per-pass milliseconds of each forward, timed in ``rounds`` alternating blocks.

    Every forward is warmed up first; then each round times ``iters / rounds`` passes of every forward
    in turn, so a load change on a shared machine affects all of them alike instead of whichever
    model happened to be timed during it. ``on_round(r, rounds)`` is called before the warm-up (r = 0)
    and before each round r = 1..rounds.
    """
    if on_round:
        on_round(0, rounds)
    for forward in forwards.values():
        _timed(forward, device, warmup, 0)
    times: dict[str, list[float]] = {name: [] for name in forwards}
    per_round = [iters // rounds + (r < iters % rounds) for r in range(rounds)]
    for r, count in enumerate(per_round, 1):
        if on_round:
            on_round(r, rounds)
        for name, forward in forwards.items():
            times[name] += _timed(forward, device, 0, count)
    return times


def benchmark_many(models: dict[str, nn.Module], imgsz: int = 640, batch: int = 1,
                   backends: tuple[str, ...] = ("torch",), device: str = "cpu", threads: int | None = None,
                   warmup: int = 5, iters: int = 30, matmul_peak: float | None = None,
                   progress: Callable[[str, float | None], None] | None = None) -> dict[tuple[str, str], BenchResult]:
    """Time several models on each backend, interleaved (see ``time_interleaved``); keys are (name, backend).

    ``progress(step, eta_s)``, if given, is called before each model is prepared (``step`` like
    ``"2/5: yolo11n-mqa-psa"``: fuse, count FLOPs, measure memory, export to ONNX, one timed pass per
    backend) and before the warm-up and each timed round (``"latency round 1/3"``), with an estimate
    of the seconds left for the whole call (None before anything could be measured). See ``eta``.
    """
    from .deploy.runtimes import runtime

    backends = tuple(dict.fromkeys(runtime(b).name for b in backends))  # aliases (ort, ov) -> names; unknown: one line
    for b in backends:
        runtime(b).require()
    exported = [b for b in backends if b != "torch"]
    if exported and device != "cpu":
        raise ValueError(f"the {exported[0]} backend runs on the CPU here; use device='cpu'")
    previous_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        return _benchmark_many(models, imgsz, batch, backends, torch.device(device), warmup, iters, matmul_peak,
                               progress)
    finally:
        torch.set_num_threads(previous_threads)


def eta(prepare_s: list[float], timing_s: list[float], total: int) -> float | None:
    """Seconds left of ``benchmark_many`` after ``len(prepare_s)`` of ``total`` models were prepared.

    ``prepare_s``: seconds each prepared model took (fuse, FLOPs, memory, export); ``timing_s``: the
    seconds its warm-up and timed passes will take, from one timed pass per backend. The models not yet
    prepared are assumed to cost the mean of those that are. None before the first model is done.
    """
    if not prepare_s:
        return None
    left = total - len(prepare_s)
    return left * statistics.fmean(prepare_s) + sum(timing_s) + left * statistics.fmean(timing_s)


def _one_pass_s(forward: Callable[[], object], device: torch.device) -> float:
    start = time.perf_counter()
    forward()
    _sync(device)
    return time.perf_counter() - start


@torch.no_grad()
def _benchmark_many(models: dict[str, nn.Module], imgsz: int, batch: int, backends: tuple[str, ...],
                    dev: torch.device, warmup: int, iters: int, matmul_peak: float | None,
                    progress: Callable[[str, float | None], None] | None) -> dict[tuple[str, str], BenchResult]:
    threads = torch.get_num_threads()

    def one_pass_s(forward: Callable[[], object]) -> float:
        # the extra passes exist only to estimate the ETA: without a progress callback they are skipped
        return _one_pass_s(forward, dev) if progress else 0.0

    say = progress or (lambda step, eta_s: None)
    peak = matmul_peak or matmul_peak_gflops(dev)
    x = torch.zeros(batch, 3, imgsz, imgsz, device=dev)
    forwards, memory, cost = {}, {}, {}
    prepare_s, timing_s = [], []  # per prepared model, see ``eta``
    with tempfile.TemporaryDirectory() as tmp:
        for k, (name, original) in enumerate(models.items()):
            say(f"{k + 1}/{len(models)}: {name}", eta(prepare_s, timing_s, len(models)))
            start, pass_s = time.perf_counter(), 0.0
            model = prepare(original).to(dev)
            cost[name] = (count_params(model), count_gflops(model, imgsz), model_nc(model))
            if "torch" in backends:
                forwards[name, "torch"] = functools.partial(model, x)
                memory[name, "torch"] = peak_memory_mb(model, x)  # also the first (cold) pass
                pass_s += one_pass_s(forwards[name, "torch"])
            for backend in backends:
                if backend == "torch":
                    continue
                folder = Path(tmp) / f"model{k}-{backend}"
                forwards[name, backend] = _runtime_forward(original, backend, imgsz, batch, threads, folder)
                forwards[name, backend]()  # the first run allocates
                pass_s += one_pass_s(forwards[name, backend])
            timing_s.append(pass_s * (warmup + iters))
            prepare_s.append(time.perf_counter() - start)
        rounds_s: list[float] = []
        last = [time.perf_counter()]

        def on_round(r: int, rounds: int) -> None:
            now = time.perf_counter()
            if r >= 2:
                rounds_s.append(now - last[0])
            last[0] = now
            if r == 0:
                say("latency warm-up", sum(timing_s))
            else:
                left = rounds - r + 1
                estimate = left * statistics.fmean(rounds_s) if rounds_s else sum(timing_s) * iters / (warmup + iters)
                say(f"latency round {r}/{rounds}", estimate)

        times = time_interleaved(forwards, dev, warmup, iters, on_round=on_round if progress else None)
    results = {}
    for (name, backend), t in times.items():
        params, gflops, nc = cost[name]
        median = statistics.median(t)
        p90 = statistics.quantiles(t, n=10)[-1] if len(t) > 1 else t[0]
        achieved = gflops * batch / (median / 1e3)
        results[name, backend] = BenchResult(backend, imgsz, batch, threads, params, gflops, median, p90,
                                             batch / (median / 1e3), memory.get((name, backend)), achieved, peak,
                                             nc, cpu_summary())
    return results


def benchmark(model: nn.Module, imgsz: int = 640, batch: int = 1, backend: str = "torch",
              device: str = "cpu", threads: int | None = None, warmup: int = 5, iters: int = 30,
              matmul_peak: float | None = None) -> BenchResult:
    """Time one model on one backend (see the module docstring)."""
    return benchmark_many({"model": model}, imgsz, batch, (backend,), device, threads, warmup, iters,
                          matmul_peak)["model", backend]
