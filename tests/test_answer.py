"""The answer in words (compare/answer.py): one sentence per variant, and every command it prints runs."""

from __future__ import annotations

import shlex

import pytest

from yoloattn.cli import main
from yoloattn.compare.answer import MAX_SEEDS_WORTH_IT, answer_lines, rerun_command
from yoloattn.compare.stats import seeds_needed, summarize

from .test_stats import row


def _commands(lines: list[str]) -> list[str]:
    return [part for line in lines for i, part in enumerate(line.split("`")) if i % 2 and part.startswith("yoloattn")]


def test_rerun_command_changes_only_the_named_options_and_turns_demo_into_compare():
    assert rerun_command("yoloattn demo", "runs/demo", seeds=38) == "yoloattn compare --out runs/demo --seeds 38"
    assert rerun_command("yoloattn demo --out x --jobs 2", "x", seeds=5) == "yoloattn compare --out x --jobs 2 --seeds 5"
    changed = rerun_command("yoloattn compare --seeds 3 --epochs=10 --modules mlla --dry-run", "runs/compare",
                            seeds=9, epochs=20)
    assert changed == "yoloattn compare --modules mlla --seeds 9 --epochs 20"
    assert shlex.split(rerun_command("yoloattn compare --data 'my data.yaml'", "o", seeds=4))[3] == "my data.yaml"


def test_each_verdict_is_one_sentence_with_its_interval():
    better = [row("base", s, 0.10 + 0.001 * s) for s in range(3)] + [row("v", s, 0.20 + 0.001 * s) for s in range(3)]
    (line,) = answer_lines(summarize(better, "base"), "yoloattn compare", "runs/compare", 10)
    assert line.startswith("iRMB@csp: better than base (Δ mAP50-95 +0.100 [") and "P(better) 1.00" in line
    noisy = [row("base", s, 0.10 + 0.03 * (s - 1)) for s in range(3)] + \
            [row("v", s, 0.12 + 0.03 * (s - 1)) for s in range(3)]
    summary = summarize(noisy, "base")
    (line,) = answer_lines(summary, "yoloattn demo", "runs/demo", 10, target_delta=0.02)
    needed = seeds_needed(0.02, 0.03)
    assert line.startswith("iRMB@csp: no evidence of a gain (Δ mAP50-95 +0.020 [") and "could only have seen Δ ≥" in line
    assert f"To resolve Δ 0.020: `yoloattn compare --out runs/demo --seeds {needed}` (about {2 * (needed - 3)} more runs" in line
    tiny = answer_lines(summary, "yoloattn compare", "o", 10, target_delta=0.001)[0]
    assert f"about {seeds_needed(0.001, 0.03)} seeds per model" in tiny and "not worth" in tiny
    assert seeds_needed(0.001, 0.03) > MAX_SEEDS_WORTH_IT and "`" not in tiny
    (single,) = answer_lines(summarize([row("base", 0, 0.1), row("v", 0, 0.2)], "base"), "yoloattn compare", "o", 10)
    assert "one seed per model" in single and "`yoloattn compare --seeds 3`" in single


def test_nothing_learned_is_said_for_any_seed_count():
    for seeds in (1, 3):
        flat = [row(m, s, 0.0, map50=0.0) for m in ("base", "v") for s in range(seeds)]
        (line,) = answer_lines(summarize(flat, "base"), "yoloattn compare --epochs 1", "o", 1)
        assert line.startswith("Nothing was learned: every run of every model has mAP50-95 0.000")
        assert "`yoloattn compare --epochs 11`" in line
    one = [row("base", s, 0.1 + 0.01 * s) for s in range(2)] + [row("v", s, 0.0, map50=0.0) for s in range(2)]
    (line,) = answer_lines(summarize(one, "base"), "yoloattn compare", "o", 10)
    assert line.startswith("iRMB@csp: nothing learned") and "--epochs 20" in line


@pytest.mark.slow
def test_every_printed_command_runs_as_printed(tmp_path, monkeypatch):
    """The commands of the answer, including the demo's, with --dry-run: they plan without an error."""
    monkeypatch.chdir(tmp_path)
    noisy = [row("base", s, 0.10 + 0.03 * (s - 1)) for s in range(3)] + \
            [row("v", s, 0.12 + 0.03 * (s - 1)) for s in range(3)]
    lines = answer_lines(summarize(noisy, "base"), "yoloattn demo", "runs/demo", 10, target_delta=0.02)
    commands = _commands(lines)
    assert len(commands) == 1  # the demo's advice: the compare it runs (other commands only change --seeds/--epochs)
    for command in commands:
        assert main([*shlex.split(command)[1:], "--dry-run"]) == 0, command
