"""Bring your own attention: the module table, register_attention, --plugin, YOLOATTN_PLUGINS,
entry points, timm's layers, checkpoints of plug-in models, and the errors.

Plug-ins are registered in subprocesses (the CLI, or python -c) so that the test process keeps the
table it started with.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import yaml

from yoloattn import modules
from yoloattn.integration import REGISTRY
from yoloattn.integration.heads import output_tensors

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = ROOT / "tests" / "plugins" / "channel_gate.py"


def _env(**extra) -> dict:
    env = {**os.environ, "YOLO_OFFLINE": "1", **extra}
    env.pop("YOLOATTN_PLUGINS", None) if "YOLOATTN_PLUGINS" not in extra else None
    return env


def _cli(*args, cwd=None, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "yoloattn.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=_env(**env), timeout=900)


def _python(code: str, cwd=None, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, cwd=cwd,
                          env=_env(**env), timeout=600)


# --------------------------------------------------------------------------- the table
def test_the_table_declares_the_built_ins_and_everything_reads_it():
    from yoloattn import blocks
    from yoloattn.compare.settings import CompareSettings
    from yoloattn.zoo import planned

    assert modules.builtin_names() == ("MQA", "ACmix", "MLLA", "iRMB")
    assert tuple(blocks.MODULES) == modules.builtin_names() == CompareSettings().modules
    assert {m for _, m, _, _ in planned()} == set(modules.builtin_names())
    for name in modules.names():
        for yaml_name in (name, f"C2f_{name}", f"C3k2_{name}", f"C2PSA_{name}", f"RepNCSPELAN4_{name}"):
            assert yaml_name in REGISTRY, yaml_name
    mqa = modules.get("mqa")  # case-insensitive
    assert mqa.quadratic and mqa.options_at(16) == {"kv_stride": 2} and mqa.options_at(32) == {}
    assert modules.get("iRMB").options_at(8) == {}


def test_unknown_module_names_the_closest_and_the_way_to_plug_in():
    with pytest.raises(modules.PluginError, match=r"'cbam' \(did you mean timm_cbam.*--plugin FILE.py"):
        modules.get("cbam")


def test_the_module_table_imports_neither_torch_nor_ultralytics():
    # yoloattn/__init__ imports Ultralytics; the table module alone (a bare package stub) must not
    out = _python(f"""
        import importlib, sys
        package = type(sys)("yoloattn")
        package.__path__ = [{str(ROOT / 'src' / 'yoloattn')!r}]
        sys.modules["yoloattn"] = package
        table = importlib.import_module("yoloattn.modules")
        print("torch" in sys.modules, "ultralytics" in sys.modules, *table.builtin_names())
    """)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["False", "False", "MQA", "ACmix", "MLLA", "iRMB"]


# --------------------------------------------------------------------------- timm's layers
@pytest.mark.parametrize("name", ["timm_eca", "timm_cbam"])
def test_timm_layers_build_and_run_in_every_block(name):
    timm_layers = pytest.importorskip("timm.layers")
    from ultralytics.nn.tasks import DetectionModel

    from yoloattn.zoo import load_base, make_variant

    for base, where in (("11/yolo11.yaml", "csp"), ("11/yolo11.yaml", "psa"), ("v8/yolov8.yaml", "sppf"),
                        ("v8/yolov8.yaml", "head")):
        d = make_variant(load_base(base), name, where)
        d["scale"] = "n"
        model = DetectionModel(d, verbose=False).train()
        output_tensors(model(torch.rand(2, 3, 64, 96)))[0].sum().backward()
    attn = [m for m in model.modules() if type(m).__module__.startswith("timm.")]
    assert attn and type(attn[0]) is timm_layers.get_attn(name.removeprefix("timm_"))  # timm's class, not a copy


# --------------------------------------------------------------------------- a user's module through the CLI
@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("plugin")


def test_plugin_builds_csp_and_sppf_variants_through_the_cli(workdir):
    for base, where in (("yolo11n", "csp"), ("yolov8n", "sppf")):
        out = workdir / f"{base}-cg-{where}.yaml"
        run = _cli("variant", base, "--module", "channelgate", "--where", where, "--plugin", PLUGIN, "-o", out)
        assert run.returncode == 0, run.stderr[-3000:]
        rows = yaml.safe_load(out.read_text())
        names = [r[2] for r in rows["backbone"] + rows["head"]]
        assert ("C3k2_ChannelGate" if where == "csp" else "ChannelGate") in names
        info = _cli("info", out, "--imgsz", "64", "--plugin", PLUGIN)
        assert info.returncode == 0, info.stderr[-3000:]
        assert ("C3k2_ChannelGate" if where == "csp" else " ChannelGate ") in info.stdout
    listed = _cli("modules", "--plugin", PLUGIN)
    assert "ChannelGate" in listed.stdout.splitlines()[0] and "plug-in (channel_gate)  ChannelGate" in listed.stdout
    without = _cli("variant", "yolo11n", "--module", "ChannelGate", "--where", "csp", "-o", workdir / "x.yaml")
    assert without.returncode == 2 and len(without.stderr.strip().splitlines()) == 1
    assert "unknown module 'ChannelGate'" in without.stderr and "--plugin" in without.stderr


def test_plugin_trains_in_compare_and_its_checkpoint_reloads(workdir):
    out = workdir / "compare"
    run = _cli("compare", "--plugin", PLUGIN, "--modules", "channelgate", "--base", "yolov8n", "--where", "sppf",
               "--preset", "tiny", "--epochs", "1", "--seeds", "1", "--imgsz", "64", "--out", out)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    rows = list(csv.DictReader(open(out / "results.csv", newline="")))
    assert {r["model"] for r in rows} == {"yolov8n", "yolov8n-channelgate-sppf"}
    weights = next((out / "runs").glob("*channelgate*/**/*.pt"))

    load = f"""
        import torch
        from ultralytics import YOLO
        m = YOLO(r"{weights}")
        layer = m.model.model[10]
        print(type(layer).__name__, type(layer.attn).__module__)
        m.model.float().eval()(torch.zeros(1, 3, 64, 64))
    """
    on_path = _python(load, PYTHONPATH=os.pathsep.join([str(PLUGIN.parent), os.environ.get("PYTHONPATH", "")]))
    assert on_path.returncode == 0, on_path.stderr[-3000:]
    assert on_path.stdout.split()[:2] == ["ChannelGate", "channel_gate"]
    by_env = _python(load, YOLOATTN_PLUGINS=str(PLUGIN))
    assert by_env.returncode == 0, by_env.stderr[-3000:]
    missing = _python(load)
    assert missing.returncode != 0
    last = missing.stderr.strip().splitlines()[-1]
    assert "plug-in module 'channel_gate'" in last and "PYTHONPATH" in last and str(PLUGIN) in last


def test_an_undecorated_class_registers_when_named_and_its_checkpoint_reloads(tmp_path):
    """A module file as people copy it from a paper's repository: a plain nn.Module, no decorator."""
    plugin = tmp_path / "my_gate.py"
    plugin.write_text(PLUGIN.read_text().replace('@yoloattn.register_attention("ChannelGate")\n', ""))
    out = tmp_path / "v.yaml"
    run = _cli("variant", "yolov8n", "--module", "channelgate", "--where", "csp", "--plugin", plugin, "-o", out)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.rstrip().endswith(f"--plugin {plugin}:ChannelGate")  # the train command it prints works
    refusals = _python(f"""
        from yoloattn.modules import PluginError
        from yoloattn.plugins import load_plugin
        for spec in (r"{plugin}", r"{plugin}:Nope", r"{plugin}:torch"):
            try:
                load_plugin(spec)
            except PluginError as err:
                print(err)
    """)  # each one line, as the CLI prints it (tests/test_plugins.py::test_bad_plugins_... shows the CLI's path)
    assert refusals.stdout.strip().splitlines() == [
        f"plug-in {plugin} registered no attention module: name its class, --plugin {plugin}:ClassName (its "
        "nn.Module classes: ChannelGate), or in --modules, or decorate it with @yoloattn.register_attention(\"Name\") "
        "(see docs/plugins.md)",
        f"plug-in {plugin} has no class 'Nope' (its nn.Module classes: ChannelGate)",
        f"plug-in {plugin}: 'torch' is a module, not an nn.Module class"], refusals.stderr[-2000:]

    weights = tmp_path / "gate.pt"
    saved = _python(f"""
        import torch
        import yoloattn
        from yoloattn.plugins import loaded
        from ultralytics.nn.tasks import DetectionModel
        torch.save({{"model": DetectionModel(r"{out}", verbose=False), "train_args": {{}}}}, r"{weights}")
        print(loaded())
    """, YOLOATTN_PLUGINS=f"{plugin}:ChannelGate")
    assert saved.returncode == 0, saved.stderr[-3000:]
    assert saved.stdout.strip().splitlines()[-1] == repr([f"{plugin}:ChannelGate"])  # what compare hands its workers
    reload = _python(f"""
        import torch
        from ultralytics import YOLO
        m = YOLO(r"{weights}")
        m.model.eval()(torch.zeros(1, 3, 64, 64))
        print(type(m.model.model[8]).__name__)
    """, PYTHONPATH=os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    # the block is rebuilt by name on unpickling: importing my_gate registers nothing, the rebuild registers the class
    assert reload.returncode == 0 and reload.stdout.split()[-1] == "C2f_ChannelGate", reload.stderr[-3000:]


# --------------------------------------------------------------------------- entry points
def test_entry_point_registers_on_import(tmp_path):
    site = tmp_path / "site"
    package = site / "gatepkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "attn.py").write_text(PLUGIN.read_text().replace('@yoloattn.register_attention("ChannelGate")\n', ""))
    info = site / "gatepkg-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: gatepkg\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[yoloattn.modules]\nEPGate = gatepkg.attn:ChannelGate\n")
    run = _python("""
        import torch, yoloattn
        from yoloattn import modules
        from yoloattn.zoo import load_base, make_variant
        from ultralytics.nn.tasks import DetectionModel
        spec = modules.get("EPGate")
        d = make_variant(load_base("11/yolo11.yaml"), "EPGate", "csp"); d["scale"] = "n"
        model = DetectionModel(d, verbose=False).eval()
        model(torch.zeros(1, 3, 64, 64))
        print(spec.source, spec.origin, spec.channels, type(model.model[8]).__name__)
    """, PYTHONPATH=os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]))
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.split() == ["plug-in", "gatepkg.attn", "c", "C3k2_EPGate"]

    # the whole chain through the entry point alone (no --plugin): compare trains it, the checkpoint reloads
    site_path = os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])
    out = tmp_path / "compare"
    compared = _cli("compare", "--modules", "EPGate", "--base", "yolov8n", "--where", "sppf", "--preset", "tiny",
                    "--epochs", "1", "--seeds", "1", "--imgsz", "64", "--out", out, PYTHONPATH=site_path)
    assert compared.returncode == 0, compared.stdout[-3000:] + compared.stderr[-3000:]
    rows = list(csv.DictReader(open(out / "results.csv", newline="")))
    assert {r["model"] for r in rows} == {"yolov8n", "yolov8n-epgate-sppf"}
    weights = next((out / "runs").glob("*epgate*/**/*.pt"))
    reload = _python(f"""
        from ultralytics import YOLO
        print(type(YOLO(r"{weights}").model.model[10]).__name__)
    """, PYTHONPATH=site_path)
    assert reload.returncode == 0 and reload.stdout.split()[-1] == "EPGate", reload.stderr[-3000:]


