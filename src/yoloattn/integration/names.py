"""Bundled zoo names resolve in stock ``YOLO(...)``: ``YOLO("yolo11n-mlla-psa.yaml")`` after ``import yoloattn``.

Ultralytics turns a model YAML name into a file in ``yaml_model_load`` (``ultralytics.nn.tasks``),
which calls ``check_yaml`` twice: with the name as given, then with the scale letter removed
(``yolo11n-mlla-psa.yaml`` -> ``yolo11-mlla-psa.yaml``), and ``check_file`` searches only the
working directory and the Ultralytics package. Every model build goes through that function: the
``YOLO()`` constructor, the trainer's rebuild (also in DDP workers, which import yoloattn through
its trainer class) and ``DetectionModel("name.yaml")``.

``install`` rebinds ``check_yaml`` in the ``ultralytics.nn.tasks`` namespace only (the global that
``yaml_model_load`` reads) to a wrapper that asks Ultralytics first and falls back to the bundled
file of the same name when Ultralytics finds nothing. A file that exists where the user named it,
or one of Ultralytics' own names, therefore always wins; only names Ultralytics cannot resolve
reach the zoo. The scale letter keeps working because Ultralytics reads it from the name it was
given, not from the resolved path. The same wrapper resolves a scaled path to its unified file by
the file name alone (``scaled_sibling``), where Ultralytics' regex over the whole path can strip a
letter from a folder name instead.
"""

from __future__ import annotations

from pathlib import Path

from ultralytics.nn import tasks

from ..yaml_model import unified_name
from .patching import unwrap, wrap



def bundled_file(file) -> str | None:
    """The bundled zoo YAML for a bare file name such as ``yolo11-mlla-psa.yaml``, or None.

    Only bare names (no folder) ending in .yaml/.yml are looked up; the returned path exists. A
    former zoo name (``yolov8-mlla-c2f.yaml``, see ``zoo.aliases()``) gives its file under the
    current name (``yolov8-mlla-csp.yaml``).
    """
    from .. import zoo

    name = Path(str(file))
    if len(name.parts) != 1 or name.suffix not in (".yaml", ".yml"):
        return None
    candidate = zoo.YAML_DIR / zoo.canonical_name(name.name)
    return str(candidate) if candidate.is_file() else None


def scaled_sibling(file) -> str | None:
    """For a scaled YAML path that does not exist (``/dir/yolov8n-mqa-csp.yaml``), its unified file in
    the same folder (``/dir/yolov8-mqa-csp.yaml``) if that exists, else None.

    Ultralytics applies its scale-letter regex to the whole path string, so a folder such as
    ``/tmp/tmp.ab8x`` (a digit then n/s/m/l/x) loses a letter and the file is "not found"; applied to
    the file name only, the rule means what it says.
    """
    path = Path(str(file))
    if path.suffix not in (".yaml", ".yml") or path.is_file():
        return None
    unified = path.with_name(unified_name(path.stem) + path.suffix)
    return str(unified) if unified != path and unified.is_file() else None


def _fallback(file) -> str | None:
    """Where yoloattn finds a YAML that Ultralytics did not: the zoo, or a scaled path's unified file.

    8.4 asks for the scaled path leniently first and 8.3 for the unified path first, so both kinds of
    call (lenient, or raising FileNotFoundError) fall back here.
    """
    return bundled_file(file) or scaled_sibling(file)


def install() -> None:
    """Wrap ``ultralytics.nn.tasks.check_yaml`` (idempotent)."""

    def make_wrapper(original):
        def check_yaml(file, *args, **kwargs):
            try:
                found = original(file, *args, **kwargs)
            except FileNotFoundError:
                found = _fallback(file)
                if found is None:
                    raise
                return found
            return found or _fallback(file) or found

        return check_yaml

    wrap(tasks, "check_yaml", make_wrapper)


def uninstall() -> None:
    unwrap(tasks, "check_yaml")
