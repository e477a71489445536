"""Run a job's computation in a child process that can be killed: on cancel, at the job's time limit, or
when this worker dies.

Native code (a catboost or xgboost fit) never returns to Python to notice an exception such as Celery's
SoftTimeLimitExceeded, so the only stop that always works is SIGKILL of the process doing the work. The
Celery task stays in its pool process as the child's supervisor: it relays the child's progress, asks
`still_wanted` every `poll_seconds`, and kills the child's process group when the job was cancelled or
ran out of time.

The child is forked once, after the ML stack was imported, and then runs computation after computation
(sent to it as picklable callables): forking a worker-sized process costs ~100-150 ms here, a job on a
small dataset about as much, so a job pays for a fork only after the previous child had to be killed (or
retired for its memory).
"""

from __future__ import annotations

import contextlib
import logging
import math
import multiprocessing
import os
import resource
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, Literal

import psutil
from celery.exceptions import SoftTimeLimitExceeded

from shared.db import get_engine
from worker.lifeline import die_with_parent

log = logging.getLogger("fitexplain.worker")

STARTED_AFTER_SECONDS = 0.25
"""How long a computation runs before its worker notes it as its current job (the workers table, which
the dashboard and fan-out's idle count read): a trivial job is done long before, and writing the note
while it computes took a core from it."""

STOPPED_STATES = frozenset({psutil.STATUS_STOPPED, psutil.STATUS_TRACING_STOP})

Progress = Callable[[float, str], None]
Computation = Callable[[Progress], str]  # must be picklable: a module-level function or a partial of one


@dataclass(frozen=True)
class Outcome:
    """How a computation ended. `finished`: it returned `detail`; `cancelled` and `time_limit`: it was
    killed; `crashed`: its process died by itself (`detail` says how: a signal such as the OOM killer's)."""

    ended: Literal["finished", "cancelled", "time_limit", "crashed"]
    detail: str


class KillableExecutor:
    """A child process that runs computations one at a time, killed (and replaced at the next one) when a
    computation must stop. One per worker pool process."""

    def __init__(self, max_rss_kb: int | None = None) -> None:
        self.max_rss_kb = max_rss_kb
        self._child: _Child | None = None

    def run(
        self,
        compute: Computation,
        *,
        time_limit: float,
        poll_seconds: float,
        still_wanted: Callable[[], bool],
        on_progress: Progress,
        on_started: Callable[[], None] | None = None,
        started_after: float = STARTED_AFTER_SECONDS,
    ) -> Outcome:
        """Run `compute(progress)` in the child and supervise it until it ends or is killed;
        `on_started` runs here once the computation has run for `started_after` seconds: bookkeeping
        that a short computation never pays for, nor competes with for the cores."""
        child = self._ready_child()
        sent = time.monotonic()
        deadline = sent + time_limit
        next_poll = sent + poll_seconds
        note_at = sent + started_after if on_started is not None else math.inf
        try:
            child.connection.send(compute)
            while True:
                now = time.monotonic()
                if now >= note_at and on_started is not None:
                    note_at = math.inf
                    _logging_failure(on_started)
                    now = time.monotonic()
                timeout = min(poll_seconds, note_at - now, max(0.0, deadline - now))
                if child.connection.poll(max(0.0, timeout)):
                    message = _receive(child.connection)
                    if message is None:  # the child closed its end: it died
                        self._child = None
                        return Outcome("crashed", _how_it_ended(child.reap()))
                    kind, payload = message
                    if kind == "progress":
                        on_progress(*payload)
                        continue
                    if kind == "retiring":  # it outgrew its memory limit: the next job gets a new one
                        self._child = None
                        child.reap()
                    return Outcome("finished", payload)
                now = time.monotonic()
                if now >= deadline:
                    return self._kill(Outcome("time_limit", f"ran past {time_limit:g} s"))
                if now >= next_poll:
                    next_poll = now + poll_seconds
                    if not _asked(still_wanted):
                        return self._kill(Outcome("cancelled", "no longer wanted"))
        except SoftTimeLimitExceeded:  # Celery's own limit, a backstop above ours: same ending
            return self._kill(Outcome("time_limit", "Celery's soft time limit"))
        except BaseException:
            self._kill(Outcome("crashed", "its supervisor failed"))
            raise

    def close(self) -> None:
        self._kill(Outcome("cancelled", "closed"))

    @property
    def child_pid(self) -> int | None:
        """The computation process kept for the next job, if any."""
        return None if self._child is None else self._child.pid

    def stopped(self) -> bool:
        """Whether the computation process is stopped (SIGSTOP, a tracer): it makes no progress, so its
        job's lease must not be renewed for it. Safe to ask from another thread."""
        child = self._child
        return child is not None and child.stopped()

    def _ready_child(self) -> _Child:
        """The idle child, or a new one when it died while idle: killed, or sent its parent-death signal
        because the thread that forked it ended (the kernel ties that signal to a thread)."""
        if self._child is not None and self._child.exited():
            log.info("computation %d ended while idle: a new one is started", self._child.pid)
            self._child = None
        if self._child is None:
            self._child = _Child.fork(self.max_rss_kb)
        return self._child

    def _kill(self, outcome: Outcome) -> Outcome:
        if self._child is not None:
            self._child.kill()
            log.info("computation %d stopped: %s", self._child.pid, outcome.ended)
            self._child = None
        return outcome


