"""The public surface is what the docs say: every Python block of the README and docs/ runs as written,
every documented `yoloattn ...` command line is accepted by the CLI, and bundled zoo names resolve in
stock `YOLO(...)` after `import yoloattn` (reliability kind 6)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_BLOCK = re.compile(r"```(\w*)\n(.*?)```", re.S)


def blocks(language: str) -> list[tuple[str, str]]:
    found = []
    for doc in DOCS:
        for number, match in enumerate(_BLOCK.finditer(doc.read_text())):
            if match.group(1) == language:
                found.append((f"{doc.relative_to(ROOT)}#{number}", match.group(2)))
    return found


def run_python(code: str, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    # as a user runs it: not under pytest (Ultralytics sends results next to itself when it sees pytest)
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    env.update(PYTHONPATH=str(ROOT), YOLO_CONFIG_DIR=str(cwd / ".yolo-config"))
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.parametrize("label, code", blocks("python"), ids=[label for label, _ in blocks("python")])
def test_python_block_runs_as_written(label, code, tmp_path):
    out = run_python(code, tmp_path)
    assert out.returncode == 0, f"{label} failed:\n{out.stderr[-3000:]}"
    if "train(" in code:  # an example that trains keeps its results in its working directory
        assert list((tmp_path / "runs").rglob("weights/last.pt")), f"{label}: no ./runs/.../weights/last.pt"


def _documented_commands() -> list[tuple[str, str]]:
    from yoloattn.cli import _EPILOGS

    texts = [(label, code) for label, code in blocks("bash")] + [(f"--help of {k}", v) for k, v in _EPILOGS.items()]
    commands = []
    for label, text in texts:
        for line in text.splitlines():
            line = line.split("#", 1)[0].strip()
            if line.startswith("yoloattn "):
                commands.append((label, line))
    return commands


def test_documented_command_lines_parse():
    from yoloattn.cli import build_parser

    commands = _documented_commands()
    assert len(commands) >= 20  # the README, docs/compare.md and every command's --help examples
    for label, line in commands:
        try:
            build_parser().parse_args(shlex.split(line)[1:])
        except SystemExit as exit_:
            if exit_.code == 0 and "--help" in shlex.split(line):  # help prints and exits 0
                continue
            pytest.fail(f"{label}: `{line}` is rejected by the CLI (exit {exit_.code})")


def test_families_doc_table_is_the_rule_tables():
    from yoloattn.rules import with_families_table

    doc = (ROOT / "docs" / "families.md").read_text()
    assert with_families_table(doc) == doc, "docs/families.md is stale: run `python -m yoloattn.zoo`"


@pytest.mark.bridge
def test_zoo_is_public_after_import_and_bare_names_resolve(tmp_path):
    code = """
import yoloattn
from ultralytics import YOLO
path = yoloattn.zoo.path("yolo11n-mlla-psa.yaml")
bare, by_path = YOLO("yolo11n-mlla-psa.yaml"), YOLO(path)
count = lambda m: sum(p.numel() for p in m.model.parameters())
assert type(bare.model.model[10]).__name__ == "C2PSA_MLLA"
assert count(bare) == count(by_path), (count(bare), count(by_path))
assert bare.model.yaml["scale"] == "n"
assert count(YOLO("yolov8s-irmb-csp.yaml")) > 2 * count(YOLO("yolov8n-irmb-csp.yaml"))  # the scale letter
assert type(YOLO("yolov9c-mmqa.yaml").model.model[2]).__name__ == "MMQARepNCSPELAN4"  # a file without scales
try:
    YOLO("yolov8n-nope.yaml")
except FileNotFoundError as err:
    assert "yolov8-nope.yaml" in str(err)
else:
    raise AssertionError("an unknown name must stay an error")
