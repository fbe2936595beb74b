"""``yoloattn compare`` from start to end: :func:`run_compare` reads top to bottom.

resolve (``resolve.py``: every default and check, once) -> plan (``plan.py``: data, variants, runs) ->
measure (``measure.py``: params, GFLOPs and batch-1 latency of each model, before any training, so a
variant that does not build fails in seconds) -> execute (:func:`execute`: the runs through the
executor the settings name, ``executors/``, with the retry loop) -> outputs (``outputs.py``: CSVs,
statistics, plots, heatmaps, report). What it says goes to listeners as events (``progress.py``).

A run is finished when its ``result.json`` exists under its key; unfinished run folders are deleted
and the run starts over, so rerunning the same command resumes. Runs execute on ``threads_per_run``
torch threads each (part of the key: the thread count changes the numbers, ``jobs`` does not).
Only one comparison should write to a given OUT at a time.
"""

from __future__ import annotations

import dataclasses
import shutil
import sys
import time
from pathlib import Path
from typing import Iterable, TextIO

from . import executors
from .executors import Executor
from .executors.process import log_tail
from .estimate import enabled as estimate_enabled
from .estimate import estimate_plan
from .int8 import block_rows, int8_rows
from .measure import format_duration, measure_all
from .outputs import result_rows, write_report
from .plan import PreparedData, RunSpec, plan_models, plan_runs, plan_variants, prepare_data, worker_spec
from .progress import Listener, Note, RunFailed, RunFinished, RunRetried, RunStarted, Status, TerminalProgress
from .records import RunAttempt, RunFailure, WorkerSpec
from .resolve import resolve
from .adaptive import until_decided
from .sequential import SequentialState
from .rows import SummaryRow
from .settings import CompareError, CompareSettings
from .stats import RunProblem

POLL_S = 1.0


@dataclasses.dataclass
class CompareOutcome:
    """What :func:`run_compare` did: the report's paths and summary, and which runs trained, were reused,
    failed (with why) or were retried."""

    out: Path
    report_md: Path | None = None
    report_html: Path | None = None
    summary: list[SummaryRow] = dataclasses.field(default_factory=list)
    trained: list[str] = dataclasses.field(default_factory=list)
    reused: list[str] = dataclasses.field(default_factory=list)
    failed: list[str] = dataclasses.field(default_factory=list)
    failures: list[RunFailure] = dataclasses.field(default_factory=list)  # why each failed run failed
    retried: list[str] = dataclasses.field(default_factory=list)  # one entry per retried attempt
    problems: list[RunProblem] = dataclasses.field(default_factory=list)  # missing / diverged / identical
    interrupted: bool = False
    dry_run: bool = False


class _Broadcast:
    """Sends each event to every listener."""

    def __init__(self, listeners: Iterable[Listener]):
        self.listeners = list(listeners)

    def __call__(self, event) -> None:
        for listener in self.listeners:
            listener(event)

    def say(self, text: str) -> None:
        self(Note(text))


