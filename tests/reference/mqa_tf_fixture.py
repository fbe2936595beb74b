"""The recorded official-TF Mobile MQA outputs (``data/mqa_tf.npz``) and the comparison against them.

The fixture is written by ``record_mqa_tf.py``. ``python -m tests.reference.mqa_tf_fixture`` prints
the largest relative error of ``MobileMQA(compat=...)`` per case (the parity table in the docs).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from yoloattn.attention.mqa import MobileMQA

FIXTURE = Path(__file__).resolve().parent / "data" / "mqa_tf.npz"
MODES = ("eval", "train")
# A bias on the keys adds the same amount to every logit of a query, which softmax ignores: its exact
# gradient is 0 and both frameworks return rounding noise, so its error is measured against the
# gradient scale of the matching BatchNorm weight instead of its own (near-zero) norm.
_ZERO_GRADIENT = {"key.norm.bias": "key.norm.weight"}


@functools.cache
def fixture() -> dict:
    """Every array of the fixture, plus ``meta`` decoded from JSON."""
    with np.load(FIXTURE) as data:
        arrays = {key: data[key] for key in data.files}
    arrays["meta"] = json.loads(str(arrays["meta"]))
    return arrays


def cases() -> list[dict]:
    return fixture()["meta"]["cases"]


@dataclass(frozen=True)
class CaseErrors:
    """Relative L2 errors of one case and mode against TF (see ``tests._utils.rel_err``)."""

    output: float
    input_grad: float
    weight_grads: dict[str, float]
    moving_stats: dict[str, float]  # train mode only: BatchNorm statistics after the step

    @property
    def worst(self) -> float:
        return max([self.output, self.input_grad, *self.weight_grads.values(), *self.moving_stats.values()])


def _rel(a: torch.Tensor, b: np.ndarray, scale: np.ndarray | None = None) -> float:
    a, b = a.detach().double(), torch.from_numpy(np.asarray(b)).double()
    denominator = b.norm() if scale is None else torch.from_numpy(np.asarray(scale)).double().norm()
    return ((a - b).norm() / denominator.clamp_min(1e-30)).item()


def build(case: dict, compat: str = "tf", dtype: torch.dtype = torch.float64) -> MobileMQA:
    """The case's MobileMQA carrying the fixture's weights and BatchNorm statistics."""
    module = MobileMQA(
        case["channels"], num_heads=case["num_heads"], key_dim=case["key_dim"], value_dim=case["value_dim"],
        query_stride=tuple(case["query_stride"]), kv_stride=case["kv_stride"],
        dw_kernel_size=case["dw_kernel_size"], compat=compat,
    )
    prefix = f"{case['case']}/w/"
    state = module.state_dict()
    recorded = {k[len(prefix):]: torch.from_numpy(v) for k, v in fixture().items() if k.startswith(prefix)}
    missing = {k for k in state if not k.endswith("num_batches_tracked")} - set(recorded)
    assert not missing and set(recorded) <= set(state), (missing, set(recorded) - set(state))
    state.update(recorded)
    module.load_state_dict(state)
    return module.to(dtype)


def compare(case: dict, mode: str, compat: str = "tf", dtype: torch.dtype = torch.float64) -> CaseErrors:
    """Run one training step (or an eval forward/backward) and compare everything TF recorded."""
    data, name = fixture(), case["case"]
    module = build(case, compat, dtype).train(mode == "train")
    x = torch.from_numpy(data[f"{name}/x"]).to(dtype).requires_grad_(True)
    y = module(x)
    (0.5 * y.square().sum()).backward()
    weights = dict(module.named_parameters())
    grads = {key.split("/grad/")[1] for key in data if key.startswith(f"{name}/{mode}/grad/")}
    stats = {}
    if mode == "train":
        buffers = dict(module.named_buffers())
        prefix = f"{name}/train/after/"
        stats = {k[len(prefix):]: _rel(buffers[k[len(prefix):]], v) for k, v in data.items() if k.startswith(prefix)}
    return CaseErrors(
        output=_rel(y, data[f"{name}/{mode}/y"]),
        input_grad=_rel(x.grad, data[f"{name}/{mode}/dx"]),
        weight_grads={
            k: _rel(weights[k].grad, data[f"{name}/{mode}/grad/{k}"],
                    data[f"{name}/{mode}/grad/{_ZERO_GRADIENT[k]}"] if k in _ZERO_GRADIENT else None)
            for k in sorted(grads)
        },
        moving_stats=stats,
    )


def _table() -> str:
    meta = fixture()["meta"]
    lines = [
        f"Official layer: {meta['layer']} ({', '.join(f'{k} {v}' for k, v in meta['versions'].items())}), "
        "recorded in float32; MobileMQA in float64.",
        "",
        "| case | map | eval, tf | train, tf | eval, timm | train, timm |",
        "|---|---|---|---|---|---|",
    ]
    for case in cases():
        errors = [compare(case, mode, compat).worst for compat in ("tf", "timm") for mode in MODES]
        name, size = case["case"].rsplit("/", 1)
        lines.append(f"| {name} | {size}² | " + " | ".join(f"{e:.1e}" for e in errors) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(_table())
