"""THE table of deployment runtimes: how a model exported by Ultralytics runs in each runtime's own client.

One ``Runtime`` row per runtime. Everything else reads this table: ``yoloattn export``'s format check,
``bench --backend``, compare's ``--runtimes`` and ``--int8``, the export matrix
(``deploy.matrix``) and the docs' tables. Adding a runtime is one row and one loader here.

A loaded artifact is a ``Session``: ``session(x)`` takes a float32 ``(B, 3, H, W)`` numpy array
scaled to [0, 1] and returns the model's first output as a float32 numpy array, for a detection
model the raw head output ``(B, 4 + nc, A)`` (boxes in input pixels, class scores after the
sigmoid; A anchors over the strides 8, 16, 32), before NMS. Every session runs on the CPU in fp32
(OpenVINO with ``INFERENCE_PRECISION_HINT=f32``, ncnn with its fp16/bf16 storage and arithmetic
off) with the requested thread count, so that an exported model can be checked against PyTorch to
1e-4 and timed as deployed on this host's CPU. An INT8 artifact runs through the same loader.

Runtimes whose client or converter is not installed are listed by ``missing()`` with the pip
extra that installs them (``yoloattn[deploy]``).

``LITERT`` is a row outside the table: LiteRT's converter (litert-torch) cannot be installed beside the
pinned set (it pins typing_extensions lower), so it is not in the extra, and
``benchmarks/deploy.py --litert`` checks it from a side install (docs/deploy.md).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from ..errors import YoloattnError

__all__ = ["Runtime", "Session", "RUNTIMES", "LITERT", "runtime", "runtime_names", "installed", "missing",
           "RuntimeUnavailable", "load_session", "EXTRA", "reference_model"]

EXTRA = "deploy"  # pip install 'yoloattn[deploy]' installs every runtime of the table


class RuntimeUnavailable(YoloattnError):
    """A runtime's client or converter package is not installed; the message names the extra."""


class Session(Protocol):
    def __call__(self, x: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class Runtime:
    """One deployment runtime.

    name: what ``--backend``/``--runtimes``/``--int8`` take and the tables print (``"openvino"``).
    format: Ultralytics' ``export(format=...)`` value; ``""`` for eager PyTorch (nothing exported).
    aliases: other names accepted on the command line (``"ort"`` for onnxruntime).
    packages: import names the runtime needs (client and converter); all installed = available.
    dynamic: the export takes ``dynamic=True`` and the artifact then runs at any H, W (multiples of
        32); otherwise it is exported once per input size.
    int8: Ultralytics' post-training INT8 export (``quantize=8`` / ``int8=True``) exists for it.
    loader: ``"module:function"`` -> ``function(path, threads) -> Session``; path is what
        ``model.export`` returned.
    client: the runtime's own client, as the docs name it.
    install: what installs a missing package (default: the ``yoloattn[deploy]`` extra).
    """

    name: str
    format: str
    packages: tuple[str, ...]
    dynamic: bool
    int8: bool
    loader: str
    client: str
    aliases: tuple[str, ...] = ()
    install: str = f"pip install 'yoloattn[{EXTRA}]'"

    def available(self) -> bool:
        return all(importlib.util.find_spec(p) is not None for p in self.packages)

    def require(self) -> None:
        """Raise ``RuntimeUnavailable`` (one line naming the extra) if a package of this runtime is missing."""
        absent = [p for p in self.packages if importlib.util.find_spec(p) is None]
        if absent:
            raise RuntimeUnavailable(
                f"runtime {self.name!r} needs {', '.join(absent)}, which is not installed: {self.install}")

    def load(self, path: str | Path, threads: int = 1) -> Session:
        self.require()
        module, _, function = self.loader.partition(":")
        return getattr(importlib.import_module(module), function)(Path(path), threads)


RUNTIMES: dict[str, Runtime] = {r.name: r for r in (
    Runtime("torch", "", ("torch",), True, False, f"{__name__}:load_torch", "PyTorch eager (fused, eval)",
            ("pytorch",)),
    Runtime("onnxruntime", "onnx", ("onnx", "onnxruntime"), True, True, f"{__name__}:load_onnx",
            "onnxruntime.InferenceSession (CPUExecutionProvider)", ("ort", "onnx")),
    Runtime("openvino", "openvino", ("openvino",), True, True, f"{__name__}:load_openvino",
            "openvino.Core().compile_model (CPU)", ("ov",)),
    Runtime("torchscript", "torchscript", ("torch",), False, False, f"{__name__}:load_torchscript",
            "torch.jit.load", ("ts", "jit")),
    Runtime("ncnn", "ncnn", ("ncnn", "pnnx"), False, False, f"{__name__}:load_ncnn", "ncnn.Net (pnnx export)"),
)}


LITERT = Runtime("litert", "litert", ("litert_torch", "ai_edge_litert"), False, False, f"{__name__}:load_litert",
                 "ai_edge_litert.interpreter.Interpreter (XNNPACK)", ("tflite",),
                 "pip install litert-torch ai-edge-litert into a side folder (they pin typing_extensions below "
                 "yoloattn's set; docs/deploy.md)")


def runtime_names() -> tuple[str, ...]:
    return tuple(RUNTIMES)


def runtime(name: str | Runtime) -> Runtime:
    """The row for ``name`` or one of its aliases (a ``Runtime`` is returned as it is: a runtime outside the
    table, e.g. a converter checked on the side); ``YoloattnError`` naming the choices otherwise."""
    if isinstance(name, Runtime):
        return name
    key = name.strip().lower()
    for row in RUNTIMES.values():
        if key == row.name or key in row.aliases:
            return row
    raise YoloattnError(f"unknown runtime {name!r}; choose from {', '.join(RUNTIMES)}")


def installed() -> tuple[str, ...]:
    """Names of the runtimes whose packages are all installed here."""
    return tuple(name for name, row in RUNTIMES.items() if row.available())


def missing() -> tuple[str, ...]:
    return tuple(name for name, row in RUNTIMES.items() if not row.available())


def load_session(name: str, path: str | Path, threads: int = 1) -> Session:
    """Load an exported artifact in runtime ``name``'s client; see the module doc for the ``Session``."""
    return runtime(name).load(path, threads)


def reference_model(checkpoint: str | Path):
    """The checkpoint's model as the exporter traces it: float32, fused, eval, and with an end-to-end head
    (YOLO26, YOLOv10) on its one-to-many branch, as ``export(nms=None)`` (the default) exports it."""
    from ..integration.heads import load_model

    model = load_model(checkpoint).fuse(verbose=False).eval()
    if hasattr(model, "end2end"):
        model.end2end = False
    return model


# --- loaders: each runtime's own client ------------------------------------------------------------------------------


def _first(out) -> np.ndarray:
    while isinstance(out, (list, tuple)):
        out = out[0]
    if hasattr(out, "detach"):
        out = out.detach().cpu().numpy()
    return np.asarray(out, dtype=np.float32)


def _torch_session(module, threads: int) -> Session:
    """A PyTorch module (eager or TorchScript) as a ``Session`` on ``threads`` threads (restored after each call)."""
    import torch

    def run(x: np.ndarray) -> np.ndarray:
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            with torch.inference_mode():
                return _first(module(torch.from_numpy(x)))
        finally:
            torch.set_num_threads(previous)

    return run


def load_torch(path: Path, threads: int) -> Session:
    """A checkpoint (.pt) as the exporter traces it (``export.reference_model``)."""
    return _torch_session(reference_model(path), threads)


def load_onnx(path: Path, threads: int) -> Session:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # the optimizer's notes about unused initializers are not the user's concern
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: _first(session.run(None, {name: np.ascontiguousarray(x, dtype=np.float32)}))


def load_openvino(path: Path, threads: int) -> Session:
    import openvino as ov

    xml = path if path.suffix == ".xml" else next(Path(path).glob("*.xml"))
    core = ov.Core()
    model = core.read_model(str(xml))
    config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads,
              "INFERENCE_PRECISION_HINT": "f32"}  # never bf16 on AMX/AVX-512 CPUs: checks and timings are fp32
    compiled = core.compile_model(model, "CPU", config)
    request = compiled.create_infer_request()
    return lambda x: _first(list(request.infer({0: np.ascontiguousarray(x, dtype=np.float32)}).values()))


