"""Fail-fast checks of a user's Ultralytics YOLO detection dataset before a long training or comparison run.

:func:`check_yolo_dataset` resolves ``data.yaml`` to absolute paths (``resolve.py``), checks its
structure with one-line :class:`DatasetError` messages (missing keys, folders, empty label folders)
and then runs Ultralytics' own per-image verifier (``yoloattn.integration.dataset``) on every image
of the splits a command uses. The :class:`DatasetReport` lists every image Ultralytics would skip
("ignoring corrupt image/label": mixed box and polygon rows, class ids out of range, wrong column
counts, non-normalised coordinates, unreadable or missing images, list lines that are not images)
or alter (duplicate rows removed, zero-area boxes dropped, JPEGs without end marker rewritten), so the check
and Ultralytics agree by construction; yoloattn only words the reasons more precisely (file and
line) where it can. Skipped images are refused unless ``allow_skipped``; altered ones are reported.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .errors import DatasetError

COORD_TOLERANCE = 0.01  # Ultralytics accepts coordinates in [-0.01, 1.01]
DEFAULT_FIX = "fix those files, or pass --allow-skipped to go on without them"
EXAMPLES_IN_LINE = 1  # example files named in a one-line message (the listing file has all of them)


@dataclass(frozen=True)
class ImageIssue:
    """One image that Ultralytics skips or alters: ``kind`` groups issues for counts, ``detail`` is one line."""

    split: str
    image: str
    kind: str
    detail: str


@dataclass
class SplitReport:
    """Outcome of one split: ``images`` Ultralytics would list, ``skipped`` / ``altered`` issues, backgrounds."""

    split: str
    images: int = 0
    skipped: list[ImageIssue] = field(default_factory=list)
    altered: list[ImageIssue] = field(default_factory=list)
    backgrounds: int = 0

    @property
    def kept(self) -> int:
        return self.images - len(self.skipped)


@dataclass
class DatasetReport:
    """What Ultralytics will do with a dataset: per-split counts, and every skipped or altered image.

    ``resolved_yaml`` is the absolute-path data.yaml to hand to Ultralytics; ``listing`` the text file
    naming every issue (None when there is none).
    """

    data_yaml: Path
    resolved_yaml: Path
    nc: int
    splits: dict[str, SplitReport] = field(default_factory=dict)
    listing: Path | None = None

    @property
    def skipped(self) -> list[ImageIssue]:
        return [issue for s in self.splits.values() for issue in s.skipped]

    @property
    def altered(self) -> list[ImageIssue]:
        return [issue for s in self.splits.values() for issue in s.altered]

    @property
    def images(self) -> int:
        return sum(s.images for s in self.splits.values())

    def skipped_by_split(self) -> dict[str, int]:
        """{split: number of images Ultralytics skips}, for every checked split (zeros included)."""
        return {name: len(s.skipped) for name, s in self.splits.items()}

    def summary(self) -> str:
        """E.g. ``train 2 of 16 skipped, val 0 of 8 skipped``."""
        return ", ".join(f"{n} {len(s.skipped)} of {s.images} skipped" for n, s in self.splits.items())

    def _describe(self, issues: list[ImageIssue]) -> str:
        kinds = Counter(issue.kind for issue in issues)
        per_split = Counter(issue.split for issue in issues)
        counts = ", ".join(f"{kind}: {n}" for kind, n in kinds.most_common())
        splits = ", ".join(f"{split} {n}" for split, n in per_split.items())
        examples = "; ".join(issue.detail for issue in issues[:EXAMPLES_IN_LINE])
        listed = f" (all listed in {self.listing})" if self.listing else ""
        return f"({splits}): {counts}; e.g. {examples}{listed}"

    def describe_skipped(self) -> str:
        """``(per split): counts per reason; e.g. one example (all listed in FILE)`` for the skipped images."""
        return self._describe(self.skipped)

    def skipped_message(self, fix: str = DEFAULT_FIX) -> str:
        """One line: how many images Ultralytics would skip, why, an example file, and ``fix``."""
        return (f"{len(self.skipped)} of {self.images} images would be skipped by Ultralytics "
                f"{self.describe_skipped()}; {fix}")

    def refuse_skipped(self, allow_skipped: bool, fix: str = DEFAULT_FIX) -> None:
        """Raise :class:`DatasetError` (``skipped_message(fix)``) if Ultralytics would skip images and
        ``allow_skipped`` is False."""
        if self.skipped and not allow_skipped:
            raise DatasetError(self.skipped_message(fix))

    def altered_message(self) -> str:
        """One line about images Ultralytics keeps but changes (duplicate rows, zero-area boxes, JPEG rewrites)."""
        return f"Ultralytics will alter {len(self.altered)} image(s) {self._describe(self.altered)}"


# ------------------------------------------------------------------------------------------ diagnosis


def _diagnose_label(label: Path, nc: int, single_cls: bool) -> tuple[str, str] | None:
    """(kind, one-line detail with file:line) for a label file's first problem; None if it looks valid.

    Only words the reason for an image Ultralytics already dropped; whether it is dropped is decided
    by Ultralytics' verifier, never here.
    """
    try:
        lines = label.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    rows = [(number, line.split()) for number, line in enumerate(lines, start=1) if line.strip()]
    boxes = [n for n, f in rows if len(f) == 5]
    polygons = [n for n, f in rows if len(f) > 6]
    if boxes and polygons:
        return ("box and polygon rows mixed",
                f"{label}: mixes box rows (5 columns, line {boxes[0]}) with polygon rows (line {polygons[0]}); "
                "keep one kind of row per file")
    for number, fields in rows:
        where = f"{label}:{number}"
        try:
            values = [float(v) for v in fields]
        except ValueError:
            return "non-numeric values", f"{where}: non-numeric value in {' '.join(fields)!r}"
        if len(fields) != 5 and (len(fields) < 7 or len(fields) % 2 == 0):
            return ("wrong column count", f"{where}: {len(fields)} columns; expected 5 ('class x_center y_center "
                    "width height') or an odd count >= 7 (class + polygon x y pairs)")
        class_id = values[0]
        if not (math.isfinite(class_id) and class_id == int(class_id)):
            return "non-integer class id", f"{where}: class id {fields[0]} is not an integer"
        if not single_cls and not 0 <= class_id < nc:
            return ("class id out of range", f"{where}: class id {fields[0]} out of range; data.yaml names {nc} "
                    f"classes (ids 0..{nc - 1})")
        coords = values[1:]
        if not all(math.isfinite(c) and -COORD_TOLERANCE <= c <= 1 + COORD_TOLERANCE for c in coords):
            return ("coordinates outside [0, 1]", f"{where}: coordinates {' '.join(fields[1:])} outside [0, 1]; "
                    "labels must be normalised by the image size")
    return None


def _skipped_issue(split: str, verdict, nc: int, single_cls: bool) -> ImageIssue:
    from ..integration.dataset import image_error

    if not os.path.exists(verdict.image):
        return ImageIssue(split, verdict.image, "image not found", f"{verdict.image}: image not found")
    problem = image_error(verdict.image)
    if problem:
        return ImageIssue(split, verdict.image, "unreadable image", f"{verdict.image}: {problem}")
    found = _diagnose_label(Path(verdict.label), nc, single_cls)
    if found:
        return ImageIssue(split, verdict.image, *found)
    return ImageIssue(split, verdict.image, "invalid label file", f"{verdict.label}: {verdict.reason}")


def _zero_area_boxes(boxes) -> int:
    """Boxes left with no area once clipped to the image, which Ultralytics' augmentation then removes."""
    if boxes is None or not len(boxes):
        return 0
    x, y, w, h = boxes[:, 1], boxes[:, 2], boxes[:, 3], boxes[:, 4]
    width = (x + w / 2).clip(0, 1) - (x - w / 2).clip(0, 1)
    height = (y + h / 2).clip(0, 1) - (y - h / 2).clip(0, 1)
    return int(((width <= 0) | (height <= 0)).sum())


