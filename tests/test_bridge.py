"""The Ultralytics bridge: registration, the parse_model wrapper, channel contracts, errors, checkpoints."""

import logging
import os
import subprocess
import sys
import textwrap

import pytest
import torch
import yaml

import yoloattn
from yoloattn import blocks
from yoloattn.attention import ACmix, MLLABlock, iRMB
from yoloattn.integration import REGISTRY, UnknownModuleError, install
from yoloattn.zoo import load_base

from ultralytics import YOLO
from ultralytics.nn import tasks
from ultralytics.nn.tasks import DetectionModel

pytestmark = pytest.mark.bridge  # `make test` also runs these against the oldest supported Ultralytics

COMMUNITY_NAMES = [
    "C2f_iRMB", "C2f_ACmix", "C3k2_MLLA", "C2PSA_MLLA", "C3k2_MQA", "C2PSA_MQA", "iRMB", "ACmix", "MLLA",
    "MLLABlock", "MultiQueryAttentionLayerWithDownSampling", "MMQARepNCSPELAN4",
]


def _model(base: str, rows: dict, scale: str = "n") -> DetectionModel:
    """Build `base` (Ultralytics YAML) with rows replaced: {index: row}."""
    d = load_base(base)
    layers = d["backbone"] + d["head"]
    for i, row in rows.items():
        layers[i] = row
    nb = len(d["backbone"])
    d["backbone"], d["head"] = layers[:nb], layers[nb:]
    if "scales" in d:
        d["scale"] = scale
    return DetectionModel(d, verbose=False)


def test_community_names_resolve():
    for name in COMMUNITY_NAMES:
        assert name in REGISTRY
        assert getattr(tasks, name) is REGISTRY[name].cls


def test_install_is_idempotent():
    wrapper = tasks.parse_model
    install()
    yoloattn.integration.parse.install()
    assert tasks.parse_model is wrapper
    assert not hasattr(wrapper._yoloattn_original, "_yoloattn_original")


@pytest.mark.parametrize(
    "base, index, row, cls, c_out",
    [
        # tutorial rows, at scale n (width 0.25): c2 is width-scaled, c1 comes from the previous layer
        ("v8/yolov8.yaml", 8, [-1, 3, "C2f_iRMB", [1024, True]], blocks.C2f_iRMB, 256),
        ("v8/yolov8.yaml", 8, [-1, 3, "C2f_ACmix", [1024, True]], blocks.C2f_ACmix, 256),
        ("11/yolo11.yaml", 10, [-1, 2, "C2PSA_MLLA", [1024]], blocks.C2PSA_MLLA, 256),
        ("11/yolo11.yaml", 10, [-1, 2, "C2PSA_MQA", [1024]], blocks.C2PSA_MQA, 256),
        ("11/yolo11.yaml", 8, [-1, 2, "C3k2_MLLA", [1024, True]], blocks.C3k2_MLLA, 256),
        ("11/yolo11.yaml", 8, [-1, 2, "C3k2_MQA", [1024, True]], blocks.C3k2_MQA, 256),
        ("v8/yolov8.yaml", 9, [-1, 1, "iRMB", [1024]], iRMB, 256),
        ("v8/yolov8.yaml", 9, [-1, 1, "ACmix", [1024]], ACmix, 256),
        ("v8/yolov8.yaml", 9, [-1, 1, "MLLA", [1024]], MLLABlock, 256),
        ("v8/yolov8.yaml", 9, [-1, 1, "MLLABlock", [1024]], MLLABlock, 256),
        ("v8/yolov8.yaml", 9, [-1, 1, "MultiQueryAttentionLayerWithDownSampling", [1024, 4, 32, 32, 1, 1, 2]],
         blocks.MQALayer, 256),
    ],
)
def test_community_rows_build_with_stock_channel_treatment(base, index, row, cls, c_out):
    model = _model(base, {index: row})
    layer = model.model[index]
    assert type(layer) is cls
    assert (layer.i, layer.f, layer.type) == (index, -1, f"{cls.__module__}.{cls.__qualname__}")
    # the block's output width is the width-scaled c2 the rest of the model was built for
    seen = {}
    layer.register_forward_hook(lambda m, i, o: seen.update(shape=o.shape))
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, 3, 256, 192))
    assert seen["shape"][1] == c_out