def run_compare(settings: CompareSettings, command: str = "", stream: TextIO | None = None,
                dry_run: bool = False, target_delta: float | None = None,
                listeners: Iterable[Listener] = ()) -> CompareOutcome:
    """Run (or resume) a comparison and write its report; see the module docstring.

    ``stream``: where the terminal listener (``progress.TerminalProgress``) writes, default stdout;
    ``listeners``: more listeners of the same events (``progress.py``).
    ``target_delta``: also say how many seeds per model would detect a Δ mAP50-95 of that size, from
    this comparison's seed spread (a pilot run with 2-3 seeds is enough; rerunning with more seeds
    reuses its runs).
    ``dry_run``: check every option, prepare and check the dataset, write the model YAMLs and the plan
    (``OUT/models``, ``OUT/data``), print what would be trained and stop before measuring or training.

    Raises CompareError, ModelNameError, VariantError, WiringError, DatasetError (one line each, see
    ``resolve.resolve`` and ``plan.py``) before anything is trained.
    """
    stream = stream or sys.stdout
    terminal = TerminalProgress(stream)
    events = _Broadcast([terminal, *listeners])
    say = events.say

    resolved = resolve(settings, stream=stream)
    if resolved.sequential and target_delta is not None:
        raise CompareError("--target-delta plans a fixed number of seeds, --until-decided lets the test decide "
                           "them: drop one of the two")
    variants = plan_variants(resolved)  # an unknown placement stops here, before anything is written
    settings, out = resolved.settings, resolved.out
    out.mkdir(parents=True, exist_ok=True)
    models = plan_models(resolved, variants)
    if resolved.sequential:  # with the variants counted: each has its own test at α / hypotheses
        resolved.sequential.check(len(models) - 1)
    for line in variants.skipped:
        say(line)
    if settings.nms and not models[0].end_to_end:
        say(f"note: --nms changes nothing here: {variants.stem} has no end-to-end head (YOLO26 and YOLOv10 have one)")
    from ..integration.wiring import report_wiring

    for spec in models[1:]:
        report_wiring(spec.yaml_path, stream=stream, label=spec.label)
    data = prepare_data(settings, out)
    runs = plan_runs(settings, models, data, out)
    todo = [r for r in runs if not r.finished()]
    settings = executors.with_jobs(settings, len(todo))
    outcome = CompareOutcome(out, reused=[r.label for r in runs if r not in todo])
    sequential: SequentialState | None = None
    terminal.total = len(runs)

    say(f"data: {data.data_yaml} (evaluating on '{data.eval_split}'); models: "
        f"{', '.join(m.label for m in models)}; output: {out}")
    if data.report and data.report.skipped:
        say(f"data: going on without {len(data.report.skipped)} images that Ultralytics skips (--allow-skipped) "
            f"{data.report.describe_skipped()}")
    how = f", {resolved.executor.plan_text(settings)}" if todo else ""
    design = resolved.sequential
    first = "first batch: " if design else ""
    say(f"runs: {first}{len(runs)} ({len(runs) - len(todo)} already finished, {len(todo)} to train){how}")
    if design:
        say(f"{design.describe(len(models) - 1)}: at most {design.max_seeds * len(models)} runs")
    # a cluster is joined before the costs are measured (and in a dry run), so that a wrong address or a run
    # no node fits fails in seconds; a local pool starts after, so that its processes do not share the CPU
    # with the latency phase
    executor = executors.make_executor(settings, data.source) \
        if todo and resolved.executor.joins_cluster(settings) else None
    if todo and estimate_enabled():
        try:
            estimate = estimate_plan(models, todo, settings, data)
        except Exception as err:  # noqa: BLE001 - a calibration that fails must not stop the comparison
            say(f"estimate: not available ({type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''})")
        else:
            for line in estimate.lines(settings, len(todo), settings.execution.jobs):
                say(line)
            if design and estimate.total_s is not None:
                per_batch = sum(estimate.run_s.values()) * design.batch / max(1, settings.execution.jobs or 1)
                say(f"estimate: at least {format_duration(per_batch)} per batch of every model; up to "
                    f"{format_duration(per_batch * design.interims)} if no variant is decided before --max-seeds")
    if dry_run:
        if executor is not None:
            _describe(executor, say)
            executor.close()
        say("dry run: every option and the dataset are checked; no cost was measured and nothing was trained")
        outcome.dry_run = True
        return outcome
    try:
        costs = measure_all(models, settings.imgsz, data.nc, settings.latency_threads, out / "measure",
                            progress=say, nms=settings.nms, runtimes=settings.runtimes)
        for label, c in costs.items():
            timed = ", ".join(f"{t['p50_ms']:.1f} ms {name}" for name, t in c.latency.items())
            say(f"cost     {label}: {c.params / 1e6:.3f} M params ({_param_basis(data.nc)}), "
                f"{c.gflops:.3f} GFLOPs, {timed} at {settings.imgsz}px")
        if design is not None:
            pool = _Pool(executor, settings, data, say)

            def train(todo: list[RunSpec], done_before: int) -> None:
                execute(todo, data, settings, pool.get(), events, outcome, done_before)

            try:
                runs, sequential = until_decided(design, settings, models, data, out, train, say, outcome,
                                                 on_batch=terminal.new_batch)
            finally:
                executor = pool.executor
        elif todo:
            executor = executor or executors.make_executor(settings, data.source)
            _describe(executor, say)
            execute(todo, data, settings, executor, events, outcome, len(runs) - len(todo))
    finally:
        if executor is not None:
            executor.close()
    if outcome.interrupted:
        say("\ninterrupted: finished runs are kept; rerun the same command to resume")
        return outcome

    rows = result_rows([(run, result) for run in runs if (result := run.result()) is not None], costs, settings)
    if not rows:
        say("no finished runs: nothing to report")
        return outcome
    int8 = int8_rows(rows, models, data, settings, say) if settings.int8 else []
    blocks = block_rows(rows, data, settings, say) if settings.int8 else []
    report = write_report(resolved, models, runs, rows, costs, data, variants.where, command, target_delta, say,
                          int8=int8, blocks=blocks, sequential=sequential)
    outcome.summary, outcome.problems = report.summary, report.problems
    outcome.report_md, outcome.report_html = report.markdown, report.html
    for line in report.lines:
        say(line)
    if outcome.failed:
        say(f"\n{len(outcome.failed)} run(s) failed: {', '.join(outcome.failed)}; their logs are in {out / 'runs'}")
    return outcome


