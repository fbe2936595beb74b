"""Per-model summary over seeds and the test of "is this delta larger than the seed noise".

For metric values a (variant, n_a seeds) and b (baseline, n_b seeds) with sample means m and sample
variances s^2 (ddof 1), Welch's unequal-variance t-test:

    t  = (m_a - m_b) / sqrt(s_a^2 / n_a + s_b^2 / n_b)
    df = (s_a^2/n_a + s_b^2/n_b)^2 / ((s_a^2/n_a)^2 / (n_a - 1) + (s_b^2/n_b)^2 / (n_b - 1))
    p  = 2 * (1 - F_t(|t|; df))             (two-sided, F_t the Student-t CDF, from scipy)

A delta is called significant when p < ALPHA (0.05). It needs >= 2 seeds per model; with one seed the
test is reported as "n/a (1 seed)", and when both models have zero seed variance as "n/a (no spread)".
With few seeds the test has little power: a "no" means "not shown", not "no effect".
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

ALPHA = 0.05
METRICS = ("map50", "map50_95")


@dataclass(frozen=True)
class Test:
    p: float | None
    verdict: str  # "yes", "no", "baseline", "n/a (1 seed)", "n/a (no spread)"


def mean_std(values: list[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (None for a single value)."""
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def welch_p(a: list[float], b: list[float]) -> float | None:
    """Two-sided Welch t-test p-value; None when undefined (fewer than 2 values or no variance)."""
    if len(a) < 2 or len(b) < 2:
        return None
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    if va + vb == 0:
        return None
    t = (statistics.fmean(a) - statistics.fmean(b)) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    from scipy.stats import t as student_t

    return float(2 * student_t.sf(abs(t), df))


def compare_to_baseline(variant: list[float], baseline: list[float]) -> Test:
    if min(len(variant), len(baseline)) < 2:
        return Test(None, "n/a (1 seed)")
    p = welch_p(variant, baseline)
    if p is None:
        return Test(None, "n/a (no spread)")
    return Test(p, "yes" if p < ALPHA else "no")


def summarize(rows: list[dict], baseline: str) -> list[dict]:
    """One summary dict per model (in first-seen order) from per-run rows (see report.RESULT_COLUMNS)."""
    by_model: dict[str, list[dict]] = {}
    for row in rows:
        by_model.setdefault(row["model"], []).append(row)
    base_rows = by_model.get(baseline, [])
    summary = []
    for model, runs in by_model.items():
        first = runs[0]
        entry = {k: first[k] for k in ("model", "module", "where", "params", "gflops", "latency_ms",
                                       "latency_ort_ms")}
        entry["seeds"] = len(runs)
        for metric in METRICS:
            values = [r[metric] for r in runs]
            entry[f"{metric}_mean"], entry[f"{metric}_std"] = mean_std(values)
            if base_rows:
                base_values = [r[metric] for r in base_rows]
                entry[f"delta_{metric}"] = entry[f"{metric}_mean"] - statistics.fmean(base_values)
                test = Test(None, "baseline") if model == baseline else compare_to_baseline(values, base_values)
                entry[f"p_{metric}"], entry[f"significant_{metric}"] = test.p, test.verdict
        entry["train_s_mean"] = statistics.fmean(r["train_s"] for r in runs)
        summary.append(entry)
    return summary
