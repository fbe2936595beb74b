"""Every current Ultralytics family and task: YOLO26, YOLO12, YOLOv10, RT-DETR; segment, pose, OBB.

The rules of ``make_variant`` on each family's stock YAML, the blocks they write (C3k2_M in the installed
Ultralytics' argument order, PSA_M, A2C2f_M, the AIFI slot), reload in a fresh process, and compare
end to end with the new bases.
"""

import csv
import dataclasses
import os
import subprocess
import sys
import textwrap

import pytest
import torch
import yaml

import yoloattn  # noqa: F401  (registers the blocks)
from yoloattn import zoo
from yoloattn.blocks import csp
from yoloattn.integration.heads import is_end_to_end, is_rtdetr, task_of, wrapper
from yoloattn.zoo import VariantError, make_variant
from yoloattn import rules as rule_table

import ultralytics
from ultralytics.nn.modules import C3k2
from ultralytics.nn.modules.block import C3k, PSABlock

HAS_84 = (zoo.stock_models_dir() / "26/yolo26.yaml").is_file()
needs_84 = pytest.mark.skipif(not HAS_84, reason=f"Ultralytics {ultralytics.__version__} has no YOLO26 (8.4)")


# ------------------------------------------------------------------------------ C3k2 in either argument order

# C3k2 rows as Ultralytics' YAMLs write them (after c1, c2, n): 8.3 and 8.4 read the first three alike; the
# longer ones are read in the installed order (8.4: c3k, e, attn, g, shortcut; 8.3: c3k, e, g, shortcut), e.g.
# (False, 0.5, 1, 1) is g=1, shortcut=1 on 8.3 and attn=1 (a PSABlock), g=1 on 8.4.
C3K2_ROWS = [(), (False, 0.25), (True,), (True, 0.5, True), (False, 0.5, True, 1), (False, 0.5, 1, 1),
             (False, 0.5, False, 1, False) if csp.C3K2_TAKES_ATTN else (False, 0.5, 1, False)]  # shortcut=False


@pytest.mark.bridge
@pytest.mark.parametrize("args", C3K2_ROWS)
def test_c3k2_blocks_read_stock_arguments_as_the_installed_ultralytics_does(args):
    stock, ours = C3k2(64, 64, 2, *args), csp.C3k2_ACmix(64, 64, 2, *args)
    assert [m.conv.weight.shape for m in (stock.cv1, stock.cv2)] == [m.conv.weight.shape for m in (ours.cv1, ours.cv2)]
    for s, o in zip(stock.m, ours.m, strict=True):
        if isinstance(s, torch.nn.Sequential):  # 8.4's attn=True: Bottleneck + PSABlock
            assert type(o[0]).__name__ == "ACmixBottleneck" and type(o[1]) is PSABlock
            assert o[1].attn.qkv.conv.weight.shape == s[1].attn.qkv.conv.weight.shape
            assert o[0].add == s[0].add  # the stock shortcut reaches the unit
        elif isinstance(s, C3k):
            assert type(o).__name__ == "_C3kUnits" and len(o.m) == len(s.m) and o.m[0].add == s.m[0].add
        else:
            assert type(o).__name__ == "ACmixBottleneck" and o.add == s.add
    x = torch.rand(1, 64, 9, 11)
    assert ours.eval()(x).shape == x.shape


def test_c3k2_blocks_take_the_8_3_order_where_ultralytics_has_no_attn(monkeypatch):
    monkeypatch.setattr(csp, "C3K2_TAKES_ATTN", False)
    old = csp.c3k2_family("ACmix")
    import inspect

    assert list(inspect.signature(old).parameters) == ["c1", "c2", "n", "c3k", "e", "g", "shortcut", "options"]
    block = old(64, 64, 1, False, 0.5, 1, False)  # g=1, shortcut=False
    assert block.m[0].add is False
    monkeypatch.setattr(csp, "C3K2_TAKES_ATTN", True)
    new = csp.c3k2_family("ACmix")
    assert list(inspect.signature(new).parameters) == ["c1", "c2", "n", "c3k", "e", "attn", "g", "shortcut", "options"]
    block = new(64, 64, 1, False, 0.5, False, 1, False)
    assert block.m[0].add is False
    with pytest.raises(TypeError):
        new(64, 64, 1, False, 0.5, False, 1, False, {"head": 2})  # options are keyword-only


