"""The comparison driver through its public seams: a fake executor registered in the executor table (no
training: it writes each run's result itself), and a listener that records every progress event.

The fake proves the executor seam: the runner asks it for its options, capacity and plan line, retries
an attempt it reports as died, records one it reports as failed, and reports the rest, without naming it.
"""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path

import pytest

from yoloattn.compare import CompareError, CompareSettings, ExecutionSettings, executors, resolve, run_compare
from yoloattn.compare.progress import Note, RunFailed, RunFinished, RunRetried, RunStarted, Status
from yoloattn.compare.records import RunAttempt, RunEnv, RunResult

SETTINGS = CompareSettings(preset="tiny", base="yolov8n", modules=("iRMB",), where="sppf", epochs=1, seeds=2, imgsz=64,
                           threads_per_run=1, execution=ExecutionSettings(executor="fake"))


class FakeExecutor:
    """Implements ``executors.Executor``: every attempt ends at the next poll. The variant's seed 1 dies on
    its first attempt, the baseline's seed 1 fails; the others finish with a result it writes itself."""

    options = ()
    summary = "the fake executor of the tests"
    names_hosts = True
    joins = False
    instances: list[FakeExecutor] = []

    def __init__(self, settings, data):
        self.settings, self.data = settings, data
        self.capacity = settings.execution.jobs
        self.submitted, self.closed, self._ended = [], False, []
        FakeExecutor.instances.append(self)

    @classmethod
    def check(cls, settings):
        if settings.execution.retries > 5:
            raise CompareError(f"--retries {settings.execution.retries}: the fake executor retries at most 5 times")

    @classmethod
    def default_capacity(cls, settings, runs):
        return 3

    @classmethod
    def joins_cluster(cls, settings):
        return cls.joins

    @classmethod
    def plan_text(cls, settings):
        return f"through the fake, {settings.execution.jobs} at a time"

    def describe(self):
        return "the fake pool"

    def submit(self, run, spec):
        assert json.loads((run.run_dir / "spec.json").read_text())["attempt"] == spec.attempt
        assert len(self._ended) < self.capacity  # the runner keeps to capacity
        attempt = sum(1 for r in self.submitted if r == run.label) + 1
        self.submitted.append(run.label)
        if run.seed == 1 and run.model.module and attempt == 1:
            self._ended.append((run, RunAttempt("died", "killed (SIGKILL)", host="node-2", exit_code=-9)))
        elif run.seed == 1 and not run.model.module:
            self._ended.append((run, RunAttempt("failed", "boom", host="node-3", exit_code=1)))
        else:
            env = RunEnv(1, "cpu", "3", "torch", "ultralytics", "numpy", "yoloattn", "machine", "node-1")
            metric = 0.1 + 0.01 * run.seed + (0.02 if run.model.module else 0.0)
            result = RunResult(run.key, run.model.label, run.seed, 2 * metric, metric, 0.5, 0.5, None, None, None,
                               (0, 0, 0), 1.0, env, str(run.run_dir / "missing.pt"))
            result.write(run.result_path)
            self._ended.append((run, RunAttempt("finished", host="node-1")))

    def poll(self):
        ended, self._ended = self._ended, []
        return [(run, "on fake") for run, _ in ended], ended

    def state(self, run):
        return {"phase": "train", "epoch": 1, "epochs": 1, "batch": 1, "batches": 2}

    def cancel(self):
        self._ended = []

    def close(self):
        self.closed = True


@pytest.fixture
def fake(monkeypatch):
    monkeypatch.setitem(executors.EXECUTORS, "fake", f"{__name__}:FakeExecutor")
    monkeypatch.setattr("yoloattn.compare.runner.POLL_S", 0.0)
    FakeExecutor.instances.clear()
    FakeExecutor.joins = False
    return FakeExecutor


