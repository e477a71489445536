"""`fitexplain serve`'s workers: one per queue, restarted when one dies (with backoff if it keeps dying),
stopped warm (each finishes its running job, for a grace period), and never left behind when serve itself
dies (they die with it: worker/lifeline.py).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass

log = logging.getLogger("fitexplain.serve")

PARENT_PID_ENV = "FITEXPLAIN_SUPERVISOR_PID"  # a worker started with it dies when that process dies
FIRST_DELAY = 1.0
MAX_DELAY = 60.0
HEALTHY_AFTER = 30.0  # a worker that ran this long before dying is restarted without backoff
CHECK_EVERY = 0.5


@dataclass
class SupervisedWorker:
    name: str
    argv: list[str]
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restart_at: float = 0.0
    delay: float = FIRST_DELAY
    restarts: int = 0


class WorkerSupervisor:
    """Runs the workers from one long-lived thread: the kernel ties each worker's life to the thread that
    started it (PR_SET_PDEATHSIG), so that thread must be the one that outlives them."""

    def __init__(self, workers: dict[str, list[str]], env: dict[str, str], stop_grace: float) -> None:
        self.workers = [SupervisedWorker(name, argv) for name, argv in workers.items()]
        self.env = {**env, PARENT_PID_ENV: str(os.getpid())}
        self.stop_grace = stop_grace
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="worker-supervisor", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Warm shutdown: SIGTERM to each worker's main process, which lets its running job finish and
        then stops its pool; SIGKILL of each worker's process group still there after `stop_grace`
        seconds (its job, left `running`, is requeued once its heartbeat is stale)."""
        self._stop.set()
        self._thread.join(timeout=self.stop_grace + 15)

    def kill(self) -> None:
        """Stop at once: SIGKILL of every worker's process group (a second Ctrl-C during `stop`)."""
        for worker in self.workers:
            if worker.process is not None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(worker.process.pid, signal.SIGKILL)
        self._thread.join(timeout=15)

    def pids(self) -> dict[str, int | None]:
        return {w.name: w.process.pid if w.process else None for w in self.workers}

    def _run(self) -> None:
        try:
            for worker in self.workers:
                self._spawn(worker)
            while not self._stop.wait(CHECK_EVERY):
                for worker in self.workers:
                    self._check(worker)
        finally:
            self._terminate_all()

    def _spawn(self, worker: SupervisedWorker) -> None:
        worker.process = subprocess.Popen(
            worker.argv,
            env=self.env,
            start_new_session=True,  # its own process group: stopped (pool included) only by us
        )
        worker.started_at = time.monotonic()
        log.info("worker %s started (pid %d)", worker.name, worker.process.pid)

    def _check(self, worker: SupervisedWorker) -> None:
        now = time.monotonic()
        if worker.process is None:
            if now >= worker.restart_at:
                worker.restarts += 1
                self._spawn(worker)
            return
        code = worker.process.poll()
        if code is None:
            return
        lived = now - worker.started_at
        worker.delay = FIRST_DELAY if lived >= HEALTHY_AFTER else min(worker.delay * 2, MAX_DELAY)
        worker.restart_at = now + worker.delay
        with contextlib.suppress(ProcessLookupError, PermissionError):  # pool processes it left, if any
            os.killpg(worker.process.pid, signal.SIGKILL)
        worker.process = None
        log.warning(
            "worker %s %s after %.0f s; restarting it in %.0f s",
            worker.name,
            how_it_ended(code),
            lived,
            worker.delay,
        )

    def _terminate_all(self) -> None:
        running = [
            (w.name, w.process) for w in self.workers if w.process is not None and w.process.poll() is None
        ]
        for _, process in running:
            # The main process only: Celery's warm shutdown stops its pool processes itself. A SIGTERM
            # to the pool processes would kill them under it, which it reports as an error.
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.stop_grace
        for name, process in running:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
                log.info("worker %s stopped", name)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
                log.warning(
                    "worker %s did not stop within %.0f s: killed; the job it was running, if any, "
                    "runs again after the next start",
                    name,
                    self.stop_grace,
                )


def how_it_ended(returncode: int) -> str:
    if returncode < 0:
        return f"was killed by {signal.Signals(-returncode).name}"
    return f"exited with code {returncode}"
