"""Where Ultralytics writes when yoloattn runs it: folders of the user's choosing, not of the git checkout.

Ultralytics keeps three folders in its SETTINGS (``$YOLO_CONFIG_DIR/Ultralytics/settings.json``):
``runs_dir`` (default save folder of train/val/predict), ``datasets_dir`` (where a relative dataset
root is looked up last, and downloads go) and ``weights_dir`` (the AMP check's weights). Their
defaults hang off the git checkout that contains the *installed* package: with a virtual environment
inside a clone (the README's ``.venv``), every run lands in that clone, whatever the working
directory. Two more quirks send results elsewhere:

- ``DATASETS_DIR``/``WEIGHTS_DIR``/``RUNS_DIR`` are module constants, copied at import into every
  module that does ``from ultralytics.utils import ...`` (8.3 reads ``RUNS_DIR`` in
  ``cfg.get_save_dir``; 8.4 reads ``SETTINGS["runs_dir"]`` at use time);
- under pytest or GitHub Actions (``TESTS_RUNNING``), ``get_save_dir`` uses
  ``<site-packages>/tests/tmp/runs`` instead, i.e. next to the installed package.

:func:`pin_output_dirs` is the one place yoloattn changes that. The ``yoloattn`` command pins them
to its working directory when it starts (``yoloattn/__init__.py``), and each comparison worker to
the comparison's output folder (``compare/worker.py``). Library use (``import yoloattn``) keeps
Ultralytics' own behaviour unless the script calls ``yoloattn.pin_output_dirs()`` (the README does).
"""

from __future__ import annotations

import sys
from pathlib import Path

#: SETTINGS key -> (module constant, folder name under the pinned root)
_DIRS = {"runs_dir": ("RUNS_DIR", "runs"), "datasets_dir": ("DATASETS_DIR", "datasets"),
         "weights_dir": ("WEIGHTS_DIR", "weights")}


def pin_output_dirs(root: str | Path = ".") -> dict[str, Path]:
    """Point Ultralytics' runs/datasets/weights folders at ``root/runs``, ``root/datasets``, ``root/weights``.

    In this process only: SETTINGS is changed in memory (settings.json is not rewritten for it), the
    ``RUNS_DIR``/``DATASETS_DIR``/``WEIGHTS_DIR`` constants are rebound in every loaded Ultralytics
    module (modules imported later copy the new values), and ``get_save_dir`` stops sending runs to
    site-packages under pytest or GitHub Actions. No folder is created here; Ultralytics creates
    ``root/runs/<task>/<name>`` when it saves something. Call it after ``import ultralytics``.

    Returns {setting: absolute folder}. A relative ``project=`` then resolves as Ultralytics
    documents, but under ``root/runs`` (8.4: ``root/runs/<task>/<project>/<name>``).
    """
    import ultralytics.cfg
    import ultralytics.utils

    root = Path(root).expanduser().resolve()
    pinned = {key: root / folder for key, (_, folder) in _DIRS.items()}
    # dict.update, not SETTINGS.update: the latter saves settings.json, shared by every process using
    # this YOLO_CONFIG_DIR, while the pin belongs to this process (and its working directory) only.
    dict.update(ultralytics.utils.SETTINGS, {key: str(path) for key, path in pinned.items()})
    rebind_constants({name: pinned[key] for key, (name, _) in _DIRS.items()})
    # get_save_dir is the only reader of cfg's copy of TESTS_RUNNING; the flag stays as it is elsewhere
    ultralytics.cfg.TESTS_RUNNING = False
    return pinned


def rebind_constants(values: dict) -> None:
    """Set module constants such as ``ONLINE`` or ``RUNS_DIR`` in every loaded Ultralytics module.

    Ultralytics computes them once in ``ultralytics.utils`` and other modules copy them with
    ``from ultralytics.utils import NAME``; each copy is rebound where it exists, and modules imported
    later copy the new value from ``ultralytics.utils``.
    """
    for module_name, module in list(sys.modules.items()):
        namespace = getattr(module, "__dict__", None)
        if namespace is not None and (module_name == "ultralytics" or module_name.startswith("ultralytics.")):
            for name, value in values.items():
                if name in namespace:
                    namespace[name] = value