def load_litert(path: Path, threads: int) -> Session:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=threads)
    interpreter.allocate_tensors()
    source, sink = interpreter.get_input_details()[0]["index"], interpreter.get_output_details()[0]["index"]

    def run(x: np.ndarray) -> np.ndarray:
        interpreter.set_tensor(source, np.ascontiguousarray(x, dtype=np.float32))
        interpreter.invoke()
        y = interpreter.get_tensor(sink).copy()
        # Ultralytics exports detection boxes divided by the input's (w, h) so that INT8 keeps the scores'
        # resolution, and its LiteRT backend multiplies them back; so does this session
        h, w = x.shape[2:]
        y[:, [0, 2]] *= w
        y[:, [1, 3]] *= h
        return y

    return run


def load_torchscript(path: Path, threads: int) -> Session:
    import torch

    return _torch_session(torch.jit.load(str(path), map_location="cpu").eval(), threads)


def load_ncnn(path: Path, threads: int) -> Session:
    import ncnn

    param = path if path.suffix == ".param" else next(Path(path).glob("*.param"))
    net = ncnn.Net()
    net.opt.use_vulkan_compute = False
    net.opt.num_threads = threads
    # fp32 end to end: ncnn otherwise stores (and on some CPUs computes) in fp16/bf16
    for flag in ("use_fp16_packed", "use_fp16_storage", "use_fp16_arithmetic", "use_bf16_storage"):
        setattr(net.opt, flag, False)
    # ncnn reports a layer it cannot load by its return code and a message on stderr, and then has no inputs
    if net.load_param(str(param)) != 0 or net.load_model(str(param.with_suffix(".bin"))) != 0 \
            or not net.input_names() or not net.output_names():
        raise RuntimeError(f"ncnn could not load {param.name} (a layer pnnx wrote without its parameters; see the "
                           f"export log next to it)")
    inputs, outputs = net.input_names(), sorted(net.output_names())

    def run(x: np.ndarray) -> np.ndarray:
        results = []
        for sample in np.ascontiguousarray(x, dtype=np.float32):
            with net.create_extractor() as ex:
                ex.input(inputs[0], ncnn.Mat(sample))
                results.append(np.array(ex.extract(outputs[0])[1]))
        return np.stack(results).astype(np.float32)

    return run



def runtimes_markdown() -> str:
    """The ``| runtime | export | client | shapes | INT8 |`` table of docs/deploy.md, from ``RUNTIMES``."""
    lines = ["| runtime (`--backend`, `--runtimes`) | Ultralytics format | client | input shapes | INT8 (`--int8`) |",
             "|---|---|---|---|---|"]
    for row in RUNTIMES.values():
        names = ", ".join(f"`{n}`" for n in (row.name, *row.aliases))
        shapes = "dynamic H, W (exported once)" if row.dynamic and row.format else (
            "any" if not row.format else "static (exported per size)")
        lines.append(f"| {names} | {f'`{row.format}`' if row.format else '— (eager, fused)'} | {row.client} | "
                     f"{shapes} | {'yes' if row.int8 else 'no'} |")
    return "\n".join(lines)