def test_a_comparison_through_a_fake_executor_retries_records_and_reports(fake, tmp_path):
    events = []
    stream = io.StringIO()
    settings = dataclasses.replace(SETTINGS, out=str(tmp_path))
    outcome = run_compare(settings, stream=stream, listeners=[events.append])

    (executor,) = fake.instances
    assert executor.capacity == 3 and executor.closed  # the fake's default capacity; closed at the end
    assert sorted(outcome.trained) == ["yolov8n s0", "yolov8n-irmb-sppf s0", "yolov8n-irmb-sppf s1"]
    assert outcome.retried == ["yolov8n-irmb-sppf s1"] and outcome.failed == ["yolov8n s1"]
    assert executor.submitted.count("yolov8n-irmb-sppf s1") == 2 and executor.submitted.count("yolov8n s1") == 1

    kinds = [type(e) for e in events]
    assert kinds.count(RunStarted) == 5 and kinds.count(RunFinished) == 3 and Status in kinds
    (retried,) = [e for e in events if isinstance(e, RunRetried)]
    assert (retried.run.label, retried.attempt, retried.attempts, retried.host) == ("yolov8n-irmb-sppf s1", 1, 3, "node-2")
    (failed,) = [e for e in events if isinstance(e, RunFailed)]
    assert (failed.failure.cause, failed.failure.status, failed.host) == ("boom", "failed", "node-3")
    notes = [e.text for e in events if isinstance(e, Note)]
    assert "runs: 4 (0 already finished, 4 to train), through the fake, 3 at a time" in notes
    assert "executor: the fake pool" in notes
    # the terminal listener saw the same events
    text = stream.getvalue()
    assert "RETRY    yolov8n-irmb-sppf s1 on node-2: killed (SIGKILL); attempt 2 of 3" in text
    assert "FAILED   yolov8n s1 on node-3 after 1 attempt(s): boom" in text

    assert (tmp_path / "report.md").is_file() and (tmp_path / "runs").is_dir()
    assert [p.parent.name.split("-s1-")[0] for p in (tmp_path / "runs").glob("*/failure.json")] == ["yolov8n"]
    assert {row.model for row in outcome.summary} == {"yolov8n", "yolov8n-irmb-sppf"}
    assert any("yolov8n" in str(p) and "failed on node-3" in str(p) for p in outcome.problems)

    again = run_compare(settings, stream=io.StringIO())
    assert again.reused == ["yolov8n s0", "yolov8n-irmb-sppf s0", "yolov8n-irmb-sppf s1"]
    assert fake.instances[-1].submitted == ["yolov8n s1"]  # only the failed run is tried again


def test_the_executor_checks_its_own_options_and_refuses_another_executors(fake, tmp_path):
    settings = dataclasses.replace(SETTINGS, out=str(tmp_path))
    with pytest.raises(CompareError, match="the fake executor retries at most 5 times"):
        resolve(dataclasses.replace(settings, execution=dataclasses.replace(settings.execution, retries=6)))
    ray_option = dataclasses.replace(settings.execution, ray_address="auto")
    with pytest.raises(CompareError, match=r"^--ray-address is an option of --executor ray: add --executor ray, or "
                                           r"drop it \(the fake executor of the tests\)$"):
        resolve(dataclasses.replace(settings, execution=ray_option))
    with pytest.raises(CompareError, match="--executor must be one of local, ray, fake, got 'slurm'"):
        resolve(dataclasses.replace(settings, execution=ExecutionSettings(executor="slurm")))


def test_an_executor_that_joins_a_cluster_is_made_before_measuring_even_in_a_dry_run(fake, tmp_path):
    fake.joins = True
    events = []
    run_compare(dataclasses.replace(SETTINGS, out=str(tmp_path)), stream=io.StringIO(), dry_run=True,
                listeners=[events.append])
    (executor,) = fake.instances
    assert executor.closed and executor.submitted == []
    assert [e.text for e in events if isinstance(e, Note)][-2:] == [
        "executor: the fake pool", "dry run: every option and the dataset are checked; no cost was measured and nothing was trained"]
    assert not (Path(tmp_path) / "measure").exists()


