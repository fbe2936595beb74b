"""What a comparison says while it works, as typed events sent to listeners.

The runner never prints: it sends :class:`Note` (a line of the plan, a cost, a skipped placement),
:class:`RunStarted`, :class:`RunFinished`, :class:`RunRetried`, :class:`RunFailed` and :class:`Status`
(the runs in flight, every poll) to each listener, a callable taking one event. :class:`TerminalProgress`
is the listener ``yoloattn compare`` uses; an experiment tracker or a test is another
(``run_compare(..., listeners=[...])``).
"""

from __future__ import annotations

import math
import re
import shutil
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, TextIO, Union

from .measure import format_duration
from .records import RunFailure, RunResult

if TYPE_CHECKING:
    from .plan import RunSpec

QUIET_LOG_EVERY_S = 30.0  # status lines when the output is not a terminal


@dataclass(frozen=True)
class Note:
    """A line about the comparison as a whole (plan, data, costs, what was skipped)."""

    text: str


@dataclass(frozen=True)
class RunStarted:
    run: RunSpec
    where: str = ""  # "" or e.g. "GPU 1" / "on node-3"


@dataclass(frozen=True)
class RunFinished:
    run: RunSpec
    result: RunResult


@dataclass(frozen=True)
class RunRetried:
    """An attempt whose worker died; attempt ``attempt + 1`` of ``attempts`` starts."""

    run: RunSpec
    cause: str
    attempt: int
    attempts: int
    host: str = ""  # where it died, when the executor names hosts


@dataclass(frozen=True)
class RunFailed:
    run: RunSpec
    failure: RunFailure  # also in run_dir/failure.json
    host: str = ""
    log_tail: str = ""  # the end of the worker's log.txt when it failed by itself


@dataclass(frozen=True)
class Status:
    """The runs in flight, each with its ``progress.json`` state; ``waiting``: runs not started yet."""

    done: int
    running: tuple[tuple[RunSpec, dict], ...]
    waiting: int = 0


Event = Union[Note, RunStarted, RunFinished, RunRetried, RunFailed, Status]
Listener = Callable[[Event], None]


def train_fraction(state: dict) -> float | None:
    """Share of a run's training epochs done, from its progress.json state (None before training starts)."""
    if state.get("phase") == "val":
        return 1.0
    if state.get("phase") != "train" or not state.get("epochs"):
        return None
    batches = max(1, state.get("batches") or 1)
    return min(1.0, (state.get("epoch", 1) - 1 + min(state.get("batch", 0), batches) / batches) / state["epochs"])


def estimate_remaining(durations: list[float], running: list[tuple[float, float | None]], pending: int,
                       slots: int) -> float | None:
    """Seconds until every run is done, or None when nothing can be estimated yet.

    ``durations``: wall times of the runs that finished in this session; ``running``: (seconds since it
    started, share of its epochs done or None) per running run; ``pending``: runs not started yet;
    ``slots``: runs at a time. A run is expected to take the mean finished duration; before any run has
    finished, a running run's own pace (elapsed / share done, once 5 % is done and 10 s have passed)
    stands in for it. The pending runs take the earliest free slot each, as the runner starts them.
    """
    def paced(elapsed: float, done: float | None) -> bool:
        return bool(done) and done >= 0.05 and elapsed >= 10.0

    mean = sum(durations) / len(durations) if durations else None
    projected = [elapsed / done for elapsed, done in running if paced(elapsed, done)]
    per_run = mean if mean is not None else (sum(projected) / len(projected) if projected else None)
    free_at = []
    for elapsed, done in running:
        if mean is not None:
            free_at.append(max(0.0, mean - elapsed))
        elif paced(elapsed, done):
            free_at.append(elapsed * (1 - done) / done)
        else:
            return None
    if pending and per_run is None:
        return None
    free_at += [0.0] * max(0, slots - len(free_at))
    free_at.sort()
    finish = list(free_at)
    for _ in range(pending):
        start = free_at.pop(0)
        finish.append(start + per_run)
        free_at.append(start + per_run)
        free_at.sort()
    return max(finish) if finish else 0.0


class EtaSmoother:
    """A steady ETA from jumpy estimates: what is smoothed is the predicted finishing time, not the
    remaining seconds, so the shown ETA counts down at the clock's pace between estimates, and a new
    estimate moves it by 1 - exp(-Δt / ``tau_s``) of its difference (an exponential moving average in
    time, whatever the polling rate). A run finishing early or late, or a fresh run's first epochs, no
    longer swing the line 2× (15:08 → 9:09 → 13:19 → 8:55 in a user's log)."""

    def __init__(self, tau_s: float = 90.0):
        self.tau_s = tau_s
        self._finish: float | None = None  # smoothed predicted finishing time (monotonic seconds)
        self._at = 0.0  # when it was last moved

    def reset(self) -> None:
        """Forget the past estimates (their basis changed: the first run finished)."""
        self._finish = None

    def update(self, now: float, remaining: float | None) -> float | None:
        """The ETA (seconds) to show at ``now`` given the raw estimate ``remaining`` (None: keep counting down
        the last one, or None before any)."""
        if remaining is not None:
            raw = now + remaining
            if self._finish is None:
                self._finish = raw
            else:
                self._finish += (1.0 - math.exp(-max(0.0, now - self._at) / self.tau_s)) * (raw - self._finish)
            self._at = now
        return None if self._finish is None else max(0.0, self._finish - now)


