"""The `yoloattn` command line: every command on tiny settings, bad input, offline setup, cost measurement."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import yaml

from yoloattn import bench, zoo
from yoloattn.blocks import MODULES
from yoloattn.cli import main
from yoloattn.compare.models import ModelNameError, resolve_model, scale_of
from yoloattn.integration import REGISTRY
from yoloattn.offline import FONT_NAMES, launched_as_cli, offline_env, setup_offline

SRC = Path(__file__).resolve().parents[1] / "src"
COMMANDS = ("modules", "zoo", "info", "variant", "bench", "train", "val", "export", "int8-sensitivity", "data", "compare",
            "demo")


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_usage_error(code: int, err: str, pattern: str) -> None:
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert re.search(pattern, lines[0]), lines[0]


@pytest.fixture(scope="module")
def trained(tiny_data, tmp_path_factory) -> Path:
    project = tmp_path_factory.mktemp("train")
    code = main(["train", "yolov8n", f"data={tiny_data}", "epochs=1", "imgsz=64", "batch=4", "workers=0",
                 "plots=False", f"project={project}", "name=run", "verbose=False"])
    assert code == 0
    return project / "run"


# --------------------------------------------------------------------------------------------------- help


def test_help_lists_every_command_with_examples(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for command in COMMANDS:
        assert re.search(rf"^\s+{command}\s+\S", out, re.M), command
    assert "examples:" in out and "yoloattn compare --base yolo11n" in out


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_help_has_an_example(capsys, command):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert re.search(r"^examples?:", capsys.readouterr().out, re.M)


# ----------------------------------------------------------------------------------------- listing commands


def test_modules_lists_every_registry_name_with_its_formula(capsys):
    code, out, _ = run_cli(capsys, "modules")
    assert code == 0
    lines = out.splitlines()
    for entry in REGISTRY.entries():
        line = next(line for line in lines if line.split() and line.split()[0] == entry.name)
        assert entry.contract in line.split() and entry.params in line
    assert all(m in lines[0] for m in MODULES)
    floors = next(line for line in lines if line.startswith("Without strides"))
    assert "head from stride 32 for ACmix" in floors and "a2c2f from stride 32 for ACmix" in floors
    assert "head from stride 16 for iRMB" in floors and "head from stride 16 for MQA" in floors


def test_modules_name_shows_every_option_with_its_default_and_meaning(capsys):
    import inspect

    from yoloattn import modules

    for name in MODULES:
        code, out, _ = run_cli(capsys, "modules", name.lower())  # any case
        assert code == 0 and out.startswith(f"{name}: ")
        target = modules.get(name).cls()
        taken = list(inspect.signature(target).parameters)[2:]  # after c1, c2
        rows = {line.split()[0]: line.split() for line in out.splitlines() if line.startswith("  ") and line.split()
                and line.split()[0] in taken}
        assert list(rows) == taken, out  # every option, in signature order
        for option, row in rows.items():
            assert row[1] == repr(inspect.signature(target).parameters[option].default)
            assert row[-1] != "-", f"{name}.{option} has no meaning in its class docstring"
        assert all(symbol in out for symbol in ("(C = channels)", "YAML names: ", f"C2f_{name}"))
    code, out, _ = run_cli(capsys, "modules", "MQA")
    rows = {line.split()[0]: line.split()[1:3] for line in out.splitlines() if line.startswith("  ") and line.split()}
    assert rows["kv_stride"] == ["1", "="] and rows["num_heads"] == ["8", "4"] and rows["dropout"] == ["0.0", "n/a"]
    assert rows["key_dim"] == ["64", "None"]  # MQABlock takes it, with None for its width rule: not "n/a"
    assert "pass kv_stride=2" in out and "[1024, {kv_stride: 2}]" in out
    assert "h = num_heads, k = key_dim, v = value_dim, d = dw_kernel_size" in out  # the formula's symbols
    code, _, err = run_cli(capsys, "modules", "mla")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "did you mean MLLA" in err


def test_docstring_arguments_are_read_with_shared_and_continued_entries():
    from yoloattn.modules import _documented_args

    doc = """Thing.

    Args:
        c1, c2: channels in and out.
        window: the window
            side, in pixels.
        flag (bool): on or off.

    Raises:
        ValueError: never.
    """
    assert _documented_args(doc) == {"c1": "channels in and out.", "c2": "channels in and out.",
                                     "window": "the window side, in pixels.", "flag": "on or off."}


def test_an_unscaled_variant_file_gets_one_note_about_its_scale(tmp_path, monkeypatch):
    import logging

    monkeypatch.chdir(tmp_path)
    logged = []
    handler = logging.Handler()
    handler.emit = lambda record: logged.append(record.getMessage())
    logging.getLogger("ultralytics").addHandler(handler)
    try:
        assert main(["variant", "yolo11n", "--module", "mqa", "--where", "csp", "-o", "v.yaml"]) == 0
        assert main(["info", "v.yaml", "--imgsz", "64"]) == 0
    finally:
        logging.getLogger("ultralytics").removeHandler(handler)
    assert not [m for m in logged if "no model scale passed" in m]  # yoloattn's own note says it once


def test_zoo_lists_every_bundled_file(capsys):
    code, out, _ = run_cli(capsys, "zoo")
    assert code == 0
    listed = {line.split()[0] for line in out.splitlines() if line.startswith("  ")}
    assert listed == set(zoo.names())


# ---------------------------------------------------------------------------------------------- model names


def test_model_names_resolve_without_download(tmp_path):
    assert resolve_model("yolo11n-irmb-psa") == zoo.path("yolo11n-irmb-psa.yaml")
    assert resolve_model("yolov8s.yaml").endswith("cfg/models/v8/yolov8s.yaml")
    assert resolve_model("yolo11n").endswith("cfg/models/11/yolo11n.yaml")
    assert resolve_model("yolov9t").endswith("cfg/models/v9/yolov9t.yaml")  # a real file, no scales
    own = tmp_path / "mine.yaml"
    own.write_text("nc: 1\n")
    assert resolve_model(str(own)) == str(own.resolve())
    assert scale_of("yolo11n-mlla-psa.yaml") == "n" and scale_of("yolov9t.yaml") == "" and scale_of("a.yaml") == ""
    with pytest.raises(ModelNameError, match="never downloads"):
        resolve_model("yolo11n.pt")
    with pytest.raises(ModelNameError, match="Did you mean: .*yolo11n-mlla-psa"):
        resolve_model("yolo11n-mla-psa")


# ---------------------------------------------------------------------------------------------------- info


def test_info_table_sums_to_the_model_and_agrees_with_thop_on_a_conv_model(capsys):
    from ultralytics.nn.tasks import DetectionModel
    from ultralytics.utils.torch_utils import get_flops

    code, out, _ = run_cli(capsys, "info", "yolov8n", "--imgsz", "128")
    assert code == 0
    rows = [line.split() for line in out.splitlines() if re.match(r"^\d+\s+(-1|\[)", line)]
    assert [int(r[0]) for r in rows] == list(range(23))
    model = DetectionModel("yolov8n.yaml", verbose=False)
    assert sum(int(r[3].replace(",", "")) for r in rows) == bench.count_params(model)
    total = float(re.search(r"([\d.]+) GFLOPs at 128x128", out).group(1))
    assert total == pytest.approx(get_flops(model, 128), rel=0.03)  # a pure conv model: thop sees it all
    assert rows[-1][5] == "Detect" and rows[0][6] == "1x16x64x64"


def _ultralytics_repeats(name: str) -> list[int]:
    """The n column of Ultralytics' own verbose layer table (yoloattn's re-emitted rows for its blocks)."""
    import logging

    from ultralytics.nn import tasks
    from ultralytics.nn.tasks import DetectionModel, yaml_model_load

    messages = []

    class Collect(logging.Handler):
        def emit(self, record):
            messages.append(record.getMessage())

    handler, level = Collect(level=logging.INFO), tasks.LOGGER.level
    tasks.LOGGER.addHandler(handler)
    tasks.LOGGER.setLevel(logging.INFO)
    try:
        DetectionModel(yaml_model_load(resolve_model(name)), verbose=True)
    finally:
        tasks.LOGGER.removeHandler(handler)
        tasks.LOGGER.setLevel(level)
    rows = [m for m in messages if re.match(r"^[ \d]{2}\d\s", m) and len(m) > 26]  # f"{i:>3}{f!s:>20}{n:>3}..."
    assert [int(m[:3]) for m in rows] == list(range(len(rows)))
    return [int(m[23:26]) for m in rows]


@pytest.mark.parametrize("name", ["yolov8n", "yolov8m", "yolo11n", "yolo11m", "yolov8m-mlla-csp", "yolo11m-irmb-psa"])
def test_repeat_column_is_ultralytics_depth_scaled_n(name):
    from ultralytics.nn.tasks import DetectionModel, yaml_model_load

    model = DetectionModel(yaml_model_load(resolve_model(name)), verbose=False).eval()
    assert [c.repeats for c in bench.layer_costs(model, 64)] == _ultralytics_repeats(name)


def test_info_shows_repeats_and_says_what_the_parameter_counts_count(capsys):
    code, out, _ = run_cli(capsys, "info", "yolov8m", "--imgsz", "64")
    assert code == 0
    rows = {int(r[0]): r for r in (line.split() for line in out.splitlines()) if re.match(r"^\d+$", r[0] if r else "")}
    assert rows[9][5] == "SPPF" and rows[8][5] == "C2f"
    assert [rows[i][2] for i in (2, 4, 6, 8, 9)] == ["2", "4", "4", "2", "1"]  # C2f x2, x4, x4, x2; SPPF once

    code, out, _ = run_cli(capsys, "info", "yolo11n-mlla-psa", "--imgsz", "64", "--nc", "5")
    from ultralytics.nn.tasks import DetectionModel, yaml_model_load

    cfg = yaml_model_load(resolve_model("yolo11n-mlla-psa"))
    cfg["nc"] = 5
    model = DetectionModel(cfg, verbose=False)
    unfused, fused = bench.count_params(model), bench.count_params(bench.prepare(model))
    assert code == 0 and fused < unfused
    assert f"{unfused:,} parameters (unfused, 5 classes)" in out and f"{fused:,} parameters (fused, 5 classes)" in out


def test_parameter_wording_is_defined_once():
    assert bench.param_basis(False, 80) == "unfused, 80 classes" and bench.param_basis(True, 1) == "fused, 1 class"
    assert bench.describe_params(2726352, False, 80) == "2,726,352 parameters (unfused, 80 classes)"


def test_layer_flops_include_attention_matmuls():
    class Attention(nn.Module):  # matmuls written as torch ops, outside any nn.Linear / nn.Conv2d layer
        def forward(self, x):
            b, c, h, w = x.shape
            t = x.flatten(2)
            return (t.transpose(1, 2) @ t).softmax(-1).matmul(t.transpose(1, 2)).transpose(1, 2).reshape(b, c, h, w)

    class Routed(nn.Sequential):
        pass

    layers = [nn.Conv2d(3, 8, 1, bias=False), Attention()]
    for i, layer in enumerate(layers):
        layer.f, layer.i = -1, i
    model = Routed()
    model.model = nn.ModuleList(layers)
    costs = bench.layer_costs(model, (4, 6))
    n, c = 4 * 6, 8
    assert [c.flops for c in costs] == [2 * n * 3 * 8, 2 * (n * c * n) + 2 * (n * n * c)]
    assert costs[1].out_shape == (1, 8, 4, 6) and costs[0].params == 24


def test_live_storage_peak_counts_activations_not_weights():
    conv = nn.Conv2d(8, 8, 3, padding=1).eval()
    x = torch.zeros(1, 8, 32, 32)
    # conv output (32 KiB) then relu output (32 KiB) while the conv output is alive
    peak = bench.peak_memory_mb(nn.Sequential(conv, nn.ReLU()), x)
    assert peak * 2**20 == pytest.approx(2 * 8 * 32 * 32 * 4, rel=0.01)


def test_models_are_timed_in_alternating_blocks():
    calls = []
    forwards = {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}
    times = bench.time_interleaved(forwards, torch.device("cpu"), warmup=1, iters=4, rounds=3,
                                   on_round=lambda r, rounds: calls.append(f"<{r}/{rounds}>"))
    # warm-up, then rounds of 2, 1 and 1 passes, each announced to the progress callback
    assert "".join(calls) == "<0/3>ab" + "<1/3>aabb" + "<2/3>ab" + "<3/3>ab"
    assert [len(t) for t in times.values()] == [4, 4] and all(x >= 0 for t in times.values() for x in t)


# ------------------------------------------------------------------------------------------------- variant


def test_variant_keeps_ultralytics_scale_naming(capsys, tmp_path):
    out = tmp_path / "yolo11s-irmb-psa.yaml"
    code, text, _ = run_cli(capsys, "variant", "yolo11n", "--module", "IRMB", "-o", str(out))
    assert code == 0 and re.search(r"[\d,]+ parameters \(unfused, 80 classes\), [\d.]+ GFLOPs at 640", text)
    d = yaml.safe_load(out.read_text())
    header = [line for line in out.read_text().splitlines() if line.startswith("# ")][:2]
    assert "do not edit" not in out.read_text()  # the user's file: only the zoo's own files say so
    assert "by `yoloattn variant`" in header[0] and "`import yoloattn`" in header[1]
    assert set(d["scales"]) == set("nslmx")  # the name picks the scale, as for Ultralytics' files
    assert any(row[2] == "C2PSA_iRMB" for row in d["backbone"])  # YOLO11 default placement: psa
    from ultralytics import YOLO

    assert YOLO(str(out)).model.yaml["scale"] == "s"

    plain = tmp_path / "custom.yaml"
    code, text, _ = run_cli(capsys, "variant", "yolov8s.yaml", "--module", "mqa", "--where", "csp@16,32",
                            "-o", str(plain))
    assert code == 0 and "only scale 's'" in text
    d = yaml.safe_load(plain.read_text())
    assert d["scales"] == {"s": [0.33, 0.50, 1024]}
    assert sum(row[2] == "C2f_MQA" for row in d["backbone"]) == 2


def test_variant_default_output_name(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, _ = run_cli(capsys, "variant", "yolov8n", "--module", "acmix")
    assert code == 0 and (tmp_path / "yolov8n-acmix-csp.yaml").is_file()


# --------------------------------------------------------------------------------------------------- bench


def test_bench_reports_both_backends(capsys, tmp_path):
    code, out, _ = run_cli(capsys, "bench", "yolov8n", "yolov8n-irmb-sppf", "--imgsz", "64", "--backend", "torch,ort",
                           "--iters", "3", "--warmup", "1", "--threads", "1")  # every runtime: tests/test_deploy.py
    assert code == 0
    rows = [line.split() for line in out.splitlines() if line.startswith("yolov8n ")]
    variant = [line.split() for line in out.splitlines() if line.startswith("yolov8n-irmb-sppf ")]
    assert [r[1] for r in rows] == [r[1] for r in variant] == ["torch", "onnxruntime"]
    for r in rows:
        median, p90, versus, per_s = float(r[4]), float(r[5]), r[6], float(r[7])
        assert 0 < median <= p90 and 1000 / (median + 0.005) - 0.05 <= per_s <= 1000 / (median - 0.005) + 0.05
        assert versus == "1.00×"
        assert r[10].endswith("%") and float(r[10][:-1]) > 0
    for base, r in zip(rows, variant):  # the ratio column: the variant's median over its listed baseline's
        # computed from the unrounded medians, so check it against the range the printed (2-decimal) ones allow
        ratio, mv, mb, half = float(r[6].removesuffix("×")), float(r[4]), float(base[4]), 0.005
        assert (mv - half) / (mb + half) - half <= ratio <= (mv + half) / (mb - half) + half
    assert float(rows[0][8]) > 0 and rows[1][8] == "n/a"
    assert "× base: median over that of the listed model the variant extends (yolov8n for yolov8n-irmb-sppf)" in out
    assert "matmul" in out and "1 thread(s)" in out
    renamed = tmp_path / "my-v8-irmb.yaml"  # a name that does not follow <base>-<module>-<rule>
    renamed.write_text(Path(zoo.path("yolov8-irmb-sppf.yaml")).read_text())
    code, out, _ = run_cli(capsys, "bench", "yolov8n", str(renamed), "--imgsz", "64", "--iters", "2",
                           "--warmup", "1", "--threads", "1")  # another scale is no base: test_transfer.py's extends
    versus = {line.split()[0]: line.split()[6] for line in out.splitlines() if line.startswith(("yolov8", str(renamed)))}
    assert code == 0 and versus["yolov8n"] == "1.00×" and versus[str(renamed)].endswith("×"), out
    assert "params (M, fused, 80 classes)" in out.splitlines()[0]
    from ultralytics.nn.tasks import DetectionModel

    steps = []  # the progress steps and their ETAs
    tiny = {name: DetectionModel("yolov8n.yaml", verbose=False) for name in ("a", "b")}
    bench.benchmark_many(tiny, 32, 1, ("torch",), "cpu", 1, 1, 3, matmul_peak=1.0,
                         progress=lambda step, eta_s: steps.append((step, eta_s)))
    assert [s for s, _ in steps] == ["1/2: a", "2/2: b", "latency warm-up", "latency round 1/3",
                                     "latency round 2/3", "latency round 3/3"]
    assert steps[0][1] is None and all(eta_s is not None and eta_s >= 0 for _, eta_s in steps[1:])


# ------------------------------------------------------------------------------------ train / val / export


def test_train_passes_yoloattn_trainer_and_offline_defaults(trained, capsys):
    args = yaml.safe_load((trained / "args.yaml").read_text())
    assert args["device"] == "cpu" and args["amp"] is False and args["epochs"] == 1 and args["imgsz"] == 64
    assert (trained / "weights" / "last.pt").is_file()


def test_val_and_export_of_the_trained_model(trained, tiny_data, capsys, tmp_path):
    best = trained / "weights" / "best.pt"
    code, out, _ = run_cli(capsys, "val", str(best), f"data={tiny_data}", "imgsz=64", "batch=4", "split=test",
                           "plots=False", f"project={tmp_path}", "name=val")
    assert code == 0 and re.search(r"mAP50 \d\.\d{4}\s+mAP50-95 \d\.\d{4}", out)
    copy = tmp_path / "best.pt"
    shutil.copy(best, copy)
    code, out, _ = run_cli(capsys, "export", str(copy), "imgsz=64")
    assert code == 0 and (tmp_path / "best.onnx").is_file()


# ---------------------------------------------------------------------------------------------------- data


def test_data_writes_the_embedded_dataset_with_overrides(capsys, tmp_path):
    code, out, _ = run_cli(capsys, "data", "--preset", "tiny", "--out", str(tmp_path / "d"), "n_train=4",
                           "n_val=2", "n_test=2")
    assert code == 0
    data_yaml = Path(out.strip().splitlines()[-1])
    assert data_yaml == tmp_path / "d" / "data.yaml" and data_yaml.is_file()
    assert len(list((tmp_path / "d" / "images" / "train").iterdir())) == 4


# ---------------------------------------------------------------------------------------------- bad input


def _empty_labels_copy(tiny_data: Path, root: Path) -> Path:
    shutil.copytree(tiny_data.parent, root)
    data = yaml.safe_load((root / "data.yaml").read_text())
    data["path"] = str(root)
    (root / "data.yaml").write_text(yaml.safe_dump(data))
    for label in (root / "labels" / "train").glob("*.txt"):
        label.unlink()
    return root / "data.yaml"


def test_bad_input_gives_one_line_and_exit_code_2(capsys, tmp_path, tiny_data):
    code, _, err = run_cli(capsys, "train", "yolov8n", f"data={tmp_path / 'nope' / 'data.yaml'}")
    assert_usage_error(code, err, r"data\.yaml not found: .*nope")
    code, _, err = run_cli(capsys, "train", "yolov8n", f"data={_empty_labels_copy(tiny_data, tmp_path / 'e')}")
    assert_usage_error(code, err, r"label folder for 'train' is empty")
    code, _, err = run_cli(capsys, "train", "yolov8n")
    assert_usage_error(code, err, r"needs data=")
    code, _, err = run_cli(capsys, "train", "yolov8n", f"data={tiny_data}", "epoch=3")
    assert_usage_error(code, err, r"'epoch' is not an Ultralytics argument; did you mean epochs")
    code, _, err = run_cli(capsys, "variant", "yolo11n", "--module", "transformer", "-o", str(tmp_path / "x.yaml"))
    assert_usage_error(code, err, r"unknown module 'transformer'; choose one of MQA, ACmix, MLLA, iRMB")
    code, _, err = run_cli(capsys, "variant", "yolov8n", "--module", "mqa", "--where", "psa")
    assert_usage_error(code, err, r"no C2PSA or PSA layer")
    code, _, err = run_cli(capsys, "info", "yolo11q")
    assert_usage_error(code, err, r"unknown model 'yolo11q'\. Did you mean: .*yolo11n")
    code, _, err = run_cli(capsys, "bench", "yolov8n.pt")
    assert_usage_error(code, err, r"never downloads weights; train from scratch with yolov8n\.yaml")
    code, _, err = run_cli(capsys, "data", "--preset", "tiny", "--out", str(tmp_path / "k"), "n_trian=3")
    assert_usage_error(code, err, r"unknown dataset option\(s\) \['n_trian'\]")


def test_console_entry_point_exits_2_in_a_fresh_process(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(SRC), "YOLOATTN_CONFIG_DIR": str(tmp_path / "cfg")}
    result = subprocess.run([sys.executable, "-m", "yoloattn.cli", "variant", "yolov8n", "--module", "nope"],
                            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("yoloattn variant: error: unknown module 'nope'")


# ------------------------------------------------------------------------------------------------- offline


def test_offline_env_and_font_seeding(tmp_path, monkeypatch):
    for var in ("YOLOATTN_CONFIG_DIR", "YOLO_CONFIG_DIR", "YOLO_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    env = offline_env(base={"YOLOATTN_CACHE": str(tmp_path / "cache")})
    assert env["YOLO_CONFIG_DIR"] == str(tmp_path / "cache" / "ultralytics")  # in the cache, not the working dir
    monkeypatch.setenv("HOME", str(tmp_path))
    assert offline_env(base={})["YOLO_CONFIG_DIR"] == str(tmp_path / ".cache" / "yoloattn" / "ultralytics")
    assert env["YOLO_OFFLINE"] == "1" and env["YOLO_AUTOINSTALL"] == "False" and env["MPLBACKEND"] == "Agg"
    assert offline_env(base={"YOLO_OFFLINE": "0"})["YOLO_OFFLINE"] == "0"  # an explicit choice is kept
    monkeypatch.setenv("YOLOATTN_CONFIG_DIR", str(tmp_path / "mine"))
    monkeypatch.setenv("YOLO_OFFLINE", "1")
    with pytest.warns(UserWarning, match="after `import ultralytics`"):  # this test process imported it
        root = setup_offline()
    assert root == tmp_path / "mine" and os.environ["YOLO_CONFIG_DIR"] == str(root)
    for name in FONT_NAMES:
        font = root / "Ultralytics" / name
        assert font.read_bytes()[:4] in (b"\x00\x01\x00\x00", b"true")  # a TrueType file
    assert not launched_as_cli()


def test_cli_process_keeps_ultralytics_out_of_the_home_dir(tmp_path):
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("YOLO", "XDG_"))}
    env.update(PYTHONPATH=str(SRC), HOME=str(home))
    result = subprocess.run([sys.executable, "-m", "yoloattn.cli", "zoo"], capture_output=True, text=True, env=env,
                            cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr
    assert (home / ".cache" / "yoloattn" / "ultralytics" / "Ultralytics" / "settings.json").is_file()
    assert not (home / ".config" / "Ultralytics").exists() and sorted(tmp_path.iterdir()) == [home]
