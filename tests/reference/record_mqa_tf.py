"""Record the official TensorFlow Mobile MQA layer's outputs as a test fixture (run by hand).

    python tests/reference/record_mqa_tf.py            # throwaway venv in a temp dir, removed after
    python tests/reference/record_mqa_tf.py --venv D   # keep / reuse the venv in D

What it does: creates a separate virtual environment, installs ``tensorflow-cpu`` and the
``tf-models-official`` wheel (tensorflow/models' own package; nothing of it is copied into this
repository), then runs ``official.vision.modeling.layers.nn_blocks.
OptimizedMultiQueryAttentionLayerWithDownSampling`` in float32 on fixed random weights and inputs
for every case in ``CASES``, in inference and in training mode (one step: output, gradients of
``0.5 * sum(y ** 2)`` and the BatchNorm moving statistics after the step). It also records TF's
'same' ``AvgPool2D`` and ``DepthwiseConv2D`` on odd and non-square maps, the rule ``compat="tf"``
extends the layer with where the layer itself cannot reshape.

Everything is saved to ``tests/reference/data/mqa_tf.npz`` (float32, weights in PyTorch layout
under timm's state-dict keys). ``tests/test_attention_mqa_tf.py`` compares ``MobileMQA(compat="tf")``
with it in float64. Needs PyPI access and about 2 GB of disk; takes a few minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

OUT = Path(__file__).resolve().parent / "data" / "mqa_tf.npz"
SEED = 20261130

# The layer's own package and the modules its import chain (official.nlp, official.vision) needs.
PINS = [
    "tensorflow-cpu==2.20.0",
    "tf-keras==2.20.1",
    "numpy==2.4.6",
    "PyYAML==6.0.4",
    "gin-config==0.5.0",
    "tensorflow-datasets==4.9.10",
    "scipy==1.17.1",
    "pycocotools==2.0.11",
    "opencv-python-headless==5.0.0.93",
    "matplotlib==3.11.2",
]
MODELS_OFFICIAL = "tf-models-official==2.20.0"  # installed --no-deps: its full list pulls tensorflow-text etc.

# name: (channels, heads, key_dim, value_dim, query (h, w) strides, kv_stride, dw kernel, square sizes)
# Strided queries only on sizes the stride divides: the TF layer reshapes with H // stride there.
SMALL = (16, 4, 16, 24)  # key_dim != value_dim catches swapped widths
CASES = {
    "plain": (*SMALL, (1, 1), 1, 3, (20, 17, 5)),
    "kv2_k3": (*SMALL, (1, 1), 2, 3, (20, 17, 21, 6, 4, 5)),
    "kv2_k5": (*SMALL, (1, 1), 2, 5, (20, 17, 21, 6, 4, 5)),
    "q2": (*SMALL, (2, 2), 1, 3, (20, 6, 4)),
    "q2x1": (*SMALL, (2, 1), 1, 3, (20, 6)),
    "q2_kv2": (*SMALL, (2, 2), 2, 3, (20, 6)),
    "h8x48_kv2": (24, 8, 48, 48, (1, 1), 2, 3, (20, 17)),
    "h8x48_q2_kv2": (24, 8, 48, 48, (2, 2), 2, 3, (20,)),
}
BATCH = {"small": 2, "large": 1}  # maps from 17x17 up run with batch 1: the fixture stays about 3 MB


def batch_for(size: int) -> int:
    return BATCH["large" if size >= 17 else "small"]

# TF padding='same' on its own: (H, W, stride_h, stride_w) for AvgPool2D(pool_size=strides), and
# (H, W, kernel, stride) for DepthwiseConv2D.
AVGPOOL_OPS = [(5, 7, 2, 2), (17, 23, 2, 2), (4, 4, 3, 3), (7, 5, 3, 2), (3, 6, 2, 1)]
DWCONV_OPS = [(17, 23, 3, 2), (20, 12, 5, 2), (7, 10, 4, 2), (9, 9, 5, 3), (1, 2, 3, 2)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venv", type=Path, help="virtual environment to create or reuse (default: a temp dir)")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inside:
        record(args.out)
        return
    with tempfile.TemporaryDirectory(prefix="mqa-tf-") as tmp:
        venv = args.venv or Path(tmp) / "venv"
        python = venv / "bin" / "python"
        if not python.exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
            subprocess.run([*pip, *PINS], check=True)
            subprocess.run([*pip, "--no-deps", MODELS_OFFICIAL], check=True)
        env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": "0", "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
        subprocess.run([str(python), __file__, "--inside", "--out", str(args.out)], check=True, env=env)


def record(out: Path) -> None:
    import importlib.metadata as md

    import numpy as np
    import tensorflow as tf
    from official.vision.modeling.layers import nn_blocks

    tf.config.experimental.enable_op_determinism()
    rng = np.random.default_rng(SEED)
    arrays: dict[str, np.ndarray] = {}
    cases = []
    for name, (channels, heads, key_dim, value_dim, q_strides, kv_stride, kernel, sizes) in CASES.items():
        for size in sizes:
            case = f"{name}/{size}"
            weights = _random_weights(rng, channels, heads, key_dim, value_dim, q_strides, kv_stride, kernel)
            x = rng.standard_normal((batch_for(size), channels, size, size)).astype(np.float32)
            arrays[f"{case}/x"] = x
            arrays.update({f"{case}/w/{k}": v for k, v in weights.items()})
            for mode in ("eval", "train"):
                layer = nn_blocks.OptimizedMultiQueryAttentionLayerWithDownSampling(
                    num_heads=heads, key_dim=key_dim, value_dim=value_dim, query_h_strides=q_strides[0],
                    query_w_strides=q_strides[1], kv_strides=kv_stride, dropout=0.0, dw_kernel_size=kernel,
                )
                x_tf = tf.constant(x.transpose(0, 2, 3, 1))
                layer(x_tf)  # build
                _assign(layer, weights)
                with tf.GradientTape() as tape:
                    tape.watch(x_tf)
                    y = layer(x_tf, training=mode == "train")
                    loss = 0.5 * tf.reduce_sum(tf.square(y))
                variables = _variables(layer)
                grads = tape.gradient(loss, [x_tf, *[v for _, v in variables]])
                arrays[f"{case}/{mode}/y"] = y.numpy().transpose(0, 3, 1, 2)
                arrays[f"{case}/{mode}/dx"] = grads[0].numpy().transpose(0, 3, 1, 2)
                for (key, _), grad in zip(variables, grads[1:]):
                    arrays[f"{case}/{mode}/grad/{key}"] = _to_torch_layout(key, grad.numpy())
                if mode == "train":
                    for key, value in _norm_state(layer).items():
                        arrays[f"{case}/train/after/{key}"] = value
            cases.append({"case": case, "channels": channels, "num_heads": heads, "key_dim": key_dim,
                          "value_dim": value_dim, "query_stride": list(q_strides), "kv_stride": kv_stride,
                          "dw_kernel_size": kernel, "size": size, "batch": batch_for(size)})

    for h, w, sh, sw in AVGPOOL_OPS:
        x = rng.standard_normal((2, 3, h, w)).astype(np.float32)
        y = tf.nn.avg_pool2d(x.transpose(0, 2, 3, 1), (sh, sw), (sh, sw), "SAME")  # what AvgPool2D runs
        arrays[f"ops/avgpool/{h}x{w}_s{sh}x{sw}/x"] = x
        arrays[f"ops/avgpool/{h}x{w}_s{sh}x{sw}/y"] = y.numpy().transpose(0, 3, 1, 2)
    for h, w, k, s in DWCONV_OPS:
        x = rng.standard_normal((2, 3, h, w)).astype(np.float32)
        kernel = rng.standard_normal((3, 1, k, k)).astype(np.float32)
        y = tf.nn.depthwise_conv2d(x.transpose(0, 2, 3, 1), kernel.transpose(2, 3, 0, 1), (1, s, s, 1), "SAME")
        arrays[f"ops/dwconv/{h}x{w}_k{k}_s{s}/x"] = x
        arrays[f"ops/dwconv/{h}x{w}_k{k}_s{s}/w"] = kernel
        arrays[f"ops/dwconv/{h}x{w}_k{k}_s{s}/y"] = y.numpy().transpose(0, 3, 1, 2)

    meta = {
        "layer": "official.vision.modeling.layers.nn_blocks.OptimizedMultiQueryAttentionLayerWithDownSampling",
        "versions": {p: md.version(p) for p in ("tensorflow", "tf-keras", "tf-models-official", "numpy")},
        "dtype": "float32",
        "seed": SEED,
        "loss": "0.5 * sum(y ** 2)",
        "cases": cases,
        "avgpool_ops": [list(op) for op in AVGPOOL_OPS],
        "dwconv_ops": [list(op) for op in DWCONV_OPS],
    }
    arrays["meta"] = np.array(json.dumps(meta))
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **arrays)
    print(f"wrote {out} ({out.stat().st_size / 2**20:.2f} MiB, {len(cases)} layer cases)")


def _random_weights(rng, channels, heads, key_dim, value_dim, q_strides, kv_stride, kernel) -> dict:
    """PyTorch-layout tensors under timm's state-dict keys, with non-trivial BatchNorm statistics."""
    import numpy as np

    def conv(c_out, c_in, k=1):
        return (rng.standard_normal((c_out, c_in, k, k)) / np.sqrt(c_in * k * k)).astype(np.float32)

    def norm(prefix):
        return {
            f"{prefix}.weight": rng.uniform(0.5, 1.5, channels).astype(np.float32),
            f"{prefix}.bias": rng.normal(0.0, 0.2, channels).astype(np.float32),
            f"{prefix}.running_mean": rng.normal(0.0, 0.5, channels).astype(np.float32),
            f"{prefix}.running_var": rng.uniform(0.5, 2.0, channels).astype(np.float32),
        }

    weights = {}
    if tuple(q_strides) != (1, 1):
        weights.update(norm("query.norm"))
    weights["query.proj.weight"] = conv(heads * key_dim, channels)
    for path, dim in (("key", key_dim), ("value", value_dim)):
        if kv_stride > 1:
            weights[f"{path}.down_conv.weight"] = (rng.standard_normal((channels, 1, kernel, kernel)) / kernel).astype(np.float32)
            weights.update(norm(f"{path}.norm"))
        weights[f"{path}.proj.weight"] = conv(dim, channels)
    weights["output.proj.weight"] = conv(channels, heads * value_dim)
    return weights


