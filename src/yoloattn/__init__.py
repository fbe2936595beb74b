"""yoloattn: paper-faithful, fast, shape-robust attention modules for Ultralytics YOLO.

Importing the package registers every yoloattn YAML name with Ultralytics (idempotently), so
``YOLO("yolo11n-mlla-psa.yaml")`` builds and any process that unpickles a yoloattn checkpoint
re-registers on its own. ``yoloattn.attention`` itself needs only torch.

The ``yoloattn`` command runs Ultralytics offline and writes under its working directory. A Python
script gets the same with two calls after the import (the README's example makes them)::

    import yoloattn
    yoloattn.go_offline()        # no pip installs, downloads, analytics or font probe (integration/network.py)
    yoloattn.pin_output_dirs()   # runs/datasets/weights under ./ (integration/locations.py)

Set ``YOLO_OFFLINE=1`` in the environment before the import to also skip Ultralytics' DNS probe at
import time.
"""

__version__ = "0.1.0"

from .errors import YoloattnError
from .modules import PluginError, register_attention  # the table is dependency-free (modules.py)
from .offline import launched_as_cli, setup_offline

_CLI = launched_as_cli()
if _CLI:  # Ultralytics reads its network switches at import: set them before importing it
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
        if _CLI:  # the `yoloattn` command prints one line, not an import traceback
            import sys

            print(f"yoloattn: error: {err}", file=sys.stderr)
            raise SystemExit(2) from None
        raise
    from .integration import (REGISTRY, DetectionTrainer, OBBTrainer, PoseTrainer, RTDETRTrainer, SegmentationTrainer,
                              UnknownModuleError, install, ray_runtime_env)
    from .integration.transfer import TransferReport, WeightsError, transfer_weights

    install()
    from .plugins import load_environment as _load_plugins

    if _CLI:
        try:
            _load_plugins()
        except PluginError as err:  # a broken YOLOATTN_PLUGINS entry: one line, not an import traceback
            import sys

            print(f"yoloattn: error: {err}", file=sys.stderr)
            raise SystemExit(2) from None
    else:
        _load_plugins()
    from .integration.locations import pin_output_dirs
    from .integration.network import go_offline

    if _CLI:  # results go where the user ran the command (see integration/locations.py)
        pin_output_dirs(".")

    from . import data, recipe, zoo  # the public surface the README uses (zoo.path, data.generate, recipe)
