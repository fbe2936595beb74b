"""The base class of every error yoloattn reports to a user.

A ``YoloattnError`` is bad input (a model name, a YAML row, a dataset, a setting) with a message that
names the problem and the fix; the command line prints it as one line and exits with status 2. Any
other exception is a bug and keeps its traceback. It is a ``ValueError``, so callers that caught
the specific errors as ``ValueError`` keep working.
"""

from __future__ import annotations

__all__ = ["YoloattnError"]


class YoloattnError(ValueError):
    """Bad input from the user; the message says what is wrong and how to fix it."""
