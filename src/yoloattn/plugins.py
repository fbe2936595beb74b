"""Loading the user's attention modules: ``--plugin``, ``YOLOATTN_PLUGINS`` and entry points.

A plug-in is a Python file or an importable module that registers one or more modules with
``yoloattn.register_attention`` when imported (see docs/plugins.md). Three ways in:

- ``--plugin FILE.py`` or ``--plugin package.module`` on any command that builds models
  (repeatable); a file is imported as the module named by its stem, so that checkpoints can import
  it again (``mymodule.py`` -> ``mymodule``);
- ``YOLOATTN_PLUGINS="a.py,pkg.attn"``, read on ``import yoloattn``; ``compare`` passes the
  plug-ins of its own process to its training subprocesses through it;
- the entry-point group ``yoloattn.modules`` of installed packages: ``MyAttn = "mypkg.attn:MyAttn"``
  registers class ``MyAttn`` of ``mypkg.attn`` under the name ``MyAttn`` on ``import yoloattn``.

Every failure is a one-line ``PluginError`` naming the plug-in.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import os
import sys
from pathlib import Path

from . import modules
from .modules import PluginError
from .yaml_model import rows

__all__ = ["ENTRY_POINT_GROUP", "ENV_VAR", "is_plugin_file", "load_entry_points", "load_environment", "load_plugin",
           "load_plugins", "loaded", "plugin_key_fields", "used_plugins"]

ENV_VAR = "YOLOATTN_PLUGINS"
ENTRY_POINT_GROUP = "yoloattn.modules"

_LOADED: dict[str, str] = {}  # what was asked for -> the module name it was imported as


def is_plugin_file(spec: str) -> bool:
    """Whether a plug-in spec names a ``.py`` file (else a module path to import)."""
    return spec.endswith(".py") or os.sep in spec or "/" in spec


def load_plugin(spec: str) -> list[str]:
    """Import one plug-in (a ``.py`` path or a module path); returns the names of the modules it holds.

    Raises:
        PluginError: the file or module does not exist, fails to import, its stem is not a valid
            module name or clashes with another module, or it registers no attention module.
    """
    spec = str(spec).strip()
    if is_plugin_file(spec):
        path = Path(spec).expanduser().resolve()
        key, module_name = str(path), path.stem
        if not path.is_file():
            raise PluginError(f"plug-in file {spec} does not exist")
        if not module_name.isidentifier():
            raise PluginError(f"plug-in file {spec}: {module_name!r} is not a valid module name (checkpoints import the "
                              "plug-in by it); rename the file, e.g. to " + "".join(c if c.isalnum() else "_" for c in module_name) + ".py")
        existing = sys.modules.get(module_name)
        if existing is not None:
            if Path(getattr(existing, "__file__", "") or "").resolve() != path:
                raise PluginError(f"plug-in file {spec}: the module name {module_name!r} is already taken by "
                                  f"{getattr(existing, '__file__', None) or 'a built-in module'}; rename the file")
        else:
            _import_file(spec, module_name, path)
    else:
        key = module_name = spec
        if module_name not in sys.modules:
            try:
                importlib.import_module(module_name)
            except ModuleNotFoundError as error:
                if error.name and module_name.startswith(error.name):
                    raise PluginError(f"plug-in module {spec!r} cannot be imported: put its folder on PYTHONPATH or "
                                      "pass the .py file instead") from None
                raise PluginError(f"plug-in {spec} failed to import: {type(error).__name__}: {error}") from None
            except PluginError:
                raise
            except Exception as error:
                raise PluginError(f"plug-in {spec} failed to import: {type(error).__name__}: {error}") from None
    registered = [s.name for s in modules.table() if s.source == "plug-in" and s.origin == module_name]
    if not registered:
        raise PluginError(f"plug-in {spec} registered no attention module: decorate a class with "
                          "@yoloattn.register_attention(\"Name\") (see docs/plugins.md)")
    _LOADED[key] = module_name
    return registered


def load_plugins(specs) -> list[str]:
    """``load_plugin`` for each item (items may also be comma lists); returns every name registered."""
    names = []
    for item in specs or ():
        for spec in str(item).split(","):
            if spec.strip():
                names += load_plugin(spec)
    return names


def load_environment() -> None:
    """Plug-ins named by ``YOLOATTN_PLUGINS`` and installed entry points (run on ``import yoloattn``)."""
    load_entry_points()
    load_plugins([os.environ.get(ENV_VAR, "")])


def load_entry_points() -> list[str]:
    """Register every ``yoloattn.modules`` entry point of the installed packages."""
    names = []
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if entry.name in modules.names():
            continue  # imported again (e.g. a second interpreter start in the same environment)
        try:
            target = entry.load()
        except Exception as error:
            raise PluginError(f"entry point {entry.name} = {entry.value!r} ({ENTRY_POINT_GROUP}) failed to load: "
                              f"{type(error).__name__}: {error}") from None
        modules.register_attention(entry.name, target, origin=entry.module)
        names.append(entry.name)
    return names


def loaded() -> list[str]:
    """Plug-ins loaded in this process by ``--plugin`` or ``YOLOATTN_PLUGINS`` (absolute paths or module names)."""
    return list(_LOADED)


def plugin_key_fields(model_yaml: str) -> dict:
    """``{"plug-ins": used_plugins(...)}`` for a model YAML text that uses plug-ins, else ``{}``: the
    fields compare adds to run and cost keys (so built-in models keep the keys they always had)."""
    import yaml

    used = used_plugins(yaml.safe_load(model_yaml) or {})
    return {"plug-ins": used} if used else {}


def used_plugins(model: dict) -> dict[str, str]:
    """``{plug-in module: hash of its source}`` for the plug-in modules a model dict's rows use.

    Keys comparison runs and cached costs: editing a plug-in retrains the models that use it and no
    others. Empty for models of built-in and timm modules only. Raises ModelYamlError for a malformed row.
    """
    from .blocks.families import FAMILIES

    used = {str(row.module) for row in rows(model)}
    found = {}
    for spec in modules.table():
        if spec.source == "plug-in" and used & {spec.name, *(f"{family}_{spec.name}" for family in FAMILIES)}:
            file = getattr(sys.modules.get(spec.origin), "__file__", None)
            source = Path(file).read_bytes() if file and Path(file).is_file() else spec.origin.encode()
            found[spec.origin] = hashlib.sha256(source).hexdigest()[:12]
    return found


def _import_file(spec: str, module_name: str, path: Path) -> None:
    loader_spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(loader_spec)
    sys.modules[module_name] = module  # before executing: register_attention reads the class's module
    try:
        loader_spec.loader.exec_module(module)
    except PluginError:
        del sys.modules[module_name]
        raise
    except Exception as error:
        del sys.modules[module_name]
        raise PluginError(f"plug-in {spec} failed to import: {type(error).__name__}: {error}") from None