class TerminalProgress:
    """The terminal listener: each event a permanent line, and one status line that is rewritten on a
    terminal, otherwise printed on change or every 30 s.

    The status line ends with an ETA (:func:`estimate_remaining`) from the durations of the runs that
    finished since the comparison started (and, until one has, from the running runs' own pace), smoothed
    by :class:`EtaSmoother`.
    """

    def __init__(self, stream: TextIO, total: int = 0):
        self.stream, self.total = stream, total
        self.tty = hasattr(stream, "isatty") and stream.isatty()
        self.started = time.monotonic()
        self._last_text, self._last_print = "", 0.0
        self._run_started: dict[RunSpec, float] = {}
        self.durations: list[float] = []  # wall seconds of the runs that finished successfully here
        self._eta = EtaSmoother()

    def __call__(self, event: Event) -> None:
        if isinstance(event, Status):
            self.status(event.done, list(event.running), event.waiting)
            return
        if isinstance(event, RunFinished):
            started = self._run_started.pop(event.run, None)
            if started is not None:  # a failed run's time says nothing about the others
                self.durations.append(time.monotonic() - started)
                if len(self.durations) == 1:  # from the running runs' pace to a measured duration: start afresh
                    self._eta.reset()
        elif isinstance(event, (RunRetried, RunFailed)):
            self._run_started.pop(event.run, None)
        self.say(line(event))

    def new_batch(self, total: int) -> None:
        """More runs were planned (the next batch of ``compare --until-decided``): ``total`` counts every run of
        this comparison's session so far and the new ones; the ETA starts afresh from the runs' durations."""
        self.total = total
        self._eta.reset()

    def say(self, text: str) -> None:
        """A permanent line, printed above the status line."""
        self.stream.write(("\r\033[K" if self.tty else "") + text + "\n")
        self.stream.flush()
        self._last_text = ""

    def eta(self, done: int, running: list[tuple[RunSpec, dict]], now: float | None = None) -> float | None:
        now = time.monotonic() if now is None else now
        pending = max(0, self.total - done - len(running))
        slots = max(1, len(running))  # the runner fills every slot while runs are pending
        return estimate_remaining(self.durations, [(now - self._run_started.get(run, now), train_fraction(state))
                                                   for run, state in running], pending, slots)

    def status(self, done: int, running: list[tuple[RunSpec, dict]], waiting: int = 0) -> None:
        """Rewrite (or print) the status line: each running run's epoch and batch; ``waiting``: runs not
        started yet (not submitted, or Ray tasks waiting for resources)."""
        now = time.monotonic()
        for run, _ in running:
            self._run_started.setdefault(run, now)
        parts = []
        for run, state in running:
            if state.get("phase") == "train" and state.get("epochs"):
                pct = 100 * state.get("batch", 0) // max(1, state.get("batches", 1))
                parts.append(f"{run.label} epoch {state['epoch']}/{state['epochs']} {min(pct, 100)}%")
            else:
                parts.append(f"{run.label} {state.get('phase', 'starting')}")
        if waiting and running:
            parts.append(f"{waiting} waiting")
        eta = self._eta.update(now, self.eta(done, running, now))
        clock = format_duration(now - self.started) + ("" if eta is None else f", ETA {format_duration(eta)}")
        text = f"[{done}/{self.total} runs done, {clock}] " + " | ".join(parts)
        if self.tty:
            width = shutil.get_terminal_size((120, 20)).columns - 1
            self.stream.write("\r\033[K" + text[:width])
            self.stream.flush()
        else:
            coarse = re.sub(r" \d+%", "", " | ".join(parts))  # epoch and phase changes, not batch progress
            if coarse != self._last_text or now - self._last_print >= QUIET_LOG_EVERY_S:
                self.stream.write(text + "\n")
                self.stream.flush()
                self._last_text, self._last_print = coarse, now


def line(event: Event) -> str:
    """The permanent line of an event (not of :class:`Status`)."""
    if isinstance(event, Note):
        return event.text
    run = event.run
    on = f" on {event.host}" if getattr(event, "host", "") else ""
    if isinstance(event, RunStarted):
        return f"started  {run.label}  ({run.run_dir.name})" + (f" {event.where}" if event.where else "")
    if isinstance(event, RunFinished):
        r = event.result
        return f"finished {run.label}  mAP50 {r.map50:.3f}  mAP50-95 {r.map50_95:.3f}  ({r.train_s:.0f} s)"
    if isinstance(event, RunRetried):
        return f"RETRY    {run.label}{on}: {event.cause}; attempt {event.attempt + 1} of {event.attempts}"
    if isinstance(event, RunFailed):
        tail = f"; end of {run.run_dir / 'log.txt'}:\n{event.log_tail}" if event.log_tail else ""
        return f"FAILED   {run.label}{on} after {event.failure.attempts} attempt(s): {event.failure.cause}{tail}"
    raise TypeError(f"no line for {type(event).__name__}")