# PyTorch state-dict key -> the TF layer's sub-layer attribute and variable name.
_TF_NAMES = {
    "query.norm": "_query_downsampling_norm",
    "query.proj": "_query_proj",
    "key.down_conv": "_key_dw_conv",
    "key.norm": "_key_dw_norm",
    "key.proj": "_key_proj",
    "value.down_conv": "_value_dw_conv",
    "value.norm": "_value_dw_norm",
    "value.proj": "_value_proj",
    "output.proj": "_output_proj",
}
_BN_NAMES = {"weight": "gamma", "bias": "beta", "running_mean": "moving_mean", "running_var": "moving_variance"}


def _tf_variable(layer, key: str):
    module, field = key.rsplit(".", 1)
    sub = getattr(layer, _TF_NAMES[module])
    if module.endswith("norm"):
        return getattr(sub, _BN_NAMES[field])
    return sub.depthwise_kernel if module.endswith("down_conv") else sub.kernel


def _to_tf_layout(key: str, value):
    if key.endswith("down_conv.weight"):  # (C, 1, k, k) -> (k, k, C, 1)
        return value.transpose(2, 3, 0, 1)
    if key.endswith("proj.weight"):  # (out, in, 1, 1) -> (1, 1, in, out)
        return value.transpose(2, 3, 1, 0)
    return value


def _to_torch_layout(key: str, value):
    if key.endswith("down_conv.weight"):
        return value.transpose(2, 3, 0, 1)
    if key.endswith("proj.weight"):
        return value.transpose(3, 2, 0, 1)
    return value


def _assign(layer, weights: dict) -> None:
    for key, value in weights.items():
        _tf_variable(layer, key).assign(_to_tf_layout(key, value))


def _variables(layer) -> list:
    """(torch key, TF variable) for every trainable weight of the built layer."""
    out = []
    for module in _TF_NAMES:
        if not hasattr(layer, _TF_NAMES[module]):
            continue
        fields = ("weight", "bias") if module.endswith("norm") else ("weight",)
        out.extend((f"{module}.{f}", _tf_variable(layer, f"{module}.{f}")) for f in fields)
    return out


def _norm_state(layer) -> dict:
    return {
        f"{module}.{field}": _tf_variable(layer, f"{module}.{field}").numpy()
        for module in _TF_NAMES
        if module.endswith("norm") and hasattr(layer, _TF_NAMES[module])
        for field in ("running_mean", "running_var")
    }


if __name__ == "__main__":
    main()
