"""The batch loop of ``compare --until-decided``: plan the next batch of seeds, train it, replay the test.

``sequential.py`` decides from per-seed values; this module turns its decisions into runs: the baseline and
the undecided variants train the next batch (through the runner's ``execute``, so every executor and the
retry loop serve it), and the design is replayed on every finished run after each batch, so a rerun of
the same command continues where the last one stopped.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

from .plan import PreparedData, RunSpec, plan_runs
from .sequential import SequentialDesign, SequentialState, decide
from .settings import CompareSettings


def replay(design: SequentialDesign, settings: CompareSettings, models: list, data: PreparedData,
           out: Path) -> tuple[SequentialState, list[RunSpec]]:
    """The sequential design replayed on the finished runs (each model's seeds from 0 up to the first one
    without a finite mAP50-95), and the runs its decisions rest on."""
    # one plan of every run the design could need: planning keys each run (and builds the models for --freeze)
    planned = plan_runs(settings, models, data, out, range(design.max_seeds))
    by_model = {spec.label: [run for run in planned if run.model.label == spec.label] for spec in models}
    values: dict[str, list[float]] = {}
    for label, runs in by_model.items():
        values[label] = []
        for run in runs:  # seed order
            result = run.result()
            if result is None or not math.isfinite(result.map50_95):
                break
            values[label].append(result.map50_95)
    baseline = models[0].label
    state = decide(design, values[baseline], {spec.label: values[spec.label] for spec in models[1:]})
    seeds = {baseline: state.interims_done * design.batch,
             **{name: d.seeds for name, d in state.decisions.items()}}
    used = [run for spec in models for run in by_model[spec.label][:seeds[spec.label]]]
    return state, used


def until_decided(design: SequentialDesign, settings: CompareSettings, models: list, data: PreparedData, out: Path,
                  train: Callable[[list[RunSpec], int], None], say: Callable[[str], None], outcome,
                  on_batch: Callable[[int], None] = lambda runs: None) -> tuple[list[RunSpec], SequentialState]:
    """Adaptive seeds: train the next batch of seeds of the baseline and the undecided variants, replay the
    design (``sequential.decide``) on every finished run, repeat until each variant is decided or the
    design's last interim; a rerun replays the finished batches first and trains only what is missing.

    ``train(runs, done_before)``: trains runs into ``outcome`` (``runner.CompareOutcome``: trained, failed,
    interrupted); ``say``: a line for the terminal and listeners; ``on_batch(n)``: a batch starts, n = the runs trained so far and the batch's (the terminal's count).
    Returns the runs the decisions rest on and the final state. Stops early (saying why) when a run of a
    batch fails or diverges: the test needs every run of a batch; rerunning the same command retries it.
    """
    said = 0
    while True:
        state, used = replay(design, settings, models, data, out)
        for k in range(said, state.interims_done):
            say(_interim_line(state, k + 1))
        said = state.interims_done
        seeds = state.next_seeds()
        if not seeds or outcome.interrupted:
            return used, state
        active = [models[0], *(spec for spec in models[1:] if spec.label in state.active())]
        batch = plan_runs(settings, active, data, out, seeds)
        todo = [r for r in batch if not r.finished()]
        if not todo:  # every run of the batch finished, yet the replay stopped before it: one diverged
            say(f"adaptive seeds: stopped before seeds {seeds.start}-{seeds.stop - 1}: a run of the batch "
                "has no finite mAP50-95 (diverged); the report gives the decisions so far")
            return used, state
        say(f"adaptive seeds: batch {state.interims_done + 1} of at most {design.interims}: seeds "
            f"{seeds.start}-{seeds.stop - 1} of {', '.join(spec.label for spec in active)} ({len(todo)} to train)")
        failed, before = len(outcome.failed), len(outcome.trained) + len(outcome.failed)
        on_batch(before + len(todo))
        train(todo, before)
        if len(outcome.failed) > failed:
            say("adaptive seeds: stopped: a run of this batch failed, and the test needs every run of a "
                "batch; rerun the same command to retry it (finished runs are kept)")
            state, used = replay(design, settings, models, data, out)
            return used, state


def _interim_line(state: SequentialState, interim: int) -> str:
    """What interim ``interim`` decided, e.g. "interim 2 (6 seeds per model): yolov8n-mlla-csp better; still
    running: yolov8n-irmb-csp"."""
    design, parts, going = state.design, [], []
    for name, d in state.decisions.items():
        if d.interim == interim:
            parts.append(f"{name} {d.verdict(design.min_effect)}")
        elif d.interim == 0 or d.interim > interim:
            if interim == design.interims:
                parts.append(f"{name} undecided")
            elif d.seeds > (interim - 1) * design.batch or d.interim > interim:
                going.append(name)
    words = "; ".join(parts) if parts else "nothing decided"
    if going:
        words += f"; still running: {', '.join(going)}"
    return f"interim {interim} ({interim * design.batch} seeds per model): {words}"
