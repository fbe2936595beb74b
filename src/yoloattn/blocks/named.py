"""How a block family makes its classes, and how a family module exposes the built-in modules' blocks.

Checkpoints pickle a block by ``__module__`` and ``__qualname__``: ``named_block`` sets both (``home`` is
the family's file for the built-ins, the module's origin for timm's and plug-ins'), and
``builtin_blocks`` makes one class per built-in module for the family file to keep as its attributes
(``yoloattn.blocks.csp.C2f_MQA``), a path that never changes.
"""

from __future__ import annotations

from ..modules import builtin_names


def named_block(name: str, bases: tuple, namespace: dict, doc: str, home: str) -> type:
    """``type(name, bases, namespace)`` with the docstring, ``__module__`` = home and ``__qualname__`` = name."""
    cls = type(name, bases, {**namespace, "__doc__": doc, "__module__": home})
    cls.__qualname__ = name
    return cls


def builtin_blocks(*factories) -> dict[str, type]:
    """``{class name: class}`` of every factory for every built-in module, in table order."""
    return {cls.__name__: cls for module in builtin_names() for cls in (factory(module) for factory in factories)}
