"""Check the wiring of a model YAML: which row reads which, and at what stride.

Ultralytics builds a model whose ``from`` indices point at the wrong rows without a word: a row
inserted by hand without renumbering the later ``from`` indices leaves a block whose output nothing
reads and a head that reads Concat outputs, and a Concat that joins maps of different strides only
fails deep inside torch during ``DetectionModel``'s stride probe. ``check_wiring`` builds the layers
with Ultralytics' own ``parse_model`` (yoloattn's wrapper included, so our YAML names work), walks
them on a zeros image following each layer's ``.f`` routing, and returns one ``WiringIssue`` per
problem, each naming its row(s)::

    for issue in check_wiring("my-yolov8n.yaml"):
        print(f"warning: {issue}")          # warning: row 22: output of row 22 (C2f) is never used ...

Issue kinds: ``bad-from`` (an index that points at the row itself, a later row or before the
input), ``unused-output``, ``head-strides`` (Detect/Segment/Pose/OBB/... inputs not at the file's
P-levels), ``concat-strides`` (a Concat joining maps of different sizes) and ``layer-error`` (some
other layer raised on the probe). ``bad-from``, ``concat-strides`` and ``layer-error`` mean that
Ultralytics cannot build the model (``BLOCKING_KINDS``). ``report_wiring`` prints the issues for a
command line and raises ``WiringError`` (one line) for the ones the ``from`` indices cause.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from ..errors import YoloattnError
from ..yaml_model import rows as model_rows
from ..yaml_model import unified_name

BLOCKING_KINDS = frozenset({"bad-from", "concat-strides", "layer-error"})
WIRING_ERROR_KINDS = frozenset({"bad-from", "concat-strides"})  # blocking, and caused by the `from` indices
RENUMBER_HINT = "rows after an inserted or removed row must have their `from` indices renumbered"

# `# Detect(P3, P4, P5)`, `# Segment (P3, P4, P5)`, `# Pose(P3, P4, P5, P6)` on the head row
_LEVELS_COMMENT = re.compile(r"#\s*([\w.]+)\s*\(\s*(P\d+(?:\s*,\s*P\d+)*)\s*\)")
# Ultralytics' naming for P2 / P6 variants: yolov8n-p2.yaml, yolov8-ghost-p6.yaml, yolov8n-p2-mqa-csp.yaml
_NAME_LEVELS = {"p2": (2, 3, 4, 5), "p6": (3, 4, 5, 6)}


@dataclass(frozen=True)
class WiringIssue:
    """One wiring problem of a model YAML.

    ``row`` is the (0-based, backbone then head) row the problem is reported on, ``rows`` every row
    involved (``row`` included), ``kind`` one of ``bad-from``, ``unused-output``, ``head-strides``,
    ``concat-strides``, ``layer-error``, and ``message`` one line that names the rows and, where the
    cause is clear, the likely fix. ``str(issue)`` is ``"row N: message"``.
    """

    row: int
    kind: str
    message: str
    rows: tuple[int, ...] = field(default=())

    @property
    def blocking(self) -> bool:
        """True when Ultralytics cannot build the model at all (see ``BLOCKING_KINDS``)."""
        return self.kind in BLOCKING_KINDS

    def __str__(self) -> str:
        return f"row {self.row}: {self.message}"


def check_wiring(model, *, imgsz: int = 256, levels: tuple[int, ...] | None = None) -> list[WiringIssue]:
    """Wiring problems of a model YAML, in row order (an empty list when the wiring looks right).

    ``model`` is a YAML path or name that Ultralytics' ``yaml_model_load`` resolves (the scale letter
    of ``yolov8n.yaml`` is honoured) or an already loaded model dict (its ``scale`` and ``yaml_file``
    keys, as ``yaml_model_load`` sets them, are honoured; the dict is not modified). The layers are
    built with ``ultralytics.nn.tasks.parse_model`` and run, head excepted, in eval mode on a
    ``1 x channels x imgsz x imgsz`` zeros image; ``imgsz`` must be a multiple of the largest stride
    (256, Ultralytics' stride probe, covers P8; 64 is enough for P3-P6 and is much faster).

    An output counts as unused when no later row reads it, by ``-1`` on the next row or by index;
    the last row, and layers whose result leaves the ``from`` routing (YOLO-World's
    ``ImagePoolingAttn`` updates the text features), are exempt. Text-guided layers (``C2fAttn``) get
    zeros class embeddings, as ``WorldModel``'s placeholder.

    The P-levels a Detect-family head (the last row when it has ``nl`` and reads a list: Detect,
    Segment, Pose, OBB, v10Detect, WorldDetect, RTDETRDecoder, ...; it is never run) must read
    are, first found: ``levels`` (e.g. ``(3, 4, 5)``); the ``# Detect(P3, P4, P5)`` comment on the
    head row of the YAML text (when a file is known); a ``-p2``/``-p6`` tag in the file name; P3-P5 for
    a three-input head. A head with another number of inputs and none of these only has to read
    strictly increasing strides, each twice the previous.

    A problem found while walking (a Concat joining different strides, a layer that raises) is
    returned as an issue, never raised; after a Concat mismatch the walk goes on with the inputs
    resized so later rows are still checked, after any other layer error it stops.

    Raises: whatever loading or ``parse_model`` raises when the file cannot be read or the layers
    cannot be constructed for a reason other than the ``from`` indices (``FileNotFoundError``,
    ``yoloattn.UnknownModuleError`` for an unknown module name, ``ValueError``/``TypeError``/... for bad
    arguments): the caller decides whether that is a user error.
    """
    from ultralytics.nn import tasks

    d, text, file_name = _load(model)
    rows = model_rows(d)
    if not rows:
        raise ValueError("not an Ultralytics model YAML: it has no backbone/head rows")
    sources = [row.inputs(i) for i, row in enumerate(rows)]
    issues = _bad_from(rows, sources)
    if issues:  # parse_model would fail with an IndexError or silently read from the end of the list
        return issues

    ch = d.get("channels", 3)
    layers, _ = tasks.parse_model(copy.deepcopy(d), ch=ch, verbose=False)
    issues += _unused(rows, sources, side_outputs={i for i, m in enumerate(layers) if _feeds_text(m)})

    head = layers[-1]
    is_head = hasattr(head, "nl") and isinstance(head.f, list)  # Detect family, RTDETRDecoder, ...: not run
    outputs, walk_issues = _walk(layers, rows, sources, ch, imgsz, d.get("nc") or 80, stop_before_last=is_head)
    issues += walk_issues
    if is_head and len(outputs) == len(layers) - 1:  # the walk reached the head
        wanted, origin = _wanted_levels(levels, text, file_name, rows[-1].module, len(sources[-1]))
        issue = _head_issue(rows, sources, outputs, imgsz, wanted, origin, layers)
        if issue:
            issues.append(issue)
    return sorted(issues, key=lambda issue: issue.row)


class WiringError(YoloattnError):
    """A model YAML whose ``from`` indices make it unbuildable; the message is one line naming the row."""


def report_wiring(model, *, stream=None, label: str | None = None, imgsz: int = 256) -> list[WiringIssue]:
    """``check_wiring`` for a command line: print each issue, raise ``WiringError`` when it cannot build.

    Each issue is written to ``stream`` (default ``sys.stderr``) as ``warning: row N: ...``, or
    ``warning: LABEL: row N: ...`` with a ``label`` (several models in one run). A ``.pt`` checkpoint
    is not checked (it was built already): ``[]``. Returns the issues.

    Raises: ``WiringError`` (one line: ``LABEL would not build: row N: ...``) when a ``from`` index
    points forward or a Concat joins different strides, instead of the IndexError / torch traceback
    that building would give; the other warnings are printed first. A layer that raises for another
    reason is only a warning, so that building shows its real traceback. Whatever ``check_wiring``
    raises (unreadable file, unknown module, ...) propagates.
    """
    import sys

    if str(model).endswith(".pt"):
        return []
    stream = stream or sys.stderr
    issues = check_wiring(model, imgsz=imgsz)
    fatal = [issue for issue in issues if issue.kind in WIRING_ERROR_KINDS]
    prefix = f"{label}: " if label else ""
    for issue in issues:
        if not fatal or issue is not fatal[0]:
            print(f"warning: {prefix}{issue}", file=stream)
    if fatal:
        raise WiringError(f"{label or Path(str(model)).name} would not build: {fatal[0]}")
    return issues


def check_variant(variant: dict, base: dict, *, base_file: str, scale: str | None, variant_scale: str | None,
                  base_label: str, variant_label: str) -> list[WiringIssue]:
    """``check_wiring`` of a variant that ``zoo.make_variant`` made from ``base``, before it is written.

    ``base_file`` is named as the source of both, because its head-row comment (``# Detect(P3, P4, P5)``)
    and ``-p2``/``-p6`` name say which levels the head must read (a rendered variant keeps neither);
    ``scale`` / ``variant_scale``: the scale letter each builds at. Returns the warnings.

    Raises WiringError (one line) when the variant would not build: naming the base's rows when the base
    itself is mis-wired (those are the row numbers the user can fix; the variant's differ after inserted
    rows), else the variant's. A layer that raises for another reason is only a warning, so that building
    shows its real traceback.
    """
    issues = check_wiring({**variant, "scale": variant_scale or scale or None, "yaml_file": base_file})
    if not any(issue.kind in WIRING_ERROR_KINDS for issue in issues):
        return issues
    base_issues = check_wiring({**base, "scale": scale or None, "yaml_file": base_file})
    label, found = (base_label, base_issues) if any(i.kind in WIRING_ERROR_KINDS for i in base_issues) else \
        (variant_label, issues)
    first = next(issue for issue in found if issue.kind in WIRING_ERROR_KINDS)
    more = f" (and {len(found) - 1} more wiring problem(s))" if len(found) > 1 else ""
    raise WiringError(f"{label} would not build: {first}{more}")


def declared_levels(path: str | Path) -> tuple[int, ...] | None:
    """The P-levels of the head-row comment of a model YAML file (``# Detect(P3, P4, P5)`` -> (3, 4, 5)).

    ``None`` when the file has no such comment. Raises ``OSError`` when the file cannot be read.
    """
    import yaml

    text = Path(path).read_text()
    d = yaml.safe_load(text) or {}
    rows = model_rows(d)
    return _declared_levels(text, rows[-1].module) if rows else None


# ------------------------------------------------------------------------------------------ helpers


def _load(model) -> tuple[dict, str | None, str | None]:
    """(model dict, YAML text or None, file name or None)."""
    if isinstance(model, dict):
        d = copy.deepcopy(model)
    else:
        from ultralytics.nn.tasks import yaml_model_load

        d = yaml_model_load(model)
    file_name = d.get("yaml_file")
    text = None
    if file_name:
        from ultralytics.nn.tasks import check_yaml

        path = Path(file_name)
        # yolov8n.yaml is a name for yolov8.yaml + scale n: the text lives in the unified file
        unified = Path(unified_name(path))
        for candidate in (path, unified):
            found = candidate if candidate.is_file() else check_yaml(str(candidate), hard=False)
            if found and Path(found).is_file():
                text = Path(found).read_text()
                break
    return d, text, Path(file_name).name if file_name else None


def _bad_from(rows: list, sources: list[list[int]]) -> list[WiringIssue]:
    issues = []
    for i, (row, src) in enumerate(zip(rows, sources)):
        for j, k in zip(row.sources, src):
            if i == 0 and j == -1:
                continue  # the image
            if k >= i:
                where = "itself" if k == i else f"row {k}, which comes later" if k < len(rows) else \
                    f"row {k}, past the last row ({len(rows) - 1})"
                issues.append(WiringIssue(i, "bad-from", f"{row.module} reads `from` {j} = {where}; a row can only read "
                                          f"earlier rows ({RENUMBER_HINT})", (i, k)))
            elif k < 0:
                issues.append(WiringIssue(i, "bad-from", f"{row.module} reads `from` {j}, before the first row", (i,)))
    return issues


def _unused(rows: list, sources: list[list[int]], side_outputs: set[int]) -> list[WiringIssue]:
    """Rows before the last whose output no row reads; ``side_outputs`` deliver theirs another way."""
    readers: dict[int, list[int]] = {}
    for i, src in enumerate(sources):
        for k in src:
            readers.setdefault(k, []).append(i)
    issues = []
    last = len(rows) - 1
    for u in range(last):
        if readers.get(u) or u in side_outputs:
            continue
        message = (f"output of row {u} ({rows[u].module}) is never used: row {u + 1} does not read -1 "
                   f"and no `from` lists {u}")
        # The usual cause: a row inserted above, so rows that meant u still name u - 1.
        off_by_one = [i for i in readers.get(u - 1, []) if i != u and u - 1 in _explicit(i, rows[i].source)]
        if off_by_one:
            who = ", ".join(f"row {i} ({rows[i].module})" for i in off_by_one)
            verb = "reads" if len(off_by_one) == 1 else "read"
            message += f"; {who} {verb} row {u - 1} - did you mean {u}? ({RENUMBER_HINT})"
        issues.append(WiringIssue(u, "unused-output", message, (u, *off_by_one)))
    return issues


def _explicit(i: int, f) -> list[int]:
    """Rows named by index (not by the -1 of the next row)."""
    return [j if j >= 0 else i + j for j in (f if isinstance(f, list) else [f]) if j != -1]


def _feeds_text(m) -> bool:
    """YOLO-World's ImagePoolingAttn: its result updates the text features, not the `from` routing."""
    from ultralytics.nn.modules import ImagePoolingAttn

    return isinstance(m, ImagePoolingAttn)


def _walk(layers, rows, sources, ch, imgsz, nc, stop_before_last):
    """Run the layers on zeros; returns (outputs of the rows run, issues)."""
    from ultralytics.nn.modules import C2fAttn, Concat

    # Text-guided layers (YOLO-World) take class embeddings as well; WorldModel's placeholder is 1 x nc x 512.
    text = torch.zeros(1, nc, 512)

    issues: list[WiringIssue] = []
    outputs: list = []
    image = torch.zeros(1, ch, imgsz, imgsz)
    end = len(layers) - 1 if stop_before_last else len(layers)
    was_training = layers.training
    layers.eval()  # BatchNorm in train mode refuses 1x1 maps of a single image
    try:
        with torch.no_grad():
            for i in range(end):
                m = layers[i]
                inputs = [image if k < 0 else outputs[k] for k in sources[i]]
                x = inputs[0] if isinstance(m.f, int) else inputs
                if isinstance(m, Concat) and m.d in (1, -3):
                    x, issue = _check_concat(i, rows, sources[i], inputs, outputs, imgsz)
                    if issue:
                        issues.append(issue)
                try:
                    if isinstance(m, C2fAttn):
                        outputs.append(m(x, text))
                    elif _feeds_text(m):
                        text = m(x, text)
                        outputs.append(x)  # as in WorldModel: the row passes its input on
                    else:
                        outputs.append(m(x))
                except Exception as err:  # reported with its row: a traceback here helps nobody edit a YAML
                    shapes = ", ".join("x".join(map(str, t.shape)) for t in inputs if isinstance(t, torch.Tensor))
                    first = (str(err).strip().splitlines() or [""])[0][:300]
                    message = (f"{rows[i].module} failed on input {shapes} (from rows {_names(sources[i])}): "
                               f"{type(err).__name__}: {first}")
                    issues.append(WiringIssue(i, "layer-error", message, (i, *sources[i])))
                    break
    finally:
        layers.train(was_training)
    return outputs, issues


def _check_concat(i, rows, src, inputs, outputs, imgsz):
    """(inputs resized to the first one's size, issue or None) for a channel Concat."""
    if not all(isinstance(t, torch.Tensor) and t.dim() == 4 for t in inputs):
        return inputs, None
    sizes = [tuple(t.shape[-2:]) for t in inputs]
    if len(set(sizes)) == 1:
        return inputs, None
    strides = [_stride(size, imgsz) for size in sizes]
    parts = ", ".join(f"row {k} ({'image' if k < 0 else rows[k].module}, stride {s})" for k, s in zip(src, strides))
    message = f"Concat joins maps of different strides: {parts}; all inputs of a Concat must share one stride"
    odd = [k for k, s in zip(src[1:], strides[1:]) if s != strides[0]]
    guesses = []
    for k in odd:
        hit = _nearby_level_end(k, i, src, rows, outputs, strides[0], imgsz)
        if hit is not None:
            guesses.append(f"row {hit} instead of {k}")
    hint = f" (did you mean {', '.join(guesses)}? {RENUMBER_HINT})" if guesses else f" ({RENUMBER_HINT})"
    fixed = [t if tuple(t.shape[-2:]) == sizes[0] else F.interpolate(t, size=sizes[0]) for t in inputs]
    return fixed, WiringIssue(i, "concat-strides", message + hint, (i, *src))


def _nearby_level_end(k, i, src, rows, outputs, stride, imgsz) -> int | None:
    """The row within two of ``k`` that ends a level of ``stride``: the likely meant one after an insertion.

    A level ends where the next row changes stride (the block before a downsample or upsample); the
    rows a Concat should read are such ends, a downsampling Conv of the same stride is not.
    """
    for n in (k + 1, k - 1, k + 2, k - 2):
        if not 0 <= n < i or n in src or _output_stride(outputs[n], imgsz) != stride:
            continue
        following = _output_stride(outputs[n + 1], imgsz) if n + 1 < len(outputs) else None
        if following != stride or -1 not in rows[n + 1].sources:
            return n
    return None


def _output_stride(out, imgsz: int) -> int | None:
    return _stride(tuple(out.shape[-2:]), imgsz) if isinstance(out, torch.Tensor) and out.dim() == 4 else None


def _stride(size: tuple[int, int], imgsz: int) -> int:
    return max(1, round(imgsz / max(size[-1], 1)))


def _names(src: list[int]) -> str:
    return ", ".join("image" if k < 0 else str(k) for k in src)


def _declared_levels(text: str | None, head_name: str) -> tuple[int, ...] | None:
    if not text:
        return None
    found = None
    for line in text.splitlines():
        code, hash_, comment = line.partition("#")
        match = _LEVELS_COMMENT.search(hash_ + comment)
        if match and code.strip().startswith("-") and re.search(rf"\b{re.escape(head_name)}\b", code):
            found = tuple(int(p.strip()[1:]) for p in match.group(2).split(","))
    return found


def _name_levels(file_name: str | None, n_inputs: int) -> tuple[int, ...] | None:
    if not file_name:
        return None
    for tag, levels in _NAME_LEVELS.items():
        if re.search(rf"-{tag}(\b|-|\.)", file_name.lower()) and len(levels) == n_inputs:
            return levels
    return None


def _wanted_levels(levels, text, file_name, head_name, n_inputs) -> tuple[tuple[int, ...] | None, str]:
    """(P-levels the head must read or None, where that expectation comes from, for the message)."""
    if levels:
        return tuple(levels), "as asked"
    declared = _declared_levels(text, head_name)
    if declared:
        return declared, f"from the `# {head_name}({', '.join(f'P{p}' for p in declared)})` comment on the row"
    named = _name_levels(file_name, n_inputs)
    if named:
        return named, f"from the file name {file_name}"
    if n_inputs == 3:
        return (3, 4, 5), f"the default for three inputs; add a `# {head_name}(P.., P.., P..)` comment to the row " \
                          "if other levels are meant"
    return None, ""


def _head_issue(rows, sources, outputs, imgsz, wanted, origin, layers) -> WiringIssue | None:
    from ultralytics.nn.modules import Concat

    h = len(rows) - 1
    src = sources[h]
    strides = [_output_stride(outputs[k], imgsz) if k >= 0 else 1 for k in src]
    name = rows[h].module
    increasing = all(a is not None and b is not None and b > a for a, b in zip(strides, strides[1:]))
    problems = []
    if wanted is not None:
        expected = [2**p for p in wanted]
        if strides != expected:
            levels = ", ".join(f"P{p}" for p in wanted)
            problems.append(f"expected {levels} = strides {', '.join(map(str, expected))} ({origin})")
    else:
        doubling = all(a is not None and b == 2 * a for a, b in zip(strides, strides[1:]))
        if not doubling:
            problems.append("expected strictly increasing strides, each twice the previous")
    if not problems:
        return None
    if not increasing:
        problems.append("they are not strictly increasing")
    got = ", ".join(f"{k} (stride {s})" for k, s in zip(src, strides))
    concat_fed = [k for k in src if k >= 0 and isinstance(layers[k], Concat)]
    in_order = [k for _, k in sorted(zip(strides, src), key=lambda pair: pair[0] or 0)]
    if not increasing and None not in strides and (wanted is None or sorted(strides) == [2**p for p in wanted]):
        hint = f"; list them smallest stride first: `from` {in_order}"
    elif concat_fed:
        hint = f"; rows {_names(concat_fed)} are Concat outputs, a head reads the block after each Concat " \
               f"({RENUMBER_HINT})"
    else:
        hint = f"; point its `from` at the last block of each level ({RENUMBER_HINT})"
    return WiringIssue(h, "head-strides", f"{name} reads rows {got}: {'; '.join(problems)}{hint}", (h, *src))
