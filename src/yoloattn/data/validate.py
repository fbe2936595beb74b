"""Fail-fast checks of a user's Ultralytics YOLO detection dataset before a long comparison run.

:func:`check_yolo_dataset` reads ``data.yaml`` the way Ultralytics does (``path`` root, ``train``
/ ``val`` / optional ``test`` entries that are image folders, image files or ``.txt`` lists,
``names`` as a list or a dict, labels found by replacing the last ``/images/`` of an image path
with ``/labels/`` and its extension with ``.txt``) and raises :class:`DatasetError` with one
line naming the file and the problem. A label row is ``class x_center y_center width height``
(or ``class x1 y1 x2 y2 ...`` polygon), normalised to [0, 1] with Ultralytics' 0.01 tolerance.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import yaml

# Ultralytics' IMG_FORMATS (ultralytics.data.utils), repeated to avoid importing Ultralytics here.
IMAGE_SUFFIXES = {
    ".avif",
    ".bmp",
    ".dng",
    ".heic",
    ".heif",
    ".jp2",
    ".jpeg",
    ".jpg",
    ".mpo",
    ".png",
    ".tif",
    ".tiff",
    ".webp",
}
COORD_TOLERANCE = 0.01  # Ultralytics accepts coordinates in [-0.01, 1.01] and clips them


class DatasetError(ValueError):
    """A YOLO dataset that Ultralytics would reject or silently train wrongly on."""


def _class_count(data: dict, yaml_path: Path) -> int:
    names = data.get("names")
    if isinstance(names, (list, dict)) and names:
        return len(names)
    if isinstance(data.get("nc"), int) and data["nc"] > 0:
        return data["nc"]
    raise DatasetError(f'{yaml_path}: no class names; add e.g. "names: {{0: cat, 1: dog}}"')


def _dataset_root(data: dict, yaml_path: Path) -> Path:
    if not data.get("path"):
        return yaml_path.parent
    root = Path(str(data["path"])).expanduser()
    # a relative root is tried against the working directory first, as Ultralytics does
    candidates = [root] if root.is_absolute() else [Path.cwd() / root, yaml_path.parent / root]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    raise DatasetError(f"{yaml_path}: dataset root 'path: {data['path']}' not found; give an absolute path")


def _split_images(root: Path, entry: str, split: str, yaml_path: Path) -> list[Path]:
    target = root / str(entry)
    if target.is_dir():
        images = sorted(p for p in target.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise DatasetError(f"{yaml_path}: image folder for '{split}' has no images: {target}")
        return images
    if target.is_file() and target.suffix.lower() in IMAGE_SUFFIXES:
        return [target]
    if target.is_file() and target.suffix == ".txt":
        lines = [line.strip() for line in target.read_text().splitlines() if line.strip()]
        images = [Path(line) if Path(line).is_absolute() else target.parent / line for line in lines]
        if not images:
            raise DatasetError(f"{yaml_path}: image list for '{split}' is empty: {target}")
        return images
    raise DatasetError(f"{yaml_path}: image folder for '{split}' not found: {target}")


def _label_path(image: Path) -> Path:
    images_dir, labels_dir = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    return Path(labels_dir.join(os.fspath(image).rsplit(images_dir, 1))).with_suffix(".txt")


def _check_label_file(label_file: Path, num_classes: int) -> None:
    for number, line in enumerate(label_file.read_text().splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        where = f"{label_file}:{number}"
        if len(fields) != 5 and (len(fields) < 7 or len(fields) % 2 == 0):
            raise DatasetError(
                f"{where}: {len(fields)} columns; expected 5 ('class x_center y_center width height') "
                "or an odd count >= 7 (class + polygon x y pairs)"
            )
        try:
            values = [float(v) for v in fields]
        except ValueError:
            raise DatasetError(f"{where}: non-numeric value in {line.strip()!r}") from None
        class_id = values[0]
        if not (math.isfinite(class_id) and class_id == int(class_id) and 0 <= class_id < num_classes):
            raise DatasetError(
                f"{where}: class id {fields[0]} out of range; "
                f"data.yaml names {num_classes} classes (ids 0..{num_classes - 1})"
            )
        coords = values[1:]
        if not all(math.isfinite(c) and -COORD_TOLERANCE <= c <= 1 + COORD_TOLERANCE for c in coords):
            raise DatasetError(
                f"{where}: coordinates {fields[1:]} outside [0, 1]; labels must be normalised by image size"
            )


def check_yolo_dataset(data_yaml: str | os.PathLike) -> None:
    """Raise :class:`DatasetError` (a ``ValueError``) with a one-line reason if the detection
    dataset described by ``data_yaml`` is unusable; return None if every check passes.

    Checks: the YAML exists and is a mapping with ``train``, ``val`` and class names; every
    split's images exist; each split has a non-empty label folder; every label row has the
    right column count, an integer class id in range and coordinates in [0, 1].
    """
    yaml_path = Path(data_yaml)
    if not yaml_path.is_file():
        raise DatasetError(f"data.yaml not found: {yaml_path}")
    try:
        data = yaml.safe_load(yaml_path.read_text())
    except yaml.YAMLError as err:
        reason = str(err).splitlines()[0]
        raise DatasetError(f"{yaml_path}: not valid YAML ({reason})") from None
    if not isinstance(data, dict):
        raise DatasetError(f"{yaml_path}: expected a mapping with 'train', 'val' and 'names' keys")
    missing = [key for key in ("train", "val") if not data.get(key)]
    if missing:
        raise DatasetError(f"{yaml_path}: missing {' and '.join(missing)} entry; add e.g. 'val: images/val'")
    num_classes = _class_count(data, yaml_path)
    root = _dataset_root(data, yaml_path)

    for split in ("train", "val", "test"):
        entries = data.get(split) or []
        for entry in entries if isinstance(entries, list) else [entries]:
            images = _split_images(root, entry, split, yaml_path)
            label_files = [_label_path(image) for image in images]
            label_dirs = sorted({f.parent for f in label_files})
            if not any(d.is_dir() for d in label_dirs):
                raise DatasetError(f"{yaml_path}: label folder for '{split}' not found: {label_dirs[0]}")
            present = [f for f in label_files if f.is_file()]
            if not present:
                raise DatasetError(f"{yaml_path}: label folder for '{split}' is empty: {label_dirs[0]}")
            for label_file in present:
                _check_label_file(label_file, num_classes)
