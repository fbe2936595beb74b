"""The comparison's answer in words: one sentence per variant, first in the terminal and the report.

Each sentence says what the numbers support ("better", "worse", "no evidence of a gain", "nothing learned")
with the Δ and its interval, and, where the comparison could not decide, the exact command that would
(the user's own command with ``--seeds`` or ``--epochs`` changed; ``yoloattn demo`` becomes the
``yoloattn compare`` it runs, since the demo takes no ``--seeds``), with how many more runs it means and
about how long they take at this comparison's pace. Every printed command runs as printed (tested with
``--dry-run``). The verdicts are ``stats.py``'s; this module only words them.
"""

from __future__ import annotations

import shlex

from .rows import SummaryRow, with_interval
from .sequential import BETTER, CONTINUE, EQUIVALENT, WORSE, SequentialState
from .stats import POWER, pooled_seed_sd, seeds_needed

#: More seeds per model than this to resolve a Δ: say it is not worth resolving, rather than print the command.
MAX_SEEDS_WORTH_IT = 50
#: Without --target-delta, the Δ the advice aims at is the one seen, but never below this (mAP50-95).
SMALLEST_TARGET = 0.005


def rerun_command(command: str, out: str, **options: int | str) -> str:
    """``command`` (the user's ``yoloattn compare|demo ...`` line) with each ``--NAME VALUE`` of ``options`` set
    (names with underscores: ``seeds=38``), ``--dry-run`` dropped; ``demo`` becomes ``compare --out OUT`` (the
    demo's settings are compare's on the embedded demo preset, and its OUT keeps the finished runs)."""
    words = shlex.split(command)
    if len(words) < 2 or words[1] not in ("compare", "demo"):
        words = ["yoloattn", "compare", "--out", out]
    if words[1] == "demo":
        words[1] = "compare"
        if not any(w == "--out" or w.startswith("--out=") for w in words):
            words += ["--out", out]
    words = [w for w in words if w != "--dry-run"]
    for name, value in options.items():
        flag = "--" + name.replace("_", "-")
        kept, skip = [], False
        for word in words:
            if skip:
                skip = False
                continue
            if word == flag:
                skip = True
                continue
            if not word.startswith(flag + "="):
                kept.append(word)
        words = [*kept, flag, str(value)]
    return " ".join(shlex.quote(w) for w in words)


def _duration(seconds: float) -> str:
    minutes = seconds / 60
    if minutes < 90:
        return f"{max(1, round(minutes))} min"
    return f"{minutes / 60:.1f} h"


def _runs_cost(summary: list[SummaryRow], seeds: int, slots: int) -> str:
    """"about R more runs, ~T on this machine": every model to ``seeds`` seeds (finished seeds are reused)."""
    more = [(seeds - s.seeds, s.train_s_mean or 0.0) for s in summary if seeds > s.seeds]
    runs = sum(n for n, _ in more)
    seconds = sum(n * t for n, t in more) / max(1, slots)
    return f"about {runs} more runs, ~{_duration(seconds)} at this comparison's pace"


def _label(s: SummaryRow) -> str:
    return f"{s.module}@{s.where}" if s.module else s.model


def _interval(s: SummaryRow) -> str:
    return f"Δ mAP50-95 {with_interval(s.delta_map50_95, s.delta_ci_low, s.delta_ci_high)}"


def learned_nothing(s: SummaryRow) -> bool:
    """Every run of the model scored mAP50-95 0 (and mAP50 0): the training did not reach a detector."""
    return s.map50_95_mean == 0 and (s.map50_95_std or 0) == 0 and s.map50_mean == 0


