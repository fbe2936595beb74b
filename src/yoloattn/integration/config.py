"""Ultralytics' own check of ``key=value`` arguments, run once before any work starts.

``yoloattn train|val|export`` and ``compare --set`` pass ``key=value`` pairs through to Ultralytics,
which checks their types and ranges only when a run starts (in ``get_cfg`` -> ``check_cfg``): minutes
in, and once per run of a comparison, in a worker's log. :func:`check_ultralytics_args` runs that same
``ultralytics.cfg.check_cfg`` (present in every supported release) up front, so yoloattn never keeps
a copy of Ultralytics' rules.
"""

from __future__ import annotations

import contextlib
import difflib
from typing import Iterator

from ..errors import YoloattnError


class UltralyticsArgumentError(YoloattnError):
    """A ``key=value`` argument that Ultralytics would reject; the message is one line from Ultralytics."""


def check_ultralytics_args(args: dict) -> None:
    """Raise :class:`UltralyticsArgumentError` (one line) when Ultralytics would refuse ``args``.

    ``args`` maps Ultralytics argument names to parsed values (``{"batch": 8, "lr0": 0.01}``). Unknown
    keys are reported with the closest known names; types and ranges are checked by
    ``ultralytics.cfg.check_cfg(..., hard=True)`` on a copy (``args`` is not modified).
    """
    from ultralytics.cfg import DEFAULT_CFG_DICT, check_cfg

    try:
        args = _current_names(args)
    except (TypeError, ValueError) as err:  # e.g. Ultralytics' "Deprecated 'end2end' must be a bool."
        raise UltralyticsArgumentError(" ".join(str(err).split())) from None
    for key in args:
        if key not in DEFAULT_CFG_DICT:
            close = difflib.get_close_matches(key, list(DEFAULT_CFG_DICT), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise UltralyticsArgumentError(f"{key!r} is not an Ultralytics argument{hint} (see `yolo cfg` for the list)")
    try:
        check_cfg(dict(args), hard=True)
    except (TypeError, ValueError) as err:
        raise UltralyticsArgumentError(" ".join(str(err).split())) from None
    batch = args.get("batch")
    if isinstance(batch, (int, float)) and not isinstance(batch, bool) and not (batch >= 1 or batch == -1
                                                                                 or 0 < batch < 1):
        # Ultralytics takes every batch < 1 for AutoBatch, so a typo such as -5 would silently mean "automatic"
        raise UltralyticsArgumentError(f"'batch={batch}' is invalid: use a batch size >= 1, batch=-1 (AutoBatch) or "
                                       "a fraction 0-1 of the GPU memory for AutoBatch")
    if args.get("device") is not None:
        check_device(args["device"])


def _current_names(args: dict) -> dict:
    """A copy of ``args`` with the names Ultralytics still accepts but has renamed (``int8``/``half`` ->
    ``quantize`` in 8.4, ``boxes`` -> ``show_boxes``, ...) mapped as Ultralytics maps them when a run starts
    (``ultralytics.cfg._handle_deprecation``, private: skipped if a release lacks it). Its deprecation warning is
    left to the run itself, so it is printed once."""
    import logging

    import ultralytics.cfg as cfg

    handle = getattr(cfg, "_handle_deprecation", None)
    if handle is None:
        return dict(args)
    with ultralytics_log_level(logging.ERROR):
        return handle(dict(args))


@contextlib.contextmanager
def ultralytics_log_level(level: int) -> Iterator[None]:
    """Ultralytics' logger at ``level`` (``logging.WARNING``, ...) inside the block, its own level restored
    after, also on an exception: for Ultralytics calls whose info lines are no news to the user."""
    from ultralytics.utils import LOGGER

    before = LOGGER.level
    LOGGER.setLevel(level)
    try:
        yield
    finally:
        LOGGER.setLevel(before)


def check_device(device, as_option: bool = False) -> None:
    """Raise :class:`UltralyticsArgumentError` when ``device`` names hardware this machine does not have.

    The message spells the argument as ``device=0`` (key=value), or as ``--device 0`` with ``as_option``.

    Accepts what Ultralytics accepts: ``cpu``, ``mps``, GPU indices (``0``, ``0,1``, ``cuda:0``); a
    GPU index must be below ``torch.cuda.device_count()``. Ultralytics' own ``select_device`` would
    refuse the same values, but only once training starts (and it edits ``CUDA_VISIBLE_DEVICES``).
    """
    import torch

    def spelled(value) -> str:
        return f"--device {value}" if as_option else f"device={value}"

    text = str(device).strip().lower()
    if text in ("cpu", ""):
        return
    if text == "mps":
        if not torch.backends.mps.is_available():
            raise UltralyticsArgumentError(f"{spelled('mps')}: Apple's MPS backend is not available here; "
                                           f"use {spelled('cpu')}")
        return
    if not torch.cuda.is_available():
        raise UltralyticsArgumentError(f"{spelled(device)}: no CUDA GPU is visible to torch here; use {spelled('cpu')}")
    count = torch.cuda.device_count()
    for part in text.removeprefix("cuda:").split(","):
        if not part.strip().isdigit() or int(part) >= count:
            raise UltralyticsArgumentError(f"{spelled(device)}: expected cpu or GPU indices 0..{count - 1} "
                                           f"(e.g. {spelled(0)} or {spelled('0,1')})")
