"""Print the parity table of docs/parity.md: each module's largest relative error against its reference.

    python -m tests.reference.parity

For every module: the efficient module and its reference (tests/reference/*_ref.py, timm, or the
recorded official TF layer) get identical weights; the error is the relative L2 error
``||a - b|| / ||b||`` of the output and of the input gradient, maximised over the test maps (square,
non-square, 8x8, odd, and tiny), eval and train mode. Uses the tests' own module factories, which
move norms and rates off their initial values so every term matters.
"""

from __future__ import annotations

import torch

from tests._utils import SHAPES, rel_err
from tests.reference import acmix_ref, irmb_ref, mlla_ref, mqa_ref
from tests.reference.mqa_tf_fixture import MODES, cases, compare
from tests.test_attention_acmix import C1 as ACMIX_C, make as make_acmix
from tests.test_attention_irmb import C as IRMB_C, CONFIGS, _irmb
from tests.test_attention_mlla import _block as make_mlla
from tests.test_attention_mqa import C as MQA_C, _mqa

MAPS = [*SHAPES, (1, 3, 5), (2, 1, 1)]


def _worst(factory, reference_from, channels: int, dtype: torch.dtype, maps=MAPS) -> float:
    worst = 0.0
    for batch, height, width in maps:
        for train in (False, True):
            torch.manual_seed(0)
            module = factory().to(dtype).train(train)
            x = torch.randn(batch, channels, height, width, dtype=dtype)
            worst = max(worst, _pair_error(module, reference_from(module), x))
    return worst


def _timm_worst(dtype: torch.dtype) -> float:
    from timm.layers.attention2d import MultiQueryAttention2d

    worst = 0.0
    for kv_stride, query_stride in ((1, 1), (2, 1), (1, 2), (2, 2)):
        for train in (False, True):
            torch.manual_seed(0)
            ours = _mqa(kv_stride, query_stride, num_heads=8, key_dim=48, value_dim=48).to(dtype).train(train)
            theirs = MultiQueryAttention2d(MQA_C, num_heads=8, key_dim=48, value_dim=48, kv_stride=kv_stride,
                                           query_strides=query_stride).to(dtype).train(train)
            theirs.load_state_dict(ours.state_dict())
            worst = max(worst, _pair_error(ours, theirs, torch.randn(2, MQA_C, 20, 12, dtype=dtype)))
    return worst


def _pair_error(module, reference, x: torch.Tensor) -> float:
    x = x.requires_grad_(True)
    x_ref = x.detach().clone().requires_grad_(True)
    y, y_ref = module(x), reference(x_ref)
    grad = torch.randn_like(y)
    y.backward(grad)
    y_ref.backward(grad)
    return max(rel_err(y, y_ref), rel_err(x.grad, x_ref.grad))


def rows() -> list[tuple[str, str, str, float, float]]:
    """(module, reference, conditions, worst fp32 error, worst fp64 error)."""
    out = []
    maps = "maps 20², 20×12, 8², 17×23, 3×5, 1×1 (batch 2); eval + train; output and input gradient"
    for compat in ("timm", "tf"):
        factory = lambda compat=compat: _mqa(kv_stride=2, query_stride=2, compat=compat)  # noqa: E731
        errors = [_worst(factory, lambda m, c=compat: mqa_ref.reference_from(m, c), MQA_C, d) for d in (torch.float32, torch.float64)]
        out.append((f'MobileMQA(compat="{compat}")', f"tests/reference/mqa_ref.py, {compat} convention",
                    f"kv_stride 2, query_stride 2; {maps}", *errors))
    errors = [_timm_worst(d) for d in (torch.float32, torch.float64)]
    out.append(('MobileMQA(compat="timm")', "timm.layers.MultiQueryAttention2d (the library itself)",
                "h 8, k = v 48; strides (1, 1), (2, 1), (1, 2), (2, 2); map 20×12 (timm floors odd maps); "
                "eval + train; output and input gradient", *errors))
    tf = [max(compare(case, mode, "tf", dtype).worst for case in cases() for mode in MODES)
          for dtype in (torch.float32, torch.float64)]
    out.append(('MobileMQA(compat="tf")', "official TF layer, recorded (tests/reference/data/mqa_tf.npz)",
                f"{len(cases())} cases (see below); eval + train; output, input and weight gradients, BN statistics", *tf))
    for name, config in (("emo", CONFIGS["emo"]), ("global", CONFIGS["global"])):
        errors = [_worst(lambda: _irmb(**config), irmb_ref.reference_from, IRMB_C, d) for d in (torch.float32, torch.float64)]
        out.append(("iRMB", "tests/reference/irmb_ref.py (zhangzjn/EMO model/emo.py)", f"{name} settings; {maps}", *errors))
    for stride in (1, 2):
        errors = [_worst(lambda: make_acmix(stride=stride), acmix_ref.reference_from, ACMIX_C, d) for d in (torch.float32, torch.float64)]
        out.append(("ACmix", "tests/reference/acmix_ref.py (LeapLabTHU/ACmix ResNet/test_bottleneck.py)",
                    f"stride {stride}; {maps}", *errors))
    errors = [_worst(make_mlla, mlla_ref.reference_from, 64, d) for d in (torch.float32, torch.float64)]
    out.append(("MLLABlock", "tests/reference/mlla_ref.py (LeapLabTHU/MLLA models/mlla.py)", maps, *errors))
    return out


if __name__ == "__main__":
    print("| module | reference | conditions | worst rel. error fp32 | fp64 |")
    print("|---|---|---|---|---|")
    for module, reference, conditions, fp32, fp64 in rows():
        print(f"| {module} | {reference} | {conditions} | {fp32:.1e} | {fp64:.1e} |")
