"""The error every dataset check raises (its own module, so that the resolver and the validator both use it
without importing each other)."""

from __future__ import annotations

from ..errors import YoloattnError


class DatasetError(YoloattnError):
    """A YOLO dataset that Ultralytics would reject or silently train wrongly on."""
