"""Which Ultralytics releases yoloattn supports, checked once when ``yoloattn`` is imported.

The bridge (``integration/``) relies on ``parse_model`` details that change between releases (8.4
inserted ``attn`` into ``C3k2``'s arguments, for one). The supported range is the last 8.3 release
and the 8.4 line; ``make test`` runs the bridge, zoo-build and reload tests against both ends
(``ULTRALYTICS_OLDEST`` in a second install next to the venv, the newest from ``constraints.txt``).
``pyproject.toml`` states the same range (a test keeps them equal).
"""

from __future__ import annotations

import re

ULTRALYTICS_OLDEST = "8.3.253"  # the last 8.3 release
ULTRALYTICS_BELOW = "8.5"  # first release line not yet supported
ULTRALYTICS_RANGE = f">={ULTRALYTICS_OLDEST},<{ULTRALYTICS_BELOW}"


class UnsupportedUltralyticsError(ImportError):
    """The installed Ultralytics is outside ``ULTRALYTICS_RANGE``; the message names the range and the fix."""


def _release(version: str) -> tuple[int, ...]:
    """``"8.4.190"`` -> (8, 4, 190); pre/post/local suffixes are ignored (``8.4.0rc1`` -> (8, 4, 0))."""
    match = re.match(r"\s*v?(\d+(?:\.\d+)*)", str(version))
    if not match:
        raise ValueError(f"not a version number: {version!r}")
    return tuple(int(part) for part in match.group(1).split("."))


def is_supported(version: str) -> bool:
    """Whether an Ultralytics version string lies in ``ULTRALYTICS_RANGE``."""
    return _release(ULTRALYTICS_OLDEST) <= _release(version) < _release(ULTRALYTICS_BELOW)


def check_ultralytics(version: str) -> None:
    """Raise :class:`UnsupportedUltralyticsError` (one line) if ``version`` is outside the supported range."""
    if not is_supported(version):
        raise UnsupportedUltralyticsError(
            f"yoloattn supports ultralytics{ULTRALYTICS_RANGE}, but ultralytics {version} is installed; "
            f"install a supported release: pip install 'ultralytics{ULTRALYTICS_RANGE}'"
        )
