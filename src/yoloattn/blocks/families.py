"""Every YOLO block of one attention module, from its table row: the YAML names a module gets.

``FAMILIES`` declares the block families (``C2f_M``, ``C3k2_M``, ``C2PSA_M``, ``PSA_M``,
``A2C2f_M``, ``RepNCSPELAN4_M``): factory, Ultralytics channel contract and summary.
``block_classes(spec)`` returns ``{yaml_name: class}`` for a module: the fixed classes of ``csp.py`` /
``psa.py`` / ``a2c2f.py`` / ``elan.py`` for a built-in, classes made now for timm's and plug-in modules.

Classes made at run time are not attributes of any module, so they pickle through
:func:`rebuild_block` (``(origin, yaml_name, file)``): loading a checkpoint imports the module's origin
(``yoloattn`` for timm's layers, the plug-in's module for the user's), whose registration makes the
class again, and says which plug-in to make importable when that fails. ``rebuild_block``'s path is
stored in checkpoints and never moves.
"""

from __future__ import annotations

import importlib
import sys

from .. import modules
from . import a2c2f, csp, elan, psa
from .a2c2f import a2c2f_family
from .csp import c2f_family, c2psa_family, c3k2_family
from .elan import elan_family
from .psa import psa_family
from .units import AttentionLayer

#: family -> (factory, Ultralytics channel contract (see integration/registry.py), summary)
FAMILIES = {
    "C2f": (c2f_family, "csp", "YOLOv8 C2f, Bottlenecks -> {m} units"),
    "C3k2": (c3k2_family, "c3k2", "YOLO11/YOLO26 C3k2, inner blocks -> {m} units"),
    "C2PSA": (c2psa_family, "csp", "YOLO11/YOLO26 C2PSA, PSA attention -> {m} (FFN and residuals stay)"),
    "PSA": (psa_family, "layer", "YOLOv10 PSA, attention -> {m} (FFN and residuals stay)"),
    "A2C2f": (a2c2f_family, "a2c2f", "YOLO12 A2C2f, area attention -> {m} (MLPs, residuals, gamma stay)"),
    "RepNCSPELAN4": (elan_family, "layer", "YOLOv9 RepNCSPELAN4, post-RepCSP 3x3 convs -> {m} units"),
}
_BUILT_IN_HOMES = (csp, psa, a2c2f, elan)  # where the built-in modules' blocks live (their pickle paths)


class Rebuilt:
    """Mixin of blocks made at run time: they pickle as ``rebuild_block(origin, yaml_name, file)``."""

    _yoloattn_origin = "yoloattn"

    def __reduce_ex__(self, protocol):
        reduced = super().__reduce_ex__(protocol)  # (copyreg.__newobj__, (cls,), state, ...)
        module = sys.modules.get(self._yoloattn_origin)
        where = getattr(module, "__file__", None) or ""
        return (rebuild_block, (self._yoloattn_origin, type(self).__name__, where), *reduced[2:])


def rebuild_block(origin: str, yaml_name: str, file: str = ""):
    """An empty instance of the block class `yaml_name` (unpickling fills its state).

    Imports `origin` when the name is not registered yet (a plug-in module registers its modules
    on import). Raises PluginError, naming the module path to make importable, when that fails.
    """
    from ..integration.registry import REGISTRY

    if yaml_name not in REGISTRY:
        try:
            importlib.import_module(origin)
        except ImportError as error:
            seen = f" (it was {file} when the checkpoint was saved)" if file else ""
            raise modules.PluginError(
                f"this checkpoint uses {yaml_name} from the yoloattn plug-in module {origin!r}{seen}, which cannot "
                f"be imported here ({error}): put its folder on PYTHONPATH, or set YOLOATTN_PLUGINS to the file, "
                "or pass --plugin FILE.py"
            ) from None
    if yaml_name not in REGISTRY:  # an undecorated class, registered under its class name when it was saved
        module_name = next((yaml_name[len(f) + 1:] for f in FAMILIES if yaml_name.startswith(f"{f}_")), yaml_name)
        try:
            modules.register_class(sys.modules[origin], module_name)
        except modules.PluginError:
            pass
    if yaml_name not in REGISTRY:
        raise modules.PluginError(f"importing {origin!r} did not register {yaml_name}: the checkpoint was saved with a "
                                  "different version of the plug-in")
    cls = REGISTRY[yaml_name].cls
    return cls.__new__(cls)


def block_classes(spec: modules.AttentionModule) -> dict[str, type]:
    """``{yaml_name: class}``: the block families and the standalone layer of one module."""
    if spec.source == "built-in":
        found = {}
        for family in FAMILIES:
            name = f"{family}_{spec.name}"
            found[name] = next(getattr(home, name) for home in _BUILT_IN_HOMES if hasattr(home, name))
        found[spec.name] = modules.resolve(spec.layer or spec.target, spec)
        return found
    origin = spec.origin if spec.source == "plug-in" else "yoloattn"
    mixin = type("Rebuilt", (Rebuilt,), {"_yoloattn_origin": origin, "__module__": __name__})
    found = {f"{family}_{spec.name}": factory(spec.name, (mixin,), origin) for family, (factory, _, _) in FAMILIES.items()}
    layer = type(spec.name, (mixin, AttentionLayer), {
        "module": spec.name,
        "__module__": origin,
        "__doc__": f"{spec.name} ({spec.source}: {origin}) as a standalone YAML layer: the bare module.",
    })
    layer.__qualname__ = spec.name
    found[spec.name] = layer
    return found
