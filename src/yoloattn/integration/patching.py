"""How yoloattn replaces a function of an Ultralytics module: idempotently, and reversibly.

The wrapper keeps the original as ``wrapper._yoloattn_original``; installing twice is a no-op (so
``import yoloattn`` in a process that unpickled a checkpoint first, or a reload, never wraps a
wrapper), and :func:`unwrap` puts the original back.
"""

from __future__ import annotations

from types import ModuleType
from typing import Callable

WRAPPED_MARK = "_yoloattn_original"


def wrap(module: ModuleType, name: str, make_wrapper: Callable[[Callable], Callable]) -> None:
    """Replace ``module.name`` by ``make_wrapper(original)`` unless it is already a yoloattn wrapper."""
    original = getattr(module, name)
    if hasattr(original, WRAPPED_MARK):
        return
    wrapper = make_wrapper(original)
    wrapper.__doc__ = original.__doc__
    setattr(wrapper, WRAPPED_MARK, original)
    setattr(module, name, wrapper)


def unwrap(module: ModuleType, name: str) -> None:
    """Restore the function :func:`wrap` replaced (no-op when ``module.name`` is not a wrapper)."""
    original = getattr(getattr(module, name), WRAPPED_MARK, None)
    if original is not None:
        setattr(module, name, original)
