"""Deployment: export through Ultralytics, run in each runtime's own client, verify, time, quantize to INT8.

- ``runtimes``: THE table of runtimes (onnxruntime, OpenVINO, TorchScript, ncnn, eager PyTorch) and their
  loaders;
- ``export``: the format check and the export of a checkpoint through ``YOLO(pt).export``;
- ``matrix``: does each export convert and match PyTorch (the export matrix, docs/deploy.md).

Nothing here is imported by ``import yoloattn``; the runtimes' packages are the ``yoloattn[deploy]`` extra.
"""

from .export import ExportFailed, check_format, export_checkpoint
from .matrix import Cell, check_cell, check_matrix, make_checkpoint, output_error
from .runtimes import RUNTIMES, Runtime, RuntimeUnavailable, installed, load_session, reference_model, runtime

__all__ = ["RUNTIMES", "Runtime", "RuntimeUnavailable", "installed", "load_session", "runtime", "ExportFailed",
           "check_format", "export_checkpoint", "reference_model", "Cell", "check_cell", "check_matrix",
           "make_checkpoint", "output_error"]
