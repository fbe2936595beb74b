"""The one reader of Ultralytics model YAMLs: rows, the backbone/head split, the scale letter in a name.

An Ultralytics model YAML (``ultralytics/cfg/models/**.yaml``, loaded as a dict) lists its layers in
two sections, ``backbone`` and ``head``, one row per layer: ``[from, repeats, module, args]``
(``parse_model`` in ``ultralytics.nn.tasks`` names them ``f, n, m, args``). Layer indices run over
both sections in order, so ``from`` indices and most rules see one list; the split only matters
when writing the file back. :class:`Row` names the four fields, :func:`rows` reads both sections
as one list and :func:`with_rows` splits a list back, keeping the split.

A model file name carries its scale: ``yolov8n.yaml`` is ``yolov8.yaml`` at scale ``n``. Ultralytics
reads that letter with two regexes of its own (:func:`unified_name`, :func:`guess_scale`); the zoo's
names use a stricter one (:func:`split_scale`, :func:`with_scale`). All of them live here.

Dependency-free (PyYAML is not needed either): nothing here imports torch or Ultralytics.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from .errors import YoloattnError

__all__ = ["SCALES", "ModelYamlError", "Row", "guess_scale", "head_row", "n_backbone", "rows", "scaled_names", "split_scale",
           "unified_name", "with_rows", "with_scale"]

#: The scale letters Ultralytics reads from a model name, in its own order.
SCALES = "nslmx"
SECTIONS = ("backbone", "head")


class ModelYamlError(YoloattnError):
    """A model dict that is not laid out as an Ultralytics model YAML (a row that is not 4 entries, no rows)."""


class Row(NamedTuple):
    """One layer of a model YAML: Ultralytics' ``[from, repeats, module, args]`` (``f, n, m, args``).

    ``source`` is an index or a list of indices (negative: counted back from this row, ``-1`` the
    previous one; on row 0, ``-1`` is the image). A Row is a tuple: YAML writers and Ultralytics'
    ``parse_model`` want the plain list of :meth:`as_list`, which :func:`with_rows` writes.
    """

    source: int | list[int]
    repeats: int
    module: str
    args: list

    @property
    def sources(self) -> list[int]:
        """``source`` as a list, as written (relative indices stay negative)."""
        return list(self.source) if isinstance(self.source, list) else [self.source]

    def inputs(self, index: int) -> list[int]:
        """The absolute row indices this row reads when it is row ``index`` (``-1`` on row 0: the image,
        returned as ``-1``), as ``parse_model`` resolves ``from`` (``x if j == -1 else y[j]``)."""
        return [j if j >= 0 else index + j for j in self.sources]

    def as_list(self) -> list:
        """The row as YAML and ``parse_model`` take it: ``[from, repeats, module, args]`` (new lists,
        so that editing the result leaves this row alone)."""
        source = list(self.source) if isinstance(self.source, list) else self.source
        return [source, self.repeats, self.module, list(self.args)]


def rows(d: Mapping[str, Any]) -> list[Row]:
    """Every row of a model dict, backbone then head, as :class:`Row` (what ``parse_model`` iterates:
    ``d["backbone"] + d["head"]``). A missing or empty section gives no rows.

    Raises:
        ModelYamlError: a row is not a list of 4 entries (the message names the row).
    """
    found = []
    for section in SECTIONS:
        for row in d.get(section) or []:
            if not isinstance(row, (list, tuple)) or len(row) != 4:
                raise ModelYamlError(f"{section} row {len(found)} of the model YAML is {row!r}; a row is "
                                     "[from, repeats, module, args]")
            found.append(Row(*row))
    return found


def n_backbone(d: Mapping[str, Any]) -> int:
    """How many rows the ``backbone`` section has (the index of the first head row)."""
    return len(d.get("backbone") or [])


def head_row(d: Mapping[str, Any]) -> Row:
    """The last row, the one whose module decides the task (``Detect``, ``Segment``, ``RTDETRDecoder``, ...),
    as ``guess_model_task`` (``ultralytics.nn.tasks``) reads ``d["head"][-1][-2]``.

    Raises:
        ModelYamlError: the dict has no rows, or a malformed one (see :func:`rows`).
    """
    found = rows(d)
    if not found:
        raise ModelYamlError("not an Ultralytics model YAML: it has no backbone/head rows")
    return found[-1]


def with_rows(d: Mapping[str, Any], new_rows: Iterable[Row | list], backbone: int | None = None) -> dict:
    """A copy of ``d`` whose ``backbone`` and ``head`` are ``new_rows``, split after ``backbone`` rows.

    ``backbone`` defaults to the length of ``d``'s own backbone, which is right when rows were
    replaced in place or added to the head; a caller that inserted or removed backbone rows passes
    the new count (``n_backbone(d) + inserted``). Rows come out as plain lists (:meth:`Row.as_list`)
    so that YAML rendering and ``parse_model`` read them as they read Ultralytics' own. The copy is
    shallow: the other keys (``scales``, ``nc``, ...) are ``d``'s own objects.

    Raises:
        ModelYamlError: ``backbone`` is outside 0..len(new_rows).
    """
    listed = [Row(*row).as_list() for row in new_rows]
    split = n_backbone(d) if backbone is None else backbone
    if not 0 <= split <= len(listed):
        raise ModelYamlError(f"a backbone of {split} rows does not fit a model of {len(listed)} rows")
    return {**d, "backbone": listed[:split], "head": listed[split:]}


# ------------------------------------------------------------------------------------ the scale letter

# ultralytics.nn.tasks.yaml_model_load: re.sub(r"(\d+)([nslmx])(.+)?$", r"\1\3", str(path))
_UNIFY = re.compile(rf"(\d+)([{SCALES}])(.+)?$")
# ultralytics.nn.tasks.guess_model_scale: re.search(r"yolo(e-)?[v]?\d+([nslmx])", Path(model_path).stem)
_GUESS = re.compile(rf"yolo(e-)?[v]?\d+([{SCALES}])")
# The zoo's names (<base>-<module>-<rule>): the letter right after the version, then a dash.
_ZOO_SCALE = re.compile(rf"^(yolov?\d+)([{SCALES}])(?=-)")
_ZOO_BASE = re.compile(r"^(yolov?\d+)(?=-)")
_FIRST_NUMBER = re.compile(r"^(\D*\d+)")


def unified_name(name: str | Path) -> str:
    """The name without its scale letter, by Ultralytics' own rule: ``yolov8n.yaml`` -> ``yolov8.yaml``,
    ``/dir/yolo11s-seg.yaml`` -> ``/dir/yolo11-seg.yaml``.

    Mirrors ``ultralytics.nn.tasks.yaml_model_load``: ``re.sub(r"(\\d+)([nslmx])(.+)?$", r"\\1\\3", ...)``,
    applied to the whole string given. Pass a path to get exactly the file Ultralytics looks for
    (whose folder name may lose a letter: ``/tmp/x8n/yolov8.yaml``); pass a file name or stem to apply
    the rule to the name alone. Names without such a letter come back unchanged. Raises nothing.
    """
    return _UNIFY.sub(r"\1\3", str(name))


def guess_scale(name: str | Path) -> str:
    """The scale letter Ultralytics reads from a model file name, '' when there is none:
    ``yolo11n-mlla-psa.yaml`` -> ``n``, ``/any/dir/yolov8s.yaml`` -> ``s``, ``my-model.yaml`` -> ''.

    Mirrors ``ultralytics.nn.tasks.guess_model_scale``: ``re.search(r"yolo(e-)?[v]?\\d+([nslmx])", stem)``
    on the file name's stem. Raises nothing.
    """
    match = _GUESS.search(Path(name).stem)
    return match.group(2) if match else ""


def scaled_names(stem: str) -> list[str]:
    """Every spelling of ``stem`` with a scale letter after its first number, for suggestions:
    ``yolo11`` -> ``yolo11n``, ``yolo11s``, ... ``yolo11x`` (the names :func:`unified_name` takes back to
    ``stem``); [] when ``stem`` has no number. Raises nothing."""
    if not _FIRST_NUMBER.match(stem):
        return []
    return [_FIRST_NUMBER.sub(rf"\g<1>{scale}", stem, count=1) for scale in SCALES]


def split_scale(stem: str) -> tuple[str, str]:
    """A zoo name and its scale: ``yolov8n-mlla-csp`` -> (``yolov8-mlla-csp``, ``n``); a name without a
    scale letter gets ''.

    The zoo's rule, stricter than Ultralytics' :func:`unified_name`: the letter must follow
    ``yolo<N>``/``yolov<N>`` at the very start and be followed by ``-``, so a user's file such as
    ``my2s-model`` is not taken for a scaled zoo name. On the zoo's own names it agrees with
    Ultralytics. Raises nothing.
    """
    match = _ZOO_SCALE.match(stem)
    if not match:
        return stem, ""
    return match.group(1) + stem[match.end():], match.group(2)


def with_scale(stem: str, scale: str) -> str:
    """The inverse of :func:`split_scale`: ``yolov8-mlla-csp`` + ``n`` -> ``yolov8n-mlla-csp``; an empty
    ``scale``, or a name that does not start ``yolo<N>-``, comes back unchanged. Raises nothing."""
    return _ZOO_BASE.sub(rf"\g<1>{scale}", stem, count=1) if scale else stem
