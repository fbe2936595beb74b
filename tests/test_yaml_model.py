"""The one reader of Ultralytics model YAMLs (yoloattn.yaml_model): rows, the split, the scale letter."""

import re

import pytest
import yaml

from yoloattn import zoo
from yoloattn.yaml_model import (ModelYamlError, Row, guess_scale, head_row, n_backbone, rows, scaled_names,
                                 split_scale, unified_name, with_rows, with_scale)

from ultralytics.nn.tasks import guess_model_scale

NAMES = ["yolov8n.yaml", "yolo11s-seg.yaml", "yolo26x-pose.yaml", "yolov9t.yaml", "yolov10n.yaml", "rtdetr-l.yaml",
         "yoloe-11s-seg.yaml", "yolov8n-mlla-csp.yaml", "yolo11n-mqa-csp16-32.yaml", "my-model.yaml", "/tmp/a8x/yolov8.yaml",
         "yolov8m-p2.yaml", "yolo12l.yaml"]


def test_rows_read_both_sections_in_order_and_write_back_the_split():
    d = zoo.load_base("v8/yolov8.yaml")
    found = rows(d)
    assert [r.as_list() for r in found] == d["backbone"] + d["head"]
    assert found[0] == Row(-1, 1, "Conv", [64, 3, 2]) and found[0].module == "Conv"
    assert head_row(d).module == "Detect" and head_row(d).inputs(len(found) - 1) == [15, 18, 21]
    assert n_backbone(d) == len(d["backbone"])
    again = with_rows(d, found)
    assert again == d and again is not d and all(type(r) is list for r in again["backbone"] + again["head"])
    assert yaml.safe_load(zoo.render(again, "t"))["head"] == d["head"]  # plain lists: YAML writes them
    inserted = with_rows(d, [*found[:3], Row(-1, 1, "Conv", [64]), *found[3:]], n_backbone(d) + 1)
    assert len(inserted["backbone"]) == len(d["backbone"]) + 1 and inserted["head"] == d["head"]


def test_rows_refuse_malformed_rows_and_empty_models():
    with pytest.raises(ModelYamlError, match="backbone row 1 .* a row is \\[from, repeats, module, args\\]"):
        rows({"backbone": [[-1, 1, "Conv", [16]], [-1, 1, "Conv"]]})
    with pytest.raises(ModelYamlError, match="no backbone/head rows"):
        head_row({"nc": 80})
    with pytest.raises(ModelYamlError, match="does not fit"):
        with_rows({"backbone": []}, [Row(-1, 1, "Conv", [8])], 2)


@pytest.mark.parametrize("name", NAMES)
def test_guess_scale_is_ultralytics_guess_model_scale(name):
    assert guess_scale(name) == guess_model_scale(name)


def test_unified_name_is_ultralytics_yaml_model_load_rule():
    import inspect

    from ultralytics.nn import tasks

    source = inspect.getsource(tasks.yaml_model_load)
    pattern, replacement = re.search(r're\.sub\(r"([^"]+)", r"([^"]+)", str\(path\)\)', source).groups()
    for name in NAMES:
        assert unified_name(name) == re.sub(pattern, replacement, name)
    assert unified_name("yolo11n-mlla-psa.yaml") == "yolo11-mlla-psa.yaml"
    assert unified_name("/tmp/a8x/yolov8.yaml") == "/tmp/a8/yolov8.yaml"  # Ultralytics' own quirk, kept on purpose


def test_zoo_scale_rule_round_trips_and_agrees_with_ultralytics_on_zoo_names():
    for name in zoo.names():
        stem = name.removesuffix(".yaml")
        for scale in "nslmx":
            scaled = with_scale(stem, scale)
            if scaled != stem:
                assert split_scale(scaled) == (stem, scale)
                assert unified_name(scaled) == stem and guess_scale(scaled + ".yaml") == scale
    assert split_scale("yolov9t-irmb-sppf") == ("yolov9t-irmb-sppf", "")
    assert split_scale("my2s-model") == ("my2s-model", "")
    assert scaled_names("yolo11")[:2] == ["yolo11n", "yolo11s"] and scaled_names("rtdetr") == []
