"""The model zoo: every bundled YAML builds and runs in stock Ultralytics after `import yoloattn`."""

import re

import numpy as np
import pytest
import torch
import yaml

import yoloattn  # noqa: F401  (registers the blocks)
from yoloattn import modules, zoo
from yoloattn.zoo import VariantError, layer_strides, make_variant

import ultralytics
from ultralytics import YOLO
from ultralytics.utils.torch_utils import get_flops

NAMES = zoo.names()
PLAN = {name: base for base, _, _, name in zoo.planned()}


def scaled(name: str) -> str:
    """The scale-n spelling of a bundled file (v9, v10 and RT-DETR files have no scale letter)."""
    return re.sub(r"^(yolov8|yolo11|yolo26|yolo12)-", r"\1n-", name)


def base_name(name: str) -> str:
    """The bundled file of a name, scale letter dropped: ``yolo26n-mqa-psa.yaml`` -> ``yolo26-mqa-psa.yaml``."""
    from yoloattn.zoo.naming import split_scale

    stem = name.removesuffix(".yaml")
    return f"{stem}.yaml" if f"{stem}.yaml" in PLAN else f"{split_scale(stem)[0]}.yaml"


def base_of(name: str) -> str:
    """The Ultralytics base file of a bundled name, scaled or not: ``yolo26n-mqa-psa.yaml`` -> ``26/yolo26.yaml``."""
    return PLAN[base_name(name)]


def installed(name: str) -> bool:
    """Whether the installed Ultralytics has the family of a bundled file (YOLO26 needs 8.4)."""
    return (zoo.stock_models_dir() / base_of(name)).is_file()


def needs_family(name: str):
    return pytest.mark.skipif(not installed(name), reason=f"Ultralytics {ultralytics.__version__} has no "
                              f"{zoo.family_of(base_of(name))} (it came with 8.4)")


def zoo_params(names):
    return [pytest.param(n, marks=needs_family(n)) for n in names]


def build(name: str):
    """The bundled model through the wrapper Ultralytics needs for it (RTDETR for RT-DETR)."""
    from yoloattn.integration.heads import wrapper

    return wrapper(zoo.path(scaled(name)))


def head_kind(name: str) -> str:
    from yoloattn.integration.heads import is_end_to_end, is_rtdetr

    d = yaml.safe_load(open(zoo.YAML_DIR / base_name(name)))
    return "rtdetr" if is_rtdetr(d) else "end2end" if is_end_to_end(d) else "detect"


def feats_of(out):
    """Train-mode feature maps: a list (v8-style), {"feats": ...} or {"one2many": {...}} (end-to-end heads)."""
    if isinstance(out, dict):
        out = out.get("one2many", out)
        out = out["feats"] if isinstance(out, dict) else out
    return out


def test_bundle_is_a_fresh_regeneration(tmp_path):
    written = zoo.generate(tmp_path)
    assert sorted(p.name for p in written) == NAMES
    for p in written:
        assert p.read_text() == (zoo.YAML_DIR / p.name).read_text(), f"{p.name} is stale: run python -m yoloattn.zoo"


def test_zoo_covers_every_module_family_and_the_tutorial_file():
    for module in ("mqa", "acmix", "mlla", "irmb"):
        for expected in (f"yolov8-{module}-csp.yaml", f"yolov8-{module}-sppf.yaml", f"yolov8-{module}-head.yaml",
                         f"yolo11-{module}-csp.yaml", f"yolo11-{module}-psa.yaml", f"yolo11-{module}-head.yaml",
                         f"yolov9t-{module}-csp.yaml", f"yolov9t-{module}-sppf.yaml", f"yolov9c-{module}-csp.yaml"):
            assert expected in NAMES
    assert "yolov9c-mmqa.yaml" in NAMES


