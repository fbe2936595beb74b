import importlib.util
import os
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[1]


def _offline_module():
    """``yoloattn.offline``, loaded without importing the package: ``import yoloattn`` imports Ultralytics,
    which reads the offline switches once, at its import, so they must be set first."""
    package = Path(importlib.util.find_spec("yoloattn").submodule_search_locations[0])
    spec = importlib.util.spec_from_file_location("_yoloattn_offline_for_tests", package / "offline.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# The environment the yoloattn command runs in (offline, config out of the user's home), as the command
# computes it; a YOLO_CONFIG_DIR the caller set (make test-oldest) is kept.
os.environ.update(_offline_module().offline_env(None if os.environ.get("YOLO_CONFIG_DIR") else _ROOT / ".yolo-config"))
# compare's default --runtimes is every installed runtime; the suite's many small comparisons time torch and ONNX
# Runtime only (as before the deploy extra), and tests/test_deploy.py checks the default and the other runtimes
os.environ.setdefault("YOLOATTN_RUNTIMES", "torch,onnxruntime")
# compare's wall-time calibration (compare/estimate.py) times training steps of every model of every comparison,
# dry runs included: off for the suite's many comparisons; the tests of the estimate unset it
os.environ.setdefault("YOLOATTN_ESTIMATE", "off")

import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """The embedded ``tiny`` dataset (16/8/8 images, seed 0), generated once per session; its data.yaml.
    Tests that change it work on a copy."""
    from yoloattn.data import generate

    return generate("tiny", out=tmp_path_factory.mktemp("tiny") / "ds", seed=0)


# Nothing a test runs may write into the clone (results belong in the working directory of a command,
# which tests point at tmp_path): the session fails if new top-level entries appear here.
_EXPECTED_NEW = {".pytest_cache", ".yolo-config", ".yolo-config-oldest", ".compat", ".venv"}


def _top_level() -> set[str]:
    return {p.name for p in _ROOT.iterdir()}


_BEFORE = _top_level()


def _ultralytics_test_runs() -> Path:
    import importlib.util

    return Path(importlib.util.find_spec("ultralytics").origin).parents[1] / "tests" / "tmp"


_HAD_ULTRALYTICS_TEST_RUNS = _ultralytics_test_runs().exists()


def pytest_sessionfinish(session, exitstatus):
    leaked = sorted(_top_level() - _BEFORE - _EXPECTED_NEW)
    if not _HAD_ULTRALYTICS_TEST_RUNS and _ultralytics_test_runs().exists():
        leaked.append(str(_ultralytics_test_runs()))  # next to the installed package
    if leaked:
        session.config.pluginmanager.get_plugin("terminalreporter").write_line(
            f"ERROR: tests wrote into the clone at {_ROOT}: {', '.join(leaked)}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_configure(config):
    """In-process Ultralytics runs without `project=` go to a temporary folder, as the yoloattn command pins
    its working directory (else Ultralytics writes next to its installed package when it sees pytest)."""
    import tempfile

    from yoloattn.integration.locations import pin_output_dirs

    pin_output_dirs(tempfile.mkdtemp(prefix="yoloattn-test-runs-"))
