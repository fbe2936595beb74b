"""Forward+backward time and extra peak memory of each efficient module against its reference.

    python benchmarks/modules.py              # the tables in docs/benchmarks.md
    python benchmarks/modules.py --quick      # a 1-minute subset (`make demo` until compare exists)
    python benchmarks/modules.py --inference  # only the inference tables: Mobile MQA vs timm, ACmix's two paths

Everything runs in one process, so the ratio columns compare like with like. The references are the
slow, obvious ports of the official algorithms kept in tests/reference/ (plus timm's
MultiQueryAttention2d for Mobile MQA), carrying the efficient module's exact weights.

Peak memory on CPU: the kernel's peak-RSS counter (VmHWM) is reset before each measurement
(`/proc/self/clear_refs`), and "extra peak" is the peak minus the RSS before the step. glibc is told
to serve large blocks with mmap at a fixed threshold so freed tensors go back to the OS and cannot
hide the next measurement's allocations (the script re-executes itself with that setting).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

_MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}
if __name__ == "__main__" and any(os.environ.get(k) != v for k, v in _MALLOC_ENV.items()):
    os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **_MALLOC_ENV})

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

import torch  # noqa: E402

from tests.reference import acmix_ref, irmb_ref, mlla_ref, mqa_ref  # noqa: E402
from yoloattn.attention import ACmix, MLLABlock, MobileMQA, iRMB  # noqa: E402


def _rss_bytes(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def measure(module: torch.nn.Module, x: torch.Tensor, repeats: int) -> tuple[float, float]:
    """Median forward+backward seconds and extra peak memory (bytes) over `repeats` steps.

    Kernels and lazily built tables are warmed up on a small input, so even a single step (used when
    one step takes seconds) is a warm measurement. The peak is that of the first timed step.
    """

    def step(inp):
        inp = inp.detach().requires_grad_(True)
        module(inp).sum().backward()
        module.zero_grad(set_to_none=True)

    step(x[:1, :, :8, :8])
    times = []
    for i in range(repeats):
        if i == 0:
            _reset_peak()
            before = _rss_bytes("VmRSS")
        t0 = time.perf_counter()
        step(x)
        times.append(time.perf_counter() - t0)
        if i == 0:
            peak = _rss_bytes("VmHWM") - before
        if sum(times) > 20:  # slow cases: one or two steps are already a stable median
            break
    return statistics.median(times), max(peak, 0)


def _timm_mqa(ours: MobileMQA) -> torch.nn.Module:
    from timm.layers import MultiQueryAttention2d

    timm_mqa = MultiQueryAttention2d(ours.c1, num_heads=ours.num_heads, key_dim=ours.key_dim,
                                     value_dim=ours.value_dim, kv_stride=ours.kv_stride)
    timm_mqa.load_state_dict(ours.state_dict())
    return timm_mqa.train(ours.training)


def cases(c: int):
    """(module name, efficient module, {reference name: reference module})."""
    mqa = MobileMQA(c, num_heads=8, key_dim=48, value_dim=48)
    yield "Mobile MQA (8x48)", mqa, {"explicit softmax": mqa_ref.reference_from(mqa, "timm"), "timm": _timm_mqa(mqa)}
    acmix = ACmix(c, c)
    yield "ACmix", acmix, {"official unfold": acmix_ref.reference_from(acmix)}
    mlla = MLLABlock(c)
    yield "MLLA block", mlla, {"official": mlla_ref.reference_from(mlla)}
    irmb = iRMB(c, c)
    yield "iRMB", irmb, {"explicit softmax": irmb_ref.reference_from(irmb)}


def inference_time(module: torch.nn.Module, x: torch.Tensor, repeats: int) -> float:
    """Median forward seconds in eval mode without autograd (after one warm-up pass)."""
    module.eval()
    with torch.no_grad():
        module(x)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            module(x)
            times.append(time.perf_counter() - t0)
            if sum(times) > 20:
                break
    return statistics.median(times)


def inference_table(batch: int, repeats: int) -> None:
    """Mobile MQA (8 heads x 48) against timm's MultiQueryAttention2d, forward only, C=64."""
    import yoloattn.attention.mqa as mqa_module

    print(f"\ninference: eval, torch.no_grad(), B={batch}, fp32, forward only (enable_gqa: {mqa_module._SDPA_GQA})")
    print("| module | C | H=W | path | ours ms | timm ms | speed-up |")
    print("|---|---|---|---|---|---|---|")
    for size in (20, 40, 80):
        mqa = MobileMQA(64, num_heads=8, key_dim=48, value_dim=48)
        timm_mqa = _timm_mqa(mqa)
        x = torch.randn(batch, 64, size, size)
        logits = 8 * size**4
        path = "fused" if mqa_module.fused_attention(logits, grad=False) else "dense"
        t_ours, t_timm = inference_time(mqa, x, repeats), inference_time(timm_mqa, x, repeats)
        print(f"| Mobile MQA (8x48) | 64 | {size} | {path} | {t_ours * 1e3:.1f} | {t_timm * 1e3:.1f} | "
              f"{t_timm / t_ours:.2f}x |", flush=True)


