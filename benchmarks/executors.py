"""Overhead of ``compare --executor ray`` against ``--executor local``: the same tiny comparison, each in its
own process, one after the other, with the costs already cached (so only the runs differ).

    python benchmarks/executors.py               # 8 runs: yolov8n and its iRMB@sppf variant x 4 seeds
    python benchmarks/executors.py --seeds 6     # more runs to spread the Ray instance's start over

Three back ends: ``local`` (subprocesses), ``ray`` (a local Ray instance; its workers see OUT, as with
shared storage) and ``ray, staged`` (``YOLOATTN_WORKER_STORAGE=local`` plus ``--collect-weights``: the
workers train in their own cache and send every file back, as on nodes without shared storage). The
Ray rows include starting and stopping the instance; the start alone is timed separately. Overhead
per run = (wall - local wall) / runs. Take the numbers with nothing else running.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def env(**extra: str) -> dict[str, str]:
    base = {**os.environ, "YOLO_OFFLINE": "1", "YOLO_AUTOINSTALL": "False",
            "YOLO_CONFIG_DIR": os.environ.get("YOLO_CONFIG_DIR", str(ROOT / ".yolo-config")), "MPLBACKEND": "Agg"}
    base["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT / "src"), base.get("PYTHONPATH", "")) if p)
    return {**base, **extra}


def compare(argv: list[str], out: Path, extra_env: dict | None = None) -> float:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "yoloattn.cli", *argv, "--out", str(out)], env=env(**(extra_env or {})),
                          capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return seconds


def ray_start_s() -> float:
    code = ("import os, time; import ray; t = time.perf_counter(); ray.init(num_cpus=os.cpu_count(), "
            "include_dashboard=False, log_to_driver=False, logging_level='ERROR'); print(time.perf_counter() - t); "
            "ray.shutdown()")
    done = subprocess.run([sys.executable, "-c", code], env=env(), capture_output=True, text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=4)
    args = parser.parse_args()

    def argv(seeds: int) -> list[str]:
        return ["compare", "--preset", "tiny", "--base", "yolov8n", "--modules", "irmb", "--where", "sppf",
                "--epochs", "1", "--seeds", str(seeds), "--imgsz", "64", "--threads-per-run", "1"]

    runs = 2 * args.seeds
    with tempfile.TemporaryDirectory(prefix="yoloattn-executors-") as tmp:
        tmp = Path(tmp)
        costs = tmp / "costs"
        compare(argv(1), costs)  # generates the dataset and measures the costs, which every row then reuses
        rows = []
        for label, extra, extra_env in (("local", ["--executor", "local"], None),
                                        ("ray", ["--executor", "ray"], None),
                                        ("ray, staged", ["--executor", "ray", "--collect-weights"],
                                         {"YOLOATTN_WORKER_STORAGE": "local"})):
            out = tmp / label.replace(", ", "-")
            shutil.copytree(costs / "measure", out / "measure")
            rows.append((label, compare([*argv(args.seeds), *extra], out, extra_env)))
        start = ray_start_s()
    local = rows[0][1]
    print(f"{runs} runs (yolov8n, yolov8n-irmb-sppf x {args.seeds} seeds, tiny preset, 1 epoch, 64 px, 1 thread "
          f"each), {os.cpu_count()} CPU cores; a local Ray instance starts in {start:.1f} s\n")
    print("| executor | wall (s) | overhead per run vs local (s) |")
    print("|---|---:|---:|")
    for label, seconds in rows:
        overhead = "" if label == "local" else f"{(seconds - local) / runs:+.2f}"
        print(f"| {label} | {seconds:.1f} | {overhead} |")


if __name__ == "__main__":
    main()
