"""The only package that touches Ultralytics internals (see parse.py for the mechanism)."""

from __future__ import annotations

import sys

import torch

from .catalog import register_all
from .load import install as _install_load
from .names import install as _install_names
from .parse import install as _install_parser
from .registry import REGISTRY, UnknownModuleError
from .trainer import (DetectionTrainer, OBBTrainer, PoseTrainer, RTDETRTrainer, SegmentationTrainer,
                      ray_runtime_env)

_installed = False


def install() -> None:
    """Register every yoloattn name with Ultralytics and let stock ``YOLO()`` find bundled zoo names.

    Idempotent; runs on ``import yoloattn``.
    """
    global _installed
    if _installed:
        return
    register_all()
    _install_parser()
    _install_names()
    _install_load()
    # Ultralytics' restricted (weights_only) checkpoint loading accepts only allow-listed classes.
    torch.serialization.add_safe_globals(_our_module_classes())
    _installed = True


def _our_module_classes() -> list[type]:
    found = {
        value
        for name, module in list(sys.modules.items())
        if name.startswith("yoloattn.")
        for value in vars(module).values()
        if isinstance(value, type) and issubclass(value, torch.nn.Module) and value.__module__ == name
    }
    return sorted(found, key=lambda c: (c.__module__, c.__qualname__))
