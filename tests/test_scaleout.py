"""`compare` through its executors: local subprocesses and Ray tasks give the same files and numbers, a
rerun trains nothing whichever executor produced the runs, killed workers are retried, and a node that
cannot run a run says why in one line (docs/scale-out.md)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from yoloattn.cli import EXIT_FAILED, EXIT_USAGE, main
from yoloattn.compare import CompareSettings, ExecutionSettings
from yoloattn.compare import runner as runner_module
from yoloattn.compare.executors.local import LocalExecutor, default_jobs, least_busy
from yoloattn.compare.executors.remote import STORAGE_ENV, NodeError, check_node
from yoloattn.compare.records import DataSource, RemoteRun, RunFailure, WorkerSpec
from yoloattn.compare.settings import device_kind, gpu_indices, versions

ARGS = ["compare", "--preset", "tiny", "--base", "yolov8n", "--modules", "irmb", "--where", "sppf",
        "--epochs", "1", "--seeds", "2", "--imgsz", "64", "--threads-per-run", "1"]


def compare(argv: list[str], out: Path) -> tuple[int, str]:
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main([*argv, "--out", str(out)])
    return code, stdout.getvalue()


def files(out: Path) -> set[str]:
    """Every file under OUT but the cost cache (copied between the outputs to save time)."""
    return {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file() and p.relative_to(out).parts[0] != "measure"}


def numbers(out: Path) -> dict:
    """Each run's metrics and per-epoch losses: everything but wall times, paths and host."""
    found = {}
    for path in sorted((out / "runs").glob("*/result.json")):
        r = json.loads(path.read_text())
        losses = [{k: v for k, v in epoch.items() if k != "time"} for epoch in r["curve"]]
        found[r["model"], r["seed"]] = (r["key"], r["map50"], r["map50_95"], r["precision"], r["recall"],
                                        r["map50_95_small"], losses)
    return found


def result_times(out: Path) -> dict[str, int]:
    return {p.parent.name: p.stat().st_mtime_ns for p in (out / "runs").glob("*/result.json")}


@pytest.mark.slow
def test_ray_and_local_write_the_same_files_and_numbers_and_reuse_each_others_runs(tmp_path, monkeypatch):
    local, shared, staged = tmp_path / "local", tmp_path / "ray-shared", tmp_path / "ray-staged"
    code, stdout = compare([*ARGS, "--executor", "local"], local)
    assert code == 0, stdout
    for out in (shared, staged):
        shutil.copytree(local / "measure", out / "measure")  # costs are cached; the runs are not

    code, stdout = compare([*ARGS, "--executor", "ray"], shared)  # a local Ray instance: it sees OUT
    assert code == 0, stdout
    assert "executor: one Ray task each (1 CPU(s), 1 torch thread(s))" in stdout
    assert stdout.count("\nstarted  ") == 4 and stdout.count("\nfinished ") == 4

    monkeypatch.setenv(STORAGE_ENV, "local")  # the Ray workers behave as on a node without OUT's storage
    code, stdout = compare([*ARGS, "--executor", "ray", "--collect-weights"], staged)
    assert code == 0, stdout
    monkeypatch.delenv(STORAGE_ENV)

    assert files(local) == files(shared) == files(staged)
    assert len(numbers(local)) == 4 and numbers(local) == numbers(shared) == numbers(staged)
    weights = json.loads(next((staged / "runs").glob("yolov8n-s0-*/result.json")).read_text())["weights"]
    assert Path(weights).is_file() and Path(weights).is_relative_to(staged)  # collected, and named where it is now
    assert "runs trained on: " in (staged / "report.md").read_text()

    for argv, out in (([*ARGS, "--executor", "ray"], local), ([*ARGS, "--executor", "local"], staged)):
        before = result_times(out)
        code, stdout = compare(argv, out)
        assert code == 0 and "4 already finished, 0 to train" in stdout and "started" not in stdout, stdout
        assert result_times(out) == before


