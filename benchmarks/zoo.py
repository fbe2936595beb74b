"""Each zoo variant at scale n against its Ultralytics baseline, measured in one process.

    python benchmarks/zoo.py                 # every bundled file, 640x640, batch 1, CPU, eval, fused
    python benchmarks/zoo.py --only yolo11   # a subset (substring match on the file name)
    python benchmarks/zoo.py --families yolo26,yolo12,yolov10n,rtdetr-l   # some families only

Columns: params, GFLOPs (yoloattn.flops: convs, matmuls, fused and ACmix window attention), PyTorch and
ONNX Runtime latency, median (p90) of `--iters` passes at `--threads` (default 1) threads, timed in
alternating rounds with the family's baseline (``bench.benchmark_many``), and the ratios to the
baseline. The latency budget for the default placements is 1.25x the baseline; yolov9c-mmqa is the
tutorial-faithful file and is exempt, its true cost is shown instead. End-to-end models (YOLO26,
YOLOv10) are timed with their NMS-free one-to-one head, as ``yoloattn compare`` evaluates them;
yolov9c and RT-DETR-l (about 100 GFLOPs) get ``--iters`` // 3 passes.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
# Ultralytics reads these when first imported, and importing yoloattn imports it.
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "False")
os.environ.setdefault("YOLO_CONFIG_DIR", str(ROOT / ".yolo-config"))

import torch  # noqa: E402

import yoloattn  # noqa: E402,F401
from yoloattn import bench, zoo  # noqa: E402
from yoloattn.compare.models import resolve_model  # noqa: E402
from yoloattn.integration.heads import is_end_to_end, wrapper  # noqa: E402

BUDGET = 1.25
SLOW = ("yolov9c-mmqa.yaml",)  # the tutorial-faithful file: exempt from the budget, its true cost shown
BASELINES = ("yolov8", "yolo11", "yolo26", "yolo12", "yolov10n", "yolov9t", "yolov9c", "rtdetr-l")


def build(name: str):
    """A zoo file (by its unscaled name) or a stock model, at scale n where the family has scales."""
    model = wrapper(resolve_model(re.sub(r"^(yolov8|yolo11|yolo26|yolo12)(-|$)", r"\1n\2", name.removesuffix(".yaml"))))
    net = model.model
    if is_end_to_end(net.yaml):
        net.end2end = True  # the NMS-free head, as compare evaluates and times it
    return net


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--iters", type=int, default=15, help="timed passes per model and backend (3 rounds)")
    parser.add_argument("--threads", type=int, default=1, help="PyTorch and ONNX Runtime threads (the budget's 1)")
    parser.add_argument("--only", default="", help="substring filter on the zoo file names")
    parser.add_argument("--families", default=",".join(BASELINES), help="comma list of baselines to run")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    peak = bench.matmul_peak_gflops(threads=args.threads)
    print(f"CPU, batch 1, {args.imgsz}x{args.imgsz}, eval, fused, {args.threads} thread(s); "
          f"fp32 matmul peak {peak:.0f} GFLOP/s; median (p90) of {args.iters} interleaved passes (yolov9c, RT-DETR-l: "
          f"{max(3, args.iters // 3)})", flush=True)
    print(f"| model | params ({bench.param_basis(True, 80)}) | GFLOPs | torch ms | × base | ORT ms | × base "
          "| within 1.25× |")
    print("|---|---|---|---|---|---|---|---|")
    for family in args.families.split(","):
        names = [n for n in zoo.names() if n.startswith(family + "-") and args.only in n]
        if not names:
            continue
        slow = [n for n in names if n in SLOW]
        iters = max(3, args.iters // 3) if family.startswith("rtdetr") or family == "yolov9c" else args.iters
        # the baseline and its variants timed in alternating rounds, so load changes hit them alike
        results = bench.benchmark_many({family: build(family), **{n: build(n) for n in names if n not in slow}},
                                       args.imgsz, 1, bench.BACKENDS, threads=args.threads, warmup=2, iters=iters,
                                       matmul_peak=peak)
        for name in slow:  # seconds per pass: a few passes, PyTorch only (a traced MQA runs dense: at P2,
            # 8 x 25,600^2 fp32 logits, 21 GB, exceed the machine), against the baseline's time above
            results |= bench.benchmark_many({name: build(name)}, args.imgsz, 1, ("torch",), threads=args.threads,
                                            warmup=1, iters=2, matmul_peak=peak)
        for name in [family, *names]:
            torch_r, ort_r = results[name, "torch"], results.get((name, "onnxruntime"))
            r_torch = torch_r.latency_ms / results[family, "torch"].latency_ms
            r_ort = ort_r.latency_ms / results[family, "onnxruntime"].latency_ms if ort_r else float("nan")
            if name == family:
                label, verdict = f"**{family} (baseline)**", ""
            else:
                label = name
                verdict = "exempt (tutorial)" if name in SLOW else (
                    "yes" if max(r_torch, r_ort) <= BUDGET else f"**no** ({max(r_torch, r_ort):.2f}×)")
            ort_ms = f"{ort_r.latency_ms:.1f} ({ort_r.p90_ms:.1f})" if ort_r else "not run"
            print(f"| {label} | {torch_r.params:,} | {torch_r.gflops:.1f} | {torch_r.latency_ms:.1f} "
                  f"({torch_r.p90_ms:.1f}) | {r_torch:.2f} | {ort_ms} | {r_ort:.2f} | {verdict} |", flush=True)


if __name__ == "__main__":
    main()
