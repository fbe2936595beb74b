"""Run Ultralytics fully offline: call :func:`setup_offline` before anything imports ``ultralytics``.

Ultralytics reads its network switches when it is first imported (``ONLINE = is_online()`` does DNS
look-ups at import time) and keeps settings, the DDP temp dir and fonts in ``USER_CONFIG_DIR``
(``$YOLO_CONFIG_DIR/Ultralytics``, default ``~/.config/Ultralytics``). This module sets, in this
process's environment (inherited by every worker it spawns):

- ``YOLO_OFFLINE=1``: ``ONLINE`` is False, so no pip-update check, analytics or asset download;
- ``YOLO_AUTOINSTALL=False``: a missing optional dependency is an error, never a pip install;
- ``YOLO_CONFIG_DIR``: ``ultralytics`` in yoloattn's cache folder (see :func:`cache_root`) instead of
  ``~/.config``, so no command leaves a folder in the working directory;
- ``MPLBACKEND=Agg``: plotting never needs a display;
- ``MPLCONFIGDIR``: matplotlib's font cache in the standard cache folder (see :func:`matplotlib_dir`),
  so plotting never creates ``~/.config/matplotlib``.

Where results go is pinned after the import, in ``yoloattn.integration.locations``.

``check_font`` has no offline switch: every train/val calls it and, when ``Arial.ttf`` is not in
``USER_CONFIG_DIR``, it sends an HTTP HEAD to GitHub. Matplotlib's DejaVu Sans is copied there under
the names Ultralytics asks for, so that probe never happens (plots use DejaVu Sans instead of Arial).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import sys
import warnings
from pathlib import Path

CONFIG_SUBDIR = "ultralytics"  # Ultralytics' settings and fonts: cache_root() / CONFIG_SUBDIR / "Ultralytics"
# The first import of Ultralytics with a new config folder logs this three-line banner (SettingsManager).
SETTINGS_BANNER = "Creating new Ultralytics Settings"
# Ultralytics asks for Arial.ttf, or Arial.Unicode.ttf when class names are not ASCII.
FONT_NAMES = ("Arial.ttf", "Arial.Unicode.ttf")
ULTRALYTICS_IMPORT_TIME_VARS = ("YOLO_OFFLINE", "YOLO_AUTOINSTALL", "YOLO_CONFIG_DIR")
#: Ultralytics' two network switches, off (read once, when Ultralytics is imported).
NETWORK_OFF = {"YOLO_OFFLINE": "1", "YOLO_AUTOINSTALL": "False"}


def offline_env(config_dir: str | os.PathLike | None = None, base: dict | None = None) -> dict[str, str]:
    """A copy of ``base`` (default ``os.environ``) with the offline settings applied; see setup_offline."""
    env = dict(os.environ if base is None else base)
    chosen = config_dir or env.get("YOLOATTN_CONFIG_DIR") or env.get("YOLO_CONFIG_DIR")
    env["YOLO_CONFIG_DIR"] = str(Path(chosen or cache_root(env) / CONFIG_SUBDIR).expanduser().resolve())
    for key, value in NETWORK_OFF.items():
        env.setdefault(key, value)
    env.setdefault("MPLBACKEND", "Agg")
    if "MPLCONFIGDIR" not in env:
        mpl = matplotlib_dir(env)
        if mpl is not None:
            env["MPLCONFIGDIR"] = str(mpl)
    return env


def user_cache_dir(env: dict | None = None) -> Path:
    """The standard per-user cache folder: ``$XDG_CACHE_HOME``, else ``~/.cache`` (not created here)."""
    env = os.environ if env is None else env
    return Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser()


def cache_root(env: dict | None = None) -> Path:
    """yoloattn's cache folder: ``$YOLOATTN_CACHE`` if set, else ``yoloattn`` in :func:`user_cache_dir`."""
    env = os.environ if env is None else env
    own = env.get("YOLOATTN_CACHE")
    return Path(own).expanduser() if own else user_cache_dir(env) / "yoloattn"