def test_path_resolves_scaled_names_and_rejects_unknown():
    assert zoo.path("yolo11n-mlla-psa.yaml").endswith("zoo/yamls/yolo11n-mlla-psa.yaml")
    assert zoo.path("yolov9c-mmqa").endswith("yolov9c-mmqa.yaml")
    with pytest.raises(FileNotFoundError, match="yolo11-mlla-psa.yaml"):
        zoo.path("yolo11-mla-psa.yaml")


# ---------------------------------------------------------------------------- one naming scheme, old names as aliases

# Former bundled names (named after the block, not the rule) and the file each one is now.
FORMER = {"yolov8-mlla-c2f.yaml": "yolov8-mlla-csp.yaml", "yolo11-mqa-c3k2.yaml": "yolo11-mqa-csp.yaml",
          "yolov9t-irmb-elan.yaml": "yolov9t-irmb-csp.yaml", "yolov9c-acmix-elan.yaml": "yolov9c-acmix-csp.yaml",
          "yolov9t-irmb-sppelan.yaml": "yolov9t-irmb-sppf.yaml"}


def test_file_names_follow_the_naming_rule():
    from yoloattn.zoo.naming import variant_stem

    planned = zoo.planned()
    assert sorted(name for *_, name in planned) == NAMES
    for base, module, rule, name in planned:
        assert name == f"{variant_stem(base.split('/')[-1].removesuffix('.yaml'), module, rule)}.yaml"
        expected = f"-{rule}.yaml" if rule == "mmqa" else f"-{module.lower()}-{rule}.yaml"
        assert name.endswith(expected), name
    assert variant_stem("yolo11n", "MQA", "csp@16,32") == "yolo11n-mqa-csp16-32"
    assert variant_stem("yolov9c", "MQA", "mmqa") == "yolov9c-mmqa"


def test_aliases_are_derived_from_the_rules_and_cover_every_former_name():
    aliases = zoo.aliases()
    for old, new in FORMER.items():
        assert aliases[old] == new
    assert len(aliases) == 20  # v8 csp, 11 csp, v9t csp + sppf, v9c csp: 5 placements x 4 modules
    assert set(aliases.values()) <= set(NAMES) and not set(aliases) & set(NAMES)
    assert "yolov8-mlla-sppf.yaml" not in aliases and "yolov9c-mmqa.yaml" not in aliases


@pytest.mark.parametrize("old, new", [*FORMER.items(), ("yolov8n-mlla-c2f.yaml", "yolov8n-mlla-csp.yaml"),
                                      ("yolo11s-mqa-c3k2", "yolo11s-mqa-csp.yaml"),
                                      ("yolov9t-mqa-sppelan", "yolov9t-mqa-sppf.yaml")])
def test_former_names_resolve_to_the_same_file(old, new):
    from yoloattn.compare.models import model_file, resolve_model
    from yoloattn.integration.names import bundled_file

    assert zoo.path(old) == zoo.path(new) == str(zoo.YAML_DIR / new)
    assert zoo.canonical_name(old) == new
    assert resolve_model(old) == resolve_model(new) == zoo.path(new)
    assert model_file(resolve_model(old)).is_file()
    if not re.match(r"^yolo(v8|11)[nslmx]-", new):  # bare unscaled names: what Ultralytics' check_yaml asks for
        assert bundled_file(old if old.endswith(".yaml") else f"{old}.yaml") == zoo.path(new)


def test_former_names_are_not_listed_or_suggested():
    from yoloattn.compare.models import known_names

    assert not set(zoo.aliases()) & set(NAMES)
    assert "yolov8n-mlla-c2f" not in known_names() and "yolov8n-mlla-csp" in known_names()


@pytest.mark.bridge
@pytest.mark.parametrize("old, new", [("yolov8n-mlla-c2f.yaml", "yolov8n-mlla-csp.yaml"),
                                      ("yolo11-mqa-c3k2.yaml", "yolo11-mqa-csp.yaml"),
                                      ("yolov9t-irmb-sppelan.yaml", "yolov9t-irmb-sppf.yaml")])