class MetricFake(FakeExecutor):
    """Every attempt finishes; mAP50-95 by model: the baseline ~0.30, iRMB ~0.40 (a clear gain), MLLA ~0.30."""

    def submit(self, run, spec):
        import random

        self.submitted.append(run.label)
        shift = {"iRMB": 0.10, "MLLA": 0.0}.get(run.model.module, 0.0)
        metric = 0.30 + shift + random.Random(f"{run.model.label}-{run.seed}").gauss(0, 0.01)
        env = RunEnv(1, "cpu", "3", "torch", "ultralytics", "numpy", "yoloattn", "machine", "node-1")
        RunResult(run.key, run.model.label, run.seed, 2 * metric, metric, 0.5, 0.5, None, None, None, (0, 0, 0), 1.0,
                  env, str(run.run_dir / "missing.pt")).write(run.result_path)
        self._ended.append((run, RunAttempt("finished", host="node-1")))


def test_until_decided_trains_batches_stops_a_decided_variant_and_a_rerun_replays(monkeypatch, tmp_path):
    monkeypatch.setitem(executors.EXECUTORS, "fake", f"{__name__}:MetricFake")
    monkeypatch.setattr("yoloattn.compare.runner.POLL_S", 0.0)
    MetricFake.instances.clear()
    settings = dataclasses.replace(SETTINGS, out=str(tmp_path), modules=("iRMB", "MLLA"), seeds=3, until_decided=True,
                                   max_seeds=9, runtimes="torch")
    stream = io.StringIO()
    outcome = run_compare(settings, command="yoloattn compare --until-decided --max-seeds 9", stream=stream)
    submitted = [label for executor in MetricFake.instances for label in executor.submitted]
    per_model = {m: sorted(int(label.split(" s")[1]) for label in submitted if label.split(" s")[0] == m)
                 for m in ("yolov8n", "yolov8n-irmb-sppf", "yolov8n-mlla-sppf")}
    assert per_model["yolov8n-irmb-sppf"] == list(range(6))  # decided at the second interim: no third batch
    assert per_model["yolov8n"] == per_model["yolov8n-mlla-sppf"] == list(range(9))
    verdicts = {row.model: row.verdict for row in outcome.summary}
    assert verdicts["yolov8n-irmb-sppf"] == "better (sequential, 6 seeds)"
    assert verdicts["yolov8n-mlla-sppf"] == "undecided (sequential, 9 seeds)"
    text = stream.getvalue()
    assert "interim 2 (6 seeds per model): yolov8n-irmb-sppf better; still running: yolov8n-mlla-sppf" in text
    assert "iRMB@sppf: better than yolov8n (Δ mAP50-95 +0.1" in text and "decided after 6 seeds" in text
    assert "MLLA@sppf: undecided after 9 seeds per model" in text
    assert "iRMB" in (tmp_path / "report.md").read_text().split("## Answer")[1].split("##")[0]

    MetricFake.instances.clear()
    again = run_compare(settings, command="yoloattn compare", stream=io.StringIO())
    assert not MetricFake.instances and not again.trained  # replayed from the finished runs: nothing to train
    assert {row.model: row.verdict for row in again.summary} == verdicts


def test_adaptive_seed_options_need_until_decided_and_exclude_target_delta(tmp_path):
    settings = dataclasses.replace(SETTINGS, out=str(tmp_path), execution=ExecutionSettings())
    with pytest.raises(CompareError, match="--min-effect is an option of adaptive seeds: add --until-decided"):
        resolve(dataclasses.replace(settings, min_effect=0.01))
    with pytest.raises(CompareError, match="--max-seeds must be a multiple of --seeds"):
        resolve(dataclasses.replace(settings, until_decided=True, max_seeds=5))
    with pytest.raises(CompareError, match="--target-delta plans a fixed number of seeds"):
        run_compare(dataclasses.replace(settings, until_decided=True), stream=io.StringIO(), target_delta=0.01)
