"""Loading the user's attention modules: ``--plugin``, ``YOLOATTN_PLUGINS`` and entry points.

A plug-in is a Python file or an importable module that holds attention classes: decorated with
``yoloattn.register_attention`` (they register when imported), or plain ``nn.Module`` classes as
people copy them from a paper's repository, registered under their class name when named (see
docs/plugins.md). Three ways in:

- ``--plugin FILE.py`` or ``--plugin package.module`` on any command that builds models
  (repeatable); a file is imported as the module named by its stem, so that checkpoints can import
  it again (``mymodule.py`` -> ``mymodule``). ``FILE.py:ClassName`` registers that undecorated class;
  without the colon, the command's ``--modules``/``--module`` names pick undecorated classes;
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
           "load_plugins", "loaded", "plugin_key_fields", "specs_for", "split_class", "used_plugins"]

ENV_VAR = "YOLOATTN_PLUGINS"
ENTRY_POINT_GROUP = "yoloattn.modules"

_LOADED: dict[str, str] = {}  # what was asked for -> the module name it was imported as


def is_plugin_file(spec: str) -> bool:
    """Whether a plug-in spec names a ``.py`` file (else a module path to import)."""
    return spec.endswith(".py") or os.sep in spec or "/" in spec


def split_class(spec: str) -> tuple[str, str | None]:
    """``"a/b.py:Name"`` -> ``("a/b.py", "Name")``; a spec without a class after a colon -> ``(spec, None)``
    (a Windows drive letter, ``C:\\x.py``, is not a class)."""
    head, colon, tail = str(spec).strip().rpartition(":")
    return (head, tail) if colon and head and tail.isidentifier() else (str(spec).strip(), None)


def load_plugin(spec: str, names=()) -> list[str]:
    """Import one plug-in and register its attention classes; returns the names of the modules it holds.

    ``spec``: a ``.py`` path or a module path, optionally ``:ClassName`` to register that undecorated
    ``nn.Module`` class under its class name. ``names``: module names the command asked for (``--modules``,
    ``--module``); an undecorated class of the plug-in with one of these names (any case) is registered too.
    Registered classes go through the same shape probe as decorated ones.

    Raises:
        PluginError: the file or module does not exist, fails to import, its stem is not a valid
            module name or clashes with another module, the named class is missing or not an
            ``nn.Module`` class, or the plug-in ends up with no attention module.
    """
    spec, class_name = split_class(spec)
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
    decorated = _registered_from(module_name)
    module = sys.modules[module_name]
    if class_name is not None:
        chosen = [modules.register_class(module, class_name, spec)]
    else:
        known = {n.lower() for n in modules.names()}
        wanted = [n for n in names if n.lower() not in known]
        chosen = [modules.register_class(module, found, spec) for found in _classes_named(module, wanted)]
    if not decorated and not chosen:
        classes = ", ".join(modules.module_classes(module)) or "none"
        raise PluginError(f"plug-in {spec} registered no attention module: name its class, --plugin "
                          f"{spec}:ClassName (its nn.Module classes: {classes}), or in --modules, or decorate it "
                          "with @yoloattn.register_attention(\"Name\") (see docs/plugins.md)")
    if decorated:
        _LOADED[key] = module_name
    for name in chosen:  # another process re-registers them from this spelling (YOLOATTN_PLUGINS)
        _LOADED[f"{key}:{name}"] = module_name
    return _registered_from(module_name)


def _registered_from(module_name: str) -> list[str]:
    return [s.name for s in modules.table() if s.source == "plug-in" and s.origin == module_name]


def _classes_named(module, wanted) -> list[str]:
    """The names of ``module``'s nn.Module classes that are in ``wanted``, compared in any case."""
    by_lower = {name.lower(): name for name in modules.module_classes(module)}
    return list(dict.fromkeys(by_lower[w.lower()] for w in wanted if w.lower() in by_lower))


def load_plugins(specs, names=()) -> list[str]:
    """``load_plugin`` for each item (items may also be comma lists); returns every name registered.
    ``names``: the module names a command asked for, which may pick undecorated classes (see load_plugin)."""
    found = []
    for item in specs or ():
        for spec in str(item).split(","):
            if spec.strip():
                found += load_plugin(spec, names)
    return list(dict.fromkeys(found))


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
    """Plug-ins loaded in this process by ``--plugin`` or ``YOLOATTN_PLUGINS`` (absolute paths or module names,
    ``:ClassName`` for each undecorated class registered): specs that re-register the same modules elsewhere."""
    return list(_LOADED)


def specs_for(spec: str) -> list[str]:
    """How to name the plug-in ``spec`` (as the user typed it) so that another command registers what it
    registered here: the spec itself for decorated classes, ``spec:ClassName`` for each undecorated one."""
    path, class_name = split_class(spec)
    if class_name is not None:
        return [spec]
    key = str(Path(path).expanduser().resolve()) if is_plugin_file(path) else path
    found = [spec] if key in _LOADED else []
    found += [f"{path}:{split_class(k)[1]}" for k in _LOADED if k != key and split_class(k)[0] == key]
    return found or [spec]


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
