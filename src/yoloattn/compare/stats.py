"""Is a variant's Δ mAP50-95 larger than the seed noise? Intervals, tests, effect sizes and power.

For one metric (``PRIMARY``, mAP50-95), a variant's per-seed values a (n_a seeds) and the baseline's b
(n_b seeds), all from well-kept libraries (scipy, statsmodels), nothing hand-written but Δ itself:

- Δ = mean(a) - mean(b);
- its 95 % confidence interval: percentile bootstrap over seeds, each group resampled independently
  (``scipy.stats.bootstrap``, 9999 resamples, a fixed generator so a report is reproducible);
- Welch's unequal-variance t-test, two-sided (``scipy.stats.ttest_ind(equal_var=False)``);
- Holm's step-down adjustment of those p-values across the variants of one comparison
  (``statsmodels.stats.multitest.multipletests(method="holm")``): testing five variants at α = 0.05
  would otherwise call one of five null variants "better" about a fifth of the time;
- effect size: Hedges' g, the bias-corrected standardised mean difference
  (``statsmodels.stats.meta_analysis.effectsize_smd``);
- P(variant > baseline), the probability that a run of the variant beats a run of the baseline (ties ½):
  the Mann–Whitney U over n_a·n_b (``scipy.stats.mannwhitneyu``), with its percentile bootstrap interval;
- the paired (same-seed) difference: both models of one seed share the data order and augmentation, so
  the mean of the per-seed differences and its bootstrap interval (shown beside Δ, labelled as paired);
- the smallest detectable Δ: the Δ a two-sided two-sample t-test at α = 0.05 detects with power 0.8,
  given the pooled seed standard deviation and the seed counts (``statsmodels.stats.power.TTestIndPower``;
  for many seeds it tends to the normal approximation (z_{1-α/2} + z_power) · σ · sqrt(1/n_a + 1/n_b)).

The verdict is one rule, on the unpaired Δ (P(better) and the paired difference are shown, not tested):
a variant is called "better" or "worse" only when the Holm-adjusted p < α *and* the interval excludes 0;
otherwise its verdict is "not shown (could detect Δ ≥ X)": the comparison could not have seen a smaller
effect, which is not the same as "no effect". With one seed a model has no spread to test against
("n/a (1 seed)"); when every seed of both models gives the same value, "n/a (no spread)".

With ``--until-decided`` the verdict is instead the decision of the group-sequential test that chose the seeds
(``sequential.py``): Welch's p after a data-dependent stop is biased, so it is shown but not the rule.

Runs that diverged (NaN or inf loss or metric) or are missing are excluded before any of this and
listed (``RunProblem``); a verdict from fewer seeds than planned says so ("2 of 3 seeds").
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from .rows import ClassApRow, ResultRow, SummaryRow

ALPHA = 0.05
POWER = 0.8
CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 9999
PRIMARY = "map50_95"  # the metric verdicts are about
METRICS = ("map50", "map50_95")
SIZE_METRICS = ("map50_95_small", "map50_95_medium", "map50_95_large")


@dataclass(frozen=True)
class DeltaTest:
    """A variant against the baseline on one metric (units: the metric's, e.g. mAP50-95 in [0, 1])."""

    delta: float | None  # mean(variant) - mean(baseline)
    ci: tuple[float, float] | None  # bootstrap interval of delta (CONFIDENCE)
    p: float | None  # Welch, two-sided, unadjusted
    p_holm: float | None  # Holm-adjusted across the comparison's variants
    effect_size: float | None  # Hedges' g
    min_detectable: float | None  # smallest |delta| detectable at ALPHA with POWER
    verdict: str  # "better", "worse", "not shown (could detect Δ ≥ 0.031)", "n/a (1 seed)", "n/a (no spread)"


@dataclass(frozen=True)
class RunProblem:
    """A planned run that the statistics leave out (or, for "identical", a model whose seeds did not vary)."""

    model: str
    seed: int | None  # None: the whole model ("identical")
    kind: str  # "missing", "diverged" or "identical"
    detail: str

    def __str__(self) -> str:
        who = self.model if self.seed is None else f"{self.model} s{self.seed}"
        return f"{who}: {self.kind} ({self.detail})"


def mean_std(values: list[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (ddof 1; None for a single value)."""
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def _spread(a: list[float], b: list[float]) -> bool:
    return len(a) >= 2 and len(b) >= 2 and (statistics.variance(a) + statistics.variance(b)) > 0


def welch_p(a: list[float], b: list[float]) -> float | None:
    """Two-sided Welch t-test p-value; None with fewer than 2 values per group or no variance at all."""
    if not _spread(a, b):
        return None
    import warnings

    from scipy.stats import ttest_ind

    with warnings.catch_warnings():  # one model's seeds all equal: scipy warns, the p-value is still right
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(ttest_ind(a, b, equal_var=False).pvalue)


def bootstrap_ci(a: list[float], b: list[float], confidence: float = CONFIDENCE,
                 resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> tuple[float, float] | None:
    """Percentile bootstrap interval of mean(a) - mean(b), groups resampled independently; None with
    fewer than 2 values in a group or no spread at all (a zero-width interval would claim certainty)."""
    if not _spread(a, b):
        return None
    import numpy as np
    from scipy.stats import bootstrap

    def mean_difference(x, y, axis=-1):
        return np.mean(x, axis=axis) - np.mean(y, axis=axis)

    result = bootstrap((np.asarray(a, float), np.asarray(b, float)), mean_difference, confidence_level=confidence,
                       n_resamples=resamples, method="percentile", rng=np.random.default_rng(seed), vectorized=True)
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def prob_superiority(a: list[float], b: list[float]) -> float | None:
    """P(a > b) for a value of each group drawn at random, ties counting ½: the Mann–Whitney U of ``a`` over
    n_a·n_b (``scipy.stats.mannwhitneyu``; Bouthillier et al., MLSys 2021, "probability of outperforming").
    None with fewer than 2 values in a group."""
    if len(a) < 2 or len(b) < 2:
        return None
    from scipy.stats import mannwhitneyu

    return float(mannwhitneyu(a, b, alternative="two-sided").statistic) / (len(a) * len(b))


def _superiority(x, y, axis=-1):
    """Vectorised U/(n·m) over bootstrap resamples: the mean over all pairs of [x > y] + ½[x = y]."""
    import numpy as np

    x, y = np.moveaxis(np.asarray(x), axis, -1), np.moveaxis(np.asarray(y), axis, -1)
    gt = (x[..., :, None] > y[..., None, :]).mean(axis=(-2, -1))
    eq = (x[..., :, None] == y[..., None, :]).mean(axis=(-2, -1))
    return gt + 0.5 * eq


def superiority_ci(a: list[float], b: list[float], confidence: float = CONFIDENCE,
                   resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> tuple[float, float] | None:
    """Percentile bootstrap interval of :func:`prob_superiority` (groups resampled independently, like
    :func:`bootstrap_ci`); None with fewer than 2 values in a group."""
    if len(a) < 2 or len(b) < 2:
        return None
    import numpy as np
    from scipy.stats import bootstrap

    result = bootstrap((np.asarray(a, float), np.asarray(b, float)), _superiority, confidence_level=confidence,
                       n_resamples=resamples, method="percentile", rng=np.random.default_rng(seed), vectorized=True)
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


@dataclass(frozen=True)
class PairedDelta:
    """The same-seed difference: baseline and variant with the same seed share the data order and the
    augmentation, so variant − baseline per seed removes that part of the noise (not the initialisation's)."""

    delta: float  # mean over the shared seeds of (variant - baseline)
    ci: tuple[float, float] | None  # percentile bootstrap interval over those seeds (None: < 2 seeds or no spread)
    seeds: int  # seeds both models finished


def paired_delta(a: dict[int, float], b: dict[int, float], confidence: float = CONFIDENCE,
                 resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> PairedDelta | None:
    """:class:`PairedDelta` of ``a`` ({seed: value}) against ``b`` over the seeds both have; None when they share
    no seed."""
    shared = sorted(set(a) & set(b))
    if not shared:
        return None
    diffs = [a[s] - b[s] for s in shared]
    ci = None
    if len(diffs) >= 2 and max(diffs) - min(diffs) > 1e-12:  # equal up to rounding: an interval would claim certainty
        import numpy as np
        from scipy.stats import bootstrap

        result = bootstrap((np.asarray(diffs, float),), np.mean, confidence_level=confidence, n_resamples=resamples,
                           method="percentile", rng=np.random.default_rng(seed), vectorized=True)
        ci = (float(result.confidence_interval.low), float(result.confidence_interval.high))
    return PairedDelta(statistics.fmean(diffs), ci, len(diffs))


def pooled_sd(a: list[float], b: list[float]) -> float | None:
    """sqrt(((n_a-1)s_a² + (n_b-1)s_b²) / (n_a+n_b-2)); None with fewer than 2 values in a group."""
    if len(a) < 2 or len(b) < 2:
        return None
    return math.sqrt(((len(a) - 1) * statistics.variance(a) + (len(b) - 1) * statistics.variance(b))
                     / (len(a) + len(b) - 2))


def hedges_g(a: list[float], b: list[float]) -> float | None:
    """Hedges' g of a against b (statsmodels' bias-corrected SMD); None without spread."""
    if not _spread(a, b):
        return None
    from statsmodels.stats.meta_analysis import effectsize_smd

    g, _ = effectsize_smd(statistics.fmean(a), statistics.stdev(a), len(a),
                          statistics.fmean(b), statistics.stdev(b), len(b))
    return float(g)


def min_detectable_delta(sd: float, n_a: int, n_b: int, alpha: float = ALPHA, power: float = POWER) -> float:
    """Smallest |Δ| (the metric's units) a two-sided two-sample t-test detects with ``power``, for seed
    standard deviation ``sd`` and ``n_a``/``n_b`` seeds (each >= 2)."""
    from statsmodels.stats.power import TTestIndPower

    d = TTestIndPower().solve_power(effect_size=None, nobs1=n_a, alpha=alpha, power=power, ratio=n_b / n_a,
                                    alternative="two-sided")
    return float(d) * sd


def seeds_needed(delta: float, sd: float, alpha: float = ALPHA, power: float = POWER) -> int:
    """Seeds per model (baseline and variant alike) for a two-sided t-test to detect ``delta`` with ``power``.

    Raises ValueError when ``delta`` or ``sd`` is not positive.
    """
    if delta <= 0 or sd <= 0:
        raise ValueError(f"need a positive Δ and seed standard deviation, got Δ={delta}, σ={sd}")
    from statsmodels.stats.power import TTestIndPower

    n = TTestIndPower().solve_power(effect_size=delta / sd, nobs1=None, alpha=alpha, power=power, ratio=1.0,
                                    alternative="two-sided")
    return max(2, math.ceil(float(n)))


def holm(pvalues: list[float | None]) -> list[float | None]:
    """Holm-adjusted p-values (statsmodels); None entries are not part of the family and stay None."""
    tested = [p for p in pvalues if p is not None]
    if not tested:
        return list(pvalues)
    from statsmodels.stats.multitest import multipletests

    adjusted = iter(multipletests(tested, alpha=ALPHA, method="holm")[1])
    return [None if p is None else float(next(adjusted)) for p in pvalues]


def _verdict(delta: float, ci, p_holm: float | None, detectable: float | None, n: int, n_base: int) -> str:
    if min(n, n_base) < 2:
        return "n/a (1 seed)"
    if p_holm is None:
        return "n/a (no spread)"
    if p_holm < ALPHA and ci is not None and not ci[0] <= 0 <= ci[1]:
        return "better" if delta > 0 else "worse"
    return f"not shown (could detect Δ ≥ {detectable:.3f})"


def compare_variants(variants: dict[str, list[float]], baseline: list[float]) -> dict[str, DeltaTest]:
    """Every variant's values against the baseline's, Holm-adjusted as one family (see the module docstring)."""
    names = list(variants)
    raw = [welch_p(variants[name], baseline) for name in names]
    tests = {}
    for name, p, p_adj in zip(names, raw, holm(raw)):
        values = variants[name]
        delta = statistics.fmean(values) - statistics.fmean(baseline) if values and baseline else None
        sd = pooled_sd(values, baseline)
        detectable = min_detectable_delta(sd, len(values), len(baseline)) if sd else None
        ci = bootstrap_ci(values, baseline)
        verdict = _verdict(delta, ci, p_adj, detectable, len(values), len(baseline)) if delta is not None else "n/a"
        tests[name] = DeltaTest(delta, ci, p, p_adj, hedges_g(values, baseline), detectable, verdict)
    return tests


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def run_problems(rows: list[ResultRow], planned: dict[str, list[int]],
                 failures: dict[tuple[str, int], str] | None = None) -> list[RunProblem]:
    """What keeps planned runs out of the statistics, in ``planned`` order.

    ``rows``: finished runs; ``planned``: {model: seeds}.
    A run is "diverged" when a metric or any per-epoch loss is NaN or inf, "missing" when it has no
    finished row (failed, interrupted or not run; ``failures`` gives the cause of a failed one by (model, seed)); a model with >= 2 seeds whose metrics are all
    identical is "identical" and stays in (its test is "n/a (no spread)"); the detail says whether the
    final losses are identical too (the seed does not take effect) or differ (the metric is too coarse).
    """
    finished = {(r.model, r.seed): r for r in rows}
    problems = []
    for model, seeds in planned.items():
        for seed in seeds:
            row = finished.get((model, seed))
            if row is None:
                detail = (failures or {}).get((model, seed)) or "no finished run: failed, interrupted or not run"
                problems.append(RunProblem(model, seed, "missing", detail))
                continue
            bad = [k for k in METRICS if not _finite(getattr(row, k))]
            bad += sorted({k for epoch in row.curve or [] for k, v in epoch.items()
                           if "loss" in k and not _finite(v)})
            if bad:
                problems.append(RunProblem(model, seed, "diverged", f"non-finite {', '.join(bad)}"))
        done = [finished[model, s] for s in seeds if (model, s) in finished]
        if len(done) >= 2 and len({tuple(getattr(r, k) for k in METRICS) for r in done}) == 1:
            losses = {tuple(sorted((k, v) for k, v in (r.curve or [{}])[-1].items() if "loss" in k)) for r in done}
            why = ("the seed does not take effect: the training losses are identical too" if len(losses) == 1 else
                   "the losses differ, so the seeds took effect; the metric does not resolve them (train longer)")
            problems.append(RunProblem(model, None, "identical", f"all {len(done)} seeds give the same metrics: {why}"))
    return problems


def summarize(rows: list[ResultRow], baseline: str, planned: dict[str, list[int]] | None = None) -> list[SummaryRow]:
    """One ``SummaryRow`` per model, in ``planned`` (else first-seen) order.

    Diverged runs are left out of every mean and test; a model's ``seeds`` counts the runs used and
    ``planned_seeds`` the runs planned.
    """
    planned = {model: list(seeds) for model, seeds in (planned or {}).items()}  # the caller's stays as it was
    for row in rows:
        planned.setdefault(row.model, [])
        if row.seed not in planned[row.model]:
            planned[row.model].append(row.seed)
    excluded = {(p.model, p.seed) for p in run_problems(rows, planned) if p.kind == "diverged"}
    by_model: dict[str, list[ResultRow]] = {model: [] for model in planned}
    for row in rows:
        if (row.model, row.seed) not in excluded:
            by_model[row.model].append(row)
    base_values = [getattr(r, PRIMARY) for r in by_model.get(baseline, [])]
    variants = {m: [getattr(r, PRIMARY) for r in runs] for m, runs in by_model.items() if m != baseline and runs}
    tests = compare_variants(variants, base_values) if base_values else {}
    summary = []
    for model, runs in by_model.items():
        if not runs:
            continue
        first = runs[0]  # model, cost and transfer are the same for every seed
        entry = {k: getattr(first, k) for k in ("model", "module", "where", "cost", "transferred", "total_tensors",
                                                "base_kept")}
        entry["seeds"], entry["planned_seeds"] = len(runs), len(planned[model])
        for metric in (*METRICS, *SIZE_METRICS):
            values = [getattr(r, metric) for r in runs if _finite(getattr(r, metric))]
            entry[f"{metric}_mean"], entry[f"{metric}_std"] = mean_std(values) if values else (None, None)
        if base_values:
            entry["delta_map50"] = entry["map50_mean"] - statistics.fmean(r.map50 for r in by_model[baseline])
        test = tests.get(model)
        if model == baseline:
            entry["verdict"] = "baseline"
        elif test is not None:
            entry.update(delta_map50_95=test.delta, delta_ci_low=test.ci[0] if test.ci else None,
                         delta_ci_high=test.ci[1] if test.ci else None, p_map50_95=test.p, p_holm=test.p_holm,
                         effect_size=test.effect_size, min_detectable_delta=test.min_detectable, verdict=test.verdict)
            values = [getattr(r, PRIMARY) for r in runs]
            superiority = superiority_ci(values, base_values)
            entry.update(p_better=prob_superiority(values, base_values),
                         p_better_ci_low=superiority[0] if superiority else None,
                         p_better_ci_high=superiority[1] if superiority else None)
            paired = paired_delta({r.seed: getattr(r, PRIMARY) for r in runs},
                                  {r.seed: getattr(r, PRIMARY) for r in by_model[baseline]})
            if paired is not None:
                entry.update(paired_delta=paired.delta, paired_ci_low=paired.ci[0] if paired.ci else None,
                             paired_ci_high=paired.ci[1] if paired.ci else None, paired_seeds=paired.seeds)
            if len(runs) < len(planned[model]):
                entry["verdict"] += f" ({len(runs)} of {len(planned[model])} seeds)"
        entry["train_s_mean"] = statistics.fmean(r.train_s for r in runs)
        summary.append(SummaryRow(**entry))
    return summary


def per_class(rows: list[ResultRow], models: list[str], problems: list[RunProblem]) -> list[ClassApRow]:
    """Per model (in ``models`` order) and class (first-seen order): AP@[.50:.95] mean and sample std over the
    seeds whose result has per-class AP; ``problems`` (:func:`run_problems`) names the diverged runs left out."""
    bad = {(p.model, p.seed) for p in problems if p.kind == "diverged"}
    classes = list(dict.fromkeys(c for r in rows for c in (r.ap_per_class or {})))
    out = []
    for model in models:
        runs = [r for r in rows if r.model == model and r.ap_per_class is not None and (r.model, r.seed) not in bad]
        for name in classes:
            values = [r.ap_per_class[name] for r in runs if _finite(r.ap_per_class.get(name))]
            if values:
                mean, std = mean_std(values)
                out.append(ClassApRow(model, name, mean, std, len(values)))
    return out


def pooled_seed_sd(summary: list[SummaryRow], metric: str = PRIMARY) -> tuple[float, int] | None:
    """(σ, models): the seed standard deviation of ``metric`` pooled over the models with >= 2 seeds
    (root mean of their variances, weighted by degrees of freedom); None when no model has a spread."""
    parts = [(s.seeds - 1, getattr(s, f"{metric}_std") ** 2) for s in summary
             if getattr(s, f"{metric}_std") is not None and s.seeds >= 2]
    dof = sum(d for d, _ in parts)
    if not dof or not any(v for _, v in parts):
        return None
    return math.sqrt(sum(d * v for d, v in parts) / dof), len(parts)
