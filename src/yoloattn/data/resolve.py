"""Resolve a YOLO ``data.yaml`` the way its author means it, into absolute paths Ultralytics cannot misread.

Ultralytics resolves a relative ``path:`` against the working directory (then its ``datasets_dir``)
and reads the lines of an image-list ``.txt`` relative to the working directory unless they start
with ``./``; so the same dataset trains from one folder and fails from another. yoloattn resolves
every relative path against the file that contains it (rules below), writes the result with
absolute paths only, and hands Ultralytics that file. The rules (docs/dataset.md, "Paths"):

- ``path:`` (the dataset root): absent -> the YAML's folder; absolute -> itself; relative -> the first
  existing of: the YAML's folder, the working directory, Ultralytics' ``datasets_dir``.
- ``train`` / ``val`` / ``test`` / ``minival`` entries (a string or a list): relative to the root;
  ``../x`` that does not exist there is also tried as ``x`` (an Ultralytics convention kept for
  compatibility). An entry is an image folder, an image-list file, or a single image.
- lines of an image-list file: absolute, or relative to the list file's folder (with or without
  ``./``); a line that is not found there is tried against the dataset root, then the working
  directory (what Ultralytics does), and stays relative to the list's folder if found nowhere, so
  the check reports it as a missing image.

Image lists (and single images, which Ultralytics would misread as lists) are rewritten with
absolute lines; they and the resolved ``data.yaml`` go into ``out_dir``: by default a folder under
yoloattn's cache (``$YOLOATTN_CACHE/resolved/``), never next to the user's data.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .sources import cache_root
from .errors import DatasetError

SPLIT_KEYS = ("train", "val", "test", "minival")  # the keys Ultralytics joins to the dataset root


@dataclass(frozen=True)
class ResolvedDataset:
    """A data.yaml with every path absolute.

    ``data`` is the YAML mapping as written to ``yaml_path`` (root and split entries absolute, no
    ``download`` key); ``images`` maps each split to its image paths exactly as Ultralytics will read
    them; ``dropped`` maps a split to list lines Ultralytics ignores (not an image file name).
    """

    source: Path
    yaml_path: Path
    root: Path
    data: dict
    nc: int
    images: dict[str, list[str]] = field(default_factory=dict)
    dropped: dict[str, list[str]] = field(default_factory=dict)

    @property
    def out_dir(self) -> Path:
        return self.yaml_path.parent


def load_yaml(yaml_path: Path) -> dict:
    """The data.yaml as a mapping with ``train``/``val`` and class names; :class:`DatasetError` otherwise."""
    if yaml_path.is_dir():
        inside = sorted(yaml_path.glob("*.yaml")) + sorted(yaml_path.glob("*.yml"))
        hint = (f"; give the file inside: data={inside[0]}" if len(inside) == 1 else
                f"; give one of the files inside: {', '.join(p.name for p in inside)}" if inside else
                "; it holds no .yaml file: give the path of the dataset's data.yaml")
        raise DatasetError(f"{yaml_path} is a folder, not a data.yaml{hint}")
    if not yaml_path.is_file():
        raise DatasetError(f"data.yaml not found: {yaml_path}")
    try:
        data = yaml.safe_load(yaml_path.read_text(encoding="utf-8-sig"))
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        reason = str(err).splitlines()[0]
        raise DatasetError(f"{yaml_path}: not valid YAML ({reason})") from None
    if not isinstance(data, dict):
        raise DatasetError(f"{yaml_path}: expected a mapping with 'train', 'val' and 'names' keys")
    if not data.get("val") and data.get("validation"):
        data["val"] = data.pop("validation")  # Ultralytics accepts this spelling too
    missing = [key for key in ("train", "val") if not data.get(key)]
    if missing:
        raise DatasetError(f"{yaml_path}: missing {' and '.join(missing)} entry; add e.g. 'val: images/val'")
    return data


def class_count(data: dict, yaml_path: Path) -> int:
    """Number of classes: ``len(names)``, else ``nc``; :class:`DatasetError` when neither is usable."""
    names = data.get("names")
    if isinstance(names, (list, dict)) and names:
        if isinstance(data.get("nc"), int) and data["nc"] != len(names):
            raise DatasetError(f"{yaml_path}: 'names' has {len(names)} classes but 'nc: {data['nc']}'; make them match")
        return len(names)
    if isinstance(data.get("nc"), int) and data["nc"] > 0:
        return data["nc"]
    raise DatasetError(f'{yaml_path}: no class names; add e.g. "names: {{0: cat, 1: dog}}"')


def _first_existing(relative: Path, anchors: list[Path]) -> Path | None:
    for anchor in anchors:
        candidate = anchor / relative
        if candidate.exists():
            return candidate
    return None


def dataset_root(data: dict, yaml_path: Path) -> Path:
    """The absolute dataset root by the rule in the module docstring; :class:`DatasetError` if not found."""
    if not data.get("path"):
        return yaml_path.parent.resolve()
    root = Path(str(data["path"])).expanduser()
    if root.is_absolute():
        if not root.is_dir():
            raise DatasetError(f"{yaml_path}: dataset root 'path: {data['path']}' not found")
        return root.resolve()
    from ..integration.dataset import datasets_dir

    anchors = [yaml_path.parent, Path.cwd(), datasets_dir()]
    found = _first_existing(root, anchors)
    if found is None or not found.is_dir():
        tried = ", ".join(str(a / root) for a in anchors)
        raise DatasetError(f"{yaml_path}: dataset root 'path: {data['path']}' not found (tried {tried}); "
                           "a relative path is read from the YAML's folder")
    return found.resolve()


def _entry_path(root: Path, entry: str) -> Path:
    target = root / Path(entry).expanduser()
    if not target.exists() and entry.startswith("../"):
        stripped = root / entry[3:]
        if stripped.exists():
            return stripped.resolve()
    return target.resolve()


def _list_lines(list_file: Path, root: Path, split: str, yaml_path: Path) -> list[str]:
    try:
        text = list_file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise DatasetError(f"{yaml_path}: cannot read the image list for '{split}' {list_file} ({err})") from None
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        raise DatasetError(f"{yaml_path}: image list for '{split}' is empty: {list_file}")
    folder = Path(os.path.abspath(list_file.parent))
    resolved = []
    for line in lines:
        path = Path(line).expanduser()
        if path.is_absolute():
            resolved.append(os.path.normpath(path))
            continue
        anchors = [folder] if line.startswith("./") else [folder, root, Path.cwd()]
        found = _first_existing(path, anchors) or folder / path
        resolved.append(os.path.normpath(os.path.abspath(found)))
    return resolved


def _default_out_dir(source: Path, text: str) -> Path:
    key = hashlib.sha256(f"{source}\0{text}\0{Path.cwd()}".encode()).hexdigest()[:12]
    return cache_root() / "resolved" / f"{source.parent.name or 'data'}-{source.stem}-{key}"


def _write_text(path: Path, text: str) -> None:
    """Write by rename so a concurrent reader (another run of the same dataset) never sees half a file."""
    if path.is_file() and path.read_text() == text:
        return
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    partial.write_text(text)
    os.replace(partial, path)


def resolve_dataset(data_yaml: str | os.PathLike, out_dir: str | os.PathLike | None = None) -> ResolvedDataset:
    """Resolve ``data_yaml`` (rules in the module docstring) and write ``OUT_DIR/data.yaml`` with absolute paths.

    Image lists and single-image entries are rewritten as ``OUT_DIR/<split>-<n>.txt`` with absolute
    lines. ``out_dir`` defaults to a folder under ``cache_root()/resolved`` keyed by the YAML's path,
    its text and the working directory. The user's files are only read.

    Raises:
        DatasetError: one line naming the file and the problem: a missing or malformed YAML, no class
            names, a dataset root or split entry that does not exist, an empty image list or folder.
    """
    source = Path(os.path.abspath(Path(data_yaml).expanduser()))
    data = load_yaml(source)
    nc = class_count(data, source)
    root = dataset_root(data, source)
    if out_dir is None:
        out_dir = _default_out_dir(source, source.read_text(encoding="utf-8-sig"))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    from ..integration.dataset import folder_images, is_image_name

    resolved = {k: v for k, v in data.items() if k != "download"}  # everything exists: nothing to fetch
    resolved["path"] = str(root)
    images: dict[str, list[str]] = {}
    dropped: dict[str, list[str]] = {}
    for split in SPLIT_KEYS:
        entries = data.get(split)
        if not entries:
            continue
        as_list = isinstance(entries, list)
        new_entries = []
        for index, entry in enumerate(entries if as_list else [entries]):
            target = _entry_path(root, str(entry))
            if target.is_dir():
                found = folder_images(target)
                if not found:
                    raise DatasetError(f"{source}: image folder for '{split}' has no images: {target}")
                images.setdefault(split, []).extend(found)
                new_entries.append(str(target))
                continue
            if not target.is_file():
                raise DatasetError(f"{source}: image folder for '{split}' not found: {target}")
            if is_image_name(target.name):
                lines = [str(target)]
            else:
                lines = _list_lines(target, root, split, source)
            written = out / f"{split}-{index}.txt"
            _write_text(written, "\n".join(lines) + "\n")
            images.setdefault(split, []).extend(line for line in lines if is_image_name(line))
            dropped.setdefault(split, []).extend(line for line in lines if not is_image_name(line))
            new_entries.append(str(written))
        resolved[split] = new_entries if as_list else new_entries[0]
        images[split] = sorted(images.get(split, []))  # Ultralytics sorts the combined list
    yaml_path = out / "data.yaml"
    header = f"# {source} with absolute paths (written by yoloattn; see docs/dataset.md, 'Paths')\n"
    _write_text(yaml_path, header + yaml.safe_dump(resolved, sort_keys=False, allow_unicode=True))
    return ResolvedDataset(source, yaml_path, root, resolved, nc, images, {k: v for k, v in dropped.items() if v})
