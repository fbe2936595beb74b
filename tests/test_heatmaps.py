"""EigenCAM heatmap panels (compare/heatmaps.py) on small randomly initialised models at 64 px."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import yoloattn  # noqa: F401  (registers the yoloattn layers before Ultralytics parses a YAML)
from yoloattn import zoo
from yoloattn.compare.heatmaps import changed_layers, eigencam, heatmap_panel, letterbox_images
from yoloattn.compare.models import load_model_dict
from yoloattn.errors import YoloattnError

IMGSZ = 64


def _rows(d: dict) -> list:
    return d["backbone"] + d["head"]


@pytest.fixture(scope="module")
def yolov8n():
    from ultralytics.nn.tasks import DetectionModel

    torch.manual_seed(0)
    return DetectionModel("yolov8n.yaml", verbose=False)


@pytest.fixture
def images(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    paths = []
    for i, (w, h) in enumerate([(96, 64), (48, 80)]):  # landscape and portrait: both get padded
        path = tmp_path / f"img{i}.png"
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def test_changed_layers_insertion_and_replacement():
    base = [[-1, 1, "Conv", [16, 3, 2]], [-1, 1, "C2f", [32]], [-1, 1, "SPPF", [32, 5]], [[-1, 1], 1, "Detect", ["nc"]]]
    inserted = base[:3] + [[-1, 1, "iRMB", [32]], [[-1, 1], 1, "Detect", ["nc"]]]
    assert changed_layers(base, inserted) == (2, 3)
    assert changed_layers(base, base + [[-1, 1, "iRMB", [32]]]) == (3, 4)  # appended after the last row
    replaced = [base[0], [-1, 1, "C2f_iRMB", [32]], *base[2:]]
    assert changed_layers(base, replaced) == (1, 1)
    with pytest.raises(ValueError, match="identical"):
        changed_layers(base, [list(r) for r in base])
    with pytest.raises(ValueError, match="fewer layers"):
        changed_layers(base, base[:2])


@pytest.mark.parametrize("rule, expected", [("sppf", (9, 10)), ("csp", (8, 8))])
def test_changed_layers_on_zoo_variants(rule, expected):
    base, _, _ = load_model_dict("yolov8n")
    variant = zoo.make_variant(base, "iRMB", rule)
    assert changed_layers(_rows(base), _rows(variant)) == expected
    b, v = expected
    assert _rows(base)[b][2] == ("SPPF" if rule == "sppf" else "C2f")
    assert _rows(variant)[v][2] == ("iRMB" if rule == "sppf" else "C2f_iRMB")


def test_letterbox_keeps_aspect_and_pads_gray(images):
    tensor, arrays = letterbox_images(images, IMGSZ)
    assert tensor.shape == (2, 3, IMGSZ, IMGSZ) and tensor.dtype == torch.float32
    assert 0.0 <= tensor.min() and tensor.max() <= 1.0
    assert [a.shape for a in arrays] == [(IMGSZ, IMGSZ, 3)] * 2 and arrays[0].dtype == np.float32
    np.testing.assert_allclose(tensor[0].permute(1, 2, 0).numpy(), arrays[0])
    gray = 114 / 255
    # 96x64 -> 64x43: 10 or 11 gray rows above and below; 48x80 -> 38x64: 13 gray columns each side
    assert np.allclose(arrays[0][:10], gray) and np.allclose(arrays[0][-10:], gray)
    assert np.allclose(arrays[1][:, :13], gray) and np.allclose(arrays[1][:, -13:], gray)
    assert not np.allclose(arrays[0][IMGSZ // 2], gray)
    with pytest.raises(YoloattnError, match="no images"):
        letterbox_images([], IMGSZ)


def test_eigencam_shape_range_and_model_untouched(yolov8n, images):
    model = yolov8n
    model.train()
    model.model[3].eval()  # a mixed state must come back as it was, not as one model.train(flag)
    before = {k: v.clone() for k, v in model.state_dict().items()}  # BatchNorm running stats included
    flags = [m.training for m in model.modules()]
    tensor, _ = letterbox_images(images, IMGSZ)

    maps = eigencam(model, 9, tensor)

    assert maps.shape == (2, IMGSZ, IMGSZ) and maps.dtype == np.float32
    assert np.isfinite(maps).all() and maps.min() >= 0.0 and maps.max() <= 1.0
    assert maps.max() > 0.5  # min-max scaled per image: not a blank map
    assert [m.training for m in model.modules()] == flags
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not any(m._forward_hooks for m in model.modules())  # grad-cam's hooks are removed


def test_eigencam_layer_out_of_range(yolov8n, images):
    tensor, _ = letterbox_images(images[:1], IMGSZ)
    n = len(yolov8n.model)
    for bad in (n, n - 1, -1):  # past the end, the Detect head, negative
        with pytest.raises(YoloattnError, match=rf"layer {bad} is out of range: the model has {n} layers"):
            eigencam(yolov8n, bad, tensor)


def test_heatmap_panel_png_size(yolov8n, images, tmp_path):
    from matplotlib.image import imread
    from ultralytics.nn.tasks import DetectionModel

    base, scale, _ = load_model_dict("yolov8n")
    variant_dict = zoo.make_variant(base, "iRMB", "sppf")
    b, v = changed_layers(_rows(base), _rows(variant_dict))
    variant = DetectionModel({**variant_dict, "scale": scale}, verbose=False)
    columns = [(f"yolov8n (layer {b})", yolov8n, b), (f"iRMB@sppf (layer {v})", variant, v)]

    two = imread(heatmap_panel(columns, images, IMGSZ, tmp_path / "two.png"))
    three = imread(heatmap_panel([*columns, ("yolov8n (layer 4)", yolov8n, 4)], images, IMGSZ, tmp_path / "three.png"))
    one_row = imread(heatmap_panel(columns, images[:1], IMGSZ, tmp_path / "one.png"))

    assert two.shape[:2] == (2 * 240, 2 * 240)  # rows x cols cells of 2.4 in at 100 dpi
    assert three.shape[:2] == (2 * 240, 3 * 240)
    assert one_row.shape[:2] == (240, 2 * 240)
    assert two[..., :3].std() > 0.05  # drawn images, not a blank canvas


def test_heatmap_panel_errors_name_the_column(yolov8n, images, tmp_path):
    n = len(yolov8n.model)
    with pytest.raises(YoloattnError, match=rf"^wrong: layer 99 is out of range: the model has {n} layers"):
        heatmap_panel([("ok", yolov8n, 9), ("wrong", yolov8n, 99)], images, IMGSZ, tmp_path / "x.png")
    with pytest.raises(YoloattnError, match="no images"):
        heatmap_panel([("ok", yolov8n, 9)], [], IMGSZ, tmp_path / "x.png")
    with pytest.raises(YoloattnError, match="no models"):
        heatmap_panel([], images, IMGSZ, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
