"""ACmix: parity with the official algorithm (tests/reference/acmix_ref.py), gradients, init, shapes, export."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tests._utils import SHAPES, onnx_parity, rel_err
from tests.reference.acmix_ref import reference_from
from yoloattn.attention import acmix
from yoloattn.attention.acmix import ACmix, _window_attention_dense, _window_attention_traceable, _WindowAttention

C1, C2 = 8, 16


def make(c1: int = C1, c2: int = C2, **kwargs) -> ACmix:
    """An ACmix whose rates and dep_conv are moved off their init, so parity covers general weights."""
    module = ACmix(c1, c2, **kwargs)
    with torch.no_grad():
        module.rate1.fill_(0.7)
        module.rate2.fill_(-0.4)
        module.dep_conv.weight.normal_(0.0, 0.3)
        module.conv_p.weight.mul_(3.0)  # make the positional term matter in the logits
    return module


def parity(module: ACmix, shape, dtype=torch.float32) -> float:
    b, h, w = shape
    module = module.to(dtype)
    ref = reference_from(module)
    x = torch.randn(b, module.in_planes, h, w, dtype=dtype)
    with torch.no_grad():
        return rel_err(module(x), ref(x))


# ---------------------------------------------------------------- parity with the official algorithm


@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("shape", SHAPES)
def test_parity_fp32_stride1(shape, train):
    module = make().train(train)
    assert parity(module, shape) <= 1e-5


@pytest.mark.parametrize("shape", [(2, 20, 20), (2, 20, 12), (1, 8, 8), (2, 12, 30)])
def test_parity_fp32_stride2_even(shape):
    assert parity(make(stride=2), shape) <= 1e-5


@pytest.mark.parametrize("shape", [(2, 17, 23), (1, 9, 8), (1, 5, 7)])
def test_stride2_odd_sizes_give_ceil_and_match(shape):
    b, h, w = shape
    module = make(stride=2)
    y = module(torch.randn(b, C1, h, w))
    assert y.shape == (b, C2, (h + 1) // 2, (w + 1) // 2)
    assert parity(module, shape) <= 1e-5


@pytest.mark.parametrize("stride", [1, 2])
def test_parity_float64(stride):
    for shape in SHAPES:
        assert parity(make(stride=stride), shape, torch.float64) <= 1e-12


@pytest.mark.parametrize(
    "kwargs, shape",
    [
        (dict(kernel_att=5), (2, 11, 9)),
        (dict(kernel_att=3, head=2), (1, 6, 13)),
        (dict(kernel_conv=5), (2, 12, 10)),
        (dict(kernel_conv=1), (1, 9, 9)),
        (dict(dilation=2), (2, 14, 11)),
        (dict(dilation=2, stride=2), (1, 15, 12)),
    ],
)
def test_parity_other_configs(kwargs, shape):
    """Window size, heads, conv kernel and dilation: the official math generalised (see acmix_ref.py)."""
    assert parity(make(**kwargs), shape, torch.float64) <= 1e-12


@pytest.mark.parametrize("stride", [1, 2])
def test_gradient_parity(stride):
    module = make(stride=stride)
    ref = reference_from(module)
    x = torch.randn(2, C1, 17, 22, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_(True)
    y, y_ref = module(x), ref(x_ref)
    grad = torch.randn_like(y)
    y.backward(grad)
    y_ref.backward(grad)
    assert rel_err(x.grad, x_ref.grad) <= 1e-5
    ref_params = dict(ref.named_parameters())
    for name, param in module.named_parameters():
        expected = ref_params[name].grad
        if name == "conv_p.bias":
            # pe(u) - pe(u + o_j) cancels the bias, so its exact gradient is zero.
            scale = ref_params["conv_p.weight"].grad.abs().max()
            assert param.grad.abs().max() <= 1e-5 * scale and expected.abs().max() <= 1e-5 * scale
        else:
            assert rel_err(param.grad, expected) <= 1e-5, name


@pytest.mark.parametrize("stride", [1, 2])
def test_window_attention_gradcheck(stride):
    """The hand-written backward against finite differences (float64, 3x3 window, odd map)."""
    n, d, h, w, pad = 2, 2, 5, 4, 1
    offsets = [(a, b) for a in range(3) for b in range(3)]
    q = torch.randn(n, d, h, w, dtype=torch.float64)[..., ::stride, ::stride].contiguous().requires_grad_()
    keys = torch.randn(n, d, h + 2 * pad, w + 2 * pad, dtype=torch.float64, requires_grad=True)
    values = torch.randn(n, d, h + 2 * pad, w + 2 * pad, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda q_, k_, v_: _WindowAttention.apply(q_, k_, v_, offsets, pad, stride),
        (q, keys, values),
        fast_mode=True,
    )


@pytest.mark.parametrize("stride", [1, 2])
def test_traceable_path_matches_eager(stride):
    """ONNX export records the out-of-place variant; it must compute what the eager Function computes."""
    n, d, h, w, pad = 3, 4, 9, 7, 2
    offsets = [(a, b) for a in range(5) for b in range(5)]
    q = torch.randn(n, d, h, w)[..., ::stride, ::stride]
    keys = torch.randn(n, d, h + 2 * pad, w + 2 * pad)
    values = torch.randn(n, d, h + 2 * pad, w + 2 * pad)
    eager = _WindowAttention.apply(q, keys, values, offsets, pad, stride)
    traceable = _window_attention_traceable(q, keys, values, offsets, pad, stride)
    assert eager.shape == (n, d, -(-h // stride), -(-w // stride))
    assert rel_err(eager, traceable) <= 1e-6


def test_official_checkpoint_keys_load():
    """Same parameter names as the official class; dep_conv has no bias (the official init deletes it)."""
    module = ACmix(C1, C2)
    ref = reference_from(make())
    expected = {
        "rate1", "rate2", "conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias", "conv3.weight",
        "conv3.bias", "conv_p.weight", "conv_p.bias", "fc.weight", "dep_conv.weight",
    }  # fmt: skip
    assert set(module.state_dict()) == expected
    assert module.dep_conv.bias is None
    module.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(1, C1, 10, 9)
    with torch.no_grad():
        assert rel_err(module(x), ref(x)) <= 1e-5


# ---------------------------------------------------------------- init and parameter count


def test_shift_kernel_init():
    """At init the conv path is sum_i shift_i(f_i), with shift_i = (i // kc - 1, i % kc - 1), zero borders."""
    kc, head = 3, 4
    module = ACmix(C1, C2, head=head, kernel_conv=kc)
    assert module.rate1.item() == 0.5 and module.rate2.item() == 0.5
    weight = module.dep_conv.weight
    assert weight.shape == (C2, kc * kc, kc, kc)
    for i in range(kc * kc):
        one_hot = torch.zeros(kc, kc)
        one_hot[i // kc, i % kc] = 1.0
        assert torch.equal(weight[:, i], one_hot.expand(C2, kc, kc))

    b, h, w = 2, 7, 9
    d = C2 // head
    x = torch.randn(b, C1, h, w)
    q, k, v = module.conv1(x), module.conv2(x), module.conv3(x)
    with torch.no_grad():
        out_conv = module._convolution(q, k, v)
        # fc_i: one scalar weight per (q/k/v, head) pair, applied to the same feature index and pixel
        maps = torch.stack([t.view(b, head, d, h, w) for t in (q, k, v)], 1).reshape(b, 3 * head, d, h, w)
        fc = module.fc.weight.view(kc * kc, 3 * head)
        padded = F.pad(torch.einsum("it,btdyx->bidyx", fc, maps), (1, 1, 1, 1))
        shifted = sum(padded[:, i, :, i // kc : i // kc + h, i % kc : i % kc + w] for i in range(kc * kc))
    # dep_conv group g (feature index g) feeds output channels g * head ... g * head + head - 1
    expected = shifted.repeat_interleave(head, dim=1)
    assert torch.allclose(out_conv, expected, atol=1e-5)


def expected_params(c1: int, c2: int, head: int = 4, kernel_conv: int = 3) -> int:
    d, kc = c2 // head, kernel_conv
    return 3 * (c1 * c2 + c2) + 3 * d + 3 * head * kc * kc + c2 * kc**4 + 2


@pytest.mark.parametrize(
    "args, kwargs, count",
    [
        ((64, 64), {}, 17_822),
        ((256, 256), {}, 218_414),
        ((32, 64), dict(head=8), expected_params(32, 64, head=8)),
        ((16, 32), dict(kernel_conv=5), expected_params(16, 32, kernel_conv=5)),
    ],
)
def test_parameter_count(args, kwargs, count):
    assert count == expected_params(*args, **kwargs)
    assert sum(p.numel() for p in ACmix(*args, **kwargs).parameters()) == count


# ---------------------------------------------------------------- shapes, gradients, dtypes


@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("shape", SHAPES)
def test_shapes_and_gradients(shape, train):
    b, h, w = shape
    module = ACmix(C1, C2).train(train)
    x = torch.randn(b, C1, h, w, requires_grad=True)
    y = module(x)
    assert y.shape == (b, C2, h, w)
    y.square().mean().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    for name, param in module.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name


def test_batch_one_stride_probe():
    """The Ultralytics 256-px stride probe reaches P5 at 8x8 with batch 1."""
    assert ACmix(C1, C2)(torch.randn(1, C1, 8, 8)).shape == (1, C2, 8, 8)


def test_bfloat16_autocast():
    module = make()
    x = torch.randn(2, C1, 17, 12, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = module(x)
    assert y.shape == (2, C2, 17, 12) and torch.isfinite(y).all()
    y.float().sum().backward()
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_module(dtype):
    """The grid follows x's dtype: a `.to(dtype)` module runs (the official one fails: float grid)."""
    module = make().to(dtype)
    x = torch.randn(2, C1, 17, 12).to(dtype).requires_grad_()
    try:
        y = module(x)
    except RuntimeError as err:  # pragma: no cover - depends on the CPU kernels of this build
        pytest.skip(f"CPU lacks a {dtype} kernel: {err}")
    assert y.dtype == dtype and y.shape == (2, C2, 17, 12) and torch.isfinite(y).all()
    reference = reference_from(module).double()
    with torch.no_grad():
        expected = reference(x.detach().double())
    assert rel_err(y, expected) <= 5e-2
    y.float().sum().backward()
    assert torch.isfinite(x.grad).all() and torch.isfinite(module.conv2.weight.grad).all()


def test_float64_gradients_run_in_float64():
    module = make().double()
    x = torch.randn(1, C1, 9, 10, dtype=torch.float64, requires_grad=True)
    module(x).sum().backward()
    assert x.grad.dtype == torch.float64 and module.conv_p.weight.grad.dtype == torch.float64


# ---------------------------------------------------------------- memory


def saved_bytes(module, x) -> int:
    """Bytes of distinct storages autograd keeps for backward after one forward."""
    storages = {}

    def pack(t):
        storage = t.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        module(x)
    return sum(storages.values())


def test_saved_memory_is_not_window_sized():
    """Saved for backward: O(K * B * head * N) attention weights + O(B * C * N), not K * B * C * N."""
    module = make(c1=16, c2=64)
    b, h, w = 2, 24, 24
    x = torch.randn(b, 16, h, w, requires_grad=True)
    k_win, n, pad = 49, h * w, module.padding_att
    activation = b * 64 * (h + 2 * pad) * (w + 2 * pad) * 4
    bound = k_win * b * module.head * n * 4 + 12 * activation
    efficient, official = saved_bytes(module, x), saved_bytes(reference_from(module), x)
    assert efficient <= bound
    assert official > 5 * efficient  # the unfold reference keeps several K-times tensors


# ---------------------------------------------------------------- errors and export


# Maps a detector produces that are smaller than the window: P5 of a 96x160 rect batch is 3x5.
TINY = [(1, 1, 1), (2, 1, 5), (1, 3, 6), (2, 2, 2), (1, 3, 3), (2, 5, 1), (1, 4, 4), (1, 2, 9)]


def test_reflect_indices_match_torch_where_defined_and_numpy_everywhere():
    np = pytest.importorskip("numpy")
    from yoloattn.attention.acmix import _reflect_indices

    for n in range(1, 9):
        for pad in range(0, 8):
            got = _reflect_indices(n, pad, torch.device("cpu")).tolist()
            assert got == np.pad(np.arange(n), pad, mode="reflect").tolist(), (n, pad)
            if pad < n:
                torch_pad = F.pad(torch.arange(n, dtype=torch.float32).view(1, 1, n), (pad, pad), mode="reflect")
                assert got == torch_pad.view(-1).long().tolist(), (n, pad)


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("shape", TINY)
def test_tiny_maps_match_reference_with_gradients(shape, train, stride):
    """Below the window size the module follows the reference's repeated reflection, values and gradients."""
    b, h, w = shape
    module = make(stride=stride).double().train(train)
    ref = reference_from(module)
    x = torch.randn(b, C1, h, w, dtype=torch.float64, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_(True)
    y, y_ref = module(x), ref(x_ref)
    assert y.shape == (b, C2, -(-h // stride), -(-w // stride))
    assert rel_err(y, y_ref) <= 1e-12
    grad = torch.randn_like(y)
    y.backward(grad)
    y_ref.backward(grad)
    assert rel_err(x.grad, x_ref.grad) <= 1e-12
    assert rel_err(module.conv2.weight.grad, ref.conv2.weight.grad) <= 1e-12


def test_tiny_maps_fp32_and_dilated():
    for kwargs, (h, w) in [({}, (3, 6)), ({"dilation": 2}, (6, 20)), ({"kernel_att": 5}, (1, 2))]:
        module = make(**kwargs)
        x = torch.randn(2, C1, h, w)
        with torch.no_grad():
            assert rel_err(module(x), reference_from(module)(x)) <= 1e-5, kwargs


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(c2=18, head=4), "c2=18.*divisible by head=4"),
        (dict(kernel_att=6), "kernel_att=6.*odd"),
        (dict(kernel_conv=4), "kernel_conv=4.*odd"),
        (dict(stride=0), "stride=0"),
        (dict(dilation=0), "dilation=0"),
    ],
)
def test_constructor_errors(kwargs, match):
    kwargs = {"c1": C1, "c2": C2, **kwargs}
    with pytest.raises(ValueError, match=match):
        ACmix(**kwargs)


@pytest.mark.parametrize("first", [(20, 20), (30, 30)])  # exported dense (400 <= 12 * 49) and windowed (900)
@pytest.mark.parametrize("stride", [1, 2])
def test_onnx_dynamic_hw(stride, first):
    pytest.importorskip("onnxruntime")
    errors = onnx_parity(make(stride=stride), [first, (17, 23), (31, 29), (3, 5), (1, 1), (2, 9)], C1)
    assert max(errors) <= 1e-4, errors


@pytest.mark.parametrize("opset, first", [(11, (20, 20)), (11, (30, 30)), (12, (20, 20)), (13, (30, 30))])
@pytest.mark.parametrize("stride", [1, 2])
def test_onnx_low_opsets(stride, opset, first):
    """Below opset 12 ONNX Min/Max take no int64 (ONNX Runtime refuses such a graph): the reflection indices
    the dense and windowed exports compute from the size must not need them."""
    pytest.importorskip("onnxruntime")
    errors = onnx_parity(make(stride=stride), [first, (17, 23), (3, 5), (1, 1)], C1, opset=opset)
    assert max(errors) <= 1e-4, errors


def openvino_request(module: ACmix, example: torch.Tensor, static: bool):
    """Ultralytics' OpenVINO export of `module`: trace, convert (with `input=` the fixed shape when static),
    compile for the CPU plugin in f32 on one thread."""
    ov = pytest.importorskip("openvino")
    with torch.no_grad():
        traced = torch.jit.trace(module, example, strict=False, check_trace=False)
    shape = {"input": example.shape} if static else {}
    model = ov.convert_model(traced, example_input=example, **shape)
    config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": 1, "INFERENCE_PRECISION_HINT": "f32"}
    return ov.Core().compile_model(model, "CPU", config).create_infer_request()


def openvino_error(request, module: ACmix, x: torch.Tensor) -> float:
    got = torch.from_numpy(next(iter(request.infer({0: x.numpy()}).values())))
    with torch.no_grad():
        expected = module(x)
    assert got.shape == expected.shape, tuple(x.shape)
    return rel_err(got, expected)


# traced dense (96 <= 12 * 49 positions) with a strided query, and windowed (900)
@pytest.mark.parametrize("stride, first", [(2, (8, 12)), (1, (30, 30))])
def test_openvino_dynamic_hw(stride, first):
    """Ultralytics' dynamic OpenVINO export (trace, then convert_model without a fixed input shape) runs at
    other sizes and batches in OpenVINO's CPU plugin (it once fused `k - pe` into conv_p with conv_p's batch
    of 1, and read the strided query's size from the unstrided map: empty or mis-shaped outputs)."""
    module = make(stride=stride).eval()
    request = openvino_request(module, torch.randn(1, C1, *first), static=False)
    for batch, (h, w) in [(1, first), (2, (17, 23)), (1, (3, 5)), (2, (1, 1))]:
        assert openvino_error(request, module, torch.randn(batch, C1, h, w)) <= 1e-4, (batch, h, w)


# dense, dense with a strided query, windowed, and maps smaller than the window
@pytest.mark.parametrize("stride, shape", [(1, (8, 12)), (2, (9, 12)), (2, (31, 29)), (1, (3, 5))])
def test_openvino_static_shape(stride, shape):
    """Ultralytics' default OpenVINO export fixes the input shape (convert_model(input=shape)), which makes the
    reflection indices constants: the CPU plugin then dropped the Abs they were computed with (negative
    indices, a wrong attention with NaN in the dense form)."""
    module = make(stride=stride).eval()
    x = torch.randn(2, C1, *shape)
    assert openvino_error(openvino_request(module, x, static=True), module, x) <= 1e-4


def test_openvino_int8_static_export_compiles_and_runs():
    """Ultralytics' INT8 OpenVINO export (`quantize=8`: a static convert, then nncf.quantize with preset MIXED)
    compiles in the CPU plugin. A traced torch.linspace became float Range * step + start; NNCF put a
    FakeQuantize on both inputs of that Multiply, and the CPU plugin's FakeQuantizeMulFusion threw on the
    folded f32[W] Range constant times the scalar FakeQuantize, so compile_model refused the model."""
    ov = pytest.importorskip("openvino")
    nncf = pytest.importorskip("nncf")
    torch.manual_seed(0)
    module = make().eval()
    x = torch.randn(1, C1, 8, 12)
    with torch.no_grad():
        traced = torch.jit.trace(module, x, strict=False, check_trace=False)
        expected = module(x)
    model = ov.convert_model(traced, example_input=x, input=x.shape)
    calibration = nncf.Dataset([torch.randn(1, C1, 8, 12).numpy() for _ in range(4)])
    quantized = nncf.quantize(model, calibration, preset=nncf.QuantizationPreset.MIXED, subset_size=4)
    compiled = ov.Core().compile_model(quantized, "CPU", {"INFERENCE_NUM_THREADS": 1})
    got = torch.from_numpy(next(iter(compiled.create_infer_request().infer({0: x.numpy()}).values())))
    assert got.shape == expected.shape
    assert rel_err(got, expected) <= 0.1  # INT8 rounding (about 0.02 here), not a wrong graph


@pytest.mark.parametrize(
    "kernel, dilation, stride, shape",
    [(7, 1, 1, (20, 20)), (7, 1, 1, (17, 23)), (7, 1, 2, (17, 23)), (7, 1, 2, (20, 12)), (5, 2, 1, (9, 14)),
     (3, 3, 2, (11, 6)), (7, 1, 1, (1, 1)), (7, 1, 2, (2, 5)), (7, 1, 1, (3, 6)), (5, 1, 2, (1, 4))],
)
def test_dense_inference_path_equals_the_window_path(kernel, dilation, stride, shape):
    """The dense form (every position, log-count bias for reflected duplicates) is the window attention."""
    h, w = shape
    n, d = 3, 4
    pad = dilation * (kernel - 1) // 2
    offsets = [(dilation * a, dilation * b) for a in range(kernel) for b in range(kernel)]
    q = torch.randn(n, d, h, w, dtype=torch.float64)[..., ::stride, ::stride]
    keys, values = torch.randn(2, n, d, h, w, dtype=torch.float64)
    window = _WindowAttention.apply(q, acmix._reflect_pad(keys, pad), acmix._reflect_pad(values, pad), offsets, pad,
                                    stride)
    dense = _window_attention_dense(q, keys, values, kernel, dilation, pad, stride)
    assert dense.shape == window.shape
    assert rel_err(dense, window) <= 1e-12


def test_module_takes_the_dense_path_only_in_inference_on_small_maps(monkeypatch):
    calls = []
    original = acmix._window_attention_dense
    monkeypatch.setattr(acmix, "_window_attention_dense", lambda *a: calls.append(a[0].shape) or original(*a))
    module = make()
    small, large = torch.randn(1, C1, 20, 20), torch.randn(1, C1, 30, 30)  # 400 and 900 positions, K = 49
    module(small).sum().backward()  # training records the window path: no dense call
    assert calls == []
    with torch.no_grad():
        for x in (small, large):
            assert rel_err(module(x), reference_from(module)(x)) <= 1e-5
    assert calls == [(4, 4, 20, 20)]