print("ok")
"""
    out = run_python(code, tmp_path)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-3000:]


@pytest.mark.bridge
def test_local_file_and_stock_names_take_precedence_over_the_zoo(tmp_path):
    import yaml

    import yoloattn  # noqa: F401
    from ultralytics import YOLO
    from yoloattn import zoo

    # A user's own file with a zoo name, in the working directory, is the one that is built.
    own = yaml.safe_load(Path(zoo.path("yolov8-irmb-csp.yaml")).read_text())
    own["nc"] = 3
    (tmp_path / "yolov8-irmb-csp.yaml").write_text(yaml.safe_dump(own))
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        assert YOLO("yolov8n-irmb-csp.yaml").model.yaml["nc"] == 3
    finally:
        os.chdir(cwd)
    assert YOLO("yolov8n-irmb-csp.yaml").model.yaml["nc"] == 80
    assert "C2f_" not in str(type(YOLO("yolov8n.yaml").model.model[8]))  # Ultralytics' own file, untouched


# Runs every documented `yoloattn ...` line in one process, in a scratch folder holding the files the
# docs name (a dataset at path/to/data.yaml, my/model.yaml, my-variant.yaml, docs/plugins.md's my_attention.py,
# and the runs/detect/train
# weights that a first real training writes), pinned as the `yoloattn` command pins its working dir.
# Training commands get --dry-run and bench 3 timed passes on PyTorch alone (its runtime exports are test_deploy.py's):
# every option, the dataset and the model are checked and the command stops where hours of training would start
# (`compare` still writes its plan into --out).
_DRIVER = """
import json, shlex, shutil, sys, contextlib, io
from pathlib import Path
import yoloattn
from yoloattn import zoo
from yoloattn.cli import main
from yoloattn.data import generate
from yoloattn.integration.locations import pin_output_dirs

pin_output_dirs(Path.cwd())
generate("tiny", out="path/to")
Path("my").mkdir()
shutil.copy(zoo.stock_models_dir() / "v8" / "yolov8.yaml", "my/model.yaml")
shutil.copy(zoo.path("yolov8-mqa-csp.yaml"), "my-variant.yaml")
Path("my_attention.py").write_text(sys.argv[2])  # the plug-in file docs/plugins.md shows
assert main(["train", "yolov8n", "data=path/to/data.yaml", "epochs=1", "imgsz=64", "batch=4", "workers=0",
             "plots=False"]) == 0
results = []
for line in json.loads(sys.argv[1]):
    argv = shlex.split(line)[1:]
    if argv[0] in ("train", "compare", "demo"):
        argv.append("--dry-run")
    if argv[0] == "bench" and "--iters" not in argv:  # the timing itself is bench's own tests' business
        argv += ["--iters", "3", "--warmup", "1"]
    if argv[0] == "bench" and "--backend" in argv:  # exports to every runtime: test_deploy.py's bench test
        argv[argv.index("--backend") + 1] = "torch"
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            code = main(argv)
    except SystemExit as exit_:
        code = exit_.code
    results.append([line, code, err.getvalue().strip().splitlines()[-1:] or [""]])
print("RESULTS " + json.dumps(results))
"""


@pytest.mark.slow
def test_documented_commands_run_with_their_defaults(tmp_path):
    import json

    import torch

    commands = list(dict.fromkeys(line for _, line in _documented_commands()))
    env = {**os.environ, "YOLO_CONFIG_DIR": str(tmp_path / ".yolo-config")}
    plugin = next(code for label, code in blocks("python") if label.startswith("docs/plugins.md"))
    out = subprocess.run([sys.executable, "-c", _DRIVER, json.dumps(commands), plugin], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=1500)
    assert out.returncode == 0, out.stderr[-3000:]
    results = json.loads(out.stdout.rsplit("RESULTS ", 1)[1])
    assert [r[0] for r in results] == commands
    for line, code, (last,) in results:
        words = line.split()
        gpu = "device=0" in words or ("--device" in words and words[words.index("--device") + 1] != "cpu"
                                      and "--ray-address" not in words)  # a cluster's nodes have the GPUs
        if "--ray-address" in words:  # a cluster example: a dry run joins the cluster, and there is none here
            assert code == 2 and "cannot start or reach Ray" in last, (line, last)
            continue
        if gpu and not torch.cuda.is_available():  # a GPU example on a CPU-only machine
            assert code == 2 and "no CUDA GPU is visible" in last, (line, last)
            continue
        assert code == 0, f"`{line}` exited {code}: {last}"
    assert not (ROOT / "runs").exists()


@pytest.mark.bridge
def test_scaled_names_build_from_a_folder_whose_name_looks_like_a_scale(tmp_path):
    """Ultralytics strips a scale letter from the first `digit + n/s/m/l/x` of the whole path: a file in
    /tmp/tmp.ab8x/ was not found. yoloattn resolves the scale on the file name only."""
    import shutil

    import yoloattn  # noqa: F401
    from ultralytics import YOLO
    from yoloattn import zoo

    folder = tmp_path / "run8x"
    folder.mkdir()
    shutil.copy(zoo.path("yolov8-mqa-csp.yaml"), folder)
    model = YOLO(str(folder / "yolov8s-mqa-csp.yaml"))
    assert model.model.yaml["scale"] == "s"
    assert type(model.model.model[8]).__name__ == "C2f_MQA"
