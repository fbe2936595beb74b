"""Supported Ultralytics releases (reliability kind 8): the range is declared once, checked at import with
one line, and `make test` really runs the bridge/zoo/reload tests against the oldest supported release."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import ultralytics
from yoloattn.compat import ULTRALYTICS_OLDEST, ULTRALYTICS_RANGE, check_ultralytics, is_supported

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.bridge


def test_installed_release_is_supported_and_is_the_one_make_test_asked_for():
    assert is_supported(ultralytics.__version__)
    expected = os.environ.get("YOLOATTN_EXPECT_ULTRALYTICS")  # set by `make test` for the oldest-release pass
    if expected:
        assert ultralytics.__version__ == expected, ultralytics.__file__


@pytest.mark.parametrize("version, ok", [
    (ULTRALYTICS_OLDEST, True), ("8.4.0", True), ("8.4.190", True), ("8.4.999", True),
    ("8.3.252", False), ("8.2.103", False), ("8.5.0", False), ("9.0.0", False), ("8.4.0rc1", True),
])
def test_range_boundaries(version, ok):
    assert is_supported(version) is ok
    if not ok:
        with pytest.raises(ImportError, match=re.escape(ULTRALYTICS_RANGE)):
            check_ultralytics(version)


def test_pyproject_states_the_same_range():
    text = (ROOT / "pyproject.toml").read_text()
    assert f'"ultralytics{ULTRALYTICS_RANGE}"' in text


@pytest.fixture
def old_ultralytics(tmp_path) -> dict:
    stub = tmp_path / "stub" / "ultralytics"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text('__version__ = "8.2.103"\n')
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(stub.parent), str(ROOT / "src")])}


def test_unsupported_release_fails_at_import_with_one_line(old_ultralytics):
    out = subprocess.run([sys.executable, "-c", "import yoloattn"], env=old_ultralytics, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode != 0
    last = out.stderr.strip().splitlines()[-1]
    assert "UnsupportedUltralyticsError" in last and "8.2.103" in last and ULTRALYTICS_RANGE in last


def test_unsupported_release_cli_prints_one_line(old_ultralytics, tmp_path):
    out = subprocess.run([sys.executable, "-m", "yoloattn.cli", "modules"], env=old_ultralytics, cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0, out.stderr
    assert "ultralytics 8.2.103 is installed" in out.stderr and "pip install" in out.stderr


def test_attention_modules_import_without_ultralytics(tmp_path):
    code = """
import sys
class NoUltralytics:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "ultralytics":
            raise ImportError("ultralytics is not installed")
sys.meta_path.insert(0, NoUltralytics())
import torch
import yoloattn
from yoloattn.attention import ACmix, MLLABlock, MobileMQA, iRMB
assert ACmix(8, 8)(torch.randn(1, 8, 2, 3)).shape == (1, 8, 2, 3)
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-2000:]


def test_go_offline_switches_an_imported_ultralytics_off_the_network(tmp_path):
    code = """
import os
import yoloattn
from ultralytics.utils import checks, USER_CONFIG_DIR
assert checks.AUTOINSTALL is True  # Ultralytics' default, read at import
yoloattn.go_offline()
import ultralytics.utils as u
assert checks.AUTOINSTALL is False and checks.ONLINE is False and u.ONLINE is False and u.AUTOINSTALL is False
assert os.environ["YOLO_OFFLINE"] == "1" and os.environ["YOLO_AUTOINSTALL"] == "False"
assert (USER_CONFIG_DIR / "Arial.ttf").is_file()  # check_font finds it: no HTTP probe
assert str(checks.check_font("Arial.ttf")) == str(USER_CONFIG_DIR / "Arial.ttf")
print("ok")
"""
    env = {k: v for k, v in os.environ.items() if k not in ("YOLO_OFFLINE", "YOLO_AUTOINSTALL")}
    env["YOLO_CONFIG_DIR"] = str(tmp_path / "cfg")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-2000:]