class _Pool:
    """The executor, made the first time a batch has runs to train (a resumed batch may have none)."""

    def __init__(self, executor: Executor | None, settings: CompareSettings, data: PreparedData, say):
        self.executor, self.settings, self.data, self.say = executor, settings, data, say
        self.described = False

    def get(self) -> Executor:
        if self.executor is None:
            self.executor = executors.make_executor(self.settings, self.data.source)
        if not self.described:
            _describe(self.executor, self.say)
            self.described = True
        return self.executor


def _param_basis(nc: int) -> str:
    from ..bench import param_basis

    return param_basis(True, nc)


def _describe(executor: Executor, say) -> None:
    text = executor.describe()
    if text:
        say(f"executor: {text}")


def execute(runs: list[RunSpec], data: PreparedData, settings: CompareSettings, executor: Executor,
            events: Listener, outcome: CompareOutcome, done_before: int) -> None:
    """Run ``runs`` through ``executor``, ``executor.capacity`` at a time, into ``outcome``; each start, end,
    retry and failure, and the status of the runs in flight every poll, go to ``events``.

    An attempt whose worker died (killed by a signal, out of memory, a lost Ray node) is started again,
    up to ``settings.execution.retries`` more times; one that failed by itself (an exception in training,
    a node without the dataset or a package) is not: the same settings would fail the same way. A run
    that does not finish gets ``failure.json`` (``records.RunFailure``) with its last cause. Ctrl-C cancels
    the runs in flight; finished runs stay.
    """
    retries = settings.execution.retries
    pending, running = list(runs), set()
    attempts: dict[RunSpec, int] = {}
    done = done_before
    try:
        while pending or running:
            while pending and len(running) < executor.capacity:
                run = pending.pop(0)
                attempts[run] = attempts.get(run, 0) + 1
                spec = worker_spec(run, data, settings)
                _fresh_run_dir(run, spec)
                executor.submit(run, spec)
                running.add(run)
            time.sleep(POLL_S)
            started, ended = executor.poll()
            for run, where in started:
                events(RunStarted(run, where))
            for run, attempt in ended:
                running.discard(run)
                _write_returned(run, attempt)
                result = run.result() if attempt.status == "finished" else None
                host = attempt.host if attempt.host and executor.names_hosts else ""
                if result is not None:
                    done += 1
                    outcome.trained.append(run.label)
                    events(RunFinished(run, result))
                elif attempt.status == "died" and attempts[run] <= retries:
                    outcome.retried.append(run.label)
                    events(RunRetried(run, attempt.cause, attempts[run], retries + 1, host))
                    pending.insert(0, run)
                else:
                    done += 1
                    cause = attempt.cause or ("no result.json under this run's key" if attempt.status == "finished"
                                              else attempt.status)
                    failure = RunFailure(run.model.label, run.seed, run.key, attempt.status, cause, attempts[run],
                                         attempt.host, attempt.exit_code)
                    failure.write(run.run_dir / "failure.json")
                    outcome.failed.append(run.label)
                    outcome.failures.append(failure)
                    tail = log_tail(run.run_dir) if attempt.status == "failed" else ""
                    events(RunFailed(run, failure, host, tail))
            states = [(run, executor.state(run)) for run in running]
            active = tuple((run, state) for run, state in states if state.get("phase") != "queued")
            events(Status(done, active, waiting=len(states) - len(active) + len(pending)))
    except KeyboardInterrupt:
        executor.cancel()
        outcome.interrupted = True


def _fresh_run_dir(run: RunSpec, spec: WorkerSpec) -> None:
    """An empty run folder with the attempt's spec.json: an interrupted or failed attempt starts clean."""
    if run.run_dir.exists():
        shutil.rmtree(run.run_dir)
    run.run_dir.mkdir(parents=True)
    spec.write(run.run_dir / "spec.json")


def _write_returned(run: RunSpec, attempt: RunAttempt) -> None:
    """Files a Ray worker without OUT's storage sent back, written into the run folder (result.json last:
    its presence marks the run finished)."""
    for relative, content in sorted(attempt.files.items(), key=lambda item: item[0] == "result.json"):
        path = run.run_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
