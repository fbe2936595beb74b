"""Ultralytics' own check of ``key=value`` arguments, run once before any work starts.

``yoloattn train|val|export`` and ``compare --set`` pass ``key=value`` pairs through to Ultralytics,
which checks their types and ranges only when a run starts (in ``get_cfg`` -> ``check_cfg``): minutes
in, and once per run of a comparison, in a worker's log. :func:`check_ultralytics_args` runs that same
``ultralytics.cfg.check_cfg`` (present in every supported release) up front, so yoloattn never keeps
a copy of Ultralytics' rules.
"""

from __future__ import annotations

import difflib


class UltralyticsArgumentError(ValueError):
    """A ``key=value`` argument that Ultralytics would reject; the message is one line from Ultralytics."""


def check_ultralytics_args(args: dict) -> None:
    """Raise :class:`UltralyticsArgumentError` (one line) when Ultralytics would refuse ``args``.

    ``args`` maps Ultralytics argument names to parsed values (``{"batch": 8, "lr0": 0.01}``). Unknown
    keys are reported with the closest known names; types and ranges are checked by
    ``ultralytics.cfg.check_cfg(..., hard=True)`` on a copy (``args`` is not modified).
    """
    from ultralytics.cfg import DEFAULT_CFG_DICT, check_cfg

    for key in args:
        if key not in DEFAULT_CFG_DICT:
            close = difflib.get_close_matches(key, list(DEFAULT_CFG_DICT), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise UltralyticsArgumentError(f"{key!r} is not an Ultralytics argument{hint} (see `yolo cfg` for the list)")
    try:
        check_cfg(dict(args), hard=True)
    except (TypeError, ValueError) as err:
        raise UltralyticsArgumentError(" ".join(str(err).split())) from None