@needs_84
def test_a_yolo26_row_keeps_attn_and_takes_options(tmp_path):
    d = zoo.load_base("26/yolo26.yaml")
    d["head"][-2] = [-1, 1, "C3k2_MQA", [1024, True, 0.5, True, {"kv_stride": 2}]]  # row 22, as stock plus options
    path = tmp_path / "yolo26n-c3k2attn.yaml"
    path.write_text(yaml.safe_dump(d, sort_keys=False))
    block = wrapper(path).model.model[22]
    unit, psa = block.m[0]
    assert type(unit).__name__ == "MQABlock" and unit.attn.kv_stride == 2 and type(psa) is PSABlock


# ------------------------------------------------------------------------------------------- placement rules

def test_a2c2f_rule_replaces_area_attention_only():
    base = zoo.load_base("12/yolo12.yaml")
    d = make_variant(base, "MQA", "a2c2f")
    rows = d["backbone"] + d["head"]
    changed = [i for i, (a, b) in enumerate(zip(base["backbone"] + base["head"], rows)) if a != b]
    assert changed == [6, 8]  # the a2=True blocks at P4 and P5; the neck's a2=False blocks stay
    assert rows[6] == [-1, 4, "A2C2f_MQA", [512, True, 4, {"kv_stride": 2}]]  # quadratic MQA at stride 16
    assert rows[8] == [-1, 4, "A2C2f_MQA", [1024, True, 1]]
    only32 = make_variant(base, "MLLA", "a2c2f@32")
    assert [r[2] for r in only32["backbone"]][6:9] == ["A2C2f", "Conv", "A2C2f_MLLA"]
    with pytest.raises(VariantError, match="YOLO12"):
        make_variant(zoo.load_base("v8/yolov8.yaml"), "MLLA", "a2c2f")
    with pytest.raises(VariantError, match="at stride \\[8\\]"):
        make_variant(base, "MLLA", "a2c2f@8")


def test_psa_rule_covers_yolov10s_psa():
    d = make_variant(zoo.load_base("v10/yolov10n.yaml"), "iRMB", "psa")
    assert d["backbone"][10] == [-1, 1, "PSA_iRMB", [1024]]


def test_aifi_rule_replaces_rtdetrs_encoder_layer_with_the_same_channels():
    base = zoo.load_base("rt-detr/rtdetr-l.yaml")
    d = make_variant(base, "MLLA", "aifi")
    rows, stock = d["backbone"] + d["head"], base["backbone"] + base["head"]
    assert stock[11][2] == "AIFI" and rows[11] == [-1, 1, "MLLA", [256]]  # AIFI's input is input_proj.2, 256 wide
    assert [r for i, r in enumerate(rows) if i != 11] == [r for i, r in enumerate(stock) if i != 11]
    layer = wrapper(tmp_yaml(d, "rtdetr-l-mlla-aifi")).model.model[11].eval()
    x = torch.rand(1, 256, 5, 7)  # a 2-D map in, the same shape out, as AIFI
    assert type(layer).__name__ == "MLLABlock" and layer(x).shape == x.shape
    with pytest.raises(VariantError, match="RT-DETR"):
        make_variant(zoo.load_base("11/yolo11.yaml"), "MLLA", "aifi")


def tmp_yaml(d: dict, stem: str):
    import tempfile

    folder = tempfile.mkdtemp(prefix="yoloattn-families-")
    path = os.path.join(folder, f"{stem}.yaml")
    with open(path, "w") as f:
        f.write(zoo.render(d, stem))
    return path