def _kill_mid_training(out: Path, parent: bool, killed: list) -> None:
    """Kill the first training worker of ``out`` (or, with ``parent``, the Ray worker that started it) once
    it is training: as the OOM killer or a lost node would."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not killed:
        for proc in Path("/proc").iterdir():
            try:
                cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"yoloattn.compare.worker" not in cmdline or not any(str(out).encode() in part for part in cmdline):
                continue
            spec = Path(cmdline[cmdline.index(b"yoloattn.compare.worker") + 1].decode())
            try:
                phase = json.loads((spec.parent / "progress.json").read_text()).get("phase")
            except (OSError, ValueError):
                continue
            if phase == "train":
                pid = int(proc.name)
                if parent:
                    pid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
                os.kill(pid, signal.SIGKILL)
                killed.append((spec.parent.name, pid))
                return
        time.sleep(0.1)


@pytest.mark.slow
@pytest.mark.parametrize("executor", ["local", "ray"])
def test_a_worker_killed_mid_run_is_retried_and_the_comparison_completes(tmp_path, executor):
    out, killed = tmp_path / executor, []
    killer = threading.Thread(target=_kill_mid_training, args=(out, executor == "ray", killed), daemon=True)
    killer.start()
    argv = [*ARGS[:ARGS.index("--epochs")], "--epochs", "3", "--seeds", "1", "--imgsz", "64", "--threads-per-run", "1"]
    code, stdout = compare([*argv, "--executor", executor], out)
    killer.join(timeout=5)
    assert killed, "nothing was killed: the run ended before the test found it training"
    run_name = killed[0][0]
    assert code == 0, stdout
    assert stdout.count("RETRY    ") == 1 and "attempt 2 of 3" in stdout
    assert ("the Ray worker died (WorkerCrashedError)" if executor == "ray" else "killed (SIGKILL") in stdout
    assert len(list((out / "runs").glob("*/result.json"))) == 2 and (out / "runs" / run_name / "result.json").is_file()
    assert not list((out / "runs").glob("*/failure.json")) and (out / "report.html").is_file()


@pytest.mark.slow
def test_a_dataset_the_ray_worker_cannot_read_fails_its_runs_in_one_line(tmp_path, monkeypatch, tiny_data):
    shutil.copytree(tiny_data.parent, tmp_path / "mine")  # it moves away mid-comparison
    data_yaml = tmp_path / "mine" / tiny_data.name
    prepare = runner_module.prepare_data

    def prepared_then_gone(settings, out):  # the driver sees the dataset, the nodes do not
        data = prepare(settings, out)
        (tmp_path / "mine").rename(tmp_path / "elsewhere")
        return data

    monkeypatch.setattr(runner_module, "prepare_data", prepared_then_gone)
    out = tmp_path / "out"
    argv = ["compare", "--data", str(data_yaml), "--base", "yolov8n", "--modules", "irmb", "--where", "sppf",
            "--epochs", "1", "--seeds", "1", "--imgsz", "64", "--executor", "ray"]
    code, stdout = compare(argv, out)
    assert code == EXIT_FAILED
    failed = [line for line in stdout.splitlines() if line.startswith("FAILED")]
    assert len(failed) == 2 and "Traceback" not in stdout and "RETRY" not in stdout
    assert all(f"the dataset {data_yaml} is not readable here: put it on storage every node mounts" in line
               for line in failed)
    failure = RunFailure.read(next((out / "runs").glob("yolov8n-s0-*/failure.json")))
    assert failure.status == "setup" and failure.attempts == 1 and "not readable here" in failure.cause


def _task(**changes) -> RemoteRun:
    spec = WorkerSpec(key="k", model="m", seed=0, model_yaml="/x/m.yaml", data_yaml="/x/d.yaml", run_dir="/x/runs/r",
                      threads=1, train_args={"device": "cpu"})
    return RemoteRun(**{"spec": spec, "model_yaml_text": "", "data": DataSource("test"), "versions": versions(),
                        **changes})


def test_a_node_without_a_plugin_or_with_other_code_is_refused_in_one_line(tmp_path):
    check_node(_task())  # this machine is its own driver
    with pytest.raises(NodeError, match=r"^plug-in module 'no_such_attention_plugin' cannot be imported here: install"):
        check_node(_task(plugins=("no_such_attention_plugin",)))
    with pytest.raises(NodeError, match="plug-in file .*gone.py is not here: put it on storage every node mounts"):
        check_node(_task(plugins=(str(tmp_path / "gone.py"),)))
    other = {**versions(), "yoloattn model code": "0123456789ab"}
    with pytest.raises(NodeError, match=r"yoloattn model code \w+ here, 0123456789ab on the driver: install the driver's"):
        check_node(_task(versions=other))


def test_a_ray_worker_without_yoloattn_is_a_setup_failure_naming_the_package():
    from yoloattn.compare.executors.ray import attempt_of_error

    attempt = attempt_of_error(RuntimeError("Failed to unpickle: ModuleNotFoundError: No module named 'yoloattn'"))
    assert attempt.status == "setup" and "cannot import 'yoloattn': install it on every node" in attempt.cause


def test_gpu_devices_give_one_run_per_gpu_unless_shared():
    assert [device_kind(d) for d in ("cpu", "0", "0,1", "cuda:1", "mps")] == ["cpu", "cuda", "cuda", "cuda", "mps"]
    assert gpu_indices("0,1,3") == [0, 1, 3] and gpu_indices("cpu") == []
    assert default_jobs(10, 1, "0,1,2,3") == 4 and default_jobs(10, 1, "0,1", runs_per_gpu=2) == 4
    assert default_jobs(1, 1, "0,1,2,3") == 1

    settings = CompareSettings(device="0,2", execution=ExecutionSettings(runs_per_gpu=2, jobs=4))
    busy, picked = Counter(), []
    for _ in range(4):
        gpu = least_busy(gpu_indices(settings.device), busy)
        picked.append(gpu)
        busy[str(gpu)] += 1
    assert picked == [0, 2, 0, 2]  # the least busy GPU each time: never two runs on one while another is free
    assert least_busy([0, 2], Counter({"0": 2, "2": 1})) == 2
    assert LocalExecutor(settings).capacity == 4
    assert "on GPU 0,2 (2 runs per GPU)" in LocalExecutor.plan_text(settings)


@pytest.mark.parametrize("argv, message", [
    (["--gpus-per-run", "1"], "--gpus-per-run is an option of --executor ray: add --executor ray, or drop it"),
    (["--collect-weights"], "--collect-weights is an option of --executor ray: add --executor ray"),
    (["--runs-per-gpu", "2"], "--runs-per-gpu shares GPUs of --device 0,1,.. between local runs"),
    (["--executor", "ray", "--gpus-per-run", "1"], "--gpus-per-run 1 needs a GPU --device (e.g. --device 0)"),
    (["--executor", "ray", "--cpus-per-run", "64"], "--cpus-per-run 64: the local Ray instance has"),
    (["--executor", "ray", "--ray-address", "auto"], "--ray-address auto: cannot start or reach Ray (Could not find any"),
    (["--executor", "ray", "--ray-address", "127.0.0.1:1"], "--ray-address 127.0.0.1:1: nothing answers at 127.0.0.1:1"),
    (["--executor", "ray", "--ray-address", "ray://127.0.0.1:1"], "nothing answers at 127.0.0.1:1 (Connection refused)"),
])
def test_executor_options_are_checked_in_one_line(tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    started = time.monotonic()
    assert main([*ARGS, *argv, "--out", str(tmp_path), "--dry-run"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert time.monotonic() - started < 60  # a dead address does not keep Ray retrying for minutes


def test_ray_address_from_the_environment_is_named_as_such(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "auto")
    assert main([*ARGS, "--executor", "ray", "--out", str(tmp_path), "--dry-run"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "RAY_ADDRESS=auto: cannot start or reach Ray" in err and "or unset RAY_ADDRESS for a local instance" in err


@pytest.mark.slow
def test_the_n_machine_recipe_on_one_machine(tmp_path, capsys):
    """`ray start --head`, then compare --ray-address HOST:PORT: a run no node fits is refused in a dry run,
    the comparison runs on the cluster, and the cluster outlives it."""
    import socket
    import subprocess
    import sys

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    ray_cli = Path(sys.executable).with_name("ray")
    subprocess.run([str(ray_cli), "start", "--head", f"--port={port}", "--num-cpus=2", "--include-dashboard=false",
                    "--disable-usage-stats"], check=True, capture_output=True, timeout=120)
    try:
        address = ["--executor", "ray", "--ray-address", f"127.0.0.1:{port}"]
        code, stdout = compare([*ARGS, *address, "--cpus-per-run", "3", "--dry-run"], tmp_path / "too-big")
        err = capsys.readouterr().err
        assert code == EXIT_USAGE and "no node of the Ray cluster has 3 CPU(s) and 0 GPU(s) for a run" in err, err
        assert "Traceback" not in err
        code, stdout = compare([*ARGS, *address, "--dry-run"], tmp_path / "dry")
        assert code == 0 and "executor: one Ray task each (1 CPU(s), 1 torch thread(s)) on 1 node(s)" in stdout, stdout
        argv = [*ARGS[:ARGS.index("--seeds")], "--seeds", "1", "--imgsz", "64", "--threads-per-run", "1"]
        code, stdout = compare([*argv, *address], tmp_path / "out")
        assert code == 0 and sum(line.startswith("finished ") for line in stdout.splitlines()) == 2, stdout
        status = subprocess.run([str(ray_cli), "status", f"--address=127.0.0.1:{port}"], capture_output=True,
                                text=True, env={**os.environ, "RAY_AUTH_MODE": "token"}, timeout=60)
        assert status.returncode == 0, status.stderr[-2000:]  # the comparison left the cluster running
    finally:
        subprocess.run([str(ray_cli), "stop", "--force"], capture_output=True, timeout=120)


def _processes_of(out: Path) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if b"yoloattn.compare.worker" in cmdline and str(out).encode() in cmdline:
            found.append(int(proc.name))
    return found


@pytest.mark.slow
def test_ctrl_c_cancels_the_ray_tasks_and_keeps_finished_runs(tmp_path):
    import subprocess
    import sys

    out = tmp_path / "out"
    argv = [*ARGS[:ARGS.index("--epochs")], "--epochs", "2", "--seeds", "3", "--imgsz", "64", "--threads-per-run", "1"]
    log = tmp_path / "log.txt"
    with open(log, "w") as f:
        proc = subprocess.Popen([sys.executable, "-m", "yoloattn.cli", *argv, "--executor", "ray", "--out", str(out)],
                                stdout=f, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not list((out / "runs").glob("*/result.json")):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130, log.read_text()[-3000:]
    text = log.read_text()
    assert "interrupted: finished runs are kept; rerun the same command to resume" in text and "Traceback" not in text
    time.sleep(2)
    assert _processes_of(out) == []  # no training outlives the cancelled tasks
    finished = list((out / "runs").glob("*/result.json"))
    assert 1 <= len(finished) < 6


def test_ray_address_auto_with_a_dead_cluster_file_fails_in_seconds(monkeypatch):
    """`ray.init(address="auto")` retries the address in Ray's cluster file for minutes when that cluster died
    without removing it (a killed head); the executor probes it first and says so in one line."""
    import socket
    import time

    from yoloattn.compare import CompareError
    from yoloattn.compare.executors import ray as ray_executor

    with socket.socket() as free:  # a port nothing listens on
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    monkeypatch.setattr(ray_executor, "_last_started_cluster", lambda: f"127.0.0.1:{port}")
    started = time.monotonic()
    with pytest.raises(CompareError, match=rf"--ray-address auto: nothing answers at 127.0.0.1:{port} \(the cluster "
                                           r"Ray's cluster file names"):
        ray_executor._probe("auto", "--ray-address auto")
    assert time.monotonic() - started < 10
    monkeypatch.setattr(ray_executor, "_last_started_cluster", lambda: None)
    ray_executor._probe("auto", "--ray-address auto")  # no cluster file: Ray's own error, at once
