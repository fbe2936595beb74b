"""``yoloattn variant``'s job as a library function: the YAML of a module placed into a base model, checked
before anything is written.

:func:`plan_variant_file` resolves the base by name (``compare.models``), places the module by its rule
(``zoo.make_variant``), keeps the scale Ultralytics will read from the output's file name, and checks the
wiring (``integration.wiring.check_variant``); :meth:`VariantFile.write` writes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .errors import YoloattnError


class VariantFileError(YoloattnError):
    """An output name that cannot hold the variant (not .yaml, or a scale the base does not have)."""


@dataclass(frozen=True)
class VariantFile:
    """A variant ready to write: its path, YAML text, notes for the user and wiring warnings."""

    path: Path
    text: str
    module: str  # canonical module name
    where: str  # the placement rule used
    notes: tuple[str, ...]  # what the user should know about the scale
    warnings: tuple[str, ...]  # wiring issues that do not stop the build
    embedded_data: bool  # whether the embedded dataset fits its task (integration.heads.TASKS)
    task: str

    def write(self) -> Path:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(self.text)
        return self.path


def plan_variant_file(base_name: str, module: str, where: str | None = None, output: str | None = None) -> VariantFile:
    """The variant of ``base_name`` (a YAML name or path) with ``module`` placed by ``where`` (default: the base's
    own attention block, else csp), to be written to ``output`` (default ``<base>-<module>-<rule>.yaml`` here).

    Ultralytics reads the scale from the file name: without a scale letter in ``output``, only the base's
    scale is kept (so the file still builds at that scale; a note says so).

    Raises ModelNameError (unknown base), PluginError (unknown module), VariantError (a placement the base
    does not have), VariantFileError (an output that is not .yaml, or names a scale the base lacks),
    WiringError (the variant would not build; rows of the base named when the base itself is mis-wired).
    """
    from . import zoo
    from .compare.models import default_placement, load_model_dict, model_file, resolve_model, scale_of, variant_stem
    from .integration.heads import task_info
    from .integration.wiring import check_variant
    from .modules import get

    module = get(module).name
    base, scale, stem = load_model_dict(base_name)
    where = where or default_placement(base)
    variant = zoo.make_variant(base, module, where)
    out = Path(output or f"{variant_stem(stem, module, where)}.yaml")
    if out.suffix not in (".yaml", ".yml"):
        raise VariantFileError(f"the output must be a .yaml file, got {out}")
    notes = []
    scales = variant.get("scales") or {}
    out_scale = scale_of(out)
    if scales and out_scale and out_scale not in scales:
        raise VariantFileError(f"{out.name} asks for scale {out_scale!r}, but the base has scales {', '.join(scales)}")
    if scales and scale and not out_scale:
        variant["scales"] = {scale: scales[scale]}  # without a letter Ultralytics would take the first row
        notes.append(f"{out.name} has no scale letter, so only scale {scale!r} of {stem} is kept")
    elif scales and out_scale and scale and out_scale != scale:
        notes.append(f"the file name selects scale {out_scale!r} (the base was {scale!r})")
    issues = check_variant(variant, base, base_file=str(model_file(resolve_model(base_name))), scale=scale,
                           variant_scale=out_scale, base_label=base_name,
                           variant_label=f"{out.name} (from {base_name})")
    text = zoo.render(variant, f"{stem} + {module} ({where} placement), by `yoloattn variant`",
                      notes=("Its blocks are registered by `import yoloattn` (or run it with the yoloattn CLI); "
                             "stock YOLO(...) cannot build it without that import.",))
    task = task_info(variant)
    return VariantFile(out, text, module, where, tuple(notes), tuple(str(i) for i in issues), task.embedded, task.name)