# --------------------------------------------------------------------------- errors
BAD_PLUGINS = {
    "clash.py": ('"MQA"', "name 'MQA' is already taken by the built-in module"),
    "shape.py": ('"Halver"', "returns (2, 32, 9, 11) for an input of (2, 64, 9, 11)"),
    "empty.py": (None, "registered no attention module"),
}


@pytest.mark.parametrize("file", list(BAD_PLUGINS))
def test_bad_plugins_give_one_line_naming_the_plugin(tmp_path, file):
    name, message = BAD_PLUGINS[file]
    body = "import torch\nfrom torch import nn\nimport yoloattn\n"
    if name == '"MQA"':
        body += "@yoloattn.register_attention(\"MQA\")\nclass Mine(nn.Module):\n    def __init__(self, c):\n" \
                "        super().__init__()\n    def forward(self, x):\n        return x\n"
    elif name == '"Halver"':
        body += "@yoloattn.register_attention(\"Halver\")\nclass Halver(nn.Module):\n    def __init__(self, c):\n" \
                "        super().__init__()\n    def forward(self, x):\n        return x[:, : x.shape[1] // 2]\n"
    plugin = tmp_path / file
    plugin.write_text(body)
    run = _cli("modules", "--plugin", plugin)
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 2 and len(lines) == 1, run.stderr[-3000:]
    assert message in lines[0] and (file.removesuffix(".py") in lines[0])
    by_env = _cli("modules", YOLOATTN_PLUGINS=str(plugin))
    assert by_env.returncode == 2 and len(by_env.stderr.strip().splitlines()) == 1 and message in by_env.stderr


