"""Model names the CLI and the comparison accept, resolved to YAML files without any download.

Accepted, in this order:

1. a path to an existing file (``.yaml``/``.yml`` model definition or a local ``.pt`` checkpoint);
2. a bundled zoo name, with or without ``.yaml`` and with the scale letter Ultralytics reads from the
   file name (``yolo11n-mlla-psa`` is ``yolo11-mlla-psa.yaml`` at scale n), or a former zoo name
   (``yolov8n-mlla-c2f``), which resolves to the current one (``yolov8n-mlla-csp``, see ``zoo.naming``);
3. an Ultralytics model YAML name (``yolo11n``, ``yolov8s.yaml``, ``yolov9t``), resolved inside the
   installed ``ultralytics/cfg/models`` the way Ultralytics unifies them: the letter after the
   version number (``(\\d+)([nslmx])``) is the scale and is dropped to find the file.

A bare checkpoint name such as ``yolo11n.pt`` that is not a local file is refused: Ultralytics would
download it. Unknown names raise :class:`ModelNameError` listing the closest known names.
"""

from __future__ import annotations

import difflib
from functools import lru_cache
from pathlib import Path

import yaml

from .. import zoo
from ..errors import YoloattnError
from ..yaml_model import guess_scale, scaled_names, unified_name
from ..zoo.naming import variant_stem  # noqa: F401  (the one naming scheme; cli and runner import it from here)


class ModelNameError(YoloattnError):
    """A model name that is neither a file, a zoo name nor an Ultralytics YAML."""


@lru_cache(maxsize=1)
def _stock_yamls() -> dict[str, Path]:
    return {p.name: p for p in sorted(zoo.stock_models_dir().rglob("*.yaml"))}


def scale_of(name: str | Path) -> str:
    """The scale letter Ultralytics reads from a model file name ('' when there is none): ``yaml_model.guess_scale``."""
    return guess_scale(name)


def _with_yaml_suffix(name: str) -> str:
    return name if name.endswith((".yaml", ".yml")) else f"{name}.yaml"


def _stock_path(name: str) -> str | None:
    stock = _stock_yamls()
    file_name = _with_yaml_suffix(name)
    if file_name in stock:
        return str(stock[file_name])
    unified = unified_name(Path(file_name).stem) + ".yaml"
    if unified != file_name and unified in stock and "scales" in _read(stock[unified]):
        # Ultralytics resolves this non-existent name to the unified file and takes the scale from it
        return str(stock[unified].with_name(file_name))
    return None


def _read(path: Path) -> dict:
    with open(path) as f:
        return yaml.safe_load(f) or {}


def known_names() -> list[str]:
    """Every bundled and stock model name, with the scaled spellings, for suggestions (not the former zoo names)."""
    names = set()
    for file_name in [*zoo.names(), *_stock_yamls()]:
        stem = Path(file_name).stem
        names.add(stem)
        names.update(scaled_names(stem))
    return sorted(names)


def resolve_model(name: str) -> str:
    """An absolute path (or a stock name Ultralytics resolves offline) for ``name``; see the module docstring."""
    text = str(name).strip()
    if not text:
        raise ModelNameError("empty model name; try yolo11n, yolov8n.yaml or yolo11n-mlla-psa")
    path = Path(text).expanduser()
    if path.is_file():
        return str(path.resolve())
    if path.suffix == ".pt" and len(path.parts) == 1 and path.stem in known_names():
        # an official weight name (yolo11n.pt): Ultralytics would download it
        raise ModelNameError(
            f"{text} is not a local file, and yoloattn never downloads weights; "
            f"train from scratch with {path.stem}.yaml or give the path to a .pt checkpoint"
        )
    if path.suffix == ".pt" or len(path.parts) > 1 or path.suffix not in ("", ".yaml", ".yml"):
        raise ModelNameError(f"file not found: {text} (looked for {path.absolute()})")
    if zoo.is_bundled(text):
        return zoo.path(text)
    stock = _stock_path(text)
    if stock:
        return stock
    close = difflib.get_close_matches(Path(text).stem, known_names(), n=4, cutoff=0.6)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    raise ModelNameError(
        f"unknown model {text!r}.{hint} Use a zoo name (`yoloattn zoo`), an Ultralytics YAML name "
        "such as yolo11n or yolov8s.yaml, or a path to a .yaml/.pt file"
    )


def load_model_dict(name: str) -> tuple[dict, str, str]:
    """(model dict, scale letter, display stem) of a YAML model name or path, for ``make_variant``.

    The display stem keeps the scale letter (``yolo11n``) so derived names keep Ultralytics' naming.
    """
    resolved = Path(resolve_model(name))
    if resolved.suffix not in (".yaml", ".yml"):
        raise ModelNameError(f"{name}: a model definition (.yaml) is needed here, got {resolved.name}")
    d = _read(model_file(resolved))
    if not isinstance(d, dict) or "backbone" not in d or "head" not in d:
        raise ModelNameError(f"{resolved}: not an Ultralytics model YAML (needs 'backbone' and 'head')")
    return d, scale_of(resolved), resolved.stem


def model_file(resolved: str | Path) -> Path:
    """The file behind a resolved name: scaled names (``.../yolov8n.yaml``) live in the unified file."""
    path = Path(resolved)
    return path if path.is_file() else path.with_name(unified_name(path.stem) + path.suffix)


def default_placement(d: dict) -> str:
    """The compare default: the base's own attention block where it has one (``zoo.variants.default_rule``)."""
    from ..zoo.variants import default_rule

    return default_rule(d)


def imgsz_error(imgsz: int, stride: int) -> str | None:
    """None when ``imgsz`` is a positive multiple of ``stride``, else the one-line reason and the fix."""
    if imgsz >= stride and imgsz % stride == 0:
        return None
    below, above = (imgsz // stride) * stride, -(-imgsz // stride) * stride
    options = " or ".join(str(v) for v in dict.fromkeys((below, above)) if v >= stride)
    return f"{imgsz} is not a multiple of the model's largest stride {stride}; use {options}"
