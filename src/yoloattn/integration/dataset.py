"""Adapter over Ultralytics' own per-image dataset verification, so yoloattn's check and Ultralytics agree.

Ultralytics' ``YOLODataset`` lists a split's images (``BaseDataset.get_img_files``), derives each label
path with ``img2label_paths`` and runs ``verify_image_label`` on every (image, label) pair in a thread
pool; an image whose check raises is dropped from training with an "ignoring corrupt image/label"
log line, and duplicate label rows are removed. :func:`verify_images` runs exactly that verifier
on the same pairs, the same way, and returns one :class:`Verdict` per image, so the set of images
yoloattn reports as skipped is Ultralytics' own set by construction.

Two differences from a real scan, both deliberate: nothing is written next to the data (Ultralytics
repairs a JPEG with a missing end marker in place; here the repair runs into a scratch file and is
recorded, and no ``labels.cache`` is saved) and nothing is logged.

Everything else in yoloattn goes through this module for dataset internals of Ultralytics.
"""

from __future__ import annotations

import contextlib
import glob
import os
import tempfile
import threading
from dataclasses import dataclass
from multiprocessing.pool import ThreadPool
from pathlib import Path

import numpy as np

_PATCH_LOCK = threading.Lock()


@dataclass(frozen=True)
class Verdict:
    """What Ultralytics does with one image of a detection dataset.

    ``kept`` is False when Ultralytics drops the image ("ignoring corrupt image/label"); ``reason`` is
    then its exception text. ``boxes`` is the (N, 5) float32 array ``[class, x, y, w, h]`` (normalised
    to the image size) that Ultralytics trains on, after its duplicate-row removal; None when dropped.
    ``duplicates`` counts removed duplicate rows; ``jpeg_rewritten`` is True when Ultralytics would
    rewrite a truncated JPEG in place. ``label_missing`` / ``label_empty``: the image is a background.
    """

    image: str
    label: str
    kept: bool
    reason: str = ""
    boxes: np.ndarray | None = None
    duplicates: int = 0
    jpeg_rewritten: bool = False
    label_missing: bool = False
    label_empty: bool = False


def image_formats() -> frozenset[str]:
    """Ultralytics' image file suffixes (lower case, without the dot); other files are silently ignored."""
    from ultralytics.data.utils import IMG_FORMATS

    return frozenset(IMG_FORMATS)


def is_image_name(name: str) -> bool:
    """True when Ultralytics keeps ``name`` as an image: its text after the last dot is an image format."""
    return name.rpartition(".")[-1].lower() in image_formats()


def folder_images(folder: str | os.PathLike) -> list[str]:
    """The images Ultralytics loads from an image folder, as sorted path strings.

    Mirrors ``BaseDataset.get_img_files`` for a folder: a recursive glob of ``*.*`` (so hidden files and
    files without a suffix are left out) filtered by :func:`image_formats`.
    """
    pattern = str(Path(glob.escape(str(folder))) / "**" / "*.*")
    return sorted(p for p in glob.glob(pattern, recursive=True) if is_image_name(p))


def label_paths(images: list[str]) -> list[str]:
    """Ultralytics' label file for each image (last ``/images/`` -> ``/labels/``, suffix -> ``.txt``)."""
    from ultralytics.data.utils import img2label_paths

    return img2label_paths(images)


def datasets_dir() -> Path:
    """Ultralytics' ``datasets_dir`` setting, where it looks for a relative dataset root last."""
    from ultralytics.utils import DATASETS_DIR

    return Path(DATASETS_DIR)


def _repair_elsewhere(im_file, write) -> None:
    """Stand-in for Ultralytics' in-place image repair: run the same repair into a throwaway file.

    A repair that fails still fails (so the image is dropped, as in a real scan); the user's file is
    never written.
    """
    with tempfile.TemporaryDirectory(prefix="yoloattn-check-") as scratch:
        write(Path(scratch) / f"repaired{Path(im_file).suffix}")


@contextlib.contextmanager
def _no_image_rewrites():
    """Make Ultralytics' image checks read-only: a JPEG repair is reported by its message but not written."""
    from ultralytics.data import utils

    original = getattr(utils, "_replace_image", None)
    if original is None:  # an Ultralytics version without in-place repair: nothing to suppress
        yield
        return
    with _PATCH_LOCK:
        utils._replace_image = _repair_elsewhere
        try:
            yield
        finally:
            utils._replace_image = original


def _threads() -> int:
    from ultralytics.utils import NUM_THREADS

    return max(1, int(NUM_THREADS))


def _to_verdict(image: str, label: str, result) -> Verdict:
    _, lb, _, _, _, missing, _, empty, corrupt, msg = result
    if corrupt:
        reason = msg.split("ignoring corrupt image/label:", 1)[-1].strip() if msg else "corrupt image/label"
        return Verdict(image, label, kept=False, reason=reason, label_missing=bool(missing))
    duplicates = 0
    if msg and "duplicate labels removed" in msg:
        with contextlib.suppress(ValueError, IndexError):
            duplicates = int(msg.rsplit(": ", 1)[-1].split()[0])
    return Verdict(image, label, kept=True, boxes=np.asarray(lb, dtype=np.float32).reshape(-1, 5),
                   duplicates=duplicates, jpeg_rewritten=bool(msg and "corrupt JPEG restored" in msg),
                   label_missing=bool(missing), label_empty=bool(empty))


def verify_images(images: list[str], num_classes: int, single_cls: bool = False,
                  threads: int | None = None) -> list[Verdict]:
    """Run Ultralytics' ``verify_image_label`` on every image of a detection split, in a thread pool.

    Args:
        images: image paths exactly as Ultralytics will receive them (absolute strings).
        num_classes: the dataset's class count (``len(names)``); ids must be in ``0..num_classes-1``.
        single_cls: Ultralytics' ``single_cls`` training argument (skips the class-range check).
        threads: pool size; default Ultralytics' ``NUM_THREADS``.

    Returns:
        One :class:`Verdict` per image, in the order of ``images``. Never raises for a bad image:
        a failure is a verdict with ``kept=False``. Reads the files; writes nothing.
    """
    from ultralytics.data.utils import verify_image_label

    labels = label_paths(images)
    # (im_file, lb_file, prefix, keypoint, num_cls, nkpt, ndim, single_cls): a detection task's arguments
    jobs = [(im, lb, "", False, num_classes, 0, 0, single_cls) for im, lb in zip(images, labels)]
    if not jobs:
        return []
    with _no_image_rewrites(), ThreadPool(min(threads or _threads(), len(jobs))) as pool:
        results = pool.map(verify_image_label, jobs)
    return [_to_verdict(im, lb, r) for im, lb, r in zip(images, labels, results)]


def image_error(image: str) -> str | None:
    """Ultralytics' complaint about the image file alone (unreadable, too small, bad format), else None."""
    from ultralytics.data.utils import check_image

    try:
        with _no_image_rewrites():
            check_image(image)
    except Exception as err:  # any failure here is what makes Ultralytics drop the image
        return str(err) or type(err).__name__
    return None
