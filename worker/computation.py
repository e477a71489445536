"""Run a job's computation in a child process that can be killed: on cancel, at the job's time limit, or
when this worker dies.

Native code (a catboost or xgboost fit) never returns to Python to notice an exception such as Celery's
SoftTimeLimitExceeded, so the only stop that always works is SIGKILL of the process doing the work. The
Celery task stays in this process as the child's supervisor: it relays the child's progress, asks
`still_wanted` every `poll_seconds`, and kills the child's process group when the job was cancelled or
ran out of time. The child is forked after the ML stack was imported, so it starts in milliseconds and
shares the parent's memory until it writes to it.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Literal

from celery.exceptions import SoftTimeLimitExceeded

from shared.db import get_engine
from worker.lifeline import die_with_parent

log = logging.getLogger("fitexplain.worker")

Progress = Callable[[float, str], None]
Computation = Callable[[Progress], str]


@dataclass(frozen=True)
class Outcome:
    """How the child ended. `finished`: it returned `detail`; `cancelled` and `time_limit`: it was killed;
    `crashed`: it died by itself (`detail` says how: a signal such as the OOM killer's, or an exit code)."""

    ended: Literal["finished", "cancelled", "time_limit", "crashed"]
    detail: str


def run_killable(
    compute: Computation,
    *,
    time_limit: float,
    poll_seconds: float,
    still_wanted: Callable[[], bool],
    on_progress: Progress,
) -> Outcome:
    """Run `compute(progress)` in a forked child and supervise it until it ends or is killed."""
    receiver, sender = multiprocessing.Pipe(duplex=False)
    child = _Child(_fork(compute, receiver, sender))
    sender.close()
    deadline = time.monotonic() + time_limit
    next_poll = time.monotonic() + poll_seconds
    try:
        while True:
            if receiver.poll(min(poll_seconds, max(0.0, deadline - time.monotonic()))):
                message = _receive(receiver)
                if message is None:  # the child closed its end: it is exiting
                    return Outcome("crashed", _how_it_ended(child.reap()))
                kind, *payload = message
                if kind == "progress":
                    on_progress(*payload)
                else:
                    child.reap()
                    return Outcome("finished", payload[0])
            now = time.monotonic()
            if now >= deadline:
                return child.kill(Outcome("time_limit", f"ran past {time_limit:g} s"))
            if now >= next_poll:
                next_poll = now + poll_seconds
                if not still_wanted():
                    return child.kill(Outcome("cancelled", "no longer wanted"))
    except SoftTimeLimitExceeded:  # Celery's own limit, a backstop above ours: same ending
        return child.kill(Outcome("time_limit", "Celery's soft time limit"))
    except BaseException:
        child.kill(Outcome("crashed", "supervisor failed"))
        raise
    finally:
        receiver.close()


def _fork(compute: Computation, receiver: Connection, sender: Connection) -> int:
    """Fork the child (os.fork: multiprocessing refuses to start children in Celery's pool processes)."""
    supervisor = os.getpid()
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        receiver.close()
        _child_main(compute, sender, supervisor)
        code = 0
    except BaseException:
        log.exception("the computation failed")
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _child_main(compute: Computation, sender: Connection, supervisor_pid: int) -> None:
    die_with_parent(supervisor_pid)
    os.setpgid(0, 0)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # Celery's handlers are the supervisor's, not ours
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)  # billiard's soft-limit signal: the supervisor's only
    get_engine().dispose(close=False)  # the parent's pooled connections stay the parent's
    outcome = compute(lambda fraction, message: sender.send(("progress", fraction, message)))
    sender.send(("done", outcome))
    sender.close()


def _receive(receiver: Connection) -> tuple | None:
    try:
        return receiver.recv()
    except EOFError:
        return None


class _Child:
    """The forked child, put in a process group of its own (it does so too: whichever runs first wins),
    so that a kill reaches whatever it started as well."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.exitcode: int | None = None
        with contextlib.suppress(PermissionError, ProcessLookupError):  # done by the child, or it is gone
            os.setpgid(pid, pid)

    def reap(self) -> int:
        """Wait for the child to exit; its exit code (negative: the signal that killed it)."""
        if self.exitcode is None:
            _, status = os.waitpid(self.pid, 0)
            self.exitcode = os.waitstatus_to_exitcode(status)
        return self.exitcode

    def kill(self, outcome: Outcome) -> Outcome:
        """SIGKILL the child's group and reap it: once this returns, the computation has stopped."""
        if self.exitcode is None:
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            except PermissionError:  # not (yet) a group leader
                os.kill(self.pid, signal.SIGKILL)
            self.reap()
            log.info("computation %d stopped: %s", self.pid, outcome.ended)
        return outcome


def _how_it_ended(exitcode: int) -> str:
    if exitcode < 0:
        return f"killed by {signal.Signals(-exitcode).name}"
    return f"exited with code {exitcode}"
