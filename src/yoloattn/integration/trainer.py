"""Make processes that Ultralytics spawns import yoloattn before they rebuild a model.

- DDP: Ultralytics cloudpickles the trainer *class* into the worker's state file. A trainer class
  that lives in yoloattn is pickled by reference, so unpickling it in every rank imports yoloattn,
  which installs the parse_model wrapper before the worker rebuilds the model from its YAML.
  (The older launchers wrote ``from <trainer module> import <Trainer>``: same effect.)
- Ray Tune: trials run in Ray workers that rebuild from YAML; they need yoloattn importable there,
  which `ray_runtime_env` provides when yoloattn is not installed into the workers' environment.
"""

from __future__ import annotations

from pathlib import Path

from ultralytics.models.yolo.detect import DetectionTrainer as _UltralyticsDetectionTrainer


class DetectionTrainer(_UltralyticsDetectionTrainer):
    """Ultralytics' DetectionTrainer, importable from yoloattn so spawned workers import yoloattn.

    Pass it to every training call: ``YOLO(cfg).train(trainer=yoloattn.DetectionTrainer, ...)``.
    """


def ray_runtime_env(extra: dict | None = None) -> dict:
    """A Ray ``runtime_env`` that ships the yoloattn package to every worker.

    Use it before tuning: ``ray.init(runtime_env=yoloattn.ray_runtime_env())`` and then
    ``model.tune(use_ray=True, ...)``; Ultralytics reuses the running Ray session. Plug-ins loaded
    in this process are named in the workers' ``YOLOATTN_PLUGINS``; their files must be reachable
    there (a shared path, or added to ``py_modules``).
    """
    import yoloattn
    from yoloattn.plugins import ENV_VAR, loaded

    env = dict(extra or {})
    env["py_modules"] = [*env.get("py_modules", []), str(Path(yoloattn.__file__).parent)]
    if loaded():  # workers import the same plug-ins on `import yoloattn` (they must be importable there)
        env["env_vars"] = {**env.get("env_vars", {}), ENV_VAR: ",".join(loaded())}
    return env
