"""The model zoo: every bundled YAML builds and runs in stock Ultralytics after `import yoloattn`."""

import re

import numpy as np
import pytest
import torch
import yaml

import yoloattn  # noqa: F401  (registers the blocks)
from yoloattn import zoo
from yoloattn.zoo import VariantError, make_variant

import ultralytics
from ultralytics import YOLO
from ultralytics.utils.torch_utils import get_flops

NAMES = zoo.names()


def scaled(name: str) -> str:
    """The scale-n spelling of a bundled file (v9 files have no scales)."""
    return re.sub(r"^(yolov8|yolo11)-", r"\1n-", name)


def test_bundle_is_a_fresh_regeneration(tmp_path):
    written = zoo.generate(tmp_path)
    assert sorted(p.name for p in written) == NAMES
    for p in written:
        assert p.read_text() == (zoo.YAML_DIR / p.name).read_text(), f"{p.name} is stale: run python -m yoloattn.zoo"


def test_zoo_covers_every_module_family_and_the_tutorial_file():
    for module in ("mqa", "acmix", "mlla", "irmb"):
        for expected in (f"yolov8-{module}-c2f.yaml", f"yolov8-{module}-sppf.yaml", f"yolov8-{module}-head.yaml",
                         f"yolo11-{module}-c3k2.yaml", f"yolo11-{module}-psa.yaml", f"yolov9t-{module}-elan.yaml",
                         f"yolov9c-{module}-elan.yaml"):
            assert expected in NAMES
    assert "yolov9c-mmqa.yaml" in NAMES


def test_path_resolves_scaled_names_and_rejects_unknown():
    assert zoo.path("yolo11n-mlla-psa.yaml").endswith("zoo/yamls/yolo11n-mlla-psa.yaml")
    assert zoo.path("yolov9c-mmqa").endswith("yolov9c-mmqa.yaml")
    with pytest.raises(FileNotFoundError, match="yolo11-mlla-psa.yaml"):
        zoo.path("yolo11-mla-psa.yaml")