class _Child:
    """The forked process, in a process group of its own (it sets it too: whichever runs first wins), so
    that a kill reaches whatever it started as well."""

    def __init__(self, pid: int, connection: Connection) -> None:
        self.pid = pid
        self.connection = connection
        self.exitcode: int | None = None
        with contextlib.suppress(PermissionError, ProcessLookupError):  # done by the child, or it is gone
            os.setpgid(pid, pid)

    @classmethod
    def fork(cls, max_rss_kb: int | None) -> _Child:
        """Fork with os.fork: multiprocessing refuses to start children from Celery's pool processes."""
        ours, theirs = multiprocessing.Pipe(duplex=True)
        supervisor = os.getpid()
        pid = os.fork()
        if pid:
            theirs.close()
            return cls(pid, ours)
        code = 1
        try:
            ours.close()
            _serve_computations(theirs, supervisor, max_rss_kb)
            code = 0
        except BaseException:
            log.exception("the computation process failed")
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)

    def reap(self) -> int:
        """Wait for the child to exit; its exit code (negative: the signal that killed it)."""
        if self.exitcode is None:
            return self._ended(os.waitpid(self.pid, 0)[1])
        return self.exitcode

    def exited(self) -> bool:
        """Whether the child has exited (reaped here if so), without waiting."""
        if self.exitcode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid == 0:
                return False
            self._ended(status)
        return True

    def _ended(self, status: int) -> int:
        """Record the reaped child's exit code (negative: the signal that killed it); its pipe is done."""
        self.exitcode = os.waitstatus_to_exitcode(status)
        self.connection.close()
        return self.exitcode

    def stopped(self) -> bool:
        """Whether the kernel holds the child stopped; False once it is gone (its end is seen elsewhere)."""
        if self.exitcode is not None:
            return False
        try:
            return psutil.Process(self.pid).status() in STOPPED_STATES
        except psutil.Error:
            return False

    def kill(self) -> None:
        """SIGKILL the child's group and reap it: once this returns, the computation has stopped."""
        if self.exitcode is None:
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            except PermissionError:  # not (yet) a group leader
                os.kill(self.pid, signal.SIGKILL)
            self.reap()


def _serve_computations(connection: Connection, supervisor_pid: int, max_rss_kb: int | None) -> None:
    """The child's loop: run each computation received, report its progress and outcome; exit when the
    supervisor closes the pipe (or dies: PR_SET_PDEATHSIG), or once over `max_rss_kb`."""
    die_with_parent(supervisor_pid)
    os.setpgid(0, 0)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # Celery's handlers are the supervisor's, not ours
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)  # billiard's soft-limit signal: the supervisor's only
    get_engine().dispose(close=False)  # the parent's pooled connections stay the parent's

    def progress(fraction: float, message: str) -> None:
        connection.send(("progress", (fraction, message)))

    while True:
        compute = _receive(connection)
        if compute is None:
            return
        outcome = compute(progress)
        if max_rss_kb and resource.getrusage(resource.RUSAGE_SELF).ru_maxrss > max_rss_kb:
            connection.send(("retiring", outcome))
            return
        connection.send(("done", outcome))


def _asked(still_wanted: Callable[[], bool]) -> bool:
    """The answer, or True when it cannot be had (a database blip must not kill a job's computation)."""
    try:
        return still_wanted()
    except Exception as exc:
        log.warning("could not check whether the computation is still wanted: %s", exc)
        return True


def _logging_failure(action: Callable[[], None]) -> None:
    """Run the supervisor's bookkeeping; a failure (a database blip) is logged, never fatal to the job."""
    try:
        action()
    except Exception as exc:
        log.warning("bookkeeping beside the computation failed: %s", exc)


def _receive(connection: Connection) -> Any | None:
    try:
        return connection.recv()
    except (EOFError, OSError):
        return None


def _how_it_ended(exitcode: int) -> str:
    if exitcode < 0:
        return f"was killed by {signal.Signals(-exitcode).name}"
    return f"exited with code {exitcode}"
