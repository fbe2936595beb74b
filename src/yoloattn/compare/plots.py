"""The comparison's figures, written as PNG with matplotlib's Agg backend.

- ``pareto.png``: mAP50-95 (mean, error bar = seed std) against batch-1 CPU latency (p50, error bar to
  p90), one panel per measured runtime (eager PyTorch and each of ``--runtimes``), the latency axis from
  0 so that a 0.1 ms difference looks as small as it is. The Pareto front is judged with the noise
  (:func:`noisy_front`): a model is dominated only by one that is not slower and not less accurate
  beyond the noise and is clearly faster or clearly more accurate. The front is drawn (step line,
  ringed points) only when it leaves some model out; when every model is within the others' noise the
  panel says so instead of ringing one.
- ``curves.png``: per epoch, all models overlaid: mAP50-95 on the evaluation split (each run's
  ``val_curve``: after the last epoch, and every ``--val-every`` epochs) and the training losses from
  Ultralytics' ``results.csv`` (box, cls, dfl); per model the mean over seeds as a line and the
  min-max over seeds as a band.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .rows import ResultRow, SummaryRow

LOSSES = ("train/box_loss", "train/cls_loss", "train/dfl_loss")


@dataclass(frozen=True)
class Point:
    """One model on a latency panel: p50 and p90 latency (ms), mean and seed std of mAP50-95 (std None: 1 seed)."""

    p50: float
    p90: float
    acc: float
    std: float | None


def _clearly_faster(a: Point, b: Point) -> bool:
    return a.p90 < b.p50  # even a's slow passes beat b's median


def _clearly_more_accurate(a: Point, b: Point) -> bool:
    if a.std is None or b.std is None:  # one seed: no noise estimate, so no accuracy difference is clear
        return False
    return a.acc - b.acc > max(a.std, b.std)


def noisy_front(points: list[Point]) -> list[int]:
    """Indices of the points no other point dominates beyond the noise, sorted by latency: j dominates i
    when j is not clearly slower nor clearly less accurate than i, and is clearly faster or clearly more
    accurate (clearly faster: j's p90 below i's p50; clearly more accurate: the means differ by more than
    the larger seed std)."""
    def dominates(j: Point, i: Point) -> bool:
        return (not _clearly_faster(i, j) and not _clearly_more_accurate(i, j)
                and (_clearly_faster(j, i) or _clearly_more_accurate(j, i)))

    front = [i for i, p in enumerate(points) if not any(dominates(q, p) for j, q in enumerate(points) if j != i)]
    return sorted(front, key=lambda i: points[i].p50)


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
        points = [Point(*((s.cost.latency[name]["p50_ms"], s.cost.latency[name]["p90_ms"]) if s.cost.latency else
                          (s.cost.latency_p50_ms, s.cost.latency_p90_ms)), s.map50_95_mean, s.map50_95_std)
                  for s in summary]
        front = noisy_front(points)
        for s, p in zip(summary, points):
            ax.errorbar(p.p50, p.acc, yerr=p.std or 0.0, xerr=[[0.0], [max(0.0, p.p90 - p.p50)]], fmt="o", capsize=3,
                        ms=6, color="black" if s.model == baseline else None, label=s.model)
            ax.annotate(point_label(s, baseline), (p.p50, p.acc), textcoords="offset points", xytext=(5, 5), fontsize=8)
        if len(front) < len(points):
            fx, fy = zip(*((points[i].p50, points[i].acc) for i in front))
            ax.step(fx, fy, where="post", color="tab:red", alpha=0.6, lw=1.5, label="Pareto front (beyond noise)")
            ax.scatter(fx, fy, s=160, facecolors="none", edgecolors="tab:red", lw=1.5)
        else:
            ax.text(0.02, 0.02, "every model is within the others' noise: no front", transform=ax.transAxes,
                    fontsize=8, color="tab:red")
        ax.set_xlim(0, 1.15 * max(p.p90 for p in points))
        ax.set_xlabel(f"batch-1 CPU latency, {title} (ms)\np50, bar to p90; axis from 0")
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
