"""Knobs of the "digits in clutter" generator and the named presets built from them.

Every knob lives in one frozen dataclass, :class:`DatasetConfig`, so a preset is just a set of
defaults and a caller can override any field by keyword (``generate("demo", n_train=400,
imgsz=128)``). The presets follow the calibration in ``/work/shared/reference/datasets.md``:

========  =======  ==========  ================  ========  ============  =========================
preset    classes  imgsz (px)  train/val/test    objects   glyph height  clutter (scribbles, p_occ)
========  =======  ==========  ================  ========  ============  =========================
tiny      0-4      64-96       16 / 8 / 8        1-3       12-32         <=1, 0.10
demo      0-4      160         1000 / 200 / 200  3-6       18-64         <=2, 0.10
bench     0-9      160         2000 / 400 / 400  3-6       18-64         <=3, 0.15
========  =======  ==========  ================  ========  ============  =========================

``tiny`` draws the width and the height of every image independently in 64-96, so the pipeline
is exercised on non-square images.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


def _as_range(value: Any, name: str, cast: type) -> tuple:
    """Normalise a scalar or a (low, high) pair into a (low, high) tuple of ``cast``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        low = high = cast(value)
    else:
        try:
            low, high = (cast(v) for v in value)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be a number or a (low, high) pair, got {value!r}") from None
    if low > high:
        raise ValueError(f"{name} must satisfy low <= high, got ({low}, {high}); swap the two values")
    return low, high


@dataclass(frozen=True)
class DatasetConfig:
    """All knobs of the generator; see ``docs/dataset.md`` for what each one does to an image.

    Ranges are inclusive ``(low, high)`` pairs; a scalar is accepted for ``imgsz``,
    ``objects`` and ``glyph_height`` and means ``(value, value)``.
    """

    classes: tuple[int, ...] = (0, 1, 2, 3, 4)  # digits used; class id i is digit classes[i]
    imgsz: tuple[int, int] = (160, 160)  # width and height are each drawn from this range
    n_train: int = 1000
    n_val: int = 200
    n_test: int = 200
    objects: tuple[int, int] = (3, 6)  # labelled digits per image (fewer if placement fails)
    glyph_height: tuple[float, float] = (18.0, 64.0)  # px, log-uniform
    max_scribbles: int = 2  # unlabelled distractor scribbles per image: uniform in 0..max
    p_occlude: float = 0.10  # chance that a bar covers 15-35 % of one side of a digit
    min_contrast: float = 0.2  # |luminance(glyph) - luminance(local background)| / 255
    max_iou: float = 0.2  # between two labelled digits
    p_blur: float = 0.3
    blur_sigma: tuple[float, float] = (0.5, 1.2)
    max_noise_sigma: float = 8.0  # per-image Gaussian noise sigma is uniform in [0, max]
    image_format: str = "png"  # "png" (bit-exact) or "jpg" (quality 92, about 5x smaller)
    names: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen dataclass: normalise fields once, here
        try:
            classes = tuple(int(c) for c in self.classes)
        except (TypeError, ValueError):
            raise ValueError(f"classes must be an iterable of digits 0-9, got {self.classes!r}") from None
        if not classes or len(set(classes)) != len(classes) or not all(0 <= c <= 9 for c in classes):
            raise ValueError(f"classes must be distinct digits in 0-9, e.g. (0, 1, 2, 3, 4); got {classes}")
        set_(self, "classes", classes)
        set_(self, "names", tuple(str(c) for c in classes))
        set_(self, "imgsz", _as_range(self.imgsz, "imgsz", int))
        set_(self, "objects", _as_range(self.objects, "objects", int))
        set_(self, "glyph_height", _as_range(self.glyph_height, "glyph_height", float))
        set_(self, "blur_sigma", _as_range(self.blur_sigma, "blur_sigma", float))
        for name in ("n_train", "n_val", "n_test", "max_scribbles"):
            set_(self, name, int(getattr(self, name)))
        for name in ("p_occlude", "min_contrast", "max_iou", "p_blur", "max_noise_sigma"):
            set_(self, name, float(getattr(self, name)))

        if self.imgsz[0] < 32:
            raise ValueError(f"imgsz must be >= 32 px, got {self.imgsz}")
        if min(self.n_train, self.n_val, self.n_test) < 1:
            raise ValueError(
                f"n_train, n_val and n_test must each be >= 1, got {self.n_train}/{self.n_val}/{self.n_test}"
            )
        if self.objects[0] < 1:
            raise ValueError(f"objects must be >= 1 so every image has a label, got {self.objects}")
        if self.glyph_height[0] < 8 or self.glyph_height[1] > self.imgsz[0] / 2:
            raise ValueError(
                f"glyph_height must lie in [8, imgsz_min / 2] = [8, {self.imgsz[0] / 2:g}] px so digits "
                f"stay readable and fit the image, got {self.glyph_height}"
            )
        if self.max_scribbles < 0:
            raise ValueError(f"max_scribbles must be >= 0, got {self.max_scribbles}")
        for name in ("p_occlude", "min_contrast", "max_iou", "p_blur"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)}")
        if self.max_noise_sigma < 0 or self.blur_sigma[0] <= 0:
            raise ValueError(
                f"max_noise_sigma must be >= 0 and blur_sigma > 0, got {self.max_noise_sigma}, {self.blur_sigma}"
            )
        if self.image_format not in ("png", "jpg"):
            raise ValueError(f"image_format must be 'png' or 'jpg', got {self.image_format!r}")

    @property
    def split_sizes(self) -> dict[str, int]:
        return {"train": self.n_train, "val": self.n_val, "test": self.n_test}

    def to_dict(self) -> dict[str, Any]:
        """The knobs as JSON-ready values (tuples become lists); ``names`` is derived, so omitted."""
        return {f.name: _jsonable(getattr(self, f.name)) for f in dataclasses.fields(self) if f.init}


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(
        classes=(0, 1, 2, 3, 4),
        imgsz=(64, 96),
        n_train=16,
        n_val=8,
        n_test=8,
        objects=(1, 3),
        glyph_height=(12, 32),
        max_scribbles=1,
    ),
    "demo": dict(
        classes=(0, 1, 2, 3, 4),
        imgsz=160,
        n_train=1000,
        n_val=200,
        n_test=200,
        objects=(3, 6),
        glyph_height=(18, 64),
        max_scribbles=2,
    ),
    "bench": dict(
        classes=tuple(range(10)),
        imgsz=160,
        n_train=2000,
        n_val=400,
        n_test=400,
        objects=(3, 6),
        glyph_height=(18, 64),
        max_scribbles=3,
        p_occlude=0.15,
    ),
}


def resolve_config(preset: str, **overrides: Any) -> DatasetConfig:
    """The preset's :class:`DatasetConfig` with ``overrides`` applied.

    Raises:
        ValueError: for an unknown preset (listing the presets) or an unknown override key
            (listing the valid keys), or for an invalid value.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown dataset preset {preset!r}; choose one of {sorted(PRESETS)}")
    valid = [f.name for f in dataclasses.fields(DatasetConfig) if f.init]
    unknown = sorted(set(overrides) - set(valid))
    if unknown:
        raise ValueError(f"unknown dataset option(s) {unknown}; valid options are {valid}")
    return DatasetConfig(**{**PRESETS[preset], **overrides})
