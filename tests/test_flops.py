"""FLOP counts against hand-computed formulas (2 FLOPs per multiply-add; element-wise ops excluded).

Each expected value is written out from the module's math, not read back from a counter, so a fused
kernel (or a custom autograd Function) that the counter cannot see makes these tests fail.
"""

import math

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from yoloattn import bench, flops, zoo
from yoloattn.attention import mqa as mqa_module
from yoloattn.attention.acmix import ACmix
from yoloattn.attention.irmb import iRMB
from yoloattn.attention.mlla import LinearAttention
from yoloattn.flops import FlopCounter
from yoloattn.attention.mqa import MobileMQA

CPU_FUSED = "aten._scaled_dot_product_flash_attention_for_cpu"


def conv(batch, c_in, c_out, k, out_pixels, groups=1):
    """FLOPs of a k x k convolution (bias not counted, as torch's conv formula does)."""
    return 2 * batch * c_out * (c_in // groups) * k * k * out_pixels


def attention(batch_heads, q_len, kv_len, qk_dim, v_dim):
    """QK^T plus AV, written out independently of yoloattn.flops.attention_flops."""
    return 2 * batch_heads * q_len * kv_len * qk_dim + 2 * batch_heads * q_len * kv_len * v_dim


def counted(module, *inputs):
    with torch.no_grad(), flops.FlopCounter() as counter:
        module(*inputs)
    return counter


# ------------------------------------------------------------------------------------ bare SDPA


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("variant", ["plain", "bool mask", "float mask", "causal", "gqa"])
def test_fused_sdpa_counts_qk_and_av(dtype, variant):
    b, h, L, S, E = 2, 4, 10, 12, 8
    q = torch.randn(b, h, L, E, dtype=dtype)
    kv_heads = 2 if variant == "gqa" else h
    k, v = torch.randn(b, kv_heads, S, E, dtype=dtype), torch.randn(b, kv_heads, S, E, dtype=dtype)
    kwargs = {
        "plain": {},
        "bool mask": {"attn_mask": torch.rand(L, S) > 0.3},
        "float mask": {"attn_mask": torch.randn(L, S, dtype=dtype)},
        "causal": {"is_causal": True},
        "gqa": {"enable_gqa": True},
    }[variant]
    counter = counted(lambda: F.scaled_dot_product_attention(q, k, v, **kwargs))
    # every query head attends over all S keys; masks and causality do not change the count
    assert counter.total == attention(b * h, L, S, E, E) == 2 * b * h * L * S * (E + E)
    assert CPU_FUSED in counter.breakdown()  # the fused kernel ran, not the bmm math path


@pytest.mark.parametrize("case", ["3-D", "value width differs", "dropout"])
def test_sdpa_math_path_gives_the_same_count(case):
    # These inputs make SDPA fall back to its math path (two bmm), counted by FlopCounterMode itself.
    q, k, v = torch.randn(3, 10, 8), torch.randn(3, 12, 8), torch.randn(3, 12, 8)
    dropout = 0.0
    if case == "value width differs":
        v = torch.randn(3, 12, 5)
    elif case == "dropout":
        dropout = 0.5
    counter = counted(lambda: F.scaled_dot_product_attention(q, k, v, dropout_p=dropout))
    assert counter.total == attention(3, 10, 12, 8, v.shape[-1])
    assert CPU_FUSED not in counter.breakdown()


def test_fused_sdpa_backward_counts_five_products():
    b, h, L, S, E = 1, 2, 6, 7, 4
    q, k, v = (torch.randn(b, h, n, E, dtype=torch.float64, requires_grad=True) for n in (L, S, S))
    with flops.FlopCounter() as counter:
        F.scaled_dot_product_attention(q, k, v).sum().backward()
    # forward QK^T, AV; backward recomputed QK^T, dO V^T, P^T dO, dS K, dS^T Q
    assert counter.total == 2 * b * h * L * S * E * 2 + 2 * b * h * L * S * E * 5
    assert "aten._scaled_dot_product_flash_attention_for_cpu_backward" in counter.breakdown()


def test_native_multi_head_attention_fast_path_is_counted():
    b, n, e, heads = 2, 10, 32, 4
    mha = torch.nn.MultiheadAttention(e, heads, batch_first=True).eval()
    x = torch.randn(b, n, e)
    counter = counted(lambda: mha(x, x, x, need_weights=False))
    assert "aten._native_multi_head_attention" in counter.breakdown()
    assert counter.total == 4 * 2 * b * n * e * e + attention(b * heads, n, n, e // heads, e // heads)


# ------------------------------------------------------------------------------------ MobileMQA


def mqa_flops(c1, heads, key_dim, value_dim, n):
    """MobileMQA with strides 1 on a map of n pixels: q, k, v, output 1x1 projections + attention."""
    projections = 2 * n * c1 * (heads * key_dim + key_dim + value_dim) + 2 * n * heads * value_dim * c1
    return projections + attention(heads, n, n, key_dim, value_dim)


@pytest.mark.parametrize("side", [4, 32])
def test_mobile_mqa_dense_and_fused_paths(side):
    c1, heads, dim = 8, 8, 8
    n = side * side
    fused = mqa_module.fused_attention(heads * n * n, grad=False)  # counted without autograd
    assert fused == (side == 32)  # one map per path
    module = MobileMQA(c1, num_heads=heads, key_dim=dim, value_dim=dim).eval()
    counter = counted(module, torch.randn(1, c1, side, side))
    assert counter.total == mqa_flops(c1, heads, dim, dim, n)
    assert (CPU_FUSED in counter.breakdown()) == fused


# ------------------------------------------------------------------------------------ iRMB


def test_irmb_window_attention():
    c, dim_head, ws, h, w = 16, 8, 7, 10, 12
    module = iRMB(c, c, dim_head=dim_head, window_size=ws).eval()
    heads = c // dim_head
    windows, tokens = math.ceil(h / ws) * math.ceil(w / ws), ws * ws  # the map is padded to 14 x 14
    padded = windows * tokens
    expected = (
        2 * padded * c * (2 * c)  # q and k projections, on the padded tokens
        + 2 * padded * c * c  # value projection, also on the padded tokens
        + attention(windows * heads, tokens, tokens, dim_head, c // heads)
        + conv(1, c, c, 3, h * w, groups=c)  # local depthwise 3x3
        + conv(1, c, c, 1, h * w)  # output projection
    )
    counter = counted(module, torch.randn(1, c, h, w))
    assert counter.total == expected
    assert CPU_FUSED in counter.breakdown()


# ------------------------------------------------------------------------------------ ACmix


@pytest.mark.parametrize("stride", [1, 2])
def test_acmix_counts_window_attention(stride):
    b, c1, c2, head, ka, kc, h, w = 2, 8, 16, 4, 7, 3, 9, 11
    module = ACmix(c1, c2, kernel_att=ka, head=head, kernel_conv=kc, stride=stride).eval()
    d, n = c2 // head, h * w
    out = math.ceil(h / stride) * math.ceil(w / stride)
    window = 2 * b * c2 * ka * ka * out  # q . k over d channels, K = ka^2 offsets, per head and pixel
    window += 2 * b * c2 * ka * ka * out  # sum_j att_j * v_j
    expected = (
        3 * conv(b, c1, c2, 1, n)  # conv1, conv2, conv3 (q, k, v)
        + conv(1, 2, d, 1, n)  # conv_p on the (1, 2, H, W) coordinate grid
        + 2 * b * (kc * kc) * (3 * head) * d * n  # fc: 3h maps -> kc^2, on (B, 3h, d, N)
        + conv(b, kc * kc * d, c2, kc, out, groups=d)  # dep_conv
        + window
    )
    x = torch.randn(b, c1, h, w)
    for grad in (False, True):  # inference runs the dense form (two bmm), training the window loop
        with torch.set_grad_enabled(grad), FlopCounter() as counter:
            module(x)
        assert module.dense_attention(h, w, recording=grad) is not grad
        assert counter.total == expected
        assert counter.breakdown()["ACmix (module formula)"] == window
        assert "aten.bmm" not in counter.breakdown()
        assert sum(counter.breakdown().values()) == expected
    assert flops.acmix_window_flops(module, (b, c1, h, w)) == window


# ------------------------------------------------------------------------------------ MLLA


def test_mlla_linear_attention():
    b, c, heads, h, w = 2, 16, 2, 6, 5
    module = LinearAttention(c, heads).eval()
    n, d = h * w, c // heads
    expected = (
        2 * b * n * c * (2 * c)  # qk projection
        + heads * (2 * b * d * n * d + 2 * b * n * d * d)  # per head: K^T V, then Q (K^T V)
        + 2 * b * n * c * heads  # normaliser q . mean(k) per head
        + conv(b, c, c, 3, n, groups=c)  # LePE
    )
    assert counted(module, torch.randn(b, c, h, w)).total == expected


# ------------------------------------------------------------------------------------ whole models


def _plain_count_and_attention_formulas(model, imgsz):
    """One forward at imgsz: torch's own FLOP counts per op, and the sum of the attention formulas of
    every attention module, evaluated from shapes seen by hooks."""
    total, handles, shapes = [0], [], {}

    def remember(key):
        return lambda m, args, out: shapes.__setitem__(key, tuple(out.shape))

    def on_mqa(m, args, out):
        q, k = shapes.pop((id(m), "q")), shapes.pop((id(m), "k"))
        total[0] += attention(q[0] * m.num_heads, q[2] * q[3], k[2] * k[3], m.key_dim, m.value_dim)

    def on_irmb(m, args, out):
        bsz, _, h, w = args[0].shape
        ws = m.window_size
        windows, tokens = bsz * math.ceil(h / ws) * math.ceil(w / ws), ws * ws
        dim_mid = int(m.dim_in * m.exp_ratio)
        total[0] += attention(windows * m.num_head, tokens, tokens, m.dim_head, dim_mid // m.num_head)

    def on_acmix(m, args, out):
        bsz, _, h, w = args[0].shape
        total[0] += 4 * bsz * m.out_planes * m.kernel_att**2 * math.ceil(h / m.stride) * math.ceil(w / m.stride)

    for m in model.modules():
        if isinstance(m, MobileMQA):
            handles += [m.query.register_forward_hook(remember((id(m), "q"))),
                        m.key.register_forward_hook(remember((id(m), "k"))), m.register_forward_hook(on_mqa)]
        elif isinstance(m, iRMB):
            assert m.attn_s and m.window_size > 0
            handles.append(m.register_forward_hook(on_irmb))
        elif isinstance(m, ACmix):
            handles.append(m.register_forward_hook(on_acmix))
    with torch.no_grad(), FlopCounterMode(display=False) as plain:
        model(torch.zeros(1, 3, imgsz, imgsz))
    for handle in handles:
        handle.remove()
    return {str(op): n for op, n in plain.get_flop_counts()["Global"].items()}, total[0]


@pytest.mark.parametrize("name, imgsz", [("yolov9c-mmqa.yaml", 128), ("yolov8n-irmb-csp.yaml", 96),
                                         ("yolov8n-acmix-head.yaml", 64)])
def test_zoo_model_total_is_convs_and_matmuls_plus_attention(name, imgsz):
    from ultralytics import YOLO

    model = YOLO(zoo.path(name)).model.eval()
    by_op, attention_total = _plain_count_and_attention_formulas(model, imgsz)
    # conv and linear-projection FLOPs from torch's own counter; its bmm here are the attention
    # matmuls of the dense MQA path and its fused-kernel entries (registered by yoloattn.flops) are
    # the fused attention: the hand formulas count both of those instead
    fused = {str(op) for op in flops.FUSED_ATTENTION_OPS}
    assert set(by_op) <= {"aten.convolution", "aten.mm", "aten.addmm", "aten.bmm"} | fused
    attention_ops = {"aten.bmm"} | fused
    convs_and_projections = sum(n for op, n in by_op.items() if op not in attention_ops)
    assert attention_total > 0
    expected = convs_and_projections + attention_total
    assert bench.count_gflops(model, imgsz) == pytest.approx(expected / 1e9, rel=1e-12)


def test_description_names_what_is_counted():
    text = flops.DESCRIPTION
    for part in ("fused attention", "ACmix window attention", "2 FLOPs per multiply-add", "element-wise"):
        assert part in text


def test_plain_flop_counter_mode_counts_fused_attention_after_import():
    """Importing yoloattn.flops fills the gap in torch's own registry (only ops torch has no formula for)."""
    import torch.nn.functional as F
    from torch.utils.flop_counter import FlopCounterMode

    import yoloattn.flops  # noqa: F401

    q, k, v = torch.randn(2, 4, 9, 8), torch.randn(2, 4, 11, 8), torch.randn(2, 4, 11, 8)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        F.scaled_dot_product_attention(q, k, v)
    assert counter.get_total_flops() == 2 * (2 * 4) * 9 * 11 * (8 + 8)
