"""Name -> (class, channel contract) for every YAML module name yoloattn provides.

The contract says how Ultralytics' `parse_model` must treat a row so that our blocks get exactly the
stock channel bookkeeping:

- ``layer``: ``(c1, c2, *args)`` like ``Conv``: c1 from the previous layer, c2 width-scaled and capped.
- ``csp``:   ``(c1, c2, n, *args)`` like ``C2f``: additionally n is depth-scaled and inserted.
- ``c3k2``:  like ``csp`` but also the ``C3k2`` rules: forces ``c3k=True`` at scales m/l/x and makes
  the Detect head non-legacy (YOLO11 head), exactly as a stock ``C3k2`` row does.
- ``a2c2f``: like ``csp`` but also the ``A2C2f`` rules: appends ``residual=True, mlp_ratio=1.2`` at
  scales l/x and makes the Detect head non-legacy, exactly as a stock ``A2C2f`` row does.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from ..errors import YoloattnError

CONTRACTS = ("layer", "csp", "c3k2", "a2c2f")


class UnknownModuleError(YoloattnError):
    """A YAML row names a module that neither Ultralytics nor yoloattn provides."""


@dataclass(frozen=True)
class Entry:
    name: str
    cls: type
    contract: str
    summary: str
    params: str = ""  # parameter-count formula, shown by `yoloattn modules`

    def __post_init__(self):
        if self.contract not in CONTRACTS:
            raise ValueError(f"{self.name}: contract must be one of {CONTRACTS}, got {self.contract!r}")


class Registry:
    def __init__(self):
        self._entries: dict[str, Entry] = {}

    def register(self, entry: Entry) -> None:
        known = self._entries.get(entry.name)
        if known is not None and known.cls is not entry.cls:
            raise ValueError(f"{entry.name!r} is already registered to {known.cls.__qualname__}")
        self._entries[entry.name] = entry

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __getitem__(self, name: str) -> Entry:
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownModuleError(unknown_name_message(name, self.names())) from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def entries(self) -> list[Entry]:
        return [self._entries[n] for n in self.names()]


def unknown_name_message(name: str, candidates, where: str = "") -> str:
    close = difflib.get_close_matches(name, list(dict.fromkeys(candidates)), n=4, cutoff=0.6)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    return (
        f"Unknown module {name!r}{where}.{hint} "
        "Run `yoloattn modules` to list the yoloattn names; Ultralytics' own names (Conv, C2f, C3k2, ...) also work; "
        "a plug-in module's names need the plug-in loaded (--plugin FILE.py or YOLOATTN_PLUGINS)."
    )


REGISTRY = Registry()