def answer_lines(summary: list[SummaryRow], command: str, out: str, epochs: int, slots: int = 1,
                 target_delta: float | None = None, sequential: SequentialState | None = None) -> list[str]:
    """The answer, one line per variant (and one first line when nothing could be judged at all).

    ``summary``: ``stats.summarize``'s rows, the baseline's (verdict ``baseline``) included; ``command``: the
    command line that ran; ``out``: its OUT; ``epochs``: its epochs; ``slots``: runs it trains at a time
    (the time estimate); ``target_delta``: the Δ mAP50-95 the advice aims at (default: the Δ each variant showed);
    ``sequential``: with ``--until-decided``, the design's decisions, which the sentences then word.
    """
    base = next((s for s in summary if s.verdict == "baseline"), None)
    variants = [s for s in summary if s.verdict != "baseline"]
    if base is None or not variants:
        return []
    if learned_nothing(base) and all(learned_nothing(s) for s in variants):
        longer = rerun_command(command, out, epochs=max(2 * epochs, epochs + 10))
        return [f"Nothing was learned: every run of every model has mAP50-95 0.000, so no module can be judged. "
                f"Train longer, at a larger --imgsz or on more data, e.g. `{longer}`."]
    pooled = pooled_seed_sd(summary)
    lines = []
    for s in variants:
        label, vs = _label(s), base.model
        if learned_nothing(s):
            lines.append(f"{label}: nothing learned (every run has mAP50-95 0.000 while {vs} has "
                         f"{base.map50_95_mean:.3f}): it trains slower or not at all at these settings; try more "
                         f"epochs: `{rerun_command(command, out, epochs=max(2 * epochs, epochs + 10))}`.")
            continue
        if sequential is not None and s.model in sequential.decisions:
            lines.append(_sequential_sentence(s, vs, sequential, command, out))
            continue
        if s.verdict.startswith(("better", "worse")):
            word = "better" if s.verdict.startswith("better") else "worse"
            chance = f", P(better) {s.p_better:.2f}" if s.p_better is not None else ""
            lines.append(f"{label}: {word} than {vs} ({_interval(s)}{chance}; Welch, Holm-adjusted p "
                         f"{s.p_holm:.3f}).")
            continue
        if s.verdict.startswith("n/a (1 seed)"):
            seeds = 3
            lines.append(f"{label}: {_interval(s)} from one seed per model, which no test can judge. For a first "
                         f"answer: `{rerun_command(command, out, seeds=seeds)}` "
                         f"({_runs_cost(summary, seeds, slots)}).")
            continue
        if s.verdict.startswith("n/a"):
            lines.append(f"{label}: every seed gave the same mAP50-95, so there is no spread to test against; "
                         f"train longer so that seeds differ: `{rerun_command(command, out, epochs=2 * epochs)}`.")
            continue
        # not shown
        gain = "gain" if (s.delta_map50_95 or 0) >= 0 else "loss"
        seen = f"these {s.seeds} seeds could only have seen Δ ≥ {s.min_detectable_delta:.3f}" \
            if s.min_detectable_delta else "these seeds could not resolve it"
        sentence = f"{label}: no evidence of a {gain} ({_interval(s)}); {seen}."
        aim = target_delta if target_delta else max(abs(s.delta_map50_95 or 0.0), SMALLEST_TARGET)
        if pooled is not None and s.min_detectable_delta and aim < s.min_detectable_delta:
            needed = seeds_needed(aim, pooled[0])
            if needed > MAX_SEEDS_WORTH_IT:
                sentence += (f" Resolving Δ {aim:.3f} would take about {needed} seeds per model (power {POWER}): "
                             "a difference that small is not worth the compute; read it as no practical difference.")
            else:
                sentence += (f" To resolve Δ {aim:.3f}: `{rerun_command(command, out, seeds=needed)}` "
                             f"({_runs_cost(summary, needed, slots)}).")
        lines.append(sentence)
    return lines


def _sequential_sentence(s: SummaryRow, vs: str, state: SequentialState, command: str, out: str) -> str:
    """A variant's answer under adaptive seeds: AdaStop's decision, not the fixed-design test."""
    design, d = state.design, state.decisions[s.model]
    test = f"AdaStop group-sequential test, family-wise error ≤ {design.alpha:g}"
    label = _label(s)
    if d.outcome in (BETTER, WORSE):
        chance = f", P(better) {s.p_better:.2f}" if s.p_better is not None else ""
        return f"{label}: {d.outcome} than {vs} ({_interval(s)}{chance}; {test}, decided after {d.seeds} seeds)."
    if d.outcome == EQUIVALENT:
        return (f"{label}: no difference ≥ {design.min_effect:g} from {vs} ({_interval(s)}; {test}, decided after "
                f"{d.seeds} seeds): whatever it changes is smaller than that.")
    if d.outcome == CONTINUE:
        return (f"{label}: not decided yet ({_interval(s)} after {d.seeds} seeds); rerun the same command to train "
                f"the next batch (finished runs are reused): `{rerun_command(command, out)}`.")
    # undecided at the design's last interim
    shown = (f"neither a difference nor its absence (no difference ≥ {design.min_effect:g}) was shown"
             if design.min_effect else "neither a gain nor a loss was shown (--min-effect D would also let the "
                                       "test stop on 'no difference ≥ D')")
    return (f"{label}: undecided after {d.seeds} seeds per model ({_interval(s)}): {shown}. Any effect is too small "
            f"for this design to resolve; a larger --max-seeds is a new design, to be chosen before seeing these "
            f"numbers (docs/compare.md, Adaptive seeds).")