@pytest.mark.bridge
@pytest.mark.parametrize("name", NAMES)
def test_zoo_model_builds_and_runs(name):
    model = YOLO(zoo.path(scaled(name)))  # the build itself runs Ultralytics' 256x256 stride probe
    net = model.model
    assert net.stride.tolist() == [8.0, 16.0, 32.0]
    sizes = [(256, 256), (192, 320)] if name == "yolov9c-mmqa.yaml" else [(640, 640), (384, 640)]
    for h, w in sizes:
        x = torch.rand(1, 3, h, w)
        net.eval()
        with torch.no_grad():
            y = net(x)[0]
        assert y.shape == (1, 4 + 80, (h // 8) * (w // 8) + (h // 16) * (w // 16) + (h // 32) * (w // 32))
        assert torch.isfinite(y).all()
        net.train()
        out = net(x)
        feats = out["feats"] if isinstance(out, dict) else out
        assert [f.shape[-2:] for f in feats] == [(h // s, w // s) for s in (8, 16, 32)]


# Inputs whose P5 maps are 1x1, 1x3, 3x5 (96x160: Ultralytics' rect validation of 2:1 images at
# imgsz=160) and 2x1: every placement must run wherever a detector can put it (reliability kind 1).
TINY_INPUTS = [(32, 32), (32, 96), (96, 160), (64, 32)]


@pytest.mark.bridge
@pytest.mark.parametrize("name", NAMES)
def test_zoo_model_runs_on_maps_down_to_1x1(name):
    net = YOLO(zoo.path(scaled(name))).model
    for h, w in TINY_INPUTS:
        net.eval()
        with torch.no_grad():
            y = net(torch.rand(2, 3, h, w))[0]
        assert torch.isfinite(y).all(), (h, w)
        net.train()
        out = net(torch.rand(2, 3, h, w))
        feats = out["feats"] if isinstance(out, dict) else out
        sum(f.float().sum() for f in feats).backward()
        assert [tuple(f.shape[-2:]) for f in feats] == [(-(-h // s), -(-w // s)) for s in (8, 16, 32)], (h, w)


@pytest.mark.bridge
def test_scale_letter_selects_scale():
    n = YOLO(zoo.path("yolo11n-mlla-psa.yaml")).model
    s = YOLO(zoo.path("yolo11s-mlla-psa.yaml")).model
    assert n.model[10].cv1.conv.in_channels == 256 and s.model[10].cv1.conv.in_channels == 512


@pytest.mark.skipif(not ultralytics.__version__.startswith("8.4."),
                    reason="Ultralytics 8.3's get_flops scales a small proxy input linearly, overcounting attention")
@pytest.mark.parametrize("name", ["yolo11n-mlla-psa.yaml", "yolov8n-acmix-head.yaml", "yolov8n-irmb-c2f.yaml",
                                  "yolo11n-mqa-psa.yaml", "yolov9t-mqa-elan.yaml"])
def test_ultralytics_gflops_agree_with_the_full_count(name):
    # What `model.info()` prints (thop) against yoloattn's count, which includes the fused attention
    # kernels and ACmix's window attention (checked against hand formulas in test_flops.py).
    from yoloattn import bench

    net = YOLO(zoo.path(name)).model.eval()
    assert get_flops(net, 640) == pytest.approx(bench.count_gflops(net, 640), rel=0.05)


@pytest.mark.bridge
@pytest.mark.parametrize("name", ["yolov8n-mqa-c2f.yaml", "yolo11n-acmix-c3k2.yaml", "yolo11n-irmb-psa.yaml",
                                  "yolov9t-mlla-elan.yaml"])
def test_fuse_keeps_outputs(name):
    net = YOLO(zoo.path(name)).model.eval()
    for m in net.modules():  # non-trivial BN statistics so fusing has something to fold
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    x = torch.rand(1, 3, 224, 160)
    with torch.no_grad():
        before = net(x)[0]
        net.fuse(verbose=False)
        after = net(x)[0]
    assert net.is_fused()
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", ["yolo11n-mlla-psa.yaml", "yolov8n-acmix-sppf.yaml", "yolov8n-irmb-head.yaml",
                                  "yolo11n-mqa-c3k2.yaml"])
def test_onnx_dynamic_export_matches_onnxruntime(name, tmp_path, monkeypatch):
    import onnxruntime as ort

    monkeypatch.chdir(tmp_path)  # Ultralytics names the file after the YAML and writes it here
    model = YOLO(zoo.path(name))
    onnx_path = model.export(format="onnx", dynamic=True, imgsz=256, simplify=False, project=str(tmp_path))
    session = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    net = model.model.float().eval()
    for h, w in [(256, 256), (192, 320)]:
        x = torch.rand(1, 3, h, w)
        with torch.no_grad():
            expected = net(x)[0].numpy()
        got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
        assert got.shape == expected.shape
        assert np.abs(got - expected).max() <= 1e-3 * max(1.0, np.abs(expected).max())


def test_make_variant_fixes_shifted_indices():
    base = zoo.load_base("v8/yolov8.yaml")
    d = make_variant(base, "mlla", "sppf")
    rows = d["backbone"] + d["head"]
    assert rows[10][2] == "MLLA" and rows[10][3] == [1024]
    assert rows[12][0] == [-1, 6]  # P4 concat unchanged (index < insertion)
    assert rows[21][0] == [-1, 10]  # P5 concat now reads the attended SPPF output (was 9)
    assert rows[-1][0] == [16, 19, 22]
    d = make_variant(base, "MQA", "head")
    rows = d["backbone"] + d["head"]
    assert [r[0] for r in rows[22:24]] == [18, 21]  # MQA skips the stride-8 output
    assert rows[-1][0] == [15, 22, 23]


def test_make_variant_errors_are_clear():
    with pytest.raises(VariantError, match="no C2PSA"):
        make_variant(zoo.load_base("v8/yolov8.yaml"), "mlla", "psa")
    with pytest.raises(VariantError, match="choose one of MQA, ACmix, MLLA, iRMB"):
        make_variant(zoo.load_base("v8/yolov8.yaml"), "cbam", "csp")
    with pytest.raises(VariantError, match="unknown placement"):
        make_variant(zoo.load_base("v8/yolov8.yaml"), "mlla", "backbone")


def test_rendered_yaml_round_trips():
    d = make_variant(zoo.load_base("11/yolo11.yaml"), "mqa", "csp@16,32")
    again = yaml.safe_load(zoo.render(d, "t"))
    assert again["backbone"] == d["backbone"] and again["head"] == d["head"]
    assert again["backbone"][6][3][-1] == {"kv_stride": 2}