def matplotlib_dir(env: dict | None = None) -> Path | None:
    """Where matplotlib should keep its config and font cache: None to leave it to matplotlib.

    On Linux matplotlib creates ``$XDG_CONFIG_HOME/matplotlib`` (``~/.config/matplotlib``) on import,
    even though it only caches fonts (in ``~/.cache/matplotlib``). When that folder does not exist yet,
    this returns ``user_cache_dir()/matplotlib``, where the font cache is anyway; a user's existing
    matplotlib config folder (and so their matplotlibrc) is left in use.
    """
    env = os.environ if env is None else env
    if not sys.platform.startswith(("linux", "freebsd")):
        return None
    config_home = Path(env.get("XDG_CONFIG_HOME") or Path.home() / ".config").expanduser()
    if (config_home / "matplotlib").is_dir():
        return None
    return user_cache_dir(env) / "matplotlib"


def setup_offline(config_dir: str | os.PathLike | None = None) -> Path:
    """Set the offline environment for Ultralytics in ``os.environ``; return the ``YOLO_CONFIG_DIR`` in use.

    The config dir is, in order: ``config_dir``, ``$YOLOATTN_CONFIG_DIR``, an already set
    ``$YOLO_CONFIG_DIR``, else ``cache_root() / "ultralytics"``; it is created, with the fonts in it.
    ``YOLO_OFFLINE``, ``YOLO_AUTOINSTALL``, ``MPLBACKEND`` and ``MPLCONFIGDIR`` keep a value the caller set
    explicitly. Ultralytics' banner about creating its settings file is dropped (:func:`quiet_settings_banner`).
    Idempotent.
    """
    env = offline_env(config_dir)
    changed = [k for k in ULTRALYTICS_IMPORT_TIME_VARS if os.environ.get(k) != env[k]]
    if changed and "ultralytics" in sys.modules:
        warnings.warn(
            f"setup_offline() changed {', '.join(changed)} after `import ultralytics`, which reads them at import "
            "time; call it before the first import of ultralytics (or of yoloattn) for them to take effect",
            stacklevel=2,
        )
    os.environ.update(env)
    quiet_settings_banner()
    root = Path(os.environ["YOLO_CONFIG_DIR"])
    seed_fonts(root / "Ultralytics")  # Ultralytics' USER_CONFIG_DIR is $YOLO_CONFIG_DIR/Ultralytics
    return root


class _DropSettingsBanner(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(SETTINGS_BANNER)


def quiet_settings_banner() -> None:
    """Drop Ultralytics' "Creating new Ultralytics Settings ... ✅" log lines (idempotent).

    Ultralytics logs them when it creates its settings file (at import, with a new ``YOLO_CONFIG_DIR``):
    three lines that would come before a command's own one-line error. The filter sits on the
    ``ultralytics`` logger, which Ultralytics configures at import without removing filters, so it can be
    installed before the import.
    """
    logger = logging.getLogger("ultralytics")
    if not any(isinstance(f, _DropSettingsBanner) for f in logger.filters):
        logger.addFilter(_DropSettingsBanner())


def launched_as_cli() -> bool:
    """True in a process started as the ``yoloattn`` console script or as ``python -m yoloattn.cli``.

    ``yoloattn/__init__.py`` imports Ultralytics, and it runs before any code of ``yoloattn.cli``;
    it can call ``setup_offline()`` first when this returns True.
    """
    script = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ""
    if script in ("yoloattn", "yoloattn.exe", "yoloattn-script.py"):
        return True
    argv = list(getattr(sys, "orig_argv", sys.argv))
    return any(a == "-m" and b == "yoloattn.cli" for a, b in zip(argv, argv[1:]))


def _matplotlib_font() -> Path | None:
    """Matplotlib's bundled DejaVuSans.ttf, located without importing matplotlib."""
    spec = importlib.util.find_spec("matplotlib")
    if spec is None or spec.origin is None:
        return None
    font = Path(spec.origin).parent / "mpl-data" / "fonts" / "ttf" / "DejaVuSans.ttf"
    return font if font.is_file() else None


def seed_fonts(user_config_dir: Path) -> None:
    """Copy matplotlib's DejaVu Sans into ``user_config_dir`` under the font names Ultralytics probes for."""
    source = _matplotlib_font()
    if source is None:  # without matplotlib Ultralytics cannot plot anyway
        return
    user_config_dir.mkdir(parents=True, exist_ok=True)
    for name in FONT_NAMES:
        target = user_config_dir / name
        if not target.exists():
            # copy then rename, so a parallel process never sees a half-written font
            partial = target.with_name(f".{name}.{os.getpid()}.tmp")
            shutil.copyfile(source, partial)
            os.replace(partial, target)
