"""Each zoo variant at scale n against its Ultralytics baseline, measured in one process.

    python benchmarks/zoo.py                 # every bundled file, 640x640, batch 1, CPU, eval, fused
    python benchmarks/zoo.py --only yolo11   # a subset (substring match on the file name)
    python benchmarks/zoo.py --families yolo26,yolo12,yolov10n,rtdetr-l   # some families only

Columns: params, GFLOPs (yoloattn.flops: convs, matmuls, fused and ACmix window attention), PyTorch and
ONNX Runtime latency (median of `--iters` runs) and their ratios to the baseline. The latency budget
for the default placements is 1.25x the baseline; yolov9c-mmqa is the tutorial-faithful file and is
exempt, its true cost is shown instead. End-to-end models (YOLO26, YOLOv10) are timed with their
NMS-free one-to-one head, as ``yoloattn compare`` evaluates them; RT-DETR-l (about 100 GFLOPs) gets
``--iters`` // 3 passes.
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

import yoloattn  # noqa: E402,F401
from yoloattn import bench, zoo  # noqa: E402
from yoloattn.compare.models import resolve_model  # noqa: E402
from yoloattn.integration.heads import is_end_to_end, wrapper  # noqa: E402

BUDGET = 1.25
BASELINES = ("yolov8", "yolo11", "yolo26", "yolo12", "yolov10n", "yolov9t", "yolov9c", "rtdetr-l")


def build(name: str):
    """A zoo file (by its unscaled name) or a stock model, at scale n where the family has scales."""
    model = wrapper(resolve_model(re.sub(r"^(yolov8|yolo11|yolo26|yolo12)(-|$)", r"\1n\2", name.removesuffix(".yaml"))))
    net = model.model
    if is_end_to_end(net.yaml):
        net.end2end = True  # the NMS-free head, as compare evaluates and times it
    return net


def measure(model, imgsz: int, iters: int, peak: float, warmup: int = 3) -> tuple:
    kw = dict(imgsz=imgsz, iters=iters, warmup=warmup, matmul_peak=peak)
    torch_result = bench.benchmark(model, backend="torch", **kw)
    ort_result = bench.benchmark(model, backend="onnxruntime", **kw)
    return torch_result.params, torch_result.gflops, torch_result.latency_ms, ort_result.latency_ms


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--only", default="", help="substring filter on the zoo file names")
    parser.add_argument("--families", default=",".join(BASELINES), help="comma list of baselines to run")
    args = parser.parse_args(argv)
    peak = bench.matmul_peak_gflops()
    print(f"CPU, batch 1, {args.imgsz}x{args.imgsz}, eval, fused; matmul peak {peak:.0f} GFLOP/s")
    print(f"| model | params ({bench.param_basis(True, 80)}) | GFLOPs | torch ms | × base | ORT ms | × base | within 1.25× |")
    print("|---|---|---|---|---|---|---|---|")
    for family in args.families.split(","):
        names = [n for n in zoo.names() if n.startswith(family + "-") and args.only in n]
        if not names:
            continue
        iters = max(2, args.iters // 3) if family.startswith("rtdetr") else args.iters
        b_params, b_gflops, b_torch, b_ort = measure(build(family), args.imgsz, iters, peak)
        print(f"| **{family} (baseline)** | {b_params:,} | {b_gflops:.1f} | {b_torch:.1f} | 1.00 | "
              f"{b_ort:.1f} | 1.00 | |", flush=True)
        for name in names:
            slow = name == "yolov9c-mmqa.yaml"  # seconds per image: a few runs are enough
            params, gflops, t_torch, t_ort = measure(build(name), args.imgsz, 2 if slow else iters, peak,
                                                     warmup=1 if slow else 3)
            r_torch, r_ort = t_torch / b_torch, t_ort / b_ort
            verdict = "exempt (tutorial)" if name == "yolov9c-mmqa.yaml" else (
                "yes" if max(r_torch, r_ort) <= BUDGET else f"**no** ({max(r_torch, r_ort):.2f}×)")
            print(f"| {name} | {params:,} | {gflops:.1f} | {t_torch:.1f} | {r_torch:.2f} | {t_ort:.1f} | "
                  f"{r_ort:.2f} | {verdict} |", flush=True)


if __name__ == "__main__":
    main()