def test_default_placement_is_each_familys_own_attention_block():
    from yoloattn.zoo.variants import default_rule

    expected = {"v8/yolov8.yaml": "csp", "11/yolo11.yaml": "psa", "12/yolo12.yaml": "a2c2f",
                "v10/yolov10n.yaml": "psa", "rt-detr/rtdetr-l.yaml": "aifi", "v9/yolov9t.yaml": "csp"}
    if HAS_84:
        expected["26/yolo26.yaml"] = "psa"
    assert {base: default_rule(zoo.load_base(base)) for base in expected} == expected


# Which rule applies to which family (and task): the closing table of the families issue.
BASES = ["26/yolo26.yaml", "26/yolo26-p2.yaml", "26/yolo26-p6.yaml", "26/yolo26-seg.yaml", "26/yolo26-pose.yaml",
         "26/yolo26-obb.yaml", "11/yolo11-seg.yaml", "11/yolo11-pose.yaml", "11/yolo11-obb.yaml", "12/yolo12.yaml",
         "12/yolo12-seg.yaml", "v10/yolov10n.yaml", "rt-detr/rtdetr-l.yaml", "rt-detr/rtdetr-resnet50.yaml"]
# The rule table's families (docs/families.md shows them): what applies is what must build and run.
RULES = rule_table.any_module_rules()
APPLIES = {folder: {rule.name for rule in rule_table.table() if family in rule.families and rule.name in RULES}
           for folder, family in rule_table.FAMILIES.items()}


@pytest.mark.bridge
@pytest.mark.parametrize("base", BASES)
def test_every_rule_builds_and_runs_where_it_applies(base):
    if not (zoo.stock_models_dir() / base).is_file():
        pytest.skip(f"Ultralytics {ultralytics.__version__} has no {base}")
    d = zoo.load_base(base)
    applied = set()
    for rule in RULES:
        try:
            variant = make_variant(d, "MQA", rule)
        except VariantError:
            continue
        applied.add(rule)
        scale = "n" if "n" in (d.get("scales") or {}) else ""
        stem = os.path.basename(base).removesuffix(".yaml")
        name = stem.replace(stem.split("-")[0], stem.split("-")[0] + scale, 1) if scale else stem
        net = wrapper(tmp_yaml(variant, f"{name}-mqa-{rule}")).model
        x = torch.rand(1, 3, 128, 192) if not is_rtdetr(d) else torch.rand(1, 3, 640, 640)
        net.eval()
        with torch.no_grad():
            y = net(x)
        while isinstance(y, (list, tuple)):  # (predictions, raw) and Segment's ((boxes, protos), raw)
            y = y[0]
        assert torch.isfinite(y).all(), rule
        if not is_rtdetr(d):  # RT-DETR's training forward needs a batch for its denoising queries
            net.train()
            net(x)
    assert applied == APPLIES[base.split("/")[0]]


# ------------------------------------------------------------------------------------------------- blocks

def test_a2c2f_m_keeps_the_skeleton_the_scale_rule_and_the_mlp():
    from yoloattn.blocks import A2C2f_MLLA, A2C2f_MQA

    from ultralytics.nn.modules.block import A2C2f

    for scale, residual, ratio in (("n", False, 2.0), ("l", True, 1.2)):
        d = make_variant(zoo.load_base("12/yolo12.yaml"), "MQA", "a2c2f")
        d["scale"] = scale
        net = wrapper(tmp_yaml(d, f"yolo12{scale}-mqa-a2c2f")).model
        stock = wrapper(f"yolo12{scale}.yaml").model
        ours, theirs = net.model[8], stock.model[8]
        assert isinstance(ours, A2C2f) and (ours.gamma is not None) == (theirs.gamma is not None) == residual
        hidden = ours.cv1.conv.out_channels
        block = ours.m[0][0]
        assert len(ours.m) == len(theirs.m) and len(ours.m[0]) == 2
        assert type(block).__name__ == "PSAMixerBlock" and block.ffn[0].conv.out_channels == int(hidden * ratio)
        assert theirs.m[0][0].mlp[0].conv.out_channels == int(hidden * ratio)
    with pytest.raises(ValueError, match="a2=False"):
        A2C2f_MLLA(64, 64, 1, False)
    x = torch.rand(2, 64, 7, 5)
    assert A2C2f_MQA(64, 64, 1, residual=True).eval()(x).shape == x.shape