def test_register_attention_refuses_bad_names_and_classes():
    with pytest.raises(modules.PluginError, match="must be a Python identifier"):
        modules.register_attention("my-attn", torch.nn.Identity)
    with pytest.raises(modules.PluginError, match="unknown option"):
        modules.register_attention("Fine", torch.nn.Identity, quadratik=True)
    assert "Fine" not in modules.names() and "my-attn" not in modules.names()


def test_plugin_file_name_must_be_a_module_name(tmp_path):
    plugin = tmp_path / "my-gate.py"
    plugin.write_text(PLUGIN.read_text())
    run = _cli("modules", "--plugin", plugin)
    assert run.returncode == 2 and "rename the file, e.g. to my_gate.py" in run.stderr


def test_only_models_of_a_plugin_are_keyed_by_its_source(tmp_path):
    plugin = tmp_path / "gate_copy.py"
    plugin.write_text(PLUGIN.read_text().replace('"ChannelGate"', '"GateCopy"'))
    code = """
        import json, sys
        from yoloattn.plugins import load_plugin, used_plugins
        from yoloattn.zoo import load_base, make_variant
        base = load_base("11/yolo11.yaml")
        before = used_plugins(base)
        load_plugin(sys.argv[1])
        print(json.dumps([before, used_plugins(base), used_plugins(make_variant(base, "GateCopy", "csp")),
                          used_plugins(make_variant(base, "iRMB", "csp"))]))
    """
    first = _python_args(code, plugin)
    assert first.returncode == 0, first.stderr[-2000:]
    stock, stock_loaded, variant, irmb = json.loads(first.stdout.splitlines()[-1])
    assert stock == stock_loaded == irmb == {} and list(variant) == ["gate_copy"]
    plugin.write_text(plugin.read_text() + "\n# edited\n")
    again = json.loads(_python_args(code, plugin).stdout.splitlines()[-1])
    assert again[2]["gate_copy"] != variant["gate_copy"] and again[0] == again[3] == {}


def _python_args(code: str, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *map(str, args)], capture_output=True,
                          text=True, env=_env(), timeout=600)


class _Keep(torch.nn.Module):
    def __init__(self, channels: int):
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def test_names_clash_in_any_case_and_units_are_checked():
    with pytest.raises(modules.PluginError, match="'mqa' is already taken by the built-in module"):
        modules.register_attention("mqa", _Keep)
    with pytest.raises(modules.PluginError, match="unit must be 'bottleneck', 'residual'"):
        modules.register_attention("Fine", _Keep, unit="resid")
    assert "Fine" not in modules.names()
