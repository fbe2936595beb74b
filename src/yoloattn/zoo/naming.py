"""The one naming scheme of attention variants: the zoo, ``yoloattn variant``, ``yoloattn compare`` and the docs.

A variant is named ``<base>-<module>-<rule>``: the base model's stem (with its scale letter when
it has one), the module in lower case, and the placement rule of ``make_variant`` as written on
the command line, with ``@`` dropped and ``,`` turned into ``-``::

    yolov8   + MLLA  + csp        -> yolov8-mlla-csp       (the bundled yolov8-mlla-csp.yaml)
    yolo11n  + MQA   + psa        -> yolo11n-mqa-psa
    yolov9t  + iRMB  + sppf       -> yolov9t-irmb-sppf
    yolo11n  + MQA   + csp@16,32  -> yolo11n-mqa-csp16-32

A rule that implies its module (``mmqa``: the YOLOv9 MQA tutorial) drops the module:
``yolov9c + MQA + mmqa -> yolov9c-mmqa``.

Before this scheme the bundled files were named after the block a rule rewrites in each family
(``yolov8-mlla-c2f``, ``yolo11-mqa-c3k2``, ``yolov9t-irmb-elan``, ``yolov9t-irmb-sppelan``).
Those names stay valid as aliases: :data:`LEGACY_TAGS` is that old tag table, and the zoo derives
every alias from it and its own plan (``zoo.aliases()``), so no alias is ever listed by hand.
"""

from __future__ import annotations

from ..yaml_model import split_scale, with_scale  # noqa: F401  (the zoo's scale rule, kept importable here)
from ..rules import implied_module

# The former file-name tag of a rule, per Ultralytics model family (the folder under cfg/models),
# where it differed from the rule name: the block the rule rewrites there. Aliases only.
LEGACY_TAGS = {"v8": {"csp": "c2f"}, "11": {"csp": "c3k2"}, "v9": {"csp": "elan", "sppf": "sppelan"}}



def rule_tag(where: str) -> str:
    """The placement as it appears in a name: ``csp@16,32`` -> ``csp16-32``."""
    return where.replace(" ", "").replace("@", "").replace(",", "-")


def variant_stem(base_stem: str, module: str, where: str) -> str:
    """``yolo11n`` + MLLA + ``psa`` -> ``yolo11n-mlla-psa`` (``csp@16,32`` -> ``csp16-32``; ``mmqa`` has no module)."""
    if implied_module(where):
        return f"{base_stem}-{rule_tag(where)}"
    return f"{base_stem}-{module.lower()}-{rule_tag(where)}"


def legacy_stem(family: str, base_stem: str, module: str, where: str) -> str | None:
    """The pre-scheme name of a bundled variant, or None where it was already the rule name."""
    tag = LEGACY_TAGS.get(family, {}).get(where)
    if tag is None or implied_module(where):
        return None
    return f"{base_stem}-{module.lower()}-{tag}"