def test_repeat_count_is_depth_scaled_like_stock():
    # yolov8n depth 0.33: n=3 -> 1, n=6 -> 2
    model = _model("v8/yolov8.yaml", {4: [-1, 6, "C2f_MLLA", [256, True]]})
    assert len(model.model[4].m) == 2 == len(_model("v8/yolov8.yaml", {}).model[4].m)


def test_c3k2_rules_follow_stock_at_scale_m():
    # at m/l/x, parse_model forces c3k=True for C3k2; C3k2_* rows get the same treatment and keep the
    # YOLO11 (non-legacy) Detect head even when every C3k2 is replaced
    d = load_base("11/yolo11.yaml")
    rows = d["backbone"] + d["head"]
    replaced = {i: [r[0], r[1], "C3k2_iRMB", r[3]] for i, r in enumerate(rows) if r[2] == "C3k2"}
    model = _model("11/yolo11.yaml", replaced, scale="m")
    assert all(type(model.model[i]) is blocks.C3k2_iRMB for i in replaced)
    assert type(model.model[2].m[0]).__name__ == "_C3kUnits"
    assert model.model[-1].legacy is False


def test_mmqa_keeps_literal_c3_c4():
    model = _model("v9/yolov9c.yaml", {8: [-1, 1, "MMQARepNCSPELAN4", [512, 512, 256, 1]]})
    block = model.model[8]
    assert type(block) is blocks.MMQARepNCSPELAN4
    assert block.cv1.conv.out_channels == 512 and block.cv4.conv.out_channels == 512
    mqa = block.cv2[1]
    assert (mqa.num_heads, mqa.key_dim, mqa.value_dim) == (8, 48, 48)


def test_flow_mapping_options_reach_every_mqa_placement():
    # {compat: tf} in a trailing flow mapping: keyword options of standalone rows, the attn dict of blocks
    rows = {
        9: [-1, 1, "MobileMQA", [1024, {"kv_stride": 2, "compat": "tf"}]],
        8: [-1, 1, "C2f_MQA", [1024, True, 0.5, {"compat": "tf", "kv_stride": 2}]],
    }
    model = _model("v8/yolov8.yaml", rows)
    standalone, unit = model.model[9], model.model[8].m[0]
    assert standalone.compat == "tf" and standalone.key.norm.eps == 1e-3 and standalone.key.down_conv.padding == (0, 0)
    assert unit.attn.compat == "tf" and (unit.norm.eps, unit.norm.momentum) == (1e-3, 0.01)
    model = _model("11/yolo11.yaml", {
        10: [-1, 1, "C2PSA_MQA", [1024, {"compat": "tf", "kv_stride": 2}]],
        9: [-1, 1, "MQA", [1024, {"compat": "tf"}]],
    })
    assert model.model[10].m[0].attn.compat == "tf" and model.model[9].attn.compat == "tf"
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, 3, 96, 160))  # P5 3x5: odd maps under TF's 'same' rule
    default = _model("v8/yolov8.yaml", {9: [-1, 1, "MobileMQA", [1024, {"kv_stride": 2}]]}).model[9]
    upper = blocks.MQABlock(16, compat="TF")  # any case, decided in one place for the MQA and its input norm
    assert upper.attn.compat == "tf" and (upper.norm.eps, upper.norm.momentum) == (1e-3, 0.01)
    # Ultralytics' initialize_weights sets plain BatchNorm2d to (1e-3, 0.03); Keras' norms keep theirs
    assert default.compat == "timm" and (default.key.norm.eps, default.key.norm.momentum) == (1e-3, 0.03)


@pytest.mark.parametrize("row, match", [
    ([-1, 1, "MobileMQA", [1024, {"compat": "keras"}]], r"MobileMQA.*compat must be one of"),
    ([-1, 1, "MobileMQA", [1024, {"compt": "tf"}]], r"MobileMQA.*unknown option 'compt' in the flow mapping; did you mean compat\?"),
    ([-1, 1, "C2f_MQA", [1024, True, {"kv_strid": 2}]], r"C2f_MQA.*unknown option 'kv_strid'.*did you mean kv_stride"),
])
def test_bad_flow_mapping_option_is_one_line_naming_the_row(row, match):
    from yoloattn.errors import YoloattnError

    with pytest.raises(YoloattnError, match=rf"^YAML row 9 \({match}") as caught:
        _model("v8/yolov8.yaml", {9: row})
    assert caught.value.__cause__ is None and caught.value.__suppress_context__  # no chained traceback


