"""iRMB (EMO, ICCV 2023): parity with the explicit port of the official forward, the strided-window
layout, padding semantics (faithful and masked), residual gating, head-width rules and export."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from tests._utils import SHAPES, ncnn_output, onnx_parity, rel_err
from tests.reference.irmb_ref import reference_from
from yoloattn.attention.irmb import iRMB

C = 64

CONFIGS = {
    "default": dict(),
    # Settings of the released EMO models (stages 3-4).
    "emo": dict(norm_layer="ln_2d", act_layer="gelu", attn_pre=True, qkv_bias=True, exp_ratio=4, dim_head=32),
    "se": dict(se_ratio=0.25, act_layer="silu"),
    "global": dict(window_size=0),
    "no_attn": dict(attn_s=False),
    # Value heads (32 wide) differ from the query/key heads (16 wide); grouped values.
    "multihead": dict(dim_head=16, exp_ratio=2, qkv_bias=True),
    "v_group": dict(dim_head=16, v_group=True, attn_pre=True, window_size=5),
}


def _randomise_norms(module: nn.Module) -> nn.Module:
    """Non-trivial norm statistics and affine terms, so that eval-mode parity exercises them."""
    with torch.no_grad():
        for norm in module.modules():
            if isinstance(norm, nn.BatchNorm2d):
                norm.running_mean.normal_(0.0, 0.5)
                norm.running_var.uniform_(0.5, 2.0)
            if isinstance(norm, (nn.BatchNorm2d, nn.LayerNorm)):
                norm.weight.uniform_(0.5, 1.5)
                norm.bias.normal_(0.0, 0.2)
    return module


def _irmb(channels: int = C, c2: int | None = None, **kwargs) -> iRMB:
    return _randomise_norms(iRMB(channels, channels if c2 is None else c2, **kwargs))


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# --------------------------------------------------------------------------- parity with the reference
@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("config", list(CONFIGS))
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_parity_with_reference(shape, config, train):
    batch, height, width = shape
    module = _irmb(**CONFIGS[config]).train(train)
    reference = reference_from(module)
    x = torch.randn(batch, C, height, width)
    out = module(x)
    assert out.shape == x.shape
    assert rel_err(out, reference(x)) <= 1e-5
    if train:  # both updated their BN statistics from the same batch
        for ours, theirs in zip(module.buffers(), reference.buffers()):
            assert torch.allclose(ours.double(), theirs.double(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("config", ["default", "emo", "se", "global", "multihead"])
@pytest.mark.parametrize("shape", [(2, 20, 12), (2, 17, 23)], ids=str)
def test_parity_with_reference_float64(shape, config):
    batch, height, width = shape
    module = _irmb(**CONFIGS[config]).double().eval()
    x = torch.randn(batch, C, height, width, dtype=torch.float64)
    assert rel_err(module(x), reference_from(module)(x)) <= 1e-12


def test_gradients_match_reference():
    module = _irmb(**CONFIGS["emo"]).double().train()
    reference = reference_from(module)
    x = torch.randn(2, C, 17, 23, dtype=torch.float64, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_()
    module(x).square().sum().backward()
    reference(x_ref).square().sum().backward()
    assert rel_err(x.grad, x_ref.grad) <= 1e-10
    theirs = dict(reference.named_parameters())
    for name, param in module.named_parameters():
        assert rel_err(param.grad, theirs[name].grad) <= 1e-10, name


@pytest.mark.parametrize("act", ["relu6", "hswish", "hsigmoid", "hmish", "mish", "prelu", "sigmoid", "tanh", "none"])
def test_activation_keys_match_timm(act):
    module = _irmb(act_layer=act, se_ratio=0.5).eval()
    x = torch.randn(1, C, 9, 11)
    assert rel_err(module(x), reference_from(module)(x)) <= 1e-5


@pytest.mark.parametrize("norm", ["gn", "in_2d", "none"])
def test_norm_keys(norm):
    module = _irmb(norm_layer=norm).eval()
    x = torch.randn(2, C, 10, 9)
    assert rel_err(module(x), reference_from(module)(x)) <= 1e-5
    if norm == "none":
        assert isinstance(module.norm, nn.Identity)


def test_official_state_dict_names():
    module = iRMB(C, C, **CONFIGS["emo"], se_ratio=0.25)
    keys = set(module.state_dict())
    expected = {
        "norm.norm.weight", "norm.norm.bias",  # the official LayerNorm2d wraps nn.LayerNorm as .norm
        "qk.conv.weight", "qk.conv.bias", "v.conv.weight", "v.conv.bias",
        "conv_local.conv.weight", "conv_local.norm.weight", "conv_local.norm.bias",
        "conv_local.norm.running_mean", "conv_local.norm.running_var", "conv_local.norm.num_batches_tracked",
        "se.conv_reduce.weight", "se.conv_reduce.bias", "se.conv_expand.weight", "se.conv_expand.bias",
        "proj.conv.weight",
    }  # fmt: skip
    assert keys == expected
    assert module.conv_local.norm.eps == 1e-6 and module.norm.norm.eps == 1e-6
    assert iRMB(C, C).norm.eps == 1e-6


def test_se_channels_round_like_timm_efficientnet():
    # timm's EfficientNet SqueezeExcite (used by EMO) rounds C * ratio: 48 * 0.25 -> 12, not 16.
    module = iRMB(48, 48, se_ratio=0.25)
    assert module.se.conv_reduce.out_channels == 12
    assert isinstance(iRMB(48, 48).se, nn.Identity)


# --------------------------------------------------------------------------- shapes, gradients, dtypes
@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_shapes_and_gradients(shape, train):
    batch, height, width = shape
    module = _irmb(**CONFIGS["emo"], se_ratio=0.25).train(train)
    x = torch.randn(batch, C, height, width, requires_grad=True)
    out = module(x)
    assert out.shape == x.shape and out.is_contiguous()
    out.square().mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    for name, param in module.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, name


def test_batch_one_stride_probe():
    module = iRMB(C, C).eval()
    with torch.no_grad():
        out = module(torch.zeros(1, C, 8, 8))
    assert out.shape == (1, C, 8, 8) and torch.isfinite(out).all()


def test_bfloat16_autocast_cpu():
    module = _irmb(**CONFIGS["emo"]).eval()
    x = torch.randn(2, C, 17, 23)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = module(x)
    assert out.shape == x.shape and torch.isfinite(out.float()).all()
    assert rel_err(out.float(), module(x)) < 5e-2


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("config", ["default", "emo"])
def test_pure_low_precision_cpu(dtype, config):
    module = _irmb(**CONFIGS[config]).eval()
    x = torch.randn(2, C, 17, 23)
    expected = module(x)
    try:
        with torch.no_grad():
            out = module.to(dtype)(x.to(dtype))
    except (RuntimeError, NotImplementedError) as error:  # CPU kernels missing for this dtype
        pytest.skip(f"CPU lacks a {dtype} kernel: {error}")
    assert out.dtype == dtype and out.shape == x.shape and torch.isfinite(out.float()).all()
    assert rel_err(out.float(), expected) < 5e-2


# --------------------------------------------------------------------------- the strided window layout
def _dependency_of_first_pixel(height: int, width: int, window_size: int) -> torch.Tensor:
    """Input pixels that output pixel (0, 0) depends on, with the depthwise path zeroed."""
    module = iRMB(16, 16, window_size=window_size).eval()  # has_skip: out = x + proj(attention)
    with torch.no_grad():
        module.conv_local.conv.weight.zero_()  # BN(0) = 0 with fresh statistics, SiLU(0) = 0
    x = torch.randn(1, 16, height, width, requires_grad=True)
    module(x)[0, :, 0, 0].sum().backward()
    return x.grad[0].abs().sum(0) > 0


@pytest.mark.parametrize("height, width", [(21, 21), (14, 21), (20, 17)])
def test_grid_window_dependency(height, width):
    ws = 7
    n1, n2 = math.ceil(height / ws), math.ceil(width / ws)
    expected = torch.zeros(height, width, dtype=torch.bool)
    expected[::n1, ::n2] = True  # window (0, 0) holds pixels (n1 * a, n2 * b)
    assert torch.equal(_dependency_of_first_pixel(height, width, ws), expected)


def test_grid_window_dependency_examples():
    depends = _dependency_of_first_pixel(21, 21, 7)
    assert depends[3, 0] and depends[6, 0] and depends[18, 18]
    assert not depends[1, 0] and not depends[7, 0]  # contiguous (Swin-style) windows would include these


def test_global_attention_depends_on_everything():
    assert _dependency_of_first_pixel(9, 13, window_size=0).all()


# --------------------------------------------------------------------------- padding
@pytest.mark.parametrize("config", ["default", "emo"])
def test_mask_padding_equals_masked_reference(config):
    module = _irmb(**CONFIGS[config], mask_padding=True).eval()
    x = torch.randn(2, C, 17, 23)  # pads 4 rows and 5 columns
    out = module(x)
    assert rel_err(out, reference_from(module)(x)) <= 1e-5
    unmasked = reference_from(module, mask_padding=False)(x)
    assert rel_err(out, unmasked) > 1e-3  # the official code lets the zero tokens into the softmax


def test_mask_padding_train_mode_matches_reference():
    module = _irmb(mask_padding=True).train()
    x = torch.randn(2, C, 20, 12)
    assert rel_err(module(x), reference_from(module)(x)) <= 1e-5


def test_mask_padding_is_a_no_op_without_padding():
    x = torch.randn(2, C, 14, 21)
    module = _irmb().eval()
    masked = iRMB(C, C, mask_padding=True).eval()
    masked.load_state_dict(module.state_dict())
    assert rel_err(masked(x), module(x)) <= 1e-6


def test_padding_leaks_unless_masked():
    """A 5x5 map is one window at ws 5 and one padded window at ws 7: equal only when masked."""
    x = torch.randn(1, C, 5, 5)
    base = _irmb(window_size=5).eval()
    outputs = {}
    for ws, mask in [(7, False), (7, True)]:
        module = iRMB(C, C, window_size=ws, mask_padding=mask).eval()
        module.load_state_dict(base.state_dict())
        outputs[mask] = module(x)
    assert rel_err(outputs[True], base(x)) <= 1e-6
    assert rel_err(outputs[False], base(x)) > 1e-3


# --------------------------------------------------------------------------- residual gating, strides
def test_no_residual_when_channels_change():
    module = _irmb(c2=32).eval()
    assert not module.has_skip
    with torch.no_grad():
        module.proj.conv.weight.zero_()
    out = module(torch.randn(2, C, 17, 23))
    assert out.shape == (2, 32, 17, 23) and out.abs().max() == 0  # neither outer nor depthwise skip


def test_residual_when_shapes_match():
    module = _irmb().eval()
    assert module.has_skip
    with torch.no_grad():
        module.proj.conv.weight.zero_()
    x = torch.randn(2, C, 17, 23)
    assert torch.equal(module(x), x)
    assert not iRMB(C, C, has_skip=False).has_skip


@pytest.mark.parametrize("dw_ks", [3, 5])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_stride_two(shape, dw_ks):
    batch, height, width = shape
    module = _irmb(stride=2, dw_ks=dw_ks).eval()
    assert not module.has_skip
    x = torch.randn(batch, C, height, width)
    out = module(x)
    assert out.shape == (batch, C, math.ceil(height / 2), math.ceil(width / 2))
    assert rel_err(out, reference_from(module)(x)) <= 1e-5


@pytest.mark.parametrize("dilation", [2, 3])
def test_dilation_keeps_the_map_size(dilation):
    module = _irmb(dilation=dilation, dw_ks=3).eval()
    assert module.conv_local.conv.padding == (dilation, dilation)
    x = torch.randn(1, C, 17, 23)
    out = module(x)
    assert out.shape == x.shape
    assert rel_err(out, reference_from(module)(x)) <= 1e-5


def test_official_padding_formula_for_dilation_one():
    for kernel, stride in [(3, 1), (5, 1), (3, 2), (5, 2)]:
        conv = iRMB(C, C, dw_ks=kernel, stride=stride).conv_local.conv
        assert conv.padding[0] == math.ceil((kernel - stride) / 2)


# --------------------------------------------------------------------------- head widths and errors
@pytest.mark.parametrize("channels, dim_head", [(16, 16), (32, 32), (48, 16), (64, 64), (96, 32), (128, 64)])
def test_default_head_width_for_yolo_widths(channels, dim_head):
    module = iRMB(channels, channels).eval()
    assert module.dim_head == dim_head and module.num_head == channels // dim_head
    with torch.no_grad():
        out = module(torch.randn(1, channels, 8, 8))
    assert out.shape == (1, channels, 8, 8)


def test_dim_head_error_names_channels_and_working_values():
    with pytest.raises(ValueError, match=r"c1=48 .*dim_head=64") as error:
        iRMB(48, 48, dim_head=64)
    assert "[48, 24, 16, 12, 8, 6, 4, 3, 2, 1]" in str(error.value)
    with pytest.raises(ValueError, match=r"c1=20 .*pass dim_head explicitly"):
        iRMB(20, 20)
    iRMB(20, 20, attn_s=False)  # no attention, no head-width constraint (as officially)


def test_other_configuration_errors():
    with pytest.raises(ValueError, match="unknown norm_layer 'bn'"):
        iRMB(C, C, norm_layer="bn")
    with pytest.raises(ValueError, match="unknown act_layer 'swish2'"):
        iRMB(C, C, act_layer="swish2")
    with pytest.raises(ValueError, match="v_proj=False"):
        iRMB(C, C, attn_s=False, v_proj=False, exp_ratio=2)
    with pytest.raises(ValueError, match="must split into 4 heads"):
        iRMB(C, C, dim_head=16, exp_ratio=1.5 + 1 / 64)  # 97 value channels
    with pytest.raises(ValueError, match="squeeze channels"):
        iRMB(C, C, se_ratio=0.001)


# --------------------------------------------------------------------------- dropout
def test_attention_dropout_only_in_training():
    module = _irmb(attn_drop=0.5)
    x = torch.randn(2, C, 14, 14)
    module.train()
    assert not torch.allclose(module(x), module(x))
    module.eval()
    assert torch.equal(module(x), module(x))


# --------------------------------------------------------------------------- parameter counts
@pytest.mark.parametrize("channels, expected", [(64, 17_216), (256, 265_472)])
def test_parameter_count_published(channels, expected):
    assert _count(iRMB(channels, channels)) == expected == 4 * channels**2 + 13 * channels


@pytest.mark.parametrize("exp_ratio", [1, 2, 4])
@pytest.mark.parametrize("channels", [32, 64, 96])
def test_parameter_count_formula(channels, exp_ratio):
    plain = iRMB(channels, channels, exp_ratio=exp_ratio)
    assert _count(plain) == (2 + 2 * exp_ratio) * channels**2 + (2 + 11 * exp_ratio) * channels
    biased = iRMB(channels, channels, exp_ratio=exp_ratio, qkv_bias=True)
    assert _count(biased) - _count(plain) == (2 + exp_ratio) * channels


# --------------------------------------------------------------------------- ONNX
@pytest.mark.parametrize(
    "config",
    [dict(), dict(**CONFIGS["emo"], mask_padding=True), dict(window_size=0)],
    ids=["default", "emo_masked", "global"],
)
def test_onnx_dynamic_hw(config):
    module = _irmb(**config).eval()
    # Paddings (1, 1), (4, 5) and none: the pad amounts must follow H and W at run time.
    errors = onnx_parity(module, [(20, 20), (17, 23), (14, 21)], C)
    assert max(errors) <= 1e-4, errors


# --------------------------------------------------------------------------- traced (export) path
# Under tracing the attention takes its portable route (reshapes, explicit softmax, no SDPA or unflatten).
TRACED_CONFIGS = {
    "default": {},
    "emo_masked": dict(**CONFIGS["emo"], mask_padding=True),
    "global": CONFIGS["global"],
    "multihead": CONFIGS["multihead"],
    "v_group": CONFIGS["v_group"],
}


@pytest.mark.parametrize("config", list(TRACED_CONFIGS))
def test_traced_graph_matches_reference(config):
    module = _irmb(**TRACED_CONFIGS[config]).double().eval()
    traced = torch.jit.trace(module, torch.randn(1, C, 20, 12, dtype=torch.float64), check_trace=False)
    # Another batch and size than the traced one: 3 x 4 windows and 4 / 5 padded rows / columns.
    x = torch.randn(2, C, 17, 23, dtype=torch.float64)
    assert rel_err(traced(x), reference_from(module)(x)) <= 1e-12


@pytest.mark.parametrize("config", ["default", "emo_masked"])
def test_onnx_opset11_dynamic_hw(config):
    # TensorRT 8 and NPU toolchains take opsets 11-13: no Unflatten (13) or SDPA (14) may reach the graph.
    module = _irmb(**TRACED_CONFIGS[config]).eval()
    errors = onnx_parity(module, [(20, 20), (17, 23), (14, 21)], C, opset=11)
    assert max(errors) <= 1e-4, errors


def test_ncnn_conversion_matches(tmp_path, monkeypatch):
    # ncnn holds at most 4 dims after dropping the batch: a 6-D window view made pnnx write a Reshape that
    # ncnn refuses to load, and a batch folded with the windows would be dropped with it.
    pytest.importorskip("pnnx"), pytest.importorskip("ncnn")
    monkeypatch.chdir(tmp_path)  # pnnx may leave debug files in the working directory
    module = _irmb(32, **dict(CONFIGS["emo"], exp_ratio=2, dim_head=16), mask_padding=True).eval()
    x = torch.randn(1, 32, 17, 23)  # 3 x 4 windows, padded
    got, expected = ncnn_output(module, x, tmp_path)
    assert got.shape == expected.shape
    assert (got - expected).abs().max() <= 1e-4 * expected.abs().max()