def test_psa_m_keeps_the_ffn_and_the_channels():
    from yoloattn.blocks import PSA_MLLA, PSA_MQA

    from ultralytics.nn.modules.block import PSA

    block = PSA_MQA(128, 128)
    stock = PSA(128, 128)
    assert isinstance(block, PSA) and block.m.ffn[0].conv.weight.shape == stock.ffn[0].conv.weight.shape
    assert type(block.m.attn).__name__ == "MobileMQA"
    x = torch.rand(2, 128, 6, 9)
    assert block.eval()(x).shape == x.shape and PSA_MLLA(128, 128).eval()(x).shape == x.shape
    with pytest.raises(ValueError, match="c1 == c2"):
        PSA_MQA(128, 64)


# ------------------------------------------------------------------------------------ reload and heads

@pytest.mark.bridge
def test_new_family_checkpoints_reload_in_a_fresh_process(tmp_path):
    names = ["yolo12n-mlla-a2c2f.yaml", "yolov10n-irmb-psa.yaml", "rtdetr-l-acmix-aifi.yaml"]
    if HAS_84:
        names.append("yolo26n-mqa-psa.yaml")
    x = torch.rand(1, 3, 256, 320)
    torch.save(x, tmp_path / "x.pt")
    for i, name in enumerate(names):
        model = wrapper(zoo.path(name))
        model.save(tmp_path / f"{i}.pt")
        net = wrapper(str(tmp_path / f"{i}.pt")).model.eval()  # checkpoints hold half-precision weights
        with torch.no_grad():
            torch.save(net(x)[0], tmp_path / f"{i}-y.pt")
    script = textwrap.dedent(f"""
        import sys, torch
        from ultralytics import RTDETR, YOLO
        x = torch.load(r"{tmp_path / 'x.pt'}")
        for i, cls in enumerate({[("RTDETR" if n.startswith("rtdetr") else "YOLO") for n in names]}):
            m = (RTDETR if cls == "RTDETR" else YOLO)(r"{tmp_path}/%d.pt" % i).model.eval()
            torch.save(m.state_dict(), r"{tmp_path}/%d-fresh.pt" % i)
            with torch.no_grad():
                y = m(x)[0]
            expected = torch.load(r"{tmp_path}/%d-y.pt" % i)
            print(float((y - expected).abs().max() / expected.abs().max()))
        assert "yoloattn" in sys.modules
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    errors = dict(zip(names, (float(v) for v in out.stdout.split()[-len(names):])))
    for i, name in enumerate(names):
        mine = wrapper(str(tmp_path / f"{i}.pt")).model.state_dict()
        fresh = torch.load(tmp_path / f"{i}-fresh.pt")
        assert mine.keys() == fresh.keys() and all(torch.equal(mine[k], fresh[k]) for k in mine), name
        # RT-DETR's outputs of an untrained model come through top-k selections over near-tied scores, which
        # the new process's thread count can reorder: there the identical weights above are the check
        if not name.startswith("rtdetr"):
            assert errors[name] < 1e-5, errors


def test_heads_know_each_family():
    assert task_of(zoo.load_base("rt-detr/rtdetr-l.yaml")) == "detect" and is_rtdetr(zoo.load_base("rt-detr/rtdetr-l.yaml"))
    assert is_end_to_end(zoo.load_base("v10/yolov10n.yaml")) and not is_end_to_end(zoo.load_base("11/yolo11.yaml"))
    assert task_of(zoo.load_base("11/yolo11-pose.yaml")) == "pose"
    if HAS_84:
        assert is_end_to_end(zoo.load_base("26/yolo26.yaml")) and task_of(zoo.load_base("26/yolo26-obb.yaml")) == "obb"


# ------------------------------------------------------------------------------------------------ compare

TINY = ["compare", "--preset", "tiny", "--epochs", "1", "--seeds", "1", "--imgsz", "64", "--threads-per-run", "1"]


@pytest.mark.parametrize("base, module, where", [
    pytest.param("yolo26n", "mqa", "psa", marks=needs_84), ("yolo12n", "mlla", "a2c2f"), ("yolov10n", "irmb", "psa")])
def test_compare_runs_the_new_bases_end_to_end(tmp_path, capsys, base, module, where):
    from yoloattn.cli import main

    out = tmp_path / "o"
    assert main([*TINY, "--base", base, "--modules", module, "--out", str(out)]) == 0
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert [r["model"] for r in rows] == [base, f"{base}-{module}-{where}"]
    assert all(float(r["latency_p50_ms"]) > 0 and r["map50_95"] != "" for r in rows)
    report = (out / "report.md").read_text()
    spec = (out / "runs").glob("*/spec.json")
    nms = {yaml.safe_load(p.read_text())["train_args"].get("nms", "absent") for p in spec}
    if base in ("yolo26n", "yolov10n"):  # end-to-end heads: fixed to the NMS-free head, and said so
        assert nms == {False} and "head: the end-to-end one-to-one branch, NMS-free" in report
    else:
        assert nms == {"absent"} and "head: " not in report


def test_compare_times_the_one_to_many_head_with_nms(tmp_path):
    from yoloattn.compare import CompareSettings, resolve
    from yoloattn.compare.plan import plan_models, plan_runs, plan_variants, prepare_data

    settings = CompareSettings(preset="tiny", base="yolov10n", modules=("MQA",), epochs=1, seeds=1, imgsz=64,
                               threads_per_run=1, nms=True, out=str(tmp_path))
    resolved = resolve(settings)
    models = plan_models(resolved, plan_variants(resolved))
    assert all(m.end_to_end for m in models)
    nms_runs = plan_runs(settings, models, prepare_data(settings, tmp_path), tmp_path)
    e2e_runs = plan_runs(dataclasses.replace(settings, nms=False), models, prepare_data(settings, tmp_path), tmp_path)
    assert {r.key for r in nms_runs}.isdisjoint(r.key for r in e2e_runs)  # the head mode is in every run key
    assert "nms" not in settings.train_args(0, end_to_end=True) and settings.train_args(0)["seed"] == 0


def test_compare_runs_rtdetr_through_its_trainer(tmp_path):
    from yoloattn.cli import main

    out = tmp_path / "o"
    assert main([*TINY, "--base", "rtdetr-l", "--modules", "mlla", "--out", str(out)]) == 0
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert [r["model"] for r in rows] == ["rtdetr-l", "rtdetr-l-mlla-aifi"]
    args = (out / "runs").glob("rtdetr-l-mlla-aifi-*/train/args.yaml")
    assert yaml.safe_load(next(args).read_text())["model"].endswith("rtdetr-l-mlla-aifi.yaml")


@pytest.mark.parametrize("base, task, detection", [("yolo11n-seg", "a segment", "yolo11n"),
                                                   ("yolo11n-pose", "a pose", "yolo11n"),
                                                   ("yolov8n-obb", "an obb", "yolov8n")])
def test_compare_refuses_other_tasks_in_one_line(tmp_path, capsys, base, task, detection):
    from yoloattn.cli import main

    assert main([*TINY, "--base", base, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"--base {base} is {task} model" in err[0] and err[0].endswith(f"--base {detection}")


def test_trainer_follows_the_task():
    from yoloattn.integration.heads import trainer_for

    expected = {"11/yolo11.yaml": "DetectionTrainer", "11/yolo11-seg.yaml": "SegmentationTrainer",
                "11/yolo11-pose.yaml": "PoseTrainer", "11/yolo11-obb.yaml": "OBBTrainer",
                "rt-detr/rtdetr-l.yaml": "RTDETRTrainer"}
    for base, name in expected.items():
        cls = trainer_for(zoo.load_base(base))
        assert cls.__name__ == name and cls.__module__ == "yoloattn.integration.trainer"
    with pytest.raises(yoloattn.YoloattnError, match="classify model"):
        trainer_for(zoo.load_base("11/yolo11-cls.yaml"))


def _polygon_copy(data_yaml, out):
    """The tiny detection dataset with every box written as a 4-point polygon (a segment dataset)."""
    import shutil

    src = os.path.dirname(data_yaml)
    shutil.copytree(src, out)
    for label in (p for p in __import__("pathlib").Path(out).rglob("*.txt") if "labels" in p.parts):
        rows = []
        for line in label.read_text().split("\n"):
            if line.strip():
                c, x, y, w, h = line.split()
                x, y, w, h = map(float, (x, y, w, h))
                corners = [x - w / 2, y - h / 2, x + w / 2, y - h / 2, x + w / 2, y + h / 2, x - w / 2, y + h / 2]
                rows.append(" ".join([c, *(f"{v:.6f}" for v in corners)]))
        label.write_text("\n".join(rows) + "\n")
    target = os.path.join(out, os.path.basename(data_yaml))
    d = yaml.safe_load(open(target))
    d["path"] = str(out)  # the generator writes absolute paths
    with open(target, "w") as f:
        yaml.safe_dump(d, f)
    return target


def test_cli_trains_a_segment_variant_with_the_segmentation_trainer(tmp_path, capsys, monkeypatch, tiny_data):
    from yoloattn.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["variant", "yolo11n-seg", "--module", "mqa", "--where", "psa", "-o", "yolo11n-seg-mqa-psa.yaml"]) == 0
    assert "data=PATH/segment-data.yaml" in capsys.readouterr().out  # no embedded-data hint for a seg model
    assert main(["train", "yolo11n-seg-mqa-psa.yaml", "data=embedded:tiny", "epochs=1", "imgsz=64"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is a segment model, but the embedded dataset has boxes only" in err[0]
    data = _polygon_copy(tiny_data, tmp_path / "seg")
    assert main(["train", "yolo11n-seg-mqa-psa.yaml", f"data={data}", "epochs=1", "imgsz=64", "batch=4", "workers=0",
                 "plots=False", f"project={tmp_path}", "name=t"]) == 0
    ckpt = torch.load(tmp_path / "t" / "weights" / "last.pt", weights_only=False)
    assert type(ckpt["model"]).__name__ == "SegmentationModel"
    assert type(ckpt["model"].model[10]).__name__ == "C2PSA_MQA"


def test_cli_trains_validates_and_exports_an_rtdetr_variant(tmp_path, capsys, monkeypatch, tiny_data):
    from yoloattn.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["train", "rtdetr-l-mlla-aifi", f"data={tiny_data}", "epochs=1", "imgsz=64", "batch=4", "workers=0",
                 "plots=False", f"project={tmp_path}", "name=t"]) == 0
    best = tmp_path / "t" / "weights" / "best.pt"
    ckpt = torch.load(best, weights_only=False)
    assert type(ckpt["model"]).__name__ == "RTDETRDetectionModel"
    assert type(ckpt["model"].model[11]).__name__ == "MLLABlock"
    assert main(["val", str(best), f"data={tiny_data}", "imgsz=64", "batch=4", "plots=False", f"project={tmp_path}",
                 "name=v"]) == 0
    assert main(["export", str(best), "imgsz=64"]) == 0 and (tmp_path / "t" / "weights" / "best.onnx").is_file()


def test_zoo_command_groups_the_files_by_family(capsys):
    from yoloattn.cli import main

    assert main(["zoo"]) == 0
    lines = capsys.readouterr().out.splitlines()
    headers = [line for line in lines if line.endswith(":") and not line.startswith(" ")]
    assert headers == ["YOLOv8:", "YOLO11:", "YOLO26:", "YOLO12:", "YOLOv10:", "YOLOv9:", "RT-DETR:"]
    section = lines[lines.index("YOLO12:") + 1:lines.index("YOLOv10:")]
    assert len(section) == 8 and all("yolo12-" in line and "yolo12.yaml + " in line for line in section)
    assert any(line.strip().startswith("rtdetr-l-mlla-aifi.yaml") for line in lines[lines.index("RT-DETR:"):])