def _onnxruntime_time(module: torch.nn.Module, x: torch.Tensor, repeats: int) -> float:
    """Median seconds of one ONNX Runtime run (1 thread) of `module` exported at x's shape."""
    import io

    import onnxruntime as ort

    buffer = io.BytesIO()
    with torch.no_grad():
        torch.onnx.export(module.eval(), (x,), buffer, input_names=["x"], opset_version=17, dynamo=False)
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = ort.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])
    feed = {"x": x.numpy()}
    session.run(None, feed)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        session.run(None, feed)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def acmix_inference_table(repeats: int) -> None:
    """ACmix (C=128, 4 heads, 7x7 window) in inference at batch 1 and 1 thread: the dense window
    attention (acmix._window_attention_dense) against the window loop, PyTorch and ONNX Runtime."""
    import yoloattn.attention.acmix as acmix_module

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    dense_limit = acmix_module._DENSE_WINDOWS
    print("\nACmix inference: eval, torch.no_grad(), B=1, C=128, 4 heads, 7x7 window, fp32, 1 thread; whole module")
    print(f"(the module takes the dense path up to {dense_limit} x 49 = {dense_limit * 49} positions)")
    print("| H=W | positions / K | PyTorch window ms | PyTorch dense ms | ORT window ms | ORT dense ms |")
    print("|---|---|---|---|---|---|")
    try:
        for size in (20, 24, 32, 40):
            module, x = ACmix(128, 128).eval(), torch.randn(1, 128, size, size)
            row = []
            for limit in (0, 10**9):  # 0: always the window loop; huge: always dense
                acmix_module._DENSE_WINDOWS = limit
                row.append((inference_time(module, x, repeats), _onnxruntime_time(module, x, repeats)))
            (t_window, o_window), (t_dense, o_dense) = row
            print(f"| {size} | {size * size / 49:.1f} | {t_window * 1e3:.2f} | {t_dense * 1e3:.2f} | "
                  f"{o_window * 1e3:.2f} | {o_dense * 1e3:.2f} |", flush=True)
    finally:
        acmix_module._DENSE_WINDOWS = dense_limit
        torch.set_num_threads(threads)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="C=64 at 20x20 and 40x40 only, fewer repeats")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--inference", action="store_true", help="only the inference tables (Mobile MQA vs timm, ACmix)")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    if args.inference:
        inference_table(args.batch, 5)
        acmix_inference_table(15)
        return
    settings = [(64, 20), (64, 40)] if args.quick else [(64, 20), (64, 40), (64, 80), (256, 20)]
    repeats = 3 if args.quick else 5

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, B={args.batch}, fp32, forward+backward")
    print("| module | C | H=W | ours ms | ours extra MB | reference | ref ms | ref extra MB | speed-up | memory ratio |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for c, size in settings:
        x = torch.randn(args.batch, c, size, size)
        for name, ours, refs in cases(c):
            ours.train()
            t_ours, m_ours = measure(ours, x, repeats)
            for ref_name, ref in refs.items():
                ref.train()
                t_ref, m_ref = measure(ref, x, repeats)
                print(f"| {name} | {c} | {size} | {t_ours * 1e3:.1f} | {m_ours / 2**20:.0f} | {ref_name} | "
                      f"{t_ref * 1e3:.1f} | {m_ref / 2**20:.0f} | {t_ref / t_ours:.2f}x | "
                      f"{m_ref / max(m_ours, 1):.1f}x |", flush=True)
    inference_table(args.batch, repeats)
    acmix_inference_table(15)


if __name__ == "__main__":
    main()
