"""YOLO blocks composed from Ultralytics parts and the attention modules of the table (``modules.py``).

The built-in modules' blocks (``C2f_MQA``, ``C3k2_iRMB``, ``PSA_MQA``, ``A2C2f_MLLA``,
``RepNCSPELAN4_MLLA``, ...) are attributes here and of ``csp`` / ``psa`` / ``a2c2f`` / ``elan``;
timm's and plug-in modules' blocks are made by ``families.py``.
"""

from . import a2c2f, csp, elan, psa
from .a2c2f import *  # noqa: F403  (A2C2f_* of the built-in modules: YOLO12)
from .csp import *  # noqa: F403  (C2f_*, C3k2_*, C2PSA_* of the built-in modules)
from .elan import *  # noqa: F403  (RepNCSPELAN4_* and MMQARepNCSPELAN4)
from .psa import *  # noqa: F403  (PSA_* of the built-in modules: YOLOv10)
from .standalone import MQALayer
from ..modules import builtin_names
from .units import ACmixBottleneck, AttentionBottleneck, AttentionLayer, AttentionUnit, MQABlock

MODULES = builtin_names()  # the built-in module names, read from the table (kept for existing imports)

__all__ = ["MODULES", *csp.__all__, *psa.__all__, *a2c2f.__all__, *elan.__all__, "ACmixBottleneck", "AttentionBottleneck", "AttentionLayer", "AttentionUnit", "MQABlock", "MQALayer"]
