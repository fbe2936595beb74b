"""The comparison's figures, written as PNG with matplotlib's Agg backend.

- ``pareto.png``: mAP50-95 (mean, error bar = seed std) against batch-1 CPU latency, one panel per
  measured runtime (eager PyTorch and each of ``--runtimes``). A model is on the Pareto front when no other model is at least
  as fast and strictly more accurate, or strictly faster and at least as accurate; the front is drawn
  as a step line and its points are ringed.
- ``curves.png``: per epoch, all models overlaid: mAP50-95 on the evaluation split (each run's
  ``val_curve``: after the last epoch, and every ``--val-every`` epochs) and the training losses from
  Ultralytics' ``results.csv`` (box, cls, dfl); per model the mean over seeds as a line and the
  min-max over seeds as a band.
"""

from __future__ import annotations

from pathlib import Path

from .rows import ResultRow, SummaryRow

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


def pyplot():
    """matplotlib.pyplot on the Agg backend (files only, no display), for every figure of a comparison."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def point_label(entry: SummaryRow, baseline: str) -> str:
    """``module@where`` for a variant (``iRMB@csp``), the model name for the baseline."""
    return entry.model if entry.model == baseline or not entry.module else f"{entry.module}@{entry.where}"


def plot_pareto(summary: list[SummaryRow], path: Path, baseline: str) -> Path:
    """``pareto.png`` (see the module docstring): mAP50-95 against batch-1 latency in ms; returns ``path``."""
    from ..deploy.runtimes import RUNTIMES

    plt = pyplot()
    runtimes = [name for name in summary[0].cost.latency if all(name in s.cost.latency for s in summary)] or ["torch"]
    fig, axes = plt.subplots(1, len(runtimes), figsize=(5.5 * len(runtimes), 4.2), sharey=True, squeeze=False)
    axes = axes[0]
    for ax, name in zip(axes, runtimes):
        title = "PyTorch (fused, eval)" if name == "torch" else RUNTIMES[name].client.split(" ")[0]
        points = [(s.cost.latency[name]["p50_ms"] if s.cost.latency else s.cost.latency_p50_ms, s.map50_95_mean)
                  for s in summary]
        front = pareto_front(points)
        for i, s in enumerate(summary):
            std = s.map50_95_std or 0.0
            ax.errorbar(points[i][0], points[i][1], yerr=std, fmt="o", capsize=3, ms=6,
                        color="black" if s.model == baseline else None, label=s.model)
            ax.annotate(point_label(s, baseline), points[i], textcoords="offset points", xytext=(5, 5), fontsize=8)
        fx, fy = zip(*(points[i] for i in front))
        ax.step(fx, fy, where="post", color="tab:red", alpha=0.6, lw=1.5, label="Pareto front")
        ax.scatter(fx, fy, s=160, facecolors="none", edgecolors="tab:red", lw=1.5)
        ax.set_xlabel(f"batch-1 CPU latency p50, {title} (ms)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("mAP50-95 (mean over seeds)")
    axes[-1].legend(fontsize=7, loc="best")
    fig.suptitle("Accuracy vs latency (up and left is better)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def seed_band(series: list[dict[int, float]]) -> tuple[list[int], list[float], list[float], list[float]]:
    """(epochs, mean, min, max) over seeds at the epochs every seed has a finite value for."""
    import math

    epochs = sorted(set.intersection(*(set(e for e, v in s.items() if math.isfinite(v)) for s in series))) if series else []
    values = [[s[e] for s in series] for e in epochs]
    return epochs, [sum(v) / len(v) for v in values], [min(v) for v in values], [max(v) for v in values]


def plot_curves(runs: list[ResultRow], path: Path, baseline: str) -> Path:
    """``curves.png`` (see the module docstring) of the runs' ``curve`` (per-epoch Ultralytics results) and
    ``val_curve``; returns ``path``."""
    from matplotlib.ticker import MaxNLocator

    plt = pyplot()
    panels = ("map50_95", *LOSSES)
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.8))
    models = list(dict.fromkeys(r.model for r in runs))
    colors = {baseline: "black", **{m: f"C{i}" for i, m in enumerate(m for m in models if m != baseline)}}
    for ax, panel in zip(axes, panels):
        for model in models:
            mine = [r for r in runs if r.model == model]
            if panel == "map50_95":
                series = [{int(p["epoch"]): p["map50_95"] for p in r.val_curve or []} for r in mine]
            else:
                series = [{int(p["epoch"]): p.get(panel, float("nan")) for p in r.curve or []} for r in mine]
            epochs, mean, low, high = seed_band([s for s in series if s])
            if not epochs:
                continue
            ax.plot(epochs, mean, marker="o", ms=3, label=model, color=colors[model])
            if len(series) > 1:
                ax.fill_between(epochs, low, high, color=colors[model], alpha=0.15, lw=0)
        ax.set_title("mAP50-95 (evaluation split)" if panel == "map50_95" else panel)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle("Per epoch, all runs: mean over seeds (line) and min-max over seeds (band)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
