"""The comparison's figures, written as PNG with matplotlib's Agg backend.

- ``pareto.png``: mAP50-95 (mean, error bar = seed std) against batch-1 CPU latency, one panel for
  PyTorch and one for ONNX Runtime. A model is on the Pareto front when no other model is at least
  as fast and strictly more accurate, or strictly faster and at least as accurate; the front is drawn
  as a step line and its points are ringed.
- ``curves.png``: the per-epoch training losses from each run's Ultralytics ``results.csv`` (box,
  cls, dfl), the mean over seeds per model.
"""

from __future__ import annotations

from pathlib import Path

LOSSES = ("train/box_loss", "train/cls_loss", "train/dfl_loss")


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the non-dominated (latency, accuracy) points, sorted by latency."""
    front = []
    for i, (lat, acc) in enumerate(points):
        dominated = any(
            (ol <= lat and oa >= acc) and (ol < lat or oa > acc) for j, (ol, oa) in enumerate(points) if j != i
        )
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: points[i][0])


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def point_label(entry: dict, baseline: str) -> str:
    """``module@where`` for a variant (``iRMB@csp``), the model name for the baseline."""
    return entry["model"] if entry["model"] == baseline or not entry.get("module") else f"{entry['module']}@{entry['where']}"


def plot_pareto(summary: list[dict], path: Path, baseline: str) -> Path:
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for ax, key, title in zip(axes, ("latency_ms", "latency_ort_ms"), ("PyTorch (fused, eval)", "ONNX Runtime")):
        points = [(s[key], s["map50_95_mean"]) for s in summary]
        front = pareto_front(points)
        for i, s in enumerate(summary):
            std = s["map50_95_std"] or 0.0
            ax.errorbar(points[i][0], points[i][1], yerr=std, fmt="o", capsize=3, ms=6,
                        color="black" if s["model"] == baseline else None, label=s["model"])
            ax.annotate(point_label(s, baseline), points[i], textcoords="offset points", xytext=(5, 5), fontsize=8)
        fx, fy = zip(*(points[i] for i in front))
        ax.step(fx, fy, where="post", color="tab:red", alpha=0.6, lw=1.5, label="Pareto front")
        ax.scatter(fx, fy, s=160, facecolors="none", edgecolors="tab:red", lw=1.5)
        ax.set_xlabel(f"batch-1 CPU latency, {title} (ms)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("mAP50-95 (mean over seeds)")
    axes[1].legend(fontsize=7, loc="best")
    fig.suptitle("Accuracy vs latency (up and left is better)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_curves(runs: list[dict], path: Path, baseline: str) -> Path:
    """``runs``: dicts with "model" and "curve" (the run's per-epoch Ultralytics results as dicts)."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(LOSSES), figsize=(13, 3.8))
    models = list(dict.fromkeys(r["model"] for r in runs))
    for ax, loss in zip(axes, LOSSES):
        for model in models:
            curves = [r["curve"] for r in runs if r["model"] == model and r["curve"]]
            epochs = min((len(c) for c in curves), default=0)
            if not epochs:
                continue
            x = [curves[0][e]["epoch"] for e in range(epochs)]
            y = [sum(c[e].get(loss, float("nan")) for c in curves) / len(curves) for e in range(epochs)]
            ax.plot(x, y, marker="o", ms=3, label=model, color="black" if model == baseline else None)
        ax.set_title(loss)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle("Training losses (mean over seeds)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
