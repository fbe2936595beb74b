"""Switch an already imported Ultralytics offline: what ``yoloattn.go_offline()`` does for Python users.

The ``yoloattn`` command sets Ultralytics' network switches in the environment before Ultralytics is
imported (``yoloattn.offline.setup_offline``). A Python script imports Ultralytics with
``import yoloattn``, so the switches it reads at import time (``ONLINE`` from a DNS probe,
``AUTOINSTALL`` from ``YOLO_AUTOINSTALL``) are already set; :func:`go_offline` rebinds them in every
loaded Ultralytics module, sets the environment for the processes Ultralytics starts (DDP workers,
``yolo`` subprocesses) and copies a font where Ultralytics looks for ``Arial.ttf`` so its font probe
(an HTTP HEAD on every train/val, which no switch disables) never runs.
"""

from __future__ import annotations

import os


def go_offline() -> None:
    """No network from Ultralytics in this process and its children: no pip auto-install, no update
    check, no analytics, no asset or font download (``ONLINE = AUTOINSTALL = False``).

    Idempotent. Sets ``YOLO_OFFLINE=1`` and ``YOLO_AUTOINSTALL=False`` in ``os.environ`` (for child
    processes) and seeds matplotlib's DejaVu Sans as ``Arial.ttf`` / ``Arial.Unicode.ttf`` in
    Ultralytics' ``USER_CONFIG_DIR`` (``$YOLO_CONFIG_DIR/Ultralytics``, by default
    ``~/.config/Ultralytics``), which is where Ultralytics keeps its settings anyway. The DNS probe that
    Ultralytics runs when it is first imported can only be skipped by setting ``YOLO_OFFLINE=1`` in the
    environment before ``import yoloattn``.
    """
    import ultralytics.utils

    from ..offline import NETWORK_OFF, seed_fonts
    from .locations import rebind_constants

    os.environ.update(NETWORK_OFF)
    rebind_constants({"ONLINE": False, "AUTOINSTALL": False})
    seed_fonts(ultralytics.utils.USER_CONFIG_DIR)