def _altered_issues(split: str, verdict) -> list[ImageIssue]:
    issues = []
    if verdict.duplicates:
        issues.append(ImageIssue(split, verdict.image, "duplicate label rows",
                                 f"{verdict.label}: {verdict.duplicates} duplicate row(s), which Ultralytics removes"))
    zero = _zero_area_boxes(verdict.boxes)
    if zero:
        issues.append(ImageIssue(split, verdict.image, "zero-area boxes",
                                 f"{verdict.label}: {zero} box(es) with zero area inside the image; Ultralytics' "
                                 "training augmentation drops them and validation counts them as missed"))
    if verdict.jpeg_rewritten:
        issues.append(ImageIssue(split, verdict.image, "JPEG rewritten",
                                 f"{verdict.image}: JPEG without its end marker, which Ultralytics rewrites in place"))
    return issues


# ---------------------------------------------------------------------------------------------- check


def _check_label_folders(resolved, split: str, labels: list[str]) -> None:
    label_dirs = sorted({Path(f).parent for f in labels})
    if not any(d.is_dir() for d in label_dirs):
        raise DatasetError(f"{resolved.source}: label folder for '{split}' not found: {label_dirs[0]}")
    if not any(os.path.isfile(f) for f in labels):
        raise DatasetError(f"{resolved.source}: label folder for '{split}' is empty: {label_dirs[0]}")


