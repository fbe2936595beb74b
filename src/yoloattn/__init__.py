"""yoloattn: paper-faithful, fast, shape-robust attention modules for Ultralytics YOLO."""

__version__ = "0.1.0"
