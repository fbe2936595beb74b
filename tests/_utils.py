"""Shared assertions for the module tests."""

from __future__ import annotations

import io

import numpy as np
import torch

#: The shapes every module must handle: square, non-square, the 8x8 stride-probe map, odd sizes.
SHAPES = [(2, 20, 20), (2, 20, 12), (1, 8, 8), (2, 17, 23)]


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    """Relative L2 error ||a - b|| / ||b||, computed in float64."""
    a, b = a.detach().double(), b.detach().double()
    return ((a - b).norm() / b.norm().clamp_min(1e-30)).item()


def onnx_parity(module: torch.nn.Module, sizes, channels: int, batch: int = 1, opset: int = 18) -> list[float]:
    """Export `module` once with dynamic H and W, run onnxruntime at each (H, W) in `sizes`.

    Returns the max abs difference to PyTorch at each size, relative to the output's max magnitude.
    """
    import onnxruntime as ort

    module = module.eval()
    h0, w0 = sizes[0]
    example = torch.randn(batch, channels, h0, w0)
    buf = io.BytesIO()
    torch.onnx.export(
        module,
        (example,),
        buf,
        input_names=["x"],
        output_names=["y"],
        dynamic_axes={"x": {2: "h", 3: "w"}, "y": {2: "h_out", 3: "w_out"}},
        opset_version=opset,
        dynamo=False,
    )
    session = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    errors = []
    for h, w in sizes:
        x = torch.randn(batch, channels, h, w)
        with torch.no_grad():
            expected = module(x).numpy()
        got = session.run(None, {"x": x.numpy()})[0]
        assert got.shape == expected.shape, (got.shape, expected.shape)
        errors.append(float(np.abs(got - expected).max() / max(np.abs(expected).max(), 1e-12)))
    return errors


def ncnn_output(module: torch.nn.Module, x: torch.Tensor, folder) -> tuple[torch.Tensor, torch.Tensor]:
    """Convert ``module`` with pnnx (fp32) into ``folder``, run ``x[0]`` in ncnn with fp16/bf16 off; returns (ncnn's
    output, the module's output for ``x[0]``). Needs pnnx and ncnn (the caller skips without them)."""
    from pathlib import Path

    import ncnn
    import pnnx

    folder = Path(folder)
    files = {key: str(folder / name) for key, name in [
        ("ncnnparam", "m.ncnn.param"), ("ncnnbin", "m.ncnn.bin"), ("ncnnpy", "m_ncnn.py"), ("pnnxparam", "m.pnnx.param"),
        ("pnnxbin", "m.pnnx.bin"), ("pnnxpy", "m_pnnx.py"), ("pnnxonnx", "m.pnnx.onnx")]}  # fmt: skip
    pnnx.export(module, str(folder / "m.pt"), inputs=x, fp16=False, **files)
    net = ncnn.Net()
    for flag in ("use_vulkan_compute", "use_fp16_packed", "use_fp16_storage", "use_fp16_arithmetic", "use_bf16_storage"):
        setattr(net.opt, flag, False)
    assert net.load_param(files["ncnnparam"]) == 0 and net.load_model(files["ncnnbin"]) == 0
    sample = x[0].numpy().copy()  # ncnn.Mat borrows this memory
    with net.create_extractor() as extractor:
        extractor.input(net.input_names()[0], ncnn.Mat(sample))
        got = torch.from_numpy(np.array(extractor.extract(net.output_names()[0])[1]))
    with torch.no_grad():
        expected = module(x)[0]
    return got, expected
