"""YOLO blocks composed from Ultralytics parts and the attention modules."""

from .csp import (
    C2f_ACmix, C2f_iRMB, C2f_MLLA, C2f_MQA,
    C2PSA_ACmix, C2PSA_iRMB, C2PSA_MLLA, C2PSA_MQA,
    C3k2_ACmix, C3k2_iRMB, C3k2_MLLA, C3k2_MQA,
)
from .elan import MMQARepNCSPELAN4, RepNCSPELAN4_ACmix, RepNCSPELAN4_iRMB, RepNCSPELAN4_MLLA, RepNCSPELAN4_MQA
from .standalone import MQALayer
from .units import MODULES, ACmixBottleneck, MQABlock
