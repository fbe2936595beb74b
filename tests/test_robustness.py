"""The kinds of fault in the public reports replayed in ../shared/cases (16-22), checked for every built-in module
inside a real zoo model: memory format, test-time augmentation, changing input sizes in training, and copies of
a model whose forward just ran (ModelEMA's deepcopy, pickling, checkpoints that must not grow).
"""

from __future__ import annotations

import copy
import io
import pickle

import pytest
import torch

import yoloattn  # noqa: F401 - registers the zoo names with Ultralytics
from yoloattn.blocks import MODULES
from yoloattn.integration.heads import output_tensors

VARIANTS = [f"yolov8n-{m.lower()}-csp" for m in MODULES]


def _model(name: str, train: bool):
    from ultralytics import YOLO

    torch.manual_seed(0)
    model = YOLO(f"{name}.yaml").model.float()
    return model.train(train)


@pytest.mark.parametrize("name", VARIANTS)
def test_channels_last_gives_the_same_outputs_and_gradients(name):
    """jaiwei98/MobileNetV4-pytorch#1, timm#2613: `.view` on a non-contiguous map. channels_last makes every
    feature map non-contiguous; the model must compute the same function and gradients."""
    model = _model(name, train=True)
    x = torch.randn(2, 3, 64, 64)  # P5 2x2, P3 8x8: strided views of every module
    outputs = []
    for memory_format in (torch.contiguous_format, torch.channels_last):
        clone = copy.deepcopy(model).to(memory_format=memory_format)
        y = output_tensors(clone(x.contiguous(memory_format=memory_format)))
        sum(t.float().square().mean() for t in y).backward()
        grads = [p.grad.clone() for p in clone.parameters() if p.grad is not None]
        outputs.append(([t.detach() for t in y], grads))
    (y0, g0), (y1, g1) = outputs
    assert len(g0) == len(g1) > 0
    for a, b in zip(y0 + g0, y1 + g1):  # other conv kernels sum in another order: fp32 rounding, not a wrong map
        torch.testing.assert_close(b.contiguous(), a, rtol=1e-3, atol=1e-3 * float(a.abs().max()) + 1e-7)


@pytest.mark.parametrize("name", VARIANTS)
@pytest.mark.parametrize("size", [(96, 96), (64, 128)], ids=["square", "2to1"])
def test_test_time_augmentation_runs_every_scale(name, size, caplog):
    """yolor#133, DRENet#10: TTA rescales the input (1, 0.83, 0.67, and a flip) to sizes the network was not built
    for. The augmented output holds the anchors of the scaled copies too, with no "reverting" warning."""
    model = _model(name, train=False)
    x = torch.rand(1, 3, *size)
    with torch.no_grad():
        plain = output_tensors(model(x))[0]
        augmented = output_tensors(model(x, augment=True))[0]
    assert augmented.shape[-1] > plain.shape[-1] and torch.isfinite(augmented).all()
    assert "reverting" not in caplog.text.lower()


@pytest.mark.parametrize("name", VARIANTS)
def test_training_steps_at_changing_sizes(name):
    """ultralytics#24188, yolov3#358: multi_scale training changes the input size every batch (P5 maps from 2x2)."""
    model = _model(name, train=True)
    for h, w in ((64, 64), (160, 96), (192, 192), (96, 160)):
        model.zero_grad()
        y = output_tensors(model(torch.randn(2, 3, h, w)))
        sum(t.float().mean() for t in y).backward()
        assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize("name", VARIANTS)
def test_copies_after_a_forward_and_checkpoints_that_do_not_grow(name):
    """ultralytics#19992, YOLO-Master#26: a tensor computed in forward kept as an attribute breaks ModelEMA's
    deepcopy while its graph is alive, and caches of per-size tables make checkpoints grow with each size seen."""
    from ultralytics.utils.torch_utils import ModelEMA

    model = _model(name, train=True)
    fresh_state = {k: v.shape for k, v in model.state_dict().items()}
    fresh_size = len(pickle.dumps(copy.deepcopy(model)))
    output_tensors(model(torch.randn(1, 3, 64, 96)))  # the graph stays alive: nothing backward yet
    copy.deepcopy(model)
    ModelEMA(model)
    pickle.dumps(model)
    model.eval()
    with torch.no_grad():
        for h, w in ((64, 64), (96, 160), (128, 96)):
            model(torch.randn(1, 3, h, w))
    assert {k: v.shape for k, v in model.state_dict().items()} == fresh_state
    buffer = io.BytesIO()
    torch.save(model, buffer)
    assert len(pickle.dumps(model)) <= fresh_size * 1.01 and buffer.tell() > 0
