import os
from pathlib import Path

# Ultralytics reads these at import time: keep it offline and out of the user's home.
_ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "False")
os.environ.setdefault("YOLO_CONFIG_DIR", str(_ROOT / ".yolo-config"))
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


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
