"""Mobile MQA (MobileNetV4): parity with timm and with the explicit float64 reference in both
conventions (``compat="timm"`` / ``"tf"``), plus the checks that catch the known port bugs (scale,
token scrambling, strided queries, square-only). Parity with the official TF layer itself (recorded
outputs) is in test_attention_mqa_tf.py."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tests._utils import SHAPES, onnx_parity, rel_err
from tests.reference.mqa_ref import reference_from
from yoloattn.attention.mqa import MobileMQA, MultiQueryAttentionLayerWithDownSampling

C = 32
SMALL = dict(num_heads=4, key_dim=16, value_dim=24)  # k != v catches swapped key/value widths


def _randomise_norms(module: nn.Module) -> nn.Module:
    """Non-trivial BN statistics and affine terms so that eval-mode parity exercises them."""
    for norm in module.modules():
        if isinstance(norm, nn.BatchNorm2d):
            with torch.no_grad():
                norm.running_mean.normal_(0.0, 0.5)
                norm.running_var.uniform_(0.5, 2.0)
                norm.weight.uniform_(0.5, 1.5)
                norm.bias.normal_(0.0, 0.2)
    return module


def _mqa(kv_stride: int = 1, query_stride=1, channels: int = C, **kwargs) -> MobileMQA:
    return _randomise_norms(MobileMQA(channels, kv_stride=kv_stride, query_stride=query_stride, **{**SMALL, **kwargs}))


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# --------------------------------------------------------------------------- parity with the reference
COMPATS = ["timm", "tf"]


@pytest.mark.parametrize("compat", COMPATS)
@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("query_stride", [1, 2, (2, 1), (3, 3)], ids=["q1", "q2", "q2x1", "q3"])
@pytest.mark.parametrize("kv_stride", [1, 2], ids=["kv1", "kv2"])
@pytest.mark.parametrize("shape", [*SHAPES, (1, 4, 4), (2, 1, 3)], ids=str)
def test_parity_with_reference(shape, kv_stride, query_stride, train, compat):
    batch, height, width = shape
    if train and batch * height * width <= (query_stride != 1) * 4:
        pytest.skip("a BatchNorm over a single value per channel cannot train")
    module = _mqa(kv_stride, query_stride, compat=compat).train(train)
    reference = reference_from(module, compat)
    x = torch.randn(batch, C, height, width)
    out = module(x)
    assert out.shape == x.shape
    assert rel_err(out, reference(x)) <= 1e-5
    # Training also moves the BatchNorm statistics by the convention's momentum.
    ours, theirs = dict(module.named_buffers()), dict(reference.named_buffers())
    for name in ("running_mean", "running_var"):
        for path, ref_path in (("query.norm", "query_norm"), ("key.norm", "key_dw_norm"), ("value.norm", "value_dw_norm")):
            if f"{path}.{name}" in ours:
                assert rel_err(ours[f"{path}.{name}"], theirs[f"{ref_path}.{name}"]) <= 1e-6, (path, name)


@pytest.mark.parametrize("compat", COMPATS)
@pytest.mark.parametrize("kv_stride, query_stride", [(1, 1), (2, 2), (2, 3)])
@pytest.mark.parametrize("shape", [(2, 20, 12), (2, 17, 23)], ids=str)
def test_parity_with_reference_float64(shape, kv_stride, query_stride, compat):
    batch, height, width = shape
    module = _mqa(kv_stride, query_stride, compat=compat, dw_kernel_size=5).double().eval()
    x = torch.randn(batch, C, height, width, dtype=torch.float64)
    assert rel_err(module(x), reference_from(module, compat)(x)) <= 1e-12


@pytest.mark.parametrize("compat", COMPATS)
def test_the_reference_tells_the_conventions_apart(compat):
    # Each convention's module disagrees with the other convention's reference wherever they differ:
    # kv padding on an even map, BatchNorm epsilon in eval, upsampling of an odd map.
    other = COMPATS[1 - COMPATS.index(compat)]
    x = torch.randn(2, C, 20, 20, dtype=torch.float64)
    module = _mqa(kv_stride=2, compat=compat).double().eval()
    assert rel_err(module(x), reference_from(module, other)(x)) > 1e-2
    module = _mqa(query_stride=3, compat=compat).double().eval()
    x = torch.randn(2, C, 7, 8, dtype=torch.float64)
    assert rel_err(module(x), reference_from(module, other)(x)) > 1e-4


def test_conventions_agree_without_strides_and_share_state_dict_keys():
    timm_style, tf_style = _mqa(compat="timm").eval(), _mqa(compat="tf").eval()
    tf_style.load_state_dict(timm_style.state_dict())
    x = torch.randn(2, C, 17, 23)
    assert torch.equal(timm_style(x), tf_style(x))
    strided = [_mqa(2, 2, compat=compat) for compat in COMPATS]
    assert list(strided[0].state_dict()) == list(strided[1].state_dict())


@pytest.mark.parametrize("compat", COMPATS)
def test_gradient_parity_with_reference(compat):
    module = _mqa(kv_stride=2, query_stride=2, compat=compat).double().train()
    reference = reference_from(module, compat)
    x = torch.randn(2, C, 17, 23, dtype=torch.float64, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_(True)
    module(x).square().sum().backward()
    reference(x_ref).square().sum().backward()
    assert rel_err(x.grad, x_ref.grad) <= 1e-10
    ref_query = reference.query_weight.grad.reshape(module.query.proj.weight.shape)
    assert rel_err(module.query.proj.weight.grad, ref_query) <= 1e-10
    assert rel_err(module.key.down_conv.weight.grad, reference.key_dw_weight.grad) <= 1e-10


# --------------------------------------------------------------------------- parity with timm
@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("kv_stride, query_stride", [(1, 1), (2, 1), (1, 2), (2, 2)])
def test_parity_with_timm(kv_stride, query_stride, train):
    attention2d = pytest.importorskip("timm.layers.attention2d")
    ours = _mqa(kv_stride, query_stride, num_heads=8, key_dim=48, value_dim=48).train(train)
    theirs = attention2d.MultiQueryAttention2d(
        C, num_heads=8, key_dim=48, value_dim=48, kv_stride=kv_stride, query_strides=query_stride
    ).train(train)
    assert list(ours.state_dict()) == list(theirs.state_dict())  # identical keys, no mapping needed
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(2, C, 20, 12)  # timm floors strided queries, so its sizes must be even
    assert rel_err(ours(x), theirs(x)) <= 1e-5
    ours.load_state_dict(theirs.state_dict())  # and back


# --------------------------------------------------------------------------- shapes, gradients, dtypes
@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_shapes_and_finite_gradients(shape, train):
    batch, height, width = shape
    module = MobileMQA(C, 48, kv_stride=2, query_stride=2, **SMALL).train(train)
    x = torch.randn(batch, C, height, width, requires_grad=True)
    out = module(x)
    assert out.shape == (batch, 48, height, width)
    out.square().mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    for name, parameter in module.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name


def test_batch_one_stride_probe_in_train_mode():
    # Ultralytics probes strides with a batch-1 forward in train mode; kv BN sees 1 * 4 * 4 values.
    module = MobileMQA(C, kv_stride=2, query_stride=2, **SMALL).train()
    assert module(torch.randn(1, C, 8, 8)).shape == (1, C, 8, 8)


def test_bfloat16_autocast():
    module = MobileMQA(C, kv_stride=2, query_stride=2, **SMALL).eval()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = module(torch.randn(2, C, 17, 23))
    assert out.shape == (2, C, 17, 23) and out.dtype == torch.bfloat16
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_module(dtype):
    module = _mqa(kv_stride=2, query_stride=2).eval()
    x = torch.randn(2, C, 17, 23)
    expected = module(x)
    try:
        out = module.to(dtype)(x.to(dtype))
    except RuntimeError as error:  # pragma: no cover - depends on the CPU kernels of the torch build
        pytest.skip(f"CPU has no {dtype} kernel for an op: {error}")
    assert out.dtype == dtype and out.shape == x.shape
    assert torch.isfinite(out).all()
    assert rel_err(out, expected) <= 5e-2


@pytest.mark.parametrize("compat", COMPATS)
@pytest.mark.parametrize("kv_stride, query_stride", [(1, 1), (2, 2)])
def test_onnx_dynamic_hw(kv_stride, query_stride, compat):
    pytest.importorskip("onnxruntime")
    module = _mqa(kv_stride, query_stride, compat=compat)
    errors = onnx_parity(module, [(20, 20), (17, 23)], C)
    assert max(errors) <= 1e-4, errors


def test_large_maps_use_a_fused_kernel_without_materialised_softmax():
    # Fused flash/memory-efficient SDPA on CPU needs unit last-dim strides and equal q/k/v widths.
    if not hasattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu"):
        pytest.skip("this torch build has no fused CPU attention kernel")
    module = MobileMQA(C, num_heads=4, key_dim=16, value_dim=16).train()
    x = torch.randn(1, C, 48, 46, requires_grad=True)  # 4 * 2208^2 logits: above the dense limit
    with torch.profiler.profile() as profiler:
        module(x).sum().backward()
    names = {event.key for event in profiler.key_averages()}
    assert "aten::_softmax" not in names and "aten::_safe_softmax" not in names, sorted(names)


@pytest.mark.parametrize("gqa", [True, False])
@pytest.mark.parametrize("kv_stride", [1, 2])
def test_dense_and_fused_paths_agree_with_the_reference(monkeypatch, kv_stride, gqa):
    import yoloattn.attention.mqa as mqa_module

    monkeypatch.setattr(mqa_module, "_SDPA_GQA", gqa and mqa_module._SDPA_GQA)  # enable_gqa, or the expanded view
    module = _mqa(num_heads=4, key_dim=16, value_dim=16, kv_stride=kv_stride).train()
    x = torch.randn(2, C, 17, 23)
    expected = reference_from(module, "timm")(x)
    for limit in (0, 1 << 40):  # force the fused path, then the dense path
        monkeypatch.setattr(mqa_module, "_DENSE_LOGITS_LIMIT", limit)
        inp = x.clone().requires_grad_(True)
        out = module(inp)
        assert rel_err(out, expected) <= 1e-5
        out.square().sum().backward()
        assert torch.isfinite(inp.grad).all()


def test_the_switch_to_the_fused_path_depends_on_autograd(monkeypatch):
    """Inference takes the fused kernel from 2^16 logits per image, training from 2^22; both agree with the
    reference, in eval mode under no_grad too."""
    import yoloattn.attention.mqa as mqa_module
    from yoloattn import flops

    assert mqa_module.fused_attention(1 << 17, grad=False) and not mqa_module.fused_attention(1 << 17, grad=True)
    assert not mqa_module.fused_attention(1 << 16, grad=False) and mqa_module.fused_attention((1 << 22) + 1, grad=True)
    module = _mqa(num_heads=8, key_dim=16, value_dim=16).eval()
    x = torch.randn(1, C, 12, 11)  # 8 * 132 * 132 = 139392 logits: fused without grad, dense with
    expected = reference_from(module, "timm")(x)

    def kernels(grad: bool) -> set:
        with torch.set_grad_enabled(grad), flops.FlopCounter() as counter:
            out = module(x)
        assert rel_err(out, expected) <= 1e-5
        return set(counter.breakdown())

    fused = "aten._scaled_dot_product_flash_attention_for_cpu"
    assert fused in kernels(grad=False) and fused not in kernels(grad=True)


# --------------------------------------------------------------------------- module-specific behaviour
def test_scale_is_key_dim_not_head_dim():
    module = _mqa(num_heads=8, key_dim=48, value_dim=48).eval()
    x = torch.randn(2, C, 12, 10)
    out = module(x)
    reference = reference_from(module, "timm")
    assert reference.scale == pytest.approx(48**-0.5)
    assert rel_err(out, reference(x)) <= 1e-5
    reference.scale = (48 // 8) ** -0.5  # the blog port's head_dim = key_dim // num_heads
    assert rel_err(out, reference(x)) > 1e-2


def test_scale_with_identity_projections():
    # One head, identity q/k/v/out projections: y_p = sum_j softmax_j(<x_p, x_j> / sqrt(k)) x_j.
    channels = 8
    module = MobileMQA(channels, num_heads=1, key_dim=channels, value_dim=channels).eval()
    with torch.no_grad():
        for path in (module.query, module.key, module.value, module.output):
            path.proj.weight.copy_(torch.eye(channels).reshape(channels, channels, 1, 1))
    x = torch.randn(1, channels, 3, 5)
    tokens = x.flatten(2).transpose(1, 2)  # (1, N, C)
    probabilities = torch.softmax(tokens @ tokens.transpose(1, 2) / channels**0.5, dim=-1)
    expected = (probabilities @ tokens).transpose(1, 2).reshape(x.shape)
    assert rel_err(module(x), expected) <= 1e-6


@pytest.mark.parametrize("shape", [(2, 20, 12), (2, 17, 23)], ids=str)
def test_spatial_permutation_equivariance(shape):
    batch, height, width = shape
    module = _mqa().eval()
    x = torch.randn(batch, C, height, width)
    permutation = torch.randperm(height * width)

    def permute(t: torch.Tensor) -> torch.Tensor:
        return t.flatten(2)[..., permutation].reshape(t.shape)

    assert rel_err(module(permute(x)), permute(module(x))) <= 1e-5


@pytest.mark.parametrize("compat", COMPATS)
@pytest.mark.parametrize("query_stride", [2, (2, 1), (3, 2)], ids=str)
@pytest.mark.parametrize("size", [(20, 12), (17, 23), (9, 9), (1, 5)], ids=str)
def test_strided_queries_keep_the_input_size(size, query_stride, compat):
    module = MobileMQA(C, query_stride=query_stride, kv_stride=2, compat=compat, **SMALL).eval()
    assert module(torch.randn(1, C, *size)).shape == (1, C, *size)


@pytest.mark.parametrize("compat", COMPATS)
def test_strided_queries_see_the_last_odd_row_and_column(compat):
    # Floor pooling would drop row 16 / column 22 from every query; 'same' pooling must not.
    module = _mqa(query_stride=2, compat=compat).eval()
    x = torch.randn(1, C, 17, 23)
    pooled = module.query.down_pool(x)
    assert pooled.shape[-2:] == (9, 12)
    assert torch.allclose(pooled[..., -1, -1], x[..., -1, -1])


def test_key_value_path_is_depthwise_conv_with_batchnorm():
    module = MobileMQA(C, kv_stride=2, dw_kernel_size=5, **SMALL)
    for path in (module.key, module.value):
        conv = path.down_conv
        assert conv.groups == C and conv.in_channels == C == conv.out_channels
        assert conv.kernel_size == (5, 5) and conv.stride == (2, 2) and conv.padding == (2, 2)
        assert conv.bias is None
        assert isinstance(path.norm, nn.BatchNorm2d) and path.norm.num_features == C
    assert module.key.proj.out_channels == 16 and module.value.proj.out_channels == 24
    plain = MobileMQA(C, **SMALL)
    assert not hasattr(plain.key, "down_conv") and not hasattr(plain.key, "norm")


def test_tf_convention_pads_by_the_same_rule_and_uses_keras_batchnorm():
    module = MobileMQA(C, kv_stride=2, query_stride=2, dw_kernel_size=5, compat="tf", **SMALL)
    for path in (module.key, module.value):
        assert path.down_conv.padding == (0, 0) and path.pad.kernel == 5 and path.pad.stride == 2
    for norm in (module.query.norm, module.key.norm, module.value.norm):
        assert (norm.eps, norm.momentum) == (1e-3, 0.01)
    x = torch.randn(1, C, 20, 12)
    assert module.key.pad(x).shape[-2:] == (20 + 3, 12 + 3)  # k=5, s=2 on even sizes: 1 before, 2 after
    assert module.key.pad(x[..., :17, :11]).shape[-2:] == (17 + 4, 11 + 4)  # odd sizes: 2 and 2
    # TF has no dropout after the output projection; it drops attention scores only.
    assert MobileMQA(C, dropout=0.3, compat="tf", **SMALL).output.drop.p == 0.0
    assert MobileMQA(C, dropout=0.3, **SMALL).output.drop.p == 0.3


def test_dropout_only_in_training():
    module = _mqa(dropout=0.5)
    plain = _mqa()
    plain.load_state_dict(module.state_dict())
    x = torch.randn(2, C, 12, 10)
    module.eval(), plain.eval()
    assert torch.equal(module(x), plain(x))
    module.train()
    assert not torch.allclose(module(x), module(x))


# --------------------------------------------------------------------------- parameter counts
@pytest.mark.parametrize(
    "channels, kv_strides, expected",
    [(64, 1, 55_296), (256, 1, 221_184), (64, 2, 56_704), (256, 2, 226_816)],
)
def test_parameter_counts(channels, kv_strides, expected):
    module = MultiQueryAttentionLayerWithDownSampling(channels, 8, 48, 48, 1, 1, kv_strides)
    assert _count(module) == expected
    assert _count(MobileMQA(channels, num_heads=8, key_dim=48, value_dim=48, kv_stride=kv_strides)) == expected


@pytest.mark.parametrize("heads, key_dim, value_dim", [(4, 64, 64), (2, 16, 40)])
@pytest.mark.parametrize("dw", [3, 5])
def test_parameter_count_formula(heads, key_dim, value_dim, dw):
    c1, c2 = 48, 80
    base = c1 * (heads * key_dim + key_dim + value_dim) + heads * value_dim * c2
    assert _count(MobileMQA(c1, c2, heads, key_dim, value_dim)) == base
    kv_down = 2 * (dw * dw * c1 + 2 * c1)
    assert _count(MobileMQA(c1, c2, heads, key_dim, value_dim, kv_stride=2, dw_kernel_size=dw)) == base + kv_down
    assert _count(MobileMQA(c1, c2, heads, key_dim, value_dim, query_stride=2)) == base + 2 * c1  # query BN


def test_blog_signature_is_the_same_module():
    blog = MultiQueryAttentionLayerWithDownSampling(C, 4, 16, 24, 2, 1, 2, dw_kernel_size=5)
    assert blog.query_stride == (2, 1) and blog.kv_stride == 2 and blog.value.proj.out_channels == 24
    ours = MobileMQA(C, **SMALL, query_stride=(2, 1), kv_stride=2, dw_kernel_size=5).eval()
    ours.load_state_dict(blog.state_dict())
    x = torch.randn(2, C, 17, 23)
    assert torch.equal(blog.eval()(x), ours(x))


# --------------------------------------------------------------------------- argument validation
@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(c1=0), "c1"),
        (dict(c2=-4), "c2"),
        (dict(num_heads=0), "num_heads"),
        (dict(key_dim=0), "key_dim"),
        (dict(value_dim=-1), "value_dim"),
        (dict(key_dim=16.0), "key_dim"),
        (dict(kv_stride=0), "kv_stride"),
        (dict(query_stride=0), "query_stride"),
        (dict(query_stride=(2, 2, 2)), "query_stride"),
        (dict(query_stride=(2, 0)), "query_stride"),
        (dict(kv_stride=2, dw_kernel_size=4), "odd"),
        (dict(dropout=1.0), "dropout"),
        (dict(dropout=-0.1), "dropout"),
        (dict(compat="keras"), "compat must be one of"),
    ],
)
def test_bad_arguments_raise_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MobileMQA(**{"c1": C, **kwargs})


def test_wrong_input_channels_raise_value_error():
    with pytest.raises(ValueError, match=r"\(B, 32, H, W\)"):
        MobileMQA(C, **SMALL)(torch.randn(1, 16, 8, 8))
