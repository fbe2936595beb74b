"""Export through Ultralytics' own ``model.export`` (what users run), and check a format before it starts.

``check_format`` turns a typo or a format whose converter is not installed into one line (Ultralytics
would silently map some typos to ONNX, or print a traceback and an install advert). ``export_checkpoint``
exports a checkpoint into a folder of its own and returns the artifact's path.

Ultralytics' formats outside ``runtimes.RUNTIMES`` (TensorRT, LiteRT, CoreML, ...) are passed through
when their converter package is installed and are not verified by yoloattn (docs/deploy.md says which
ran on which machine).
"""

from __future__ import annotations

import contextlib
import difflib
import importlib.util
import os
import shutil
import sys
from pathlib import Path

from ..errors import YoloattnError
from .runtimes import EXTRA, RUNTIMES, Runtime, runtime

__all__ = ["check_format", "export_checkpoint", "save_checkpoint", "ExportFailed", "OTHER_FORMATS", "quantize_args"]

# Ultralytics formats that yoloattn does not verify: format -> the import name of its converter
OTHER_FORMATS = {
    "engine": "tensorrt", "coreml": "coremltools", "mlmodel": "coremltools", "saved_model": "tensorflow",
    "pb": "tensorflow", "tflite": "litert_torch", "litert": "litert_torch", "edgetpu": "tensorflow",
    "tfjs": "tensorflowjs", "paddle": "paddle", "mnn": "MNN", "imx": "imx500_converter",
    "rknn": "rknn", "executorch": "executorch", "axelera": "axelera", "qnn": "qai_hub", "coreai": "coreai",
    "deepx": "dx_com", "ascend": "acl",
}


# converter import name -> its pip distribution, where they differ (the refusal says what to install)
_PIP_NAMES = {"litert_torch": "litert-torch", "paddle": "paddlepaddle", "rknn": "rknn-toolkit2", "qai_hub": "qai-hub",
              "imx500_converter": "imx500-converter"}


class ExportFailed(YoloattnError):
    """Ultralytics' exporter or the runtime's converter raised; the message is its last line."""


def check_format(fmt: str) -> Runtime | None:
    """The runtime row of an Ultralytics export format (None for a format outside the table whose converter is
    installed). Raises ``YoloattnError`` in one line for an unknown format (with the nearest name) or one
    whose converter is not installed (with the extra or package that installs it)."""
    key = str(fmt).strip().lower()
    rows = {row.format: row for row in RUNTIMES.values() if row.format}
    if key in rows:
        rows[key].require()
        return rows[key]
    if key in OTHER_FORMATS:
        if importlib.util.find_spec(OTHER_FORMATS[key]) is None:
            package = _PIP_NAMES.get(OTHER_FORMATS[key], OTHER_FORMATS[key])
            raise YoloattnError(
                f"format={key} needs {package}, which is not installed here: pip install {package} (yoloattn passes "
                f"{key} through unverified; it installs and verifies {', '.join(rows)} with 'yoloattn[{EXTRA}]', "
                f"docs/deploy.md)")
        return None
    known = [*rows, *OTHER_FORMATS]
    near = difflib.get_close_matches(key, known, n=1)
    hint = f"did you mean format={near[0]}? " if near else ""
    raise YoloattnError(f"unknown export format {fmt!r}: {hint}formats: {', '.join(known)}")


def quantize_args(int8: bool) -> dict:
    """Ultralytics' post-training INT8 switch for ``model.export``: ``quantize=8`` where the installed release
    has that argument (8.4 replaced ``int8``/``half`` by it), else ``int8=True``; ``{}`` without INT8."""
    if not int8:
        return {}
    from ultralytics.cfg import DEFAULT_CFG_DICT  # Ultralytics' public default configuration

    return {"quantize": 8} if "quantize" in DEFAULT_CFG_DICT else {"int8": True}


def export_checkpoint(checkpoint: str | Path, name: str | Runtime, out_dir: str | Path, imgsz: int | tuple[int, int],
                      dynamic: bool = False, opset: int | None = None, int8: bool = False,
                      data: str | None = None, fraction: float | None = None, batch: int = 1,
                      nms: bool | None = None, split: str | None = None) -> Path:
    """Export ``checkpoint`` (an Ultralytics ``.pt``) for runtime ``name`` (a name of the table or a ``Runtime``)
    with ``YOLO(pt).export``; returns the artifact (file or folder) under ``out_dir``.

    imgsz: int or (h, w), multiples of the model's largest stride. dynamic: only for runtimes with
    ``dynamic``. opset: ONNX opset (ONNX only; Ultralytics' default otherwise). int8: post-training INT8
    (runtimes with ``int8``), calibrated on ``data``'s training images (``fraction`` of them), Ultralytics'
    own calibration, on its ``split`` (default Ultralytics' "val"). nms: Ultralytics' ``nms`` (None: its default;
    False keeps an end-to-end head's NMS-free branch). Raises ``RuntimeUnavailable`` when the runtime is not installed, ``ExportFailed``
    (the converter's last line) when the export raises.
    """
    from ..integration.heads import wrapper

    row = runtime(name)
    if not row.format:
        raise YoloattnError(f"runtime {row.name!r} runs the checkpoint itself; nothing to export")
    row.require()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    local = out_dir / Path(checkpoint).name
    if Path(checkpoint).resolve() != local.resolve():
        shutil.copyfile(checkpoint, local)  # Ultralytics writes next to the checkpoint
    args: dict = {"format": row.format, "imgsz": list(imgsz) if isinstance(imgsz, tuple) else imgsz,
                  "device": "cpu", "batch": batch, "verbose": False, **quantize_args(int8)}
    if dynamic:
        args["dynamic"] = True
    if nms is not None:
        args["nms"] = nms
    if opset is not None:
        args["opset"] = opset
    if int8:
        args["data"] = data
        if fraction is not None:
            args["fraction"] = fraction
        if split is not None:
            args["split"] = split
    try:
        with quiet(out_dir / "export.log"):
            path = wrapper(str(local)).export(**args)
    except YoloattnError:
        raise
    except Exception as error:  # noqa: BLE001 - a converter's failure is reported as one line per cell
        raise ExportFailed(f"{row.format} export failed: {last_line(error)} (log: {out_dir / 'export.log'})") \
            from error
    if not path:
        raise ExportFailed(f"{row.format} export returned nothing")
    return Path(path)


@contextlib.contextmanager
def quiet(log: Path):
    """Send everything written to file descriptors 1 and 2 (Ultralytics' export log, and the converters' own
    C++ output, e.g. pnnx's pass list) to ``log`` instead of the terminal, for the duration of an export."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with open(log, "ab") as sink:
        try:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


def save_checkpoint(model, path: str | Path) -> Path:
    """Save an Ultralytics model (``DetectionModel`` and kin, unfused) as a checkpoint ``YOLO(path)`` loads, so that
    an in-memory model can go through ``model.export`` like a trained one."""
    import copy

    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": copy.deepcopy(model).float(), "train_args": {}, "epoch": -1}, path)
    return path


def last_line(error: BaseException) -> str:
    """``"TypeName: the error's last non-empty line"`` (at most 300 characters): a converter's failure in one line."""
    text = str(error).strip() or type(error).__name__
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[-1] if lines else text}"[:300]