def inspect_dataset(resolved, splits: tuple[str, ...] | None = None, single_cls: bool = False) -> DatasetReport:
    """Run Ultralytics' verifier over ``splits`` of a :class:`~yoloattn.data.resolve.ResolvedDataset`.

    ``splits`` defaults to every split present among train/val/test. Label folders of all splits
    present are checked structurally. Writes ``dataset-issues.txt`` (every skipped and altered image)
    next to the resolved YAML when there are issues; raises :class:`DatasetError` only for structural
    problems, never for skipped images.
    """
    from ..integration.dataset import label_paths, verify_images

    present = [s for s in ("train", "val", "test") if s in resolved.images]
    for split in present:
        _check_label_folders(resolved, split, label_paths(resolved.images[split]))
    report = DatasetReport(resolved.source, resolved.yaml_path, resolved.nc)
    verdicts = {}  # an image listed in two splits is verified once
    for split in splits or present:
        if split not in resolved.images and split not in resolved.dropped:
            raise DatasetError(f"{resolved.source}: no '{split}' split; add e.g. '{split}: images/{split}'")
        images = resolved.images.get(split, [])
        todo = [im for im in dict.fromkeys(images) if im not in verdicts]
        verdicts.update((v.image, v) for v in verify_images(todo, resolved.nc, single_cls))
        entry = SplitReport(split, images=len(images) + len(resolved.dropped.get(split, [])))
        for line in resolved.dropped.get(split, []):
            entry.skipped.append(ImageIssue(split, line, "not an image file",
                                            f"{line}: not an image file name Ultralytics reads"))
        for image in images:
            verdict = verdicts[image]
            if not verdict.kept:
                entry.skipped.append(_skipped_issue(split, verdict, resolved.nc, single_cls))
                continue
            entry.backgrounds += verdict.label_missing or verdict.label_empty
            entry.altered.extend(_altered_issues(split, verdict))
        report.splits[split] = entry
    listing = resolved.out_dir / "dataset-issues.txt"
    if report.skipped or report.altered:
        lines = [f"# {resolved.source}: images Ultralytics skips or alters ({report.summary()})"]
        lines += [f"skipped\t{i.split}\t{i.kind}\t{i.detail}" for i in report.skipped]
        lines += [f"altered\t{i.split}\t{i.kind}\t{i.detail}" for i in report.altered]
        listing.write_text("\n".join(lines) + "\n")
        report.listing = listing
    elif listing.exists():
        listing.unlink()  # a stale listing from before the user fixed the data
    return report


def check_yolo_dataset(data_yaml: str | os.PathLike, *, allow_skipped: bool = False,
                       splits: tuple[str, ...] | None = None, single_cls: bool = False,
                       out_dir: str | os.PathLike | None = None, fix: str | None = None) -> DatasetReport:
    """Resolve and check the detection dataset ``data_yaml``; return its :class:`DatasetReport`.

    Args:
        data_yaml: the user's data.yaml (relative paths in it are resolved as described in resolve.py).
        allow_skipped: go on (and return the report) when Ultralytics would skip images.
        splits: the splits whose images are verified (default: all of train/val/test present).
        single_cls: Ultralytics' ``single_cls`` (class ids are then not range-checked).
        out_dir: where the resolved data.yaml, rewritten image lists and the issue listing go
            (default: a folder under yoloattn's cache).
        fix: how the refusal tells the user to go on (default: fix the files or pass --allow-skipped).

    Raises:
        DatasetError: (a ``ValueError``) one line naming the file and the problem: a structural one
            (missing YAML, keys, folders, empty label folder), or, without ``allow_skipped``, the count
            of images Ultralytics would skip with an example file and its reason.
    """
    from .resolve import resolve_dataset

    report = inspect_dataset(resolve_dataset(data_yaml, out_dir), splits, single_cls)
    report.refuse_skipped(allow_skipped, fix or DEFAULT_FIX)
    return report
