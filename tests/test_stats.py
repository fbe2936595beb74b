"""The comparison's statistics against hand-computed values, known distributions and textbook formulas."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest
from scipy.stats import norm, ttest_ind

from yoloattn.compare import report
from yoloattn.compare.rows import CostRow, ResultRow, SummaryRow
from yoloattn.compare.stats import (bootstrap_ci, compare_variants, hedges_g, holm, min_detectable_delta,
                                    pooled_seed_sd, run_problems, seeds_needed, summarize, welch_p)


def test_holm_matches_the_step_down_rule_by_hand():
    p = [0.01, 0.04, 0.03, 0.005]
    # sorted: 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1=0.04 -> running max 0.02, 0.03, 0.06, 0.06
    assert holm(p) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.2, None, 0.01]) == pytest.approx([0.2, None, 0.02])  # None is not part of the family
    assert holm([None]) == [None]


def test_welch_p_is_scipys_and_undefined_without_spread():
    a, b = [0.21, 0.25, 0.23], [0.18, 0.17, 0.19, 0.18]
    assert welch_p(a, b) == pytest.approx(ttest_ind(a, b, equal_var=False).pvalue, rel=1e-12)
    assert welch_p([0.2], [0.1, 0.3]) is None and welch_p([0.1, 0.1], [0.2, 0.2]) is None


def test_hedges_g_by_hand():
    a, b = [1.0, 2.0, 3.0], [0.5, 1.0, 1.2]
    sp = math.sqrt((statistics.variance(a) + statistics.variance(b)) / 2)
    d = (statistics.fmean(a) - statistics.fmean(b)) / sp
    assert hedges_g(a, b) == pytest.approx(d * (1 - 3 / (4 * 6 - 9)), rel=1e-9)


def test_min_detectable_delta_tends_to_the_normal_approximation():
    sd = 0.01
    for n in (50, 200):
        normal = (norm.ppf(0.975) + norm.ppf(0.8)) * sd * math.sqrt(2 / n)
        assert min_detectable_delta(sd, n, n) == pytest.approx(normal, rel=0.02)
    # few seeds: the t-distribution's heavier tails make it larger than the normal formula (issue's numbers)
    assert min_detectable_delta(sd, 3, 3) == pytest.approx(0.031, abs=5e-4)
    assert min_detectable_delta(sd, 5, 5) == pytest.approx(0.020, abs=5e-4)
    assert min_detectable_delta(sd, 3, 3) > (norm.ppf(0.975) + norm.ppf(0.8)) * sd * math.sqrt(2 / 3)


def test_seeds_needed_inverts_the_detectable_delta():
    n = seeds_needed(0.02, 0.01)
    assert min_detectable_delta(0.01, n, n) <= 0.02 < min_detectable_delta(0.01, n - 1, n - 1)
    with pytest.raises(ValueError, match="positive"):
        seeds_needed(0.0, 0.01)


def test_bootstrap_interval_covers_the_true_delta_about_95_percent_of_the_time():
    rng = np.random.default_rng(1)
    true_delta, hits, trials = 0.5, 0, 200
    for _ in range(trials):
        a, b = rng.normal(true_delta, 1.0, 40), rng.normal(0.0, 1.0, 40)
        low, high = bootstrap_ci(list(a), list(b), resamples=999, seed=int(rng.integers(1 << 31)))
        hits += low <= true_delta <= high
    assert 0.88 <= hits / trials <= 0.99  # percentile bootstrap: close to nominal at n = 40
    assert bootstrap_ci([0.1], [0.2, 0.3]) is None
    assert bootstrap_ci([0.2, 0.2], [0.1, 0.1]) is None  # no spread: no interval, not a zero-width one


def test_verdicts_need_holm_and_an_interval_excluding_zero():
    baseline = [0.100, 0.102, 0.098, 0.101, 0.099]
    variants = {"clear": [0.150, 0.152, 0.148, 0.151, 0.149], "worse": [0.050, 0.052, 0.048, 0.051, 0.049],
                "noise": [0.101, 0.099, 0.103, 0.097, 0.100], "one seed": [0.2]}
    tests = compare_variants(variants, baseline)
    assert tests["clear"].verdict == "better" and tests["worse"].verdict == "worse"
    raw = [tests[name].p for name in ("clear", "worse", "noise")]  # the one-seed variant is not in the family
    assert [tests[name].p_holm for name in ("clear", "worse", "noise")] == pytest.approx(holm(raw))
    noise = tests["noise"]
    assert noise.verdict == f"not shown (could detect Δ ≥ {noise.min_detectable:.3f})"
    assert noise.ci[0] <= 0 <= noise.ci[1] and noise.min_detectable > 0
    assert tests["one seed"].verdict == "n/a (1 seed)" and tests["one seed"].ci is None


def test_a_raw_p_below_alpha_is_not_better_after_holm():
    baseline = [0.10, 0.11, 0.09]
    variants = {f"v{i}": [0.10, 0.11, 0.09] for i in range(4)}
    variants["edge"] = [0.125, 0.135, 0.115]  # raw p ~ 0.04, times 5 variants > 0.05
    tests = compare_variants(variants, baseline)
    edge = tests["edge"]
    assert edge.p < 0.05 and edge.p_holm >= 0.05 and edge.verdict.startswith("not shown")


COST = CostRow(params=1, gflops=1.0, latency_p50_ms=1.0, latency_p90_ms=1.2, latency_ort_p50_ms=0.8,
               latency_ort_p90_ms=0.9, peak_mem_mb=2.5, nc=5, efficiency=0.1, efficiency_ort=0.2,
               matmul_peak_gflops_s=50.0, threads=1, machine="test")


def row(model, seed, m, **extra):
    base = dict(model=model, module="" if model == "base" else "iRMB", where="" if model == "base" else "csp",
                seed=seed, cost=COST, map50=2 * m, map50_95=m, map50_95_small=m / 2, map50_95_medium=m,
                map50_95_large=None, precision=0.5, recall=0.5, train_s=10.0, threads=1, torch="2", ultralytics="8",
                epochs=1, imgsz=64, transferred=None, total_tensors=None, base_kept=None, host="node",
                run_key="key", run_dir="runs/x", curve=[{"epoch": 1, "train/box_loss": 3.0}])
    return ResultRow(**{**base, **extra})


def test_summary_means_stds_intervals_and_columns():
    rows = [row("base", 0, 0.10), row("base", 1, 0.12), row("v", 0, 0.15), row("v", 1, 0.19)]
    base, variant = summarize(rows, baseline="base")
    assert base.map50_95_mean == pytest.approx(0.11) and base.map50_95_std == pytest.approx(0.0141421, 1e-4)
    assert variant.delta_map50_95 == pytest.approx(0.06) and variant.delta_map50 == pytest.approx(0.12)
    assert base.verdict == "baseline" and variant.seeds == 2
    assert variant.delta_ci_low <= 0.06 <= variant.delta_ci_high
    assert variant.map50_95_small_mean == pytest.approx(0.085) and variant.map50_95_large_mean is None
    assert isinstance(variant, SummaryRow) and variant.cost is COST  # the model's cost travels with its summary
    assert base.delta_map50_95 is None and base.p_holm is None  # the baseline is not tested against itself
    single = summarize([row("base", 0, 0.1), row("v", 0, 0.2)], baseline="base")
    assert single[0].map50_95_std is None and single[1].verdict == "n/a (1 seed)"


def test_a_diverged_run_and_a_missing_seed_are_flagged_and_left_out():
    nan_loss = [{"epoch": 1, "train/box_loss": float("nan")}]
    rows = [row("base", s, 0.10 + 0.01 * s) for s in range(3)]
    rows += [row("v", 0, 0.20), row("v", 1, 0.21, curve=nan_loss)]  # seed 2 of v never finished
    planned = {"base": [0, 1, 2], "v": [0, 1, 2]}
    problems = run_problems(rows, planned)
    assert [(p.model, p.seed, p.kind) for p in problems] == [("v", 1, "diverged"), ("v", 2, "missing")]
    assert "train/box_loss" in problems[0].detail
    base, variant = summarize(rows, "base", planned)
    assert variant.seeds == 1 and variant.planned_seeds == 3 and variant.map50_95_mean == pytest.approx(0.20)
    assert variant.verdict == "n/a (1 seed) (1 of 3 seeds)"
    lines = report.problem_lines(problems)
    assert all("left out of the statistics" in line for line in lines) and "v s2: missing" in lines[1]


def test_identical_seeds_are_flagged():
    rows = [row("base", 0, 0.1), row("base", 1, 0.1), row("v", 0, 0.2), row("v", 1, 0.3)]
    problems = run_problems(rows, {"base": [0, 1], "v": [0, 1]})
    assert [(p.model, p.seed, p.kind) for p in problems] == [("base", None, "identical")]
    assert "seed does not take effect" in str(problems[0])
    rows[1] = row("base", 1, 0.1, curve=[{"epoch": 1, "train/box_loss": 2.9}])  # same metrics, other losses
    problems = run_problems(rows, {"base": [0, 1], "v": [0, 1]})
    assert "the seeds took effect; the metric does not resolve them" in str(problems[0])


def test_power_lines_state_the_detectable_delta_and_the_seeds_a_target_needs():
    rows = [row("base", s, 0.10 + 0.01 * (s - 1)) for s in range(3)] + [row("v", s, 0.12 + 0.01 * (s - 1)) for s in range(3)]
    summary = summarize(rows, "base")
    sd, models = pooled_seed_sd(summary)
    assert sd == pytest.approx(0.01) and models == 2
    lines = report.power_lines(summary, target_delta=0.01)
    assert "can detect Δ ≥ 0.031" in lines[0]
    assert f"{seeds_needed(0.01, 0.01)} seeds per model" in lines[1]
    single = report.power_lines(summarize([row("base", 0, 0.1), row("v", 0, 0.2)], "base"), target_delta=0.01)
    assert "1 seed per model" in single[0] and "pilot" in single[1]
    flat = report.power_lines(summarize([row(m, s, 0.0) for m in ("base", "v") for s in (0, 1)], "base"), 0.01)
    assert "gave the same mAP50-95" in flat[0] and "train longer" in flat[1]


def test_probability_of_superiority_counts_pairs_and_ties():
    from yoloattn.compare.stats import prob_superiority, superiority_ci

    a, b = [0.30, 0.32, 0.35], [0.29, 0.31, 0.30]
    by_hand = sum(1.0 if x > y else 0.5 if x == y else 0.0 for x in a for y in b) / 9
    assert prob_superiority(a, b) == pytest.approx(by_hand) == pytest.approx(7.5 / 9)
    assert prob_superiority(b, a) == pytest.approx(1 - by_hand)
    low, high = superiority_ci(a, b)
    assert 0 <= low <= by_hand <= high <= 1
    assert prob_superiority([0.1], b) is None and superiority_ci([0.1], b) is None


def test_the_paired_difference_uses_the_seeds_both_models_finished():
    from yoloattn.compare.stats import paired_delta

    variant, base = {0: 0.30, 1: 0.33, 2: 0.31}, {0: 0.28, 1: 0.30, 3: 0.50}
    paired = paired_delta(variant, base)
    assert paired.seeds == 2 and paired.delta == pytest.approx(0.025)  # seeds 0 and 1 only
    assert paired.ci[0] <= 0.025 <= paired.ci[1]
    assert paired_delta({0: 0.3}, {0: 0.2}).ci is None and paired_delta({0: 0.3}, {1: 0.2}) is None
    rows = [row("base", s, 0.10 + 0.01 * s) for s in range(3)] + [row("v", s, 0.12 + 0.01 * s) for s in range(3)]
    variant_row = summarize(rows, "base")[1]
    # the same seed's difference is +0.02 every time: no spread, so no interval, but the unpaired Δ has one
    assert variant_row.paired_delta == pytest.approx(0.02) and variant_row.paired_ci_low is None
    assert variant_row.delta_ci_low is not None and variant_row.p_better == pytest.approx(prob(rows))


def prob(rows) -> float:
    v = [r.map50_95 for r in rows if r.model == "v"]
    b = [r.map50_95 for r in rows if r.model == "base"]
    return sum(1.0 if x > y else 0.5 if x == y else 0.0 for x in v for y in b) / (len(v) * len(b))


def test_per_class_ap_is_a_mean_and_std_over_seeds_per_model_and_class():
    from yoloattn.compare.stats import per_class

    rows = [row("base", 0, 0.1, ap_per_class={"cat": 0.2, "dog": 0.4}), row("base", 1, 0.1, ap_per_class={"cat": 0.4}),
            row("v", 0, 0.2, ap_per_class={"cat": 0.5, "dog": 0.1}), row("v", 1, 0.2)]  # v s1: an older result.json
    found = {(r.model, r.class_name): (r.ap_mean, r.ap_std, r.seeds) for r in per_class(rows, ["base", "v"], [])}
    assert found[("base", "cat")] == (pytest.approx(0.3), pytest.approx(statistics.stdev([0.2, 0.4])), 2)
    assert found[("base", "dog")] == (0.4, None, 1) and found[("v", "cat")] == (0.5, None, 1)
    header, body = report.class_table(per_class(rows, ["base", "v"], []))
    assert header == ["class", "base", "v"] and body[0][0] == "cat" and body[1] == ["dog", "0.400", "0.100"]
    assert report.class_table([]) is None
    rows.append(row("v", 2, 0.3, ap_per_class={"cat": 0.9}, curve=[{"epoch": 1, "train/box_loss": float("nan")}]))
    kept = per_class(rows, ["v"], run_problems(rows, {"v": [0, 1, 2]}))
    assert [(r.class_name, r.ap_mean, r.seeds) for r in kept] == [("cat", 0.5, 1), ("dog", 0.1, 1)]  # s2 diverged


def test_the_worker_reads_per_class_ap_from_ultralytics_metrics():
    from types import SimpleNamespace

    from yoloattn.compare.worker import per_class_ap

    all_ap = np.array([[0.5] * 10, np.linspace(0.0, 0.9, 10)])  # two classes present, AP at 10 IoU thresholds
    metrics = SimpleNamespace(box=SimpleNamespace(all_ap=all_ap, ap_class_index=np.array([0, 3])),
                              names={0: "cat", 1: "dog", 2: "cow", 3: "owl"})
    assert per_class_ap(metrics) == {"cat": 0.5, "owl": pytest.approx(0.45)}