def test_stock_yolo_builds_former_names_after_import(old, new):
    a, b = YOLO(old).model, YOLO(new).model  # bare names: Ultralytics' own lookup, then the zoo's
    assert [type(m).__name__ for m in a.model] == [type(m).__name__ for m in b.model]
    assert a.yaml["backbone"] == b.yaml["backbone"] and a.yaml["head"] == b.yaml["head"]
    assert sum(p.numel() for p in a.parameters()) == sum(p.numel() for p in b.parameters())
    assert a.yaml.get("scale") == b.yaml.get("scale")


@pytest.mark.bridge
def test_a_local_file_with_a_former_name_still_wins(tmp_path, monkeypatch):
    own = yaml.safe_load(open(zoo.path("yolov8-irmb-csp.yaml")))
    own["nc"] = 3
    (tmp_path / "yolov8-irmb-c2f.yaml").write_text(yaml.safe_dump(own))
    monkeypatch.chdir(tmp_path)
    assert YOLO("yolov8n-irmb-c2f.yaml").model.yaml["nc"] == 3
    monkeypatch.chdir(tmp_path.parent)
    assert YOLO("yolov8n-irmb-c2f.yaml").model.yaml["nc"] == 80


def test_compare_labels_are_zoo_names(tmp_path):
    from yoloattn.compare import CompareSettings, resolve
    from yoloattn.compare.models import model_file
    from yoloattn.compare.plan import plan_models, plan_variants

    def plan_models_of(settings):
        resolved = resolve(settings)
        planned = plan_variants(resolved)
        return plan_models(resolved, planned), planned.where

    cases = [("yolov8n", None, "csp"), ("yolov8n", "sppf", "sppf"), ("yolo11n", None, "psa"), ("yolo11n", "csp", "csp"),
             ("yolov9t", "sppf", "sppf"), ("yolov9c", "csp", "csp")]
    for i, (base, where, rule) in enumerate(cases):
        specs, used = plan_models_of(CompareSettings(base=base, where=where, out=str(tmp_path / str(i))))
        assert used == rule
        for spec in specs[1:]:
            assert spec.label == f"{base}-{spec.module.lower()}-{rule}"
            assert zoo.is_bundled(spec.label), spec.label  # the label is a zoo name (with the base's scale)
            bundled = yaml.safe_load(model_file(zoo.path(spec.label)).read_text())
            written = yaml.safe_load(spec.yaml_path.read_text())
            assert written["backbone"] == bundled["backbone"] and written["head"] == bundled["head"], spec.label
    specs, _ = plan_models_of(CompareSettings(base="yolov9c", modules=("MQA",), where="mmqa", out=str(tmp_path / "mmqa")))
    assert [s.label for s in specs] == ["yolov9c", "yolov9c-mmqa"] and zoo.is_bundled("yolov9c-mmqa")


def test_variant_command_names_its_output_like_the_zoo(tmp_path, monkeypatch, capsys):
    from yoloattn.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["variant", "yolov8n", "--module", "mlla", "--where", "csp"]) == 0
    assert main(["variant", "yolov8n-mlla-c2f", "--module", "mqa", "--where", "head"]) == 0
    capsys.readouterr()
    written = sorted(p.name for p in tmp_path.glob("*.yaml"))
    assert written == ["yolov8n-mlla-csp-mqa-head.yaml", "yolov8n-mlla-csp.yaml"]  # an alias base keeps the new name
    assert zoo.is_bundled(written[1])


@pytest.mark.bridge
def test_info_accepts_the_rule_name_and_the_former_name(capsys):
    from yoloattn.cli import main

    assert main(["info", "yolov8n-mlla-csp", "--imgsz", "64"]) == 0
    new = capsys.readouterr().out
    assert main(["info", "yolov8n-mlla-c2f", "--imgsz", "64"]) == 0
    old = capsys.readouterr().out
    assert "C2f_MLLA" in new and "unknown model" not in new
    totals = [line for line in new.splitlines() if "GFLOPs at 64x64" in line]
    assert totals and totals == [line for line in old.splitlines() if "GFLOPs at 64x64" in line]


