"""Deterministic "digits in clutter" generator writing an Ultralytics YOLO detection dataset.

Each image k of split s (split ids train 0, val 1, test 2) is drawn from its own random streams,
``SeedSequence([seed, s, k]).spawn(2)``, so an image never depends on the others, on worker
order or on the split sizes, and no global RNG is touched. The first stream ("layout") draws
everything that decides the labels: image size, digit classes and glyphs, glyph geometry,
positions, scribble and occluder geometry. The second ("paint") draws everything that only
changes pixels: background crop and photometric jitter, colours, blur and noise. Colour picking
rejects colours by looking at the background, so it draws a pixel-dependent number of values;
keeping it off the layout stream makes the label files (and their manifest hashes) independent
of how a given libpng/libjpeg decodes the background photos.

Per image (sizes in pixels, images (H, W, 3) uint8 BGR, glyphs (28, 28) uint8):

1. background: a random crop of 35-100 % of a source photo's short side (aspect W/H), resized
   to W x H, flipped with p=0.5, then ``x * gain * gain_c + bias`` with gain ~ U(0.6, 1.3),
   gain_c ~ U(0.8, 1.2) per channel and bias ~ U(-40, 40);
2. 1..N digits: glyph tight-cropped at grey level 40, height h ~ log-U(h_min, h_max), then the
   affine ``R(theta) @ [[1, k], [0, 1]] @ diag(h s_x / h_0, h / h_0)`` with s_x ~ U(0.8, 1.2),
   shear k ~ U(-0.2, 0.2), theta ~ U(-20, 20) deg; a 2x2 dilate or erode (stroke width +-1 px)
   for h > 20; opacity ~ U(0.75, 1) and, with p=0.5, a 3x3 Gaussian on the alpha. Label box =
   tight box of alpha > 0.3. Positions are rejection-sampled (60 tries) with IoU <= max_iou
   against the digits already placed and, so that no digit hides inside a larger one's box, at
   most half of the smaller box covered;
3. 0..max_scribbles unlabelled distractors: 3-6 chained quadratic Bezier strokes at MNIST-like
   stroke width, IoU <= 0.05 against every digit box;
4. colours: a random RGB whose luminance (0.299 R + 0.587 G + 0.114 B) differs from the mean
   luminance under the object by >= min_contrast * 255 (20 tries, then black or white);
5. with p=p_occlude per digit, an opaque bar covers 15-35 % of one side of its box (the label
   keeps the full box; at least 65 % of the digit stays visible);
6. Gaussian blur sigma ~ U(blur_sigma) with p=p_blur, then Gaussian noise sigma ~ U(0, max).

Images are written as PNG by default: lossless, so the pixels the model trains on are exactly
the ones that were hashed, whatever libjpeg the reader has; JPEG (quality 92) is available via
``image_format="jpg"`` for about 5x less disk (noise makes PNG large: ~54 KB per 160 px image).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml

from .presets import DatasetConfig, resolve_config
from .sources import (
    INK_THRESHOLD,
    SPLITS,
    BackgroundImage,
    GlyphSet,
    cache_root,
    load_backgrounds,
    load_glyphs,
    split_identities,
)

GENERATOR_VERSION = "1.0"
LOGGER = logging.getLogger(__name__)

PLACEMENT_TRIES = 60
COLOUR_TRIES = 20
SCRIBBLE_MAX_IOU = 0.05
MAX_COVER = 0.5  # a digit box may overlap at most half of a smaller digit box, whatever the IoU
ALPHA_BOX_THRESHOLD = 0.3
PATCH_MARGIN = 3  # px of empty border around a warped glyph, room for dilation and alpha blur
JPEG_QUALITY = 92
BGR_LUMA = np.array([0.114, 0.587, 0.299], np.float32)


@dataclass(frozen=True)
class Patch:
    """An alpha mask to paste into an image; ``box`` is its labelled extent in patch pixels."""

    alpha: np.ndarray  # (h, w) float32 in [0, 1]
    box: tuple[int, int, int, int]  # x1, y1, x2, y2 (x2, y2 exclusive)

    def box_at(self, x: int, y: int) -> tuple[int, int, int, int]:
        return (x + self.box[0], y + self.box[1], x + self.box[2], y + self.box[3])


@dataclass(frozen=True)
class Digit:
    class_id: int
    glyph_index: int
    patch: Patch
    origin: tuple[int, int]
    box: tuple[int, int, int, int]  # in image pixels, x2/y2 exclusive


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def _alpha_box(alpha: np.ndarray) -> tuple[int, int, int, int] | None:
    ys, xs = np.nonzero(alpha > ALPHA_BOX_THRESHOLD)
    if ys.size == 0:
        return None
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def _overlap(box: tuple[int, int, int, int], others: list[tuple[int, int, int, int]]) -> tuple[float, float]:
    """Largest IoU and largest intersection / smaller-box area between ``box`` and ``others``."""
    if not others:
        return 0.0, 0.0
    b = np.asarray(others, np.float64)
    iw = np.clip(np.minimum(box[2], b[:, 2]) - np.maximum(box[0], b[:, 0]), 0, None)
    ih = np.clip(np.minimum(box[3], b[:, 3]) - np.maximum(box[1], b[:, 1]), 0, None)
    inter = iw * ih
    area = (box[2] - box[0]) * (box[3] - box[1])
    other_area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return float((inter / (area + other_area - inter)).max()), float((inter / np.minimum(area, other_area)).max())


def _glyph_patch(glyph: np.ndarray, layout: np.random.Generator, config: DatasetConfig, max_side: int) -> Patch | None:
    """Warp one (28, 28) glyph into an alpha patch no larger than ``max_side`` on either axis."""
    height = _log_uniform(layout, *config.glyph_height)
    x_scale = layout.uniform(0.8, 1.2)
    shear = layout.uniform(-0.2, 0.2)
    angle = np.deg2rad(layout.uniform(-20.0, 20.0))
    stroke_change = int(layout.integers(-1, 2))
    opacity = layout.uniform(0.75, 1.0)
    soften = layout.random() < 0.5

    ys, xs = np.nonzero(glyph > INK_THRESHOLD)
    ink = np.pad(glyph[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1], 1)  # 0-border: edges fade out
    ink_h, ink_w = ink.shape[0] - 2, ink.shape[1] - 2
    cos, sin = np.cos(angle), np.sin(angle)
    linear = np.array([[cos, -sin], [sin, cos]]) @ np.array([[1.0, shear], [0.0, 1.0]])
    linear = linear @ np.diag([height * x_scale / ink_h, height / ink_h])
    half = np.array([[-ink_w, -ink_h], [ink_w, -ink_h], [-ink_w, ink_h], [ink_w, ink_h]]) / 2
    extent = np.ptp(half @ linear.T, axis=0)  # warped ink (w, h)
    fit = min(1.0, (max_side - 2 * PATCH_MARGIN) / extent.max())  # only small images shrink glyphs
    linear *= fit
    out_w, out_h = (int(np.ceil(e * fit)) + 2 * PATCH_MARGIN for e in extent)
    src_centre = np.array([(ink.shape[1] - 1) / 2, (ink.shape[0] - 1) / 2])
    dst_centre = np.array([(out_w - 1) / 2, (out_h - 1) / 2])
    matrix = np.hstack([linear, (dst_centre - linear @ src_centre)[:, None]])
    warped = cv2.warpAffine(ink, matrix, (out_w, out_h), flags=cv2.INTER_LINEAR, borderValue=0)

    if height * fit > 20 and stroke_change:
        morph = cv2.dilate if stroke_change > 0 else cv2.erode
        changed = morph(warped, np.ones((2, 2), np.uint8))
        if (changed * (opacity / 255) > ALPHA_BOX_THRESHOLD).any():  # erosion may wipe thin strokes
            warped = changed
    alpha = warped.astype(np.float32) * np.float32(opacity / 255)
    if soften:
        alpha = cv2.GaussianBlur(alpha, (3, 3), 0)
    box = _alpha_box(alpha)
    return None if box is None else Patch(alpha, box)


def _scribble_patch(layout: np.random.Generator, config: DatasetConfig) -> Patch | None:
    """3-6 chained quadratic Bezier strokes in a digit-sized box, as an alpha patch."""
    height = _log_uniform(layout, *config.glyph_height)  # config keeps it <= imgsz / 2, so it fits
    width = height * layout.uniform(0.6, 1.2)
    stroke = max(1, round(height * layout.uniform(0.07, 0.12)))  # MNIST: ~2-3 px per 20 px digit
    opacity = layout.uniform(0.75, 1.0)
    margin = PATCH_MARGIN + stroke
    size = np.array([width, height])
    t = np.linspace(0.0, 1.0, 16)[:, None]
    start = layout.random(2) * size
    curves = []
    for _ in range(layout.integers(3, 7)):
        control, end = layout.random(2) * size, layout.random(2) * size
        curves.append((1 - t) ** 2 * start + 2 * (1 - t) * t * control + t**2 * end)
        start = end
    canvas = np.zeros((int(np.ceil(height)) + 2 * margin, int(np.ceil(width)) + 2 * margin), np.uint8)
    points = [np.round((curve + margin) * 4).astype(np.int32) for curve in curves]  # shift=2: 1/4 px
    cv2.polylines(canvas, points, False, 255, thickness=stroke, lineType=cv2.LINE_AA, shift=2)
    alpha = canvas.astype(np.float32) * np.float32(opacity / 255)
    box = _alpha_box(alpha)
    return None if box is None else Patch(alpha, box)


def _place(
    layout: np.random.Generator, patch: Patch, size: tuple[int, int], others: list, max_iou: float
) -> tuple[tuple[int, int], tuple[int, int, int, int]] | None:
    """Rejection-sample a top-left corner keeping the whole patch inside the (W, H) image, with
    IoU <= ``max_iou`` and at most ``MAX_COVER`` of the smaller box covered against ``others``."""
    width, height = size
    ph, pw = patch.alpha.shape
    for _ in range(PLACEMENT_TRIES):
        x, y = int(layout.integers(0, width - pw + 1)), int(layout.integers(0, height - ph + 1))
        box = patch.box_at(x, y)
        iou, cover = _overlap(box, others)
        if iou <= max_iou and cover <= MAX_COVER:
            return (x, y), box
    return None


def _occluder(layout: np.random.Generator, box: tuple[int, int, int, int], size: tuple[int, int]):
    """A bar covering 15-35 % of one side of ``box``, overhanging outwards; (x1, y1, x2, y2)."""
    x1, y1, x2, y2 = box
    side = int(layout.integers(4))  # 0 left, 1 right, 2 top, 3 bottom
    fraction = layout.uniform(0.15, 0.35)
    overhang, spill_a, spill_b = (int(v) for v in layout.integers(1, 8, size=3))
    if side < 2:
        depth = max(1, round(fraction * (x2 - x1)))
        xa, xb = (x1 - overhang, x1 + depth) if side == 0 else (x2 - depth, x2 + overhang)
        ya, yb = y1 - spill_a, y2 + spill_b
    else:
        depth = max(1, round(fraction * (y2 - y1)))
        ya, yb = (y1 - overhang, y1 + depth) if side == 2 else (y2 - depth, y2 + overhang)
        xa, xb = x1 - spill_a, x2 + spill_b
    width, height = size
    return max(0, xa), max(0, ya), min(width, xb), min(height, yb)


def _background(paint: np.random.Generator, backgrounds: list[BackgroundImage], size: tuple[int, int]) -> np.ndarray:
    """A jittered crop of a random source image, (H, W, 3) float32 in [0, 255]."""
    width, height = size
    source = backgrounds[int(paint.integers(len(backgrounds)))].image
    src_h, src_w = source.shape[:2]
    crop_h = paint.uniform(0.35, 1.0) * min(src_h, src_w)
    crop_w = crop_h * width / height
    shrink = min(1.0, src_w / crop_w, src_h / crop_h)
    crop_w, crop_h = max(8, int(crop_w * shrink)), max(8, int(crop_h * shrink))
    y0 = int(paint.integers(0, src_h - crop_h + 1))
    x0 = int(paint.integers(0, src_w - crop_w + 1))
    crop = source[y0 : y0 + crop_h, x0 : x0 + crop_w]
    interp = cv2.INTER_AREA if crop_w > width else cv2.INTER_LINEAR
    image = cv2.resize(crop, (width, height), interpolation=interp).astype(np.float32)
    if paint.random() < 0.5:
        image = image[:, ::-1]
    gain = paint.uniform(0.6, 1.3) * paint.uniform(0.8, 1.2, size=3)
    image = image * gain.astype(np.float32) + np.float32(paint.uniform(-40.0, 40.0))
    return np.ascontiguousarray(np.clip(image, 0, 255))


def _contrasting_colour(paint: np.random.Generator, canvas: np.ndarray, box, min_contrast: float) -> np.ndarray:
    x1, y1, x2, y2 = box
    local = float((canvas[y1:y2, x1:x2] @ BGR_LUMA).mean())
    for _ in range(COLOUR_TRIES):
        colour = paint.uniform(0.0, 255.0, size=3).astype(np.float32)
        if abs(float(colour @ BGR_LUMA) - local) >= min_contrast * 255:
            return colour
    return np.full(3, 0.0 if local > 127.5 else 255.0, np.float32)


def _paste(canvas: np.ndarray, patch: Patch, origin: tuple[int, int], colour: np.ndarray) -> None:
    x, y = origin
    ph, pw = patch.alpha.shape
    region = canvas[y : y + ph, x : x + pw]
    alpha = patch.alpha[..., None]
    region *= 1 - alpha
    region += alpha * colour


def render_image(
    config: DatasetConfig,
    glyphs: GlyphSet,
    pools: dict[int, np.ndarray],
    backgrounds: list[BackgroundImage],
    seed: int,
    split_id: int,
    index: int,
) -> tuple[np.ndarray, list[Digit], list[bool]]:
    """Image ``index`` of split ``split_id``: (H, W, 3) uint8 BGR, its digits, and per digit
    whether an occluding bar covers part of it. ``pools`` maps digit -> usable glyph rows."""
    layout, paint = (np.random.default_rng(s) for s in np.random.SeedSequence([seed, split_id, index]).spawn(2))
    width, height = (int(v) for v in layout.integers(config.imgsz[0], config.imgsz[1] + 1, size=2))
    size, max_side = (width, height), min(width, height)

    digits: list[Digit] = []
    for _ in range(int(layout.integers(config.objects[0], config.objects[1] + 1))):
        class_id = int(layout.integers(len(config.classes)))
        pool = pools[config.classes[class_id]]
        glyph_index = int(pool[layout.integers(pool.size)])
        patch = _glyph_patch(glyphs.images[glyph_index], layout, config, max_side)
        placed = patch and _place(layout, patch, size, [d.box for d in digits], config.max_iou)
        if placed:
            digits.append(Digit(class_id, glyph_index, patch, *placed))
    if not digits:  # the first glyph always fits an empty image, so this means a generator bug
        raise RuntimeError(f"image {index} of split {SPLITS[split_id]} got no digit (seed {seed})")

    scribbles = []
    digit_boxes = [d.box for d in digits]
    for _ in range(int(layout.integers(0, config.max_scribbles + 1))):
        patch = _scribble_patch(layout, config)
        placed = patch and _place(layout, patch, size, digit_boxes, SCRIBBLE_MAX_IOU)
        if placed:
            scribbles.append((patch, *placed))
    occluded = [layout.random() < config.p_occlude for _ in digits]
    bars = [_occluder(layout, d.box, size) for d, hit in zip(digits, occluded) if hit]

    canvas = _background(paint, backgrounds, size)
    for patch, origin, box in scribbles:
        _paste(canvas, patch, origin, _contrasting_colour(paint, canvas, box, config.min_contrast))
    for digit in digits:
        _paste(canvas, digit.patch, digit.origin, _contrasting_colour(paint, canvas, digit.box, config.min_contrast))
    for x1, y1, x2, y2 in bars:
        canvas[y1:y2, x1:x2] = paint.uniform(0.0, 255.0, size=3).astype(np.float32)
    if paint.random() < config.p_blur:
        canvas = cv2.GaussianBlur(canvas, (0, 0), paint.uniform(*config.blur_sigma))
    canvas += paint.standard_normal(canvas.shape, dtype=np.float32) * np.float32(
        paint.uniform(0.0, config.max_noise_sigma)
    )
    image = np.rint(np.clip(canvas, 0, 255)).astype(np.uint8)
    return image, digits, occluded


def _label_lines(digits: list[Digit], size: tuple[int, int]) -> str:
    width, height = size
    lines = []
    for d in digits:
        x1, y1, x2, y2 = d.box
        cx, cy = (x1 + x2) / 2 / width, (y1 + y2) / 2 / height
        lines.append(f"{d.class_id} {cx:.6f} {cy:.6f} {(x2 - x1) / width:.6f} {(y2 - y1) / height:.6f}\n")
    return "".join(lines)


def _write_split(
    root: Path, split: str, config: DatasetConfig, glyphs: GlyphSet, pools, backgrounds, seed: int
) -> dict[str, Any]:
    """Render one split into ``root`` and return its manifest entry."""
    image_dir, label_dir = root / "images" / split, root / "labels" / split
    image_dir.mkdir(parents=True)
    label_dir.mkdir(parents=True)
    (root / "meta").mkdir(exist_ok=True)
    encode = (
        [cv2.IMWRITE_PNG_COMPRESSION, 1] if config.image_format == "png" else [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
    )
    histogram = np.zeros(len(config.classes), np.int64)
    image_hash, label_hash = hashlib.sha256(), hashlib.sha256()
    meta = ["image,class_id,digit,glyph_index,x1,y1,x2,y2,occluded\n"]
    for index in range(config.split_sizes[split]):
        image, digits, occluded = render_image(config, glyphs, pools, backgrounds, seed, SPLITS.index(split), index)
        stem = f"{index:06d}"
        ok, encoded = cv2.imencode(f".{config.image_format}", image, encode)
        if not ok:
            raise RuntimeError(f"OpenCV could not encode {split}/{stem}.{config.image_format}")
        labels = _label_lines(digits, (image.shape[1], image.shape[0])).encode()
        (image_dir / f"{stem}.{config.image_format}").write_bytes(encoded.tobytes())
        (label_dir / f"{stem}.txt").write_bytes(labels)
        for digest, name, payload in (
            (image_hash, f"{stem}.{config.image_format}", encoded.tobytes()),
            (label_hash, f"{stem}.txt", labels),
        ):
            digest.update(name.encode() + b"\0" + payload)
        for d, hit in zip(digits, occluded):
            histogram[d.class_id] += 1
            meta.append(
                f"{stem},{d.class_id},{config.classes[d.class_id]},{d.glyph_index},"
                f"{','.join(map(str, d.box))},{int(hit)}\n"
            )
    (root / "meta" / f"{split}.csv").write_text("".join(meta))
    return {
        "images": config.split_sizes[split],
        "boxes": int(histogram.sum()),
        "class_histogram": {name: int(n) for name, n in zip(config.names, histogram)},
        "labels_sha256": label_hash.hexdigest(),
        "images_sha256": image_hash.hexdigest(),
    }


def _source_record(glyphs: GlyphSet, backgrounds: list[BackgroundImage], notes: list[str]) -> dict[str, Any]:
    return {
        "glyphs": glyphs.source,
        "backgrounds": [{"name": b.name, **b.source} for b in backgrounds],
        "fallbacks": notes,
        "libraries": {"numpy": np.__version__, "opencv": cv2.__version__},
    }


def _cache_key(preset: str, seed: int, config: DatasetConfig, sources: dict[str, Any]) -> str:
    """Hash of everything that decides the bytes of the dataset (not of where it is written)."""
    signature = {
        "generator_version": GENERATOR_VERSION,
        "preset": preset,
        "seed": seed,
        "config": config.to_dict(),
        "glyphs": [sources["glyphs"][k] for k in ("name", "package", "version")],
        "backgrounds": [[b["name"], b["package"], b["version"]] for b in sources["backgrounds"]],
        "libraries": sources["libraries"],
    }
    return hashlib.sha256(json.dumps(signature, sort_keys=True).encode()).hexdigest()


def _read_manifest(root: Path) -> dict[str, Any] | None:
    try:
        return json.loads((root / "manifest.json").read_text())
    except (OSError, ValueError):
        return None


def _is_reusable(root: Path, key: str) -> bool:
    """A finished dataset made from the same key whose data.yaml still points at ``root``."""
    manifest = _read_manifest(root)
    if manifest is None or manifest.get("cache_key") != key:
        return False
    try:
        data = yaml.safe_load((root / "data.yaml").read_text())
    except (OSError, yaml.YAMLError):
        return False
    return isinstance(data, dict) and data.get("path") == str(root)


def _write_dataset(
    tmp: Path, final: Path, preset: str, seed: int, config: DatasetConfig, glyphs, backgrounds, sources, key: str
) -> None:
    pools = split_identities(glyphs.labels)
    splits = {split: _write_split(tmp, split, config, glyphs, pools[split], backgrounds, seed) for split in SPLITS}
    data = {
        "path": str(final),
        "train": "images/train",
        "val": "images/val",
        "test": "images/test",
        "names": dict(enumerate(config.names)),
    }
    header = f"# digits-in-clutter, generated by yoloattn.data {GENERATOR_VERSION} (preset {preset}, seed {seed})\n"
    (tmp / "data.yaml").write_text(header + yaml.safe_dump(data, sort_keys=False))
    manifest = {
        "generator": "yoloattn.data",
        "generator_version": GENERATOR_VERSION,
        "cache_key": key,
        "preset": preset,
        "seed": seed,
        "config": config.to_dict(),
        "names": list(config.names),
        "sources": sources,
        "glyph_split": {
            "rule": "index within class: first 70 % train, next 15 % val, last 15 % test",
            **{split: int(sum(p.size for d, p in pools[split].items() if d in config.classes)) for split in SPLITS},
        },
        "splits": splits,
    }
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")  # written last


def _install(tmp: Path, final: Path, key: str) -> None:
    """Move the finished ``tmp`` to ``final`` with renames, so ``final`` is never half-written."""
    if not final.exists():
        os.rename(tmp, final)
        return
    if _is_reusable(final, key):  # a concurrent call finished the same dataset first
        return
    retired = final.with_name(f".{final.name}.old-{uuid.uuid4().hex[:8]}")
    os.rename(final, retired)
    os.rename(tmp, final)
    shutil.rmtree(retired, ignore_errors=True)


def generate(preset: str = "demo", out: str | os.PathLike | None = None, seed: int = 0, **overrides: Any) -> Path:
    """Generate (or reuse) the "digits in clutter" YOLO dataset and return its ``data.yaml``.

    Args:
        preset: "tiny" (unit tests), "demo" (5 classes, the default comparison set) or "bench".
        out: output folder. None: a cache folder under ``$YOLOATTN_CACHE`` (default
            ``$XDG_CACHE_HOME/yoloattn``, i.e. ``~/.cache/yoloattn``) named after preset, seed and a
            hash of every knob.
        seed: non-negative integer; the same seed and knobs give byte-identical files.
        **overrides: any :class:`DatasetConfig` field, e.g. ``n_train=400, imgsz=128``.

    A finished dataset with a matching manifest is reused without regenerating. Generation
    writes into a hidden sibling folder that is renamed into place at the end, so an
    interrupted run never leaves a dataset that looks complete.

    Raises:
        ValueError: unknown preset, unknown override key, invalid value or negative seed.
        FileExistsError: ``out`` is a non-empty folder that this generator did not write.
    """
    config = resolve_config(preset, **overrides)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    seed = int(seed)
    cache = cache_root()
    glyphs, glyph_notes = load_glyphs(cache)
    backgrounds, background_notes = load_backgrounds()
    sources = _source_record(glyphs, backgrounds, glyph_notes + background_notes)
    key = _cache_key(preset, seed, config, sources)
    final = (
        Path(out).expanduser().resolve()
        if out is not None
        else (cache / "datasets" / f"{preset}-seed{seed}-{key[:12]}").resolve()
    )
    if _is_reusable(final, key):
        LOGGER.info("reusing dataset %s", final)
        return final / "data.yaml"
    if final.exists() and (not final.is_dir() or any(final.iterdir())):
        manifest = _read_manifest(final)
        if manifest is None or manifest.get("generator") != "yoloattn.data":
            raise FileExistsError(
                f"{final} is not empty and was not written by yoloattn.data; pass an empty or new folder as out"
            )

    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    started = time.perf_counter()
    try:
        _write_dataset(tmp, final, preset, seed, config, glyphs, backgrounds, sources, key)
        _install(tmp, final, key)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    LOGGER.info("generated %s in %.1f s", final, time.perf_counter() - started)
    return final / "data.yaml"
