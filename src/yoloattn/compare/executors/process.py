"""The training worker as a child process: ``python -m yoloattn.compare.worker SPEC.json``.

Both executors start runs through here: the local one on this machine, the Ray one inside each task on
whichever node Ray picked. The child gets the offline environment (``yoloattn.offline``), the same thread
count in every math library, the plug-ins loaded here, and leads its own process group so that stopping
it also stops Ultralytics' dataloader workers. On Linux it is also killed when the process that started
it dies (``PR_SET_PDEATHSIG``): a Ray task killed by ``ray.cancel(force=True)`` or the OOM killer leaves no
orphan training on the node.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from ..records import RunAttempt, RunResult

KILL_GRACE_S = 10.0


def child_env(threads: int, plugins: list[str] | tuple[str, ...] = (), base: dict | None = None) -> dict[str, str]:
    """The worker's environment: ``base`` (default this process's) made offline, ``threads`` in every math
    library, this checkout importable, ``plugins`` in ``YOLOATTN_PLUGINS``."""
    from ...offline import offline_env
    from ...plugins import ENV_VAR

    env = offline_env(base=base)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):  # every math library, same count
        env[var] = str(threads)
    package_parent = str(Path(__file__).resolve().parents[3])  # makes an uninstalled checkout importable
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH", "")) if p)
    if plugins:  # the workers build the same plug-in modules (--plugin or YOLOATTN_PLUGINS here)
        env[ENV_VAR] = ",".join(plugins)
    return env


def _die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG = 1


def launch(spec_path: Path, env: dict[str, str]) -> subprocess.Popen:
    """Start the worker on ``spec_path`` with its output in ``log.txt`` beside it."""
    with open(spec_path.parent / "log.txt", "w") as log:  # the child keeps its own descriptor
        return subprocess.Popen([sys.executable, "-m", "yoloattn.compare.worker", str(spec_path)], stdout=log,
                                stderr=subprocess.STDOUT, env=env, start_new_session=True,
                                preexec_fn=_die_with_parent if sys.platform == "linux" else None)


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # it may have exited on its own meanwhile
        os.killpg(proc.pid, sig)


def stop(processes: list[subprocess.Popen]) -> None:
    """Terminate the given workers and their own children; SIGKILL after ``KILL_GRACE_S``."""
    for proc in processes:
        if proc.poll() is None:
            _signal_group(proc, signal.SIGTERM)
    deadline = time.monotonic() + KILL_GRACE_S
    for proc in processes:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _signal_group(proc, signal.SIGKILL)
            proc.wait()


def log_tail(run_dir: Path, lines: int = 6) -> str:
    """The last ``lines`` lines of the run's log.txt, indented for the terminal ("" without a log)."""
    try:
        text = (run_dir / "log.txt").read_text(errors="replace").rstrip().splitlines()
    except OSError:
        return ""
    return "\n".join("    " + line for line in text[-lines:])


def _last_error_line(run_dir: Path) -> str:
    """The exception line of a Python traceback in log.txt (its last line that is not blank), or ""."""
    try:
        lines = [line.strip() for line in (run_dir / "log.txt").read_text(errors="replace").splitlines()]
    except OSError:
        return ""
    lines = [line for line in lines if line]
    return lines[-1][:300] if lines else ""


def attempt_of(proc: subprocess.Popen, run_dir: Path, key: str, host: str = "") -> RunAttempt:
    """What an exited worker's attempt came to: finished (a result.json under ``key``), died (killed by a
    signal: retried) or failed (it exited with an error: the last line of its log says which)."""
    code = proc.returncode
    if code == 0:
        try:
            if RunResult.read(run_dir / "result.json").key == key:
                return RunAttempt("finished", host=host, exit_code=0)
        except (OSError, ValueError, TypeError):
            pass
        return RunAttempt("failed", "the worker exited without a result.json", host, code)
    if code is not None and code < 0:
        name = signal.Signals(-code).name if -code in signal.valid_signals() else f"signal {-code}"
        return RunAttempt("died", f"the worker was killed ({name}; out of memory or stopped from outside)", host, code)
    return RunAttempt("failed", f"exit code {code}: {_last_error_line(run_dir) or 'no log'}", host, code)