def test_unknown_name_names_the_closest():
    with pytest.raises(UnknownModuleError, match=r"'C2f_MLA'.*row 8.*C2f_MLLA"):
        _model("v8/yolov8.yaml", {8: [-1, 3, "C2f_MLA", [1024, True]]})


def test_verbose_table_shows_real_rows(caplog):
    logger = logging.getLogger("ultralytics")
    logger.addHandler(caplog.handler)
    try:
        d = load_base("v8/yolov8.yaml")
        d["backbone"][8] = [-1, 3, "C2f_iRMB", [1024, True]]
        d["scale"] = "n"
        DetectionModel(d, verbose=True)
    finally:
        logger.removeHandler(caplog.handler)
    row = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("  8"))
    assert "yoloattn.blocks.csp.C2f_iRMB" in row and "[256, 256, 1, True]" in row
    assert not any("Conv" in r.getMessage() and r.getMessage().startswith("  8") for r in caplog.records)


def test_nothing_written_into_site_packages():
    import ultralytics

    src = open(tasks.__file__).read()
    assert "yoloattn" not in src
    assert ultralytics.__file__.endswith("ultralytics/__init__.py")


def _tf_compat_yaml(tmp_path) -> str:
    """yolo11n with TF-convention Mobile MQA in C2PSA and as a standalone row after SPPF."""
    d = load_base("11/yolo11.yaml")
    d["scale"] = "n"
    d["backbone"][10] = [-1, 2, "C2PSA_MQA", [1024, {"compat": "tf", "kv_stride": 2}]]
    d["backbone"][9] = [-1, 1, "SPPF", [1024, 5]]
    file = tmp_path / "yolo11n-mqa-tf.yaml"
    file.write_text(yaml.safe_dump(d, sort_keys=False))
    return str(file)


@pytest.mark.parametrize("source", ["zoo", "tf"])
def test_checkpoint_reloads_in_fresh_process_and_under_safe_load(tmp_path, source):
    from yoloattn.zoo import path

    model = YOLO(path("yolo11n-mlla-psa.yaml") if source == "zoo" else _tf_compat_yaml(tmp_path))
    if source == "tf":
        assert type(model.model.model[10].m[0].attn.key.pad).__name__ == "SamePad2d"
    ckpt = tmp_path / "m.pt"
    model.save(ckpt)
    x = torch.rand(1, 3, 160, 224)
    torch.save(x, tmp_path / "x.pt")
    reloaded = YOLO(str(ckpt)).model.eval()  # checkpoints store weights in half precision
    with torch.no_grad():
        expected = reloaded(x)[0]
    torch.save(expected, tmp_path / "y.pt")
    script = textwrap.dedent(f"""
        import sys, torch
        {{prelude}}
        from ultralytics import YOLO
        m = YOLO(r"{ckpt}")
        assert "yoloattn" in sys.modules  # unpickling imported the package, which re-registered
        m.model.eval()
        with torch.no_grad():
            y = m.model(torch.load(r"{tmp_path / 'x.pt'}"))[0]
        expected = torch.load(r"{tmp_path / 'y.pt'}")
        print(float((y - expected).abs().max() / expected.abs().max()))
    """)
    # plain loading imports yoloattn by itself; restricted (weights_only) loading imports nothing, so
    # there the user imports yoloattn, whose classes are then on torch's safe-globals allow-list
    for env_extra, prelude in (({}, ""), ({"ULTRALYTICS_SAFE_LOAD": "1"}, "import yoloattn")):
        env = {**os.environ, **env_extra}
        code = script.replace("{prelude}", prelude)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
        assert out.returncode == 0, out.stderr[-3000:]
        assert float(out.stdout.strip().splitlines()[-1]) < 1e-6  # float rounding only (thread count may differ)
