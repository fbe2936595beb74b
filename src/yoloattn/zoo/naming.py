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

import re

# Rules that take one module only and are named without it.
IMPLIED_MODULE = {"mmqa": "MQA"}

# The former file-name tag of a rule, per Ultralytics model family (the folder under cfg/models),
# where it differed from the rule name: the block the rule rewrites there. Aliases only.
LEGACY_TAGS = {"v8": {"csp": "c2f"}, "11": {"csp": "c3k2"}, "v9": {"csp": "elan", "sppf": "sppelan"}}

SCALE_IN_STEM = re.compile(r"^(yolov?\d+)([nslmx])(?=-)")  # yolov8n-mlla-csp: scale n of yolov8-mlla-csp


def rule_tag(where: str) -> str:
    """The placement as it appears in a name: ``csp@16,32`` -> ``csp16-32``."""
    return where.replace(" ", "").replace("@", "").replace(",", "-")


def variant_stem(base_stem: str, module: str, where: str) -> str:
    """``yolo11n`` + MLLA + ``psa`` -> ``yolo11n-mlla-psa`` (``csp@16,32`` -> ``csp16-32``; ``mmqa`` has no module)."""
    if where in IMPLIED_MODULE:
        return f"{base_stem}-{rule_tag(where)}"
    return f"{base_stem}-{module.lower()}-{rule_tag(where)}"


def legacy_stem(family: str, base_stem: str, module: str, where: str) -> str | None:
    """The pre-scheme name of a bundled variant, or None where it was already the rule name."""
    tag = LEGACY_TAGS.get(family, {}).get(where)
    if tag is None or where in IMPLIED_MODULE:
        return None
    return f"{base_stem}-{module.lower()}-{tag}"


def split_scale(stem: str) -> tuple[str, str]:
    """``yolov8n-mlla-csp`` -> (``yolov8-mlla-csp``, ``n``); names without a scale letter get ''."""
    match = SCALE_IN_STEM.match(stem)
    if not match:
        return stem, ""
    return match.group(1) + stem[match.end():], match.group(2)


def with_scale(stem: str, scale: str) -> str:
    """``yolov8-mlla-csp`` + ``n`` -> ``yolov8n-mlla-csp``."""
    return re.sub(r"^(yolov?\d+)(?=-)", rf"\g<1>{scale}", stem, count=1) if scale else stem
