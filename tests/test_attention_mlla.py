"""MLLA (yoloattn.attention.mlla) against the official-port reference (tests/reference/mlla_ref.py)."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from tests._utils import SHAPES, ncnn_output, onnx_parity, rel_err
from tests.reference.mlla_ref import RoPE as OfficialRoPE
from tests.reference.mlla_ref import reference_from
from yoloattn.attention.mlla import LinearAttention, MLLABlock, apply_rope, default_num_heads, rope_tables

C = 64


def _randomize(module: nn.Module) -> nn.Module:
    """Weights large enough that every branch matters (the official init makes attention tiny)."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=m.in_features**-0.5)
                if m.bias is not None:
                    nn.init.normal_(m.bias, std=0.1)
            elif isinstance(m, nn.LayerNorm):
                nn.init.normal_(m.weight, 1.0, 0.2)
                nn.init.normal_(m.bias, std=0.2)
    return module


def _block(c1: int = C, **kwargs) -> MLLABlock:
    return _randomize(MLLABlock(c1, **kwargs))


def _ref_param_name(name: str) -> str:
    return name if name.startswith("proj.") else "module." + name


# ---------------------------------------------------------------- parity with the official port


@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("b,h,w", SHAPES)
def test_block_parity_forward_and_backward(b, h, w, train):
    block = _block().train(train)
    ref = reference_from(block)
    x = torch.randn(b, C, h, w, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_()
    y, y_ref = block(x), ref(x_ref)
    assert rel_err(y, y_ref) <= 1e-5
    grad = torch.randn_like(y)
    y.backward(grad)
    y_ref.backward(grad)
    assert rel_err(x.grad, x_ref.grad) <= 1e-5
    ref_params = dict(ref.named_parameters())
    for name, p in block.named_parameters():
        assert rel_err(p.grad, ref_params[_ref_param_name(name)].grad) <= 1e-5, name


@pytest.mark.parametrize("b,h,w", SHAPES)
def test_attention_parity(b, h, w):
    attn = _randomize(LinearAttention(C, num_heads=2))
    ref = reference_from(attn)
    x = torch.randn(b, C, h, w)
    assert rel_err(attn(x), ref(x)) <= 1e-5


@pytest.mark.parametrize(
    "kwargs", [dict(num_heads=4, qkv_bias=False), dict(num_heads=1, mlp_ratio=2.0), dict(c2=48)], ids=str
)
def test_block_parity_other_configs(kwargs):
    block = _block(**kwargs).eval()
    x = torch.randn(2, C, 17, 23)
    assert rel_err(block(x), reference_from(block)(x)) <= 1e-5


def test_block_parity_odd_head_dim():
    """12 channels in 4 heads: head_dim 3, so RoPE pairs straddle heads (as in the official code)."""
    block = _block(12, num_heads=4).eval()
    x = torch.randn(2, 12, 9, 7)
    assert rel_err(block(x), reference_from(block)(x)) <= 1e-5


@pytest.mark.parametrize("h,w", [(1, 7), (5, 1), (1, 1), (2, 3)])
def test_parity_degenerate_maps(h, w):
    """Single-row, single-column and 1x1 maps (deep levels of small or extreme-aspect inputs)."""
    block = _block().train()
    x = torch.randn(2, C, h, w, requires_grad=True)
    y = block(x)
    assert y.shape == x.shape
    assert rel_err(y, reference_from(block)(x)) <= 1e-5
    y.sum().backward()
    assert torch.isfinite(x.grad).all()


def test_memory_format_of_input_does_not_matter():
    block = _block().eval()
    x = torch.randn(2, C, 34, 23)
    expected = block(x[:, :, :17])
    assert torch.equal(block(x[:, :, :17].contiguous(memory_format=torch.channels_last)), expected)
    assert torch.equal(block(x[:, :, ::2]), block(x[:, :, ::2].contiguous()))
    assert rel_err(expected, reference_from(block)(x[:, :, :17])) <= 1e-5


@pytest.mark.parametrize("b,h,w", [SHAPES[1], SHAPES[3]])
def test_parity_float64(b, h, w):
    block = _block().double().eval()
    x = torch.randn(b, C, h, w, dtype=torch.float64)
    assert rel_err(block(x), reference_from(block)(x)) <= 1e-12
    attn = block.attn
    assert rel_err(attn(x), reference_from(attn)(x)) <= 1e-12


def test_parity_with_official_init():
    """The default (trunc-normal 0.02) init also matches; the attention branch is small there."""
    block = MLLABlock(C).eval()
    x = torch.randn(2, C, 20, 12)
    assert rel_err(block(x), reference_from(block)(x)) <= 1e-6


# ---------------------------------------------------------------- shapes, gradients, dtypes, export


@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("b,h,w", SHAPES)
def test_shapes_and_finite_gradients(b, h, w, train):
    block = MLLABlock(C, drop_path=0.1).train(train)
    x = torch.randn(b, C, h, w, requires_grad=True)
    y = block(x)
    assert y.shape == (b, C, h, w) and y.is_contiguous()
    y.square().mean().backward()
    assert torch.isfinite(x.grad).all()
    for name, p in block.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


def test_bfloat16_autocast_cpu():
    block = _block().eval()
    x = torch.randn(2, C, 20, 12)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = block(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    assert rel_err(y, block(x)) < 3e-2


@pytest.mark.parametrize("dtype,tol", [(torch.float16, 1e-2), (torch.bfloat16, 3e-2)], ids=["fp16", "bf16"])
def test_pure_low_precision_cpu(dtype, tol):
    """The official block fails here (its RoPE returns float32 into a half matmul)."""
    block = _block().eval()
    x = torch.randn(2, C, 17, 23)
    expected = block(x)
    low = copy.deepcopy(block).to(dtype)
    try:
        y = low(x.to(dtype))
    except RuntimeError as e:
        if "not implemented" in str(e):
            pytest.skip(f"CPU kernel missing for {dtype}: {e}")
        raise
    assert y.dtype == dtype and y.shape == x.shape and torch.isfinite(y).all()
    assert rel_err(y, expected) < tol


@pytest.mark.parametrize("c2", [None, 32], ids=["c2=c1", "c2=32"])
def test_onnx_dynamic_hw(c2):
    block = _block(c2=c2).eval()
    errors = onnx_parity(block, [(16, 16), (20, 12), (17, 23)], C)
    assert max(errors) <= 1e-4, errors


def test_onnx_opset11_dynamic_hw():
    # Opsets 11-12 (TensorRT 8, NPU toolchains) have no Unflatten: the RoPE pair swap must not use it.
    errors = onnx_parity(_block().eval(), [(16, 16), (12, 20)], C, opset=11)
    assert max(errors) <= 1e-4, errors


def test_openvino_dynamic_hw():
    # Ultralytics' OpenVINO path: a non-strict trace converted without fixed shapes. An in-place add on the
    # RoPE product once failed here as aten::mul_reverseprop.
    ov = pytest.importorskip("openvino")
    attn = _randomize(LinearAttention(C, num_heads=2)).eval()  # official init: attention would hardly count
    traced = torch.jit.trace(attn, torch.randn(1, C, 8, 12), strict=False, check_trace=False)
    # f32: OpenVINO's CPU plugin runs bf16 by default where the CPU has AVX512_BF16 or AMX (4e-3 off here)
    compiled = ov.Core().compile_model(ov.convert_model(traced, example_input=torch.randn(1, C, 8, 12)), "CPU",
                                       {"INFERENCE_PRECISION_HINT": "f32"})
    for h, w in [(8, 12), (12, 12)]:
        x = torch.randn(1, C, h, w)
        with torch.no_grad():
            expected = attn(x)
        got = torch.from_numpy(compiled(x.numpy())[0])
        assert (got - expected).abs().max() <= 1e-4 * expected.abs().max(), (h, w)


def test_ncnn_conversion_matches(tmp_path, monkeypatch):
    # pnnx wrote aten::addcmul verbatim into its Python file, and turned the stride-2 channel slices of the
    # RoPE pair swap into step-less ncnn Crops (wrong numbers, no error); random weights make that visible.
    pytest.importorskip("pnnx"), pytest.importorskip("ncnn")
    monkeypatch.chdir(tmp_path)  # pnnx may leave debug files in the working directory
    attn = _randomize(LinearAttention(C, num_heads=2)).eval()
    x = torch.randn(1, C, 8, 12)
    got, expected = ncnn_output(attn, x, tmp_path)
    assert got.shape == expected.shape
    assert (got - expected).abs().max() <= 1e-4 * expected.abs().max()


# ---------------------------------------------------------------- parameter counts


@pytest.mark.parametrize("c,expected", [(64, 56_704), (256, 865_792)])
def test_block_parameter_count(c, expected):
    assert sum(p.numel() for p in MLLABlock(c).parameters()) == expected


@pytest.mark.parametrize("c,r", [(32, 2.0), (96, 4.0), (128, 3.0)])
def test_block_parameter_formula(c, r):
    block = MLLABlock(c, mlp_ratio=r)
    assert sum(p.numel() for p in block.parameters()) == int((5 + 2 * r) * c * c + (50 + r) * c)


@pytest.mark.parametrize("c,expected", [(64, 8_960), (256, 134_144)])
def test_attention_parameter_count(c, expected):
    assert sum(p.numel() for p in LinearAttention(c, default_num_heads(c)).parameters()) == expected
    assert expected == 2 * c * c + 12 * c


def test_output_projection():
    block = MLLABlock(C, 32)
    assert isinstance(block.proj, nn.Conv2d) and block.proj.bias is None
    assert block.proj.weight.shape == (32, C, 1, 1)
    assert sum(p.numel() for p in block.parameters()) == 56_704 + C * 32
    assert block(torch.randn(1, C, 8, 8)).shape == (1, 32, 8, 8)
    for same in (MLLABlock(C), MLLABlock(C, C)):
        assert not any(k.startswith("proj") for k in same.state_dict())


# ---------------------------------------------------------------- RoPE


@pytest.mark.parametrize("h,w,c", [(8, 8, 64), (20, 12, 32), (17, 23, 16), (1, 9, 8)])
def test_real_rope_equals_complex_rope(h, w, c):
    x = torch.randn(2, h, w, c)
    official = OfficialRoPE((h, w, c))
    real = apply_rope(x, *rope_tables(h, w, c))
    # Bit for bit against the complex product (a + ib)(cos + i sin) written out with the
    # official float32 rotation buffer.
    pairs, rot = x.unflatten(-1, (-1, 2)), official.rotations
    a, b, cos, sin = pairs[..., 0], pairs[..., 1], rot[..., 0], rot[..., 1]
    product = torch.stack([a * cos - b * sin, a * sin + b * cos], -1).flatten(-2)
    assert torch.equal(real, product)
    # torch's complex kernel itself may round one element in a scalar tail differently (FMA).
    torch.testing.assert_close(real, official(x), rtol=1.2e-7, atol=1e-8)


def test_rope_tables_match_official_buffer_exactly():
    h, w, c = 20, 12, 32
    rot = OfficialRoPE((h, w, c)).rotations  # (H, W, C/2, 2) = (cos, sin)
    cos, sin = rope_tables(h, w, c)
    assert torch.equal(cos[..., 0::2], rot[..., 0]) and torch.equal(cos[..., 1::2], rot[..., 0])
    assert torch.equal(sin[..., 1::2], rot[..., 1]) and torch.equal(sin[..., 0::2], -rot[..., 1])


def test_rope_relative_position_property():
    """<R_p q, R_n k> depends only on p - n."""
    c, size = 32, 16
    cos, sin = (t.double() for t in rope_tables(size, size, c))
    q, k = torch.randn(2, c, dtype=torch.float64).unbind(0)

    def score(p, n):
        return (apply_rope(q, cos[p], sin[p]) * apply_rope(k, cos[n], sin[n])).sum().item()

    offset_a = [score((1, 2), (4, 7)), score((5, 3), (8, 8)), score((10, 9), (13, 14))]  # n - p = (3, 5)
    assert max(offset_a) - min(offset_a) < 1e-5 * max(abs(s) for s in offset_a)
    assert abs(score((1, 2), (4, 8)) - offset_a[0]) > 1e-3  # another offset, another score
    assert abs(score((1, 2), (5, 7)) - offset_a[0]) > 1e-3


def test_rope_row_column_channel_split():
    h, w, c = 5, 7, 16
    cos, sin = rope_tables(h, w, c)
    half = c // 2
    # First C/2 channels rotate with the row only, last C/2 with the column only.
    assert torch.equal(cos[:, :, :half], cos[:, :1, :half].expand(h, w, half))
    assert torch.equal(cos[:, :, half:], cos[:1, :, half:].expand(h, w, half))
    assert not torch.equal(cos[0, 0, :half], cos[1, 0, :half])
    assert not torch.equal(cos[0, 0, half:], cos[0, 1, half:])
    theta = 10000 ** (-torch.arange(c // 4, dtype=torch.float64) / (c // 4))
    i, j = 3, 5
    angles = torch.cat([i * theta, j * theta])  # one angle per pair (2m, 2m+1)
    torch.testing.assert_close(cos[i, j].double(), angles.cos().repeat_interleave(2), rtol=0, atol=1e-6)
    signed = torch.stack([-angles.sin(), angles.sin()], -1).flatten()
    torch.testing.assert_close(sin[i, j].double(), signed, rtol=0, atol=1e-6)
    # A token whose row-half channels only are non-zero gets the same rotation in every column.
    x = torch.cat([torch.randn(half), torch.zeros(half)])
    rotated = apply_rope(x, cos, sin)  # (H, W, C)
    assert torch.equal(rotated[2], rotated[2, :1].expand(w, c))
    assert not torch.equal(rotated[2, 0], rotated[3, 0])


# ---------------------------------------------------------------- any resolution, clean state


def test_resolution_change_same_instance():
    block = _block().eval()
    ref = reference_from(block)
    for h, w in [(8, 8), (20, 12), (20, 20)]:
        x = torch.randn(2, C, h, w)
        y = block(x)
        assert y.shape == (2, C, h, w)
        assert rel_err(y, ref(x)) <= 1e-5


def test_state_dict_has_no_size_dependent_entries():
    block = _block()
    before = {k: v.shape for k, v in block.state_dict().items()}
    for h, w in [(8, 8), (20, 12)]:
        block(torch.randn(1, C, h, w))
    after = {k: v.shape for k, v in block.state_dict().items()}
    assert before == after
    assert not any("rope" in k or "head_one_hot" in k for k in after)
    fresh = MLLABlock(C)
    fresh.load_state_dict(block.state_dict(), strict=True)
    x = torch.randn(2, C, 17, 23)
    assert torch.equal(fresh(x), block(x))


def test_official_state_dict_loads_strictly():
    """Official checkpoints carry attn.rope.rotations for one resolution; it is dropped on load."""
    block = _block().eval()
    official_state = reference_from(block, resolution=(20, 12)).module.state_dict()
    assert official_state["attn.rope.rotations"].shape == (20, 12, C // 2, 2)
    fresh = MLLABlock(C).eval()
    fresh.load_state_dict(official_state, strict=True)
    x = torch.randn(2, C, 17, 23)
    assert torch.equal(fresh(x), block(x))
    assert "attn.rope.rotations" in official_state  # the caller's dict is left intact


def test_pickle_and_deepcopy_leave_rope_cache_behind():
    block = _block().eval()
    x = torch.randn(1, C, 20, 12)
    y = block(x)
    assert block.attn._rope_cache  # filled by the forward
    for clone in (pickle.loads(pickle.dumps(block)), copy.deepcopy(block)):
        assert clone.attn._rope_cache == {}
        assert torch.equal(clone(x), y)


def test_rope_cache_from_inference_mode_is_usable_in_training():
    """Validation under inference_mode must not poison the cache for the next training step."""
    block = _block().eval()
    x = torch.randn(1, C, 8, 8)
    with torch.inference_mode():
        block(x)
    block.train()
    x.requires_grad_()
    block(x).sum().backward()
    assert torch.isfinite(x.grad).all()


def test_rope_cache_is_bounded():
    attn = LinearAttention(C, 2)
    for size in range(4, 12):
        attn(torch.randn(1, C, size, size + 1))
    assert 1 <= len(attn._rope_cache) <= 4


# ---------------------------------------------------------------- layout, LePE, gating


def test_layout_round_trip_is_identity():
    """With every residual branch zeroed, (B,C,H,W) -> tokens -> (B,C,H,W) must return x exactly."""
    block = _block()
    with torch.no_grad():
        for layer in (block.cpe1, block.cpe2, block.out_proj, block.mlp.fc2):
            layer.weight.zero_()
            layer.bias.zero_()
    x = torch.randn(2, C, 17, 23)
    assert torch.equal(block(x), x)


def test_token_layout_matches_flatten_transpose():
    """The MLP branch equals the per-token computation on x.flatten(2).transpose(1, 2) (B, N, C)."""
    block = _block()
    with torch.no_grad():
        for layer in (block.cpe1, block.cpe2, block.out_proj):
            layer.weight.zero_()
            layer.bias.zero_()
    b, h, w = 2, 17, 23
    x = torch.randn(b, C, h, w)
    tokens = x.flatten(2).transpose(1, 2)
    norm2, mlp = block.norm2, block.mlp
    normed = F.layer_norm(tokens, (C,), norm2.weight, norm2.bias)
    hidden = F.gelu(F.linear(normed, mlp.fc1.weight, mlp.fc1.bias))
    expected = tokens + F.linear(hidden, mlp.fc2.weight, mlp.fc2.bias)
    expected = expected.transpose(1, 2).reshape(b, C, h, w)
    assert rel_err(block(x), expected) <= 1e-6


def test_lepe_is_depthwise_conv_of_image_v():
    attn = _randomize(LinearAttention(C, 2))
    x = torch.randn(2, C, 17, 23)
    with_lepe = attn(x)
    weight, bias = attn.lepe.weight.detach().clone(), attn.lepe.bias.detach().clone()
    with torch.no_grad():
        attn.lepe.weight.zero_()
        attn.lepe.bias.zero_()
    lepe = with_lepe - attn(x)
    expected = F.conv2d(x, weight, bias, padding=1, groups=C)
    torch.testing.assert_close(lepe, expected, rtol=0, atol=1e-5)


def test_zero_gate_removes_attention_branch():
    """SiLU(act_proj(.)) = 0 leaves out_proj(0) = out_proj.bias as the whole attention branch."""
    block = _block().eval()
    with torch.no_grad():
        block.act_proj.weight.zero_()
        block.act_proj.bias.zero_()
    other = copy.deepcopy(block)
    with torch.no_grad():  # different attention weights must not matter
        for layer in (other.in_proj, other.dwc, other.attn.qk, other.attn.lepe):
            layer.weight.normal_()
    x = torch.randn(2, C, 20, 12)
    y = block(x)
    assert torch.equal(y, other(x))

    x1 = x + block.cpe1(x)
    x2 = x1 + block.out_proj.bias.view(1, C, 1, 1)
    x3 = x2 + block.cpe2(x2)
    t = x3.permute(0, 2, 3, 1)
    expected = (t + block.mlp(block.norm2(t))).permute(0, 3, 1, 2)
    assert rel_err(y, expected) <= 1e-6


# ---------------------------------------------------------------- constructor and init


@pytest.mark.parametrize(
    "c,heads", [(16, 1), (32, 1), (48, 1), (64, 2), (96, 3), (128, 4), (256, 8), (104, 2), (168, 4)]
)
def test_default_heads_use_head_dim_32(c, heads):
    assert default_num_heads(c) == heads
    assert MLLABlock(c).num_heads == heads


def test_invalid_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match=r"multiple of 4.*got 66.*68"):
        MLLABlock(66)
    with pytest.raises(ValueError, match=r"\(64\) must be divisible by num_heads \(3\)"):
        MLLABlock(64, num_heads=3)
    with pytest.raises(ValueError, match="multiple of 4"):
        LinearAttention(30, 2)
    with pytest.raises(ValueError, match="mlp_ratio"):
        MLLABlock(64, mlp_ratio=0)
    with pytest.raises(ValueError, match="drop_path"):
        MLLABlock(64, drop_path=1.0)
    with pytest.raises(ValueError, match="c2 must be a positive"):
        MLLABlock(64, 0)
    with pytest.raises(ValueError, match=r"expects a \(B, 64, H, W\) input.*c1=32"):
        MLLABlock(64)(torch.randn(1, 32, 8, 8))


def test_official_init():
    block = MLLABlock(256)
    for name, m in block.named_modules():
        if isinstance(m, nn.Linear):
            assert 0.017 < m.weight.std().item() < 0.023, name
            assert torch.count_nonzero(m.bias) == 0, name
        elif isinstance(m, nn.LayerNorm):
            assert torch.equal(m.weight, torch.ones_like(m.weight)) and torch.count_nonzero(m.bias) == 0


def test_drop_path_is_stochastic_in_train_and_identity_in_eval():
    block = _block(drop_path=0.5)
    x = torch.randn(8, C, 8, 8)
    block.train()
    assert not torch.equal(block(x), block(x))
    block.eval()
    assert rel_err(block(x), reference_from(block)(x)) <= 1e-5
