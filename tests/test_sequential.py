"""Adaptive seeds (``compare/sequential.py``): AdaStop's decisions on per-seed values, through ``decide``.

The error rates and run counts of the design are a simulation (benchmarks/sequential.py, docs/compare.md),
not a test; these check what a comparison relies on: decisions, when a variant stops, the replay, the options.
"""

from __future__ import annotations

import numpy as np
import pytest

from yoloattn.compare import CompareError
from yoloattn.compare.sequential import (BETTER, CONTINUE, EQUIVALENT, NOTHING, UNDECIDED, WORSE,
                                         SequentialDesign, decide)

DESIGN = SequentialDesign(batch=3, interims=4)


def values(mean: float, n: int = 12, seed: int = 0, sd: float = 0.01) -> list[float]:
    return list(np.random.default_rng(seed).normal(mean, sd, n))


def test_a_clear_gain_and_a_clear_loss_are_decided_early_and_stop():
    state = decide(DESIGN, values(0.30, seed=1), {"gain": values(0.40, seed=2), "loss": values(0.20, seed=3)})
    assert state.decisions["gain"].outcome == BETTER and state.decisions["loss"].outcome == WORSE
    # 3 + 3 seeds have only 20 permutations, too few for the first interim's share of α: decided at the second
    assert {d.seeds for d in state.decisions.values()} == {6} and {d.interim for d in state.decisions.values()} == {2}
    assert state.done and not state.next_seeds() and state.runs() == 18


def test_an_undecided_variant_asks_for_the_next_batch_and_values_beyond_a_decision_change_nothing():
    base, gain, null = values(0.30, seed=1), values(0.40, seed=2), values(0.30, seed=4)
    partial = decide(DESIGN, base[:6], {"gain": gain[:6], "null": null[:6]})
    assert partial.decisions["gain"].outcome == BETTER and partial.decisions["null"].outcome == CONTINUE
    assert partial.interims_done == 2 and partial.active() == ["null"] and partial.next_seeds() == range(6, 9)
    full = decide(DESIGN, base, {"gain": gain, "null": null})
    assert full.decisions["gain"] == partial.decisions["gain"]  # the later seeds of a stopped variant are not read
    assert full.interims_done == 4 and full.decisions["null"].outcome in (UNDECIDED, BETTER, WORSE)
    assert full.decisions["null"].seeds == (12 if full.decisions["null"].outcome == UNDECIDED
                                            else 3 * full.decisions["null"].interim)


def test_min_effect_stops_a_variant_that_differs_by_less_than_d():
    design = SequentialDesign(batch=3, interims=4, min_effect=0.05)
    state = decide(design, values(0.30, seed=1), {"same": values(0.30, seed=5)})
    assert state.decisions["same"].outcome == EQUIVALENT and state.decisions["same"].seeds < 12
    assert state.decisions["same"].text(0.05).startswith("no difference ≥ 0.05 (sequential,")
    without = decide(DESIGN, values(0.30, seed=1), {"same": values(0.30, seed=5)})
    assert without.decisions["same"].outcome != EQUIVALENT  # without D the test cannot accept


def test_the_design_options_are_checked_with_the_fix():
    assert SequentialDesign.from_options(3, None, None) == SequentialDesign(3, 4)
    assert SequentialDesign.from_options(2, 10, 0.01).max_seeds == 10
    with pytest.raises(CompareError, match=r"multiple of --seeds .* --max-seeds 10 with --seeds 3; e.g. --max-seeds 12"):
        SequentialDesign.from_options(3, 10, None)
    with pytest.raises(CompareError, match="at least two batches"):
        SequentialDesign.from_options(3, 3, None)
    with pytest.raises(CompareError, match=r"--min-effect is a Δ mAP50-95 in \(0, 1\)"):
        SequentialDesign.from_options(3, 12, 1.5)
    # one seed per batch: 2, 4, 8, 16 orderings, never a tail as small as α/2
    with pytest.raises(CompareError, match="--seeds 1 per batch with --max-seeds 4 can never decide"):
        SequentialDesign.from_options(1, None, None)
    assert SequentialDesign(3, 4).earliest_interim() == 2
    assert "cannot save a seed" in SequentialDesign(2, 3).describe()  # decides at its last batch only
    assert "cannot save a seed" not in SequentialDesign(2, 4).describe()


def test_runs_that_learned_nothing_stop_the_variant_instead_of_proving_no_difference():
    design = SequentialDesign(batch=3, interims=4, min_effect=0.02)
    state = decide(design, [0.0] * 12, {"v": [0.0] * 12, "learned": values(0.05, seed=3)})
    assert state.decisions["v"].outcome == NOTHING and state.decisions["v"].seeds == 3
    assert state.decisions["learned"].outcome != NOTHING  # the baseline at 0 and a variant above it is a result


def _script(name: str):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"{name}_benchmark", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_docs_simulation_table_is_the_committed_run_and_holds_what_the_docs_claim():
    import json

    script = _script("sequential")
    data = json.loads(script.RESULTS.read_text())
    assert f"{script.MARK}\n{script.render(data)}\n<!-- end -->" in script.DOC.read_text()
    assert all(row["simulations"] >= 1000 for row in data["rows"]) and set(script.SETTINGS) == {
        row["setting"] for row in data["rows"]}
    for row in data["rows"]:  # the claim of docs/compare.md: the family-wise error at α (within two s.e.)
        assert row["fwer"] <= data["alpha"] + 2 * row["fwer_se"], row


def test_the_readme_and_docs_demo_answers_are_the_committed_reports():
    script = _script("demo")
    assert len(script.BLOCKS) == 3
    for doc, mark, name in script.BLOCKS:
        block = script.answer_block(script.RESULTS / name / "report.md")
        assert f"{mark}\n{block}\n<!-- end -->" in (script.ROOT / doc).read_text(), doc