@pytest.mark.bridge
@pytest.mark.parametrize("name", zoo_params(NAMES))
def test_zoo_model_builds_and_runs(name):
    net = build(name).model  # the build itself runs Ultralytics' 256x256 stride probe
    kind = head_kind(name)
    assert net.stride.tolist() == ([32.0] if kind == "rtdetr" else [8.0, 16.0, 32.0])
    if kind == "end2end":
        net.end2end = True  # Ultralytics 8.4 infers with the one-to-many head unless asked (nms=False)
    # a square and a non-square size whose P5 maps (10x10, 6x10) are not multiples of any module's window
    sizes = [(256, 256), (192, 320)] if name == "yolov9c-mmqa.yaml" else [(320, 320), (192, 320)]
    for h, w in sizes:
        x = torch.rand(1, 3, h, w)
        net.eval()
        with torch.no_grad():
            y = net(x)[0]
        anchors = (h // 8) * (w // 8) + (h // 16) * (w // 16) + (h // 32) * (w // 32)
        # end-to-end heads (YOLO26, YOLOv10) give 300 boxes [x1, y1, x2, y2, score, class] without NMS;
        # RT-DETR 300 queries: [x1, y1, x2, y2, score, class] (8.4) or [cx, cy, w, h, 80 scores] (8.3)
        expected = {"detect": [(1, 4 + 80, anchors)], "end2end": [(1, 300, 6)],
                    "rtdetr": [(1, 300, 6), (1, 300, 4 + 80)]}[kind]
        assert tuple(y.shape) in expected and torch.isfinite(y).all()
        net.train()
        out = net(x)
        if kind == "rtdetr":  # decoder boxes and scores of every layer, then the encoder's top queries
            assert out[0].shape[-2:] == (300, 4) and all(torch.isfinite(t).all() for t in out[:4])
        else:
            assert [f.shape[-2:] for f in feats_of(out)] == [(h // s, w // s) for s in (8, 16, 32)]


# Inputs whose P5 maps are 1x1, 1x3, 3x5 (96x160: Ultralytics' rect validation of 2:1 images at
# imgsz=160) and 2x1: every placement must run wherever a detector can put it (reliability kind 1).
TINY_INPUTS = [(32, 32), (32, 96), (96, 160), (64, 32)]


# RT-DETR's decoder picks its 300 queries by top-k over the anchors of every level, so stock RT-DETR
# needs at least 300 of them (about 480x480 px); its bundled files are run at the sizes above only.
@pytest.mark.bridge
@pytest.mark.parametrize("name", zoo_params([n for n in NAMES if head_kind(n) != "rtdetr"]))
def test_zoo_model_runs_on_maps_down_to_1x1(name):
    net = build(name).model
    for h, w in TINY_INPUTS:
        net.eval()
        with torch.no_grad():
            y = net(torch.rand(2, 3, h, w))[0]
        assert torch.isfinite(y).all(), (h, w)
        net.train()
        out = net(torch.rand(2, 3, h, w))
        feats = feats_of(out)
        sum(f.float().sum() for f in feats).backward()
        assert [tuple(f.shape[-2:]) for f in feats] == [(-(-h // s), -(-w // s)) for s in (8, 16, 32)], (h, w)


@pytest.mark.bridge
def test_scale_letter_selects_scale():
    n = YOLO(zoo.path("yolo11n-mlla-psa.yaml")).model
    s = YOLO(zoo.path("yolo11s-mlla-psa.yaml")).model
    assert n.model[10].cv1.conv.in_channels == 256 and s.model[10].cv1.conv.in_channels == 512


@pytest.mark.skipif(not ultralytics.__version__.startswith("8.4."),
                    reason="Ultralytics 8.3's get_flops scales a small proxy input linearly, overcounting attention")
@pytest.mark.parametrize("name", ["yolo11n-mlla-psa.yaml", "yolov8n-acmix-head.yaml", "yolov8n-irmb-csp.yaml",
                                  "yolo11n-mqa-psa.yaml", "yolov9t-mqa-csp.yaml", "yolo26n-mqa-psa.yaml",
                                  "yolo26n-acmix-csp.yaml", "yolo26n-mlla-sppf.yaml", "yolo26n-irmb-head.yaml",
                                  "yolo12n-mqa-a2c2f.yaml", "yolo12n-mlla-head.yaml", "yolov10n-acmix-psa.yaml",
                                  "rtdetr-l-irmb-aifi.yaml"])
def test_ultralytics_gflops_agree_with_the_full_count(name):
    # What `model.info()` prints (thop) against yoloattn's count, which includes the fused attention
    # kernels and ACmix's window attention (checked against hand formulas in test_flops.py).
    from yoloattn import bench

    net = build(name).model.eval()
    assert get_flops(net, 640) == pytest.approx(bench.count_gflops(net, 640), rel=0.05)


@pytest.mark.bridge
@pytest.mark.parametrize("name", ["yolov8n-mqa-csp.yaml", "yolo11n-acmix-csp.yaml", "yolo11n-irmb-psa.yaml",
                                  "yolov9t-mlla-csp.yaml"])
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


def _matched_rows(expected: np.ndarray, got: np.ndarray, atol: float) -> float:
    """Share of the rows of ``expected`` (n, k) that have a row of ``got`` within atol in every column."""
    distance = np.abs(expected[:, None, :] - got[None, :, :]).max(-1)
    return float((distance.min(1) <= atol).mean())


NEW_FAMILIES = [n for n in NAMES if n.startswith(("yolo26-", "yolo12-", "yolov10n-", "rtdetr-"))]


@pytest.mark.parametrize("name", zoo_params(["yolo11n-mlla-psa.yaml", "yolov8n-acmix-sppf.yaml",
                                             "yolov8n-irmb-head.yaml", "yolo11n-mqa-csp.yaml",
                                             *map(scaled, NEW_FAMILIES)]))
def test_onnx_dynamic_export_matches_onnxruntime(name, tmp_path, monkeypatch):
    import onnxruntime as ort

    monkeypatch.chdir(tmp_path)  # Ultralytics names the file after the YAML and writes it here
    model, kind = build(name), head_kind(name)
    if kind != "detect":
        # An untrained head scores every candidate alike, and the order of a top-k over ties is undefined:
        # spread the head's scores so both runtimes pick the same 300 boxes in the same order.
        torch.manual_seed(1)
        with torch.no_grad():
            for p in model.model.model[-1].parameters():
                p.add_(torch.randn_like(p) * 0.1)
    nms = {"nms": False} if kind == "end2end" else {}  # YOLO26 / YOLOv10: the NMS-free head, (N, 300, 6)
    onnx_path = model.export(format="onnx", dynamic=True, imgsz=256, simplify=False, project=str(tmp_path), **nms)
    session = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    net = model.model.float().eval()
    if kind == "end2end":
        net.end2end = True
    for h, w in [(256, 256), (192, 320)]:
        x = torch.rand(1, 3, h, w)
        with torch.no_grad():
            expected = net(x)[0].numpy()
        got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
        assert got.shape == expected.shape
        if kind == "detect":
            assert np.abs(got - expected).max() <= 1e-3 * max(1.0, np.abs(expected).max())
        elif kind == "end2end":
            assert got.shape[1:] == (300, 6)
            scale = np.array([max(h, w)] * 4 + [1, 1])  # pixel boxes, score, class
            # rows whose scores tie to float precision may swap at the top-k boundary
            assert _matched_rows(expected[0] / scale, got[0] / scale, 1e-4) >= 0.9
        else:
            # RT-DETR picks its queries by top-k over encoder scores and its decoder attends across them, so
            # a near-tie that flips moves every row a little (stock rtdetr-l behaves the same): rows in
            # normalised cx, cy, w, h and sigmoid scores, to 1e-2
            assert _matched_rows(expected[0], got[0], 1e-2) >= 0.9


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


def _head_sources(d: dict) -> list[tuple[int, str]]:
    """(stride, module) of every map the detection head reads."""
    rows = d["backbone"] + d["head"]
    strides = layer_strides(rows)
    return [(strides[i], rows[i][2]) for i in rows[-1][0]]


@pytest.mark.parametrize("module, expected", [("iRMB", [16, 32]), ("MQA", [16, 32]), ("ACmix", [32]), ("MLLA", [32])])
def test_head_rule_attends_the_modules_own_neck_outputs(module, expected):
    base = zoo.load_base("11/yolo11.yaml")
    assert expected == [s for s in (8, 16, 32) if s >= modules.get(module).floor("head")]
    sources = _head_sources(make_variant(base, module, "head"))
    assert [s for s, m in sources if m == module] == expected
    assert [s for s, _ in sources] == [8, 16, 32]  # the head still reads all three outputs
    everywhere = _head_sources(make_variant(base, module, "head@8,16,32"))
    assert everywhere == [(8, module), (16, module), (32, module)]
    assert _head_sources(make_variant(base, module, "head@8")) == [(8, module), (16, "C3k2"), (32, "C3k2")]


@pytest.mark.parametrize("module, expected", [("ACmix", [32]), ("MLLA", [16, 32]), ("iRMB", [16, 32]), ("MQA", [16, 32])])
def test_a2c2f_rule_replaces_area_attention_from_the_modules_floor(module, expected):
    d = make_variant(zoo.load_base("12/yolo12.yaml"), module, "a2c2f")
    rows = d["backbone"] + d["head"]
    strides = layer_strides(rows)
    assert sorted({strides[i] for i, r in enumerate(rows) if r[2] == f"A2C2f_{module}"}) == expected
    assert sorted({strides[i] for i, r in enumerate(rows) if r[2] == "A2C2f" and r[3][1]}) == \
        [s for s in (16, 32) if s not in expected]  # the blocks left out keep their area attention
    named = make_variant(zoo.load_base("12/yolo12.yaml"), module, "a2c2f@16,32")
    assert sum(r[2] == f"A2C2f_{module}" for r in named["backbone"] + named["head"]) == 2


def test_floor_defaults_and_validation():
    from yoloattn import rules
    from yoloattn.zoo.variants import STRIDED_RULES

    assert {rule.name for rule in rules.floored_rules()} == {rule for rule, default in STRIDED_RULES.items()
                                                             if default is None} == {"head", "a2c2f"}
    cheap = modules.AttentionModule("cheap", object, quadratic=False)
    quadratic = modules.AttentionModule("quad", object, quadratic=True)
    assert (cheap.floor("head"), quadratic.floor("head"), quadratic.floor("a2c2f")) == (1, 16, 1)
    assert modules.AttentionModule("set", object, quadratic=True, min_stride={"head": 32}).floor("head") == 32
    for bad in ({"head": 0}, {"haed": 16}):
        with pytest.raises(modules.PluginError, match="min_stride maps the placement rules a2c2f and head"):
            modules.register_attention("BadFloor", torch.nn.BatchNorm2d, min_stride=bad)


def test_head_rule_errors_name_the_strides():
    base = zoo.load_base("v8/yolov8.yaml")
    with pytest.raises(VariantError, match="reads neck outputs of stride 8, 16, 32, not 64"):
        make_variant(base, "iRMB", "head@32,64")
    with pytest.raises(VariantError, match="strides must be integers"):
        make_variant(base, "iRMB", "head@p5")
    for empty in ("head@", "head@16,"):  # an '@' with nothing after it is a typo, not the default strides
        with pytest.raises(VariantError, match="strides must be integers"):
            make_variant(base, "iRMB", empty)
    with pytest.raises(VariantError, match="placements take strides"):
        make_variant(base, "iRMB", "sppf@")


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


# ------------------------------------------------------------------------------------------ the rule table


def test_each_rule_applies_to_exactly_its_families():
    """The table's families are what make_variant does on each family's stock YAML (docs/families.md shows them)."""
    from yoloattn import rules

    bases = {"v8": "v8/yolov8.yaml", "v9": "v9/yolov9t.yaml", "v10": "v10/yolov10n.yaml", "11": "11/yolo11.yaml",
             "12": "12/yolo12.yaml", "26": "26/yolo26.yaml", "rt-detr": "rt-detr/rtdetr-l.yaml"}
    assert set(bases) == set(rules.FAMILIES)
    for folder, base in bases.items():
        if not (zoo.stock_models_dir() / base).is_file():
            continue  # YOLO26 needs Ultralytics 8.4
        family = rules.FAMILIES[folder]
        for rule in rules.table():
            module = rule.implied_module or "iRMB"
            try:
                make_variant(zoo.load_base(base), module, rule.name)
                applied = True
            except VariantError as error:
                applied = False
                assert rule.families_text() in str(error), (base, rule.name, str(error))
            assert applied == (family in rule.families), (base, rule.name)


def test_zoo_plan_only_places_rules_on_their_families():
    from yoloattn import rules

    for base, _, rule, _ in zoo.planned():
        assert zoo.family_of(base) in rules.get(rule).families, (base, rule)


def test_rule_table_derivations():
    from yoloattn import rules
    from yoloattn.zoo import variants
    from yoloattn.zoo.naming import variant_stem

    names = tuple(rule.name for rule in rules.table())
    assert zoo.RULES == variants.RULES == names
    assert list(variants.RULE_HELP) == list(names) and all(variants.RULE_HELP.values())
    assert rules.any_module_rules() == tuple(r.name for r in rules.table() if not r.implied_module)
    assert variant_stem("yolov9c", "MQA", "mmqa") == "yolov9c-mmqa"  # an implied module is not named
    with pytest.raises(VariantError, match="takes module MQA only"):
        make_variant(zoo.load_base("v9/yolov9c.yaml"), "iRMB", "mmqa")
    with pytest.raises(VariantError, match="unknown placement rule 'nope'"):
        rules.get("nope")


def _longest_list(text: str) -> list[str]:
    """The longest comma-separated run of words in ``text`` (argparse's line wrapping undone)."""
    runs = [m.group(0) for m in re.finditer(r"\w+(?:, \w+)+", " ".join(text.split()))]
    return max(runs, key=len).split(", ") if runs else []


def test_every_rule_appears_in_every_help_text_that_lists_rules(capsys):
    from yoloattn.cli import main
    from yoloattn import rules

    names = [rule.name for rule in rules.table()]

    def help_of(command):
        with pytest.raises(SystemExit) as exit_:
            main([command, "--help"])
        assert exit_.value.code == 0
        return capsys.readouterr().out

    variant = help_of("variant").split("Placement rules")[1].split("examples:")[0]
    assert re.findall(r"^  (\w+) ", variant, re.M) == names  # one described line per rule, in table order
    compare = help_of("compare")
    where_help = compare.split("\n  --where WHERE")[1].split("\n  --epochs")[0]
    epilog = compare.split("placements (--where")[1]
    assert main(["modules"]) == 0
    listing = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("Placement rules"))
    for label, text in (("compare --where", where_help), ("compare epilog", epilog), ("modules", listing)):
        assert _longest_list(text) == names, label
    assert rules.strided_text() in " ".join(listing.split())
    default = re.sub(r"-\s+", "-", " ".join(where_help.split()))  # argparse may wrap after the '-' of RT-DETR
    for rule in rules.table():
        if rule.own_block:
            assert f"{rule.name} for {'/'.join(rule.families)}" in default
