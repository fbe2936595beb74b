"""Every command writes only where the user expects: the working directory, --out, the standard cache.

Each command runs as a subprocess (like a user's shell) from an empty working directory, with an empty
``HOME`` and none of the location variables set, so Ultralytics falls back to its own defaults (which
are derived from the git checkout holding the installed packages: for the README's ``.venv`` inside the
clone, that is the clone itself). File lists of HOME, the working directory, the repository and the
installed packages are compared before and after.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src" / "yoloattn"
_LOCATION_VARS = ("YOLO_CONFIG_DIR", "YOLOATTN_CONFIG_DIR", "YOLOATTN_CACHE", "XDG_CACHE_HOME", "XDG_CONFIG_HOME",
                  "XDG_DATA_HOME", "MPLCONFIGDIR")
_SKIPPED_DIRS = {".git", ".venv", ".compat", "__pycache__", ".pytest_cache"}


def _ultralytics_dir() -> Path:
    import importlib.util

    return Path(importlib.util.find_spec("ultralytics").origin).parent


def _listing(root: Path) -> dict[str, tuple[int, int]]:
    """{relative path: (size, mtime_ns)} of every file and folder under root (bytecode caches left out)."""
    found = {}
    if not root.exists():
        return found
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in _SKIPPED_DIRS]
        for name in dirs + files:
            path = Path(folder, name)
            try:
                stat = path.lstat()
            except FileNotFoundError:  # removed while walking
                continue
            found[str(path.relative_to(root))] = (0 if name in dirs else stat.st_size, stat.st_mtime_ns)
    return found


class Watch:
    """File lists of the places a command must not write to, and of those it may."""

    def __init__(self, work: Path, home: Path):
        self.work, self.home = work, home
        # New files only: other sessions may edit the checkout meanwhile, but none creates these.
        self.new_only = {"repo": REPO, "src/yoloattn": SRC, "ultralytics": _ultralytics_dir()}

    def snapshot(self) -> dict:
        shot = {name: set(_listing(root)) for name, root in self.new_only.items()}
        # Ultralytics' git-derived default datasets_dir is REPO.parent / "datasets"; the parent folder
        # itself may be shared (e.g. /tmp), so only the names Ultralytics would create there count.
        shot["repo parent"] = {p.name for p in REPO.parent.iterdir()} & {"datasets", "weights", "runs"}
        shot["work"], shot["home"] = _listing(self.work), _listing(self.home)
        return shot

    def changes(self, before: dict) -> dict[str, list[str]]:
        after = self.snapshot()
        changed = {name: sorted(after[name] - before[name]) for name in (*self.new_only, "repo parent")}
        for name in ("work", "home"):
            changed[name] = sorted(p for p in after[name].keys() | before[name].keys()
                                   if after[name].get(p) != before[name].get(p))
        return changed


@pytest.fixture
def user(tmp_path):
    """(run, watch): run(*args) runs `yoloattn ARGS` from an empty working dir with an empty HOME."""
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in _LOCATION_VARS}
    env.update(HOME=str(home), YOLO_OFFLINE="1")
    watch = Watch(work, home)

    def run(*args: str, timeout: float = 300, rc: int = 0) -> str:
        before = watch.snapshot()
        proc = subprocess.run([sys.executable, "-m", "yoloattn.cli", *args], cwd=work, env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
        assert proc.returncode == rc, f"yoloattn {' '.join(args)} exited {proc.returncode}:\n{proc.stdout[-4000:]}"
        changes = watch.changes(before)
        command = f"yoloattn {' '.join(args)}"
        for place in (*watch.new_only, "repo parent"):
            assert not changes[place], f"{command} wrote into {place}: {changes[place][:10]}"
        outside_cache = [p for p in changes["home"] if p != ".cache" and not p.startswith(".cache" + os.sep)]
        assert not outside_cache, f"{command} wrote into HOME outside ~/.cache: {outside_cache[:10]}"
        run.work_changes = changes["work"]
        return proc.stdout

    return run, watch


def _outside(changes: list[str], *allowed: str) -> list[str]:
    return [p for p in changes if not any(p == a or p.startswith(a + os.sep) for a in allowed)]


def test_a_refused_command_in_a_new_folder_says_one_line_and_leaves_it_empty(user):
    """The first command on a machine (no Ultralytics settings yet) is refused: its error is the only line."""
    run, watch = user
    out = run("compare", "--set", "batch=abc", "--dry-run", rc=2)
    assert len(out.strip().splitlines()) == 1 and "batch" in out, out
    assert not run.work_changes
    assert (watch.home / ".cache" / "yoloattn" / "ultralytics" / "Ultralytics" / "settings.json").is_file()


def test_help_and_read_only_commands_write_nothing(user):
    run, watch = user
    for args in (["--help"], ["modules"], ["zoo"], ["info", "yolov8n", "--imgsz", "64"],
                 ["bench", "yolov8n", "--imgsz", "64", "--iters", "2", "--warmup", "1"]):
        out = run(*args)
        assert not run.work_changes, f"{args[0]}: {run.work_changes}"
        assert "Creating new Ultralytics Settings" not in out


def test_every_commands_help_writes_nothing(tmp_path, monkeypatch, capsys):
    from yoloattn.cli import _EPILOGS, PROG, main

    monkeypatch.chdir(tmp_path)
    for command in set(_EPILOGS) - {PROG}:
        with pytest.raises(SystemExit) as stop:
            main([command, "--help"])
        assert stop.value.code == 0 and f"usage: yoloattn {command}" in capsys.readouterr().out
    assert not list(tmp_path.iterdir())


def test_variant_and_data_say_where_they_wrote(user):
    run, watch = user
    out = run("variant", "yolov8n", "--module", "mqa", "--where", "csp", "-o", "v.yaml")
    assert (watch.work / "v.yaml").is_file()
    assert str(watch.work / "v.yaml") in out
    assert not _outside(run.work_changes, "v.yaml")

    out = run("data", "--preset", "tiny")
    cache = watch.home / ".cache" / "yoloattn"
    data_yaml = Path(out.strip().splitlines()[-1])
    assert data_yaml.is_file() and cache in data_yaml.parents, out
    assert not run.work_changes


@pytest.mark.bridge  # the pin rebinds Ultralytics internals that differ between versions
def test_train_val_export_compare_write_into_the_working_dir(user):
    run, watch = user
    work = watch.work
    out = run("train", "yolov8n-mqa-c2f", "data=embedded:tiny", "epochs=1", "imgsz=64", "batch=4", "workers=0")
    train_dir = work / "runs" / "detect" / "train"
    best = train_dir / "weights" / "best.pt"
    assert best.is_file(), out[-2000:]
    assert str(train_dir) in out
    assert not _outside(run.work_changes, "runs")

    out = run("val", str(best), "imgsz=64", "batch=4", "workers=0")
    assert str(work / "runs" / "detect" / "val") in out, out[-2000:]
    assert (work / "runs" / "detect" / "val").is_dir()
    assert not _outside(run.work_changes, "runs")

    out = run("export", str(best), "imgsz=64")
    assert best.with_suffix(".onnx").is_file()
    assert f"exported: {best.with_suffix('.onnx')}" in out, out[-2000:]
    assert not _outside(run.work_changes, "runs")

    out = run("export", "yolov8n-mqa-c2f", "imgsz=64")
    assert (work / "yolov8n-mqa-c2f.onnx").is_file()
    assert f"exported: {work / 'yolov8n-mqa-c2f.onnx'}" in out, out[-2000:]
    assert not _outside(run.work_changes, "runs", "yolov8n-mqa-c2f.onnx")

    out = run("compare", "--preset", "tiny", "--modules", "mqa", "--epochs", "1", "--seeds", "1", "--imgsz", "64",
              "--out", "cmp", timeout=600)
    assert (work / "cmp" / "report.html").is_file()
    assert f"report: {work / 'cmp' / 'report.html'}" in out, out[-2000:]
    assert not _outside(run.work_changes, "cmp")


def test_cache_and_matplotlib_folders_follow_xdg(tmp_path, monkeypatch):
    from yoloattn.data.sources import cache_root
    from yoloattn.offline import matplotlib_dir, offline_env

    monkeypatch.setattr(sys, "platform", "linux")
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    for var in ("YOLOATTN_CACHE", "XDG_CACHE_HOME", "XDG_CONFIG_HOME", "MPLCONFIGDIR"):
        monkeypatch.delenv(var, raising=False)
    assert cache_root() == home / ".cache" / "yoloattn"
    assert offline_env(base={})["MPLCONFIGDIR"] == str(home / ".cache" / "matplotlib")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "yoloattn"
    assert offline_env()["MPLCONFIGDIR"] == str(tmp_path / "xdg" / "matplotlib")
    monkeypatch.setenv("YOLOATTN_CACHE", str(tmp_path / "mine"))
    assert cache_root() == tmp_path / "mine"
    (home / ".config" / "matplotlib").mkdir(parents=True)  # a user's own matplotlib config stays in use
    assert matplotlib_dir() is None and "MPLCONFIGDIR" not in offline_env()
    assert offline_env(base={"MPLCONFIGDIR": "/x"})["MPLCONFIGDIR"] == "/x"
