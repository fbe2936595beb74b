"""yoloattn: paper-faithful, fast, shape-robust attention modules for Ultralytics YOLO.

Importing the package registers every yoloattn YAML name with Ultralytics (idempotently), so
``YOLO("yolo11n-mlla-psa.yaml")`` builds and any process that unpickles a yoloattn checkpoint
re-registers on its own. ``yoloattn.attention`` itself needs only torch.
"""

__version__ = "0.1.0"

from .offline import launched_as_cli, setup_offline

if launched_as_cli():  # Ultralytics reads its network switches at import: set them before importing it
    setup_offline()

try:
    import ultralytics
except ImportError:  # the attention modules work without Ultralytics
    pass
else:
    from .compat import UnsupportedUltralyticsError, check_ultralytics

    try:
        check_ultralytics(ultralytics.__version__)
    except UnsupportedUltralyticsError as err:
        if launched_as_cli():  # the `yoloattn` command prints one line, not an import traceback
            import sys

            print(f"yoloattn: error: {err}", file=sys.stderr)
            raise SystemExit(2) from None
        raise
    from .integration import REGISTRY, DetectionTrainer, UnknownModuleError, install, ray_runtime_env

    install()
    from .integration.locations import pin_output_dirs

    if launched_as_cli():  # results go where the user ran the command (see integration/locations.py)
        pin_output_dirs(".")

    from . import data, zoo  # the public surface the README uses: yoloattn.zoo.path(...), yoloattn.data.generate(...)
