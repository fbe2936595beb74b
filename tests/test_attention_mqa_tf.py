"""MobileMQA(compat="tf") against outputs recorded from the official TensorFlow layer.

The fixture (tests/reference/data/mqa_tf.npz) was written by tests/reference/record_mqa_tf.py, which
runs tensorflow/models' OptimizedMultiQueryAttentionLayerWithDownSampling under tensorflow-cpu in a
throwaway venv; see tests/reference/mqa_tf_fixture.py for the comparison.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.reference.mqa_tf_fixture import MODES, build, cases, compare, fixture
from yoloattn.attention.tf_compat import SameAvgPool2d, SamePad2d, same_padding

CASE_IDS = [case["case"] for case in cases()]


def test_fixture_covers_the_required_cases():
    sizes: dict[str, set[int]] = {}
    for case in cases():
        name, size = case["case"].rsplit("/", 1)
        sizes.setdefault(name, set()).add(int(size))
    for kernel in (3, 5):
        assert sizes[f"kv2_k{kernel}"] >= {20, 17, 21, 6, 4, 5}
    assert sizes["plain"] and sizes["q2"] >= {20, 6, 4} and sizes["q2_kv2"]
    big = [c for c in cases() if (c["num_heads"], c["key_dim"], c["value_dim"]) == (8, 48, 48)]
    assert {c["kv_stride"] for c in big} == {2} and any(c["query_stride"] == [2, 2] for c in big)
    assert fixture()["meta"]["layer"].endswith("nn_blocks.OptimizedMultiQueryAttentionLayerWithDownSampling")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", cases(), ids=CASE_IDS)
def test_tf_compat_matches_the_official_layer(case, mode):
    errors = compare(case, mode, "tf")
    assert errors.output <= 1e-5 and errors.input_grad <= 1e-5, errors
    assert max(errors.weight_grads.values()) <= 1e-5, errors.weight_grads
    if mode == "train" and (case["kv_stride"] > 1 or case["query_stride"] != [1, 1]):
        assert errors.moving_stats and max(errors.moving_stats.values()) <= 1e-5, errors.moving_stats


@pytest.mark.parametrize("case", [c for c in cases() if c["case"] in ("kv2_k3/17", "q2_kv2/20", "h8x48_q2_kv2/20")],
                         ids=lambda c: c["case"])
def test_tf_compat_float32_matches_the_official_layer(case):
    for mode in MODES:
        assert compare(case, mode, "tf", dtype=torch.float32).worst <= 1e-5


@pytest.mark.parametrize("case", cases(), ids=CASE_IDS)
def test_timm_compat_differs_exactly_where_the_conventions_do(case):
    errors = compare(case, "eval", "timm")
    strided = case["kv_stride"] > 1 or case["query_stride"] != [1, 1]
    if not strided:
        assert errors.output <= 1e-5  # no padding, pooling or BatchNorm: one function
    elif case["kv_stride"] > 1 and case["size"] % 2 == 0:
        assert errors.output > 0.1  # the key/value grid is shifted by one pixel
    else:
        assert errors.output > 1e-4  # BatchNorm epsilon 1e-5 instead of 1e-3


def test_every_recorded_weight_is_used():
    module = build(cases()[-1])
    recorded = {k.rsplit("/w/", 1)[1] for k in fixture() if k.startswith(cases()[-1]["case"] + "/w/")}
    assert recorded == {k for k in module.state_dict() if not k.endswith("num_batches_tracked")}


def _op_ids(kind: str) -> list[str]:
    return sorted({k.split("/")[2] for k in fixture() if k.startswith(f"ops/{kind}/")})


@pytest.mark.parametrize("op", _op_ids("avgpool"))
def test_same_avg_pool_matches_tf_on_odd_and_non_square_maps(op):
    data = fixture()
    stride_h, stride_w = (int(s) for s in op.split("_s")[1].split("x"))
    x = torch.from_numpy(data[f"ops/avgpool/{op}/x"]).double()
    expected = data[f"ops/avgpool/{op}/y"]
    out = SameAvgPool2d((stride_h, stride_w))(x)
    assert out.shape == expected.shape
    assert np.abs(out.numpy() - expected).max() <= 1e-6


@pytest.mark.parametrize("op", _op_ids("dwconv"))
def test_same_padding_matches_tf_depthwise_conv(op):
    data = fixture()
    kernel, stride = (int(part[1:]) for part in op.split("_")[1:])
    x = torch.from_numpy(data[f"ops/dwconv/{op}/x"]).double()
    weight = torch.from_numpy(data[f"ops/dwconv/{op}/w"]).double()
    out = F.conv2d(SamePad2d(kernel, stride)(x), weight, stride=stride, groups=x.shape[1])
    expected = data[f"ops/dwconv/{op}/y"]
    assert out.shape == expected.shape
    assert np.abs(out.numpy() - expected).max() <= 1e-5


@pytest.mark.parametrize(
    "size, kernel, stride, expected",
    [(20, 3, 2, (0, 1)), (17, 3, 2, (1, 1)), (20, 5, 2, (1, 2)), (21, 5, 2, (2, 2)), (4, 3, 3, (1, 1)),
     (5, 2, 2, (0, 1)), (4, 2, 2, (0, 0)), (7, 1, 2, (0, 0)), (1, 3, 2, (1, 1)), (9, 5, 3, (1, 1)), (10, 5, 3, (2, 2))],
)
def test_same_padding_rule(size, kernel, stride, expected):
    assert same_padding(size, kernel, stride) == expected
    out = (size + stride - 1) // stride
    assert (size + sum(expected) - kernel) // stride + 1 == out  # the 'same' output length


def test_docs_parity_table_lists_every_recorded_case():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "parity.md").read_text()
    for case in cases():
        name, size = case["case"].rsplit("/", 1)
        assert f"| {name} | {size}² |" in text, case["case"]
