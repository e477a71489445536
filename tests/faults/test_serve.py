"""`fitexplain serve` supervises its workers: one per queue, a killed worker is restarted (and serve says
why), no worker, pool process or computation outlives a serve killed with SIGKILL, and SIGTERM stops it
warm: the running job finishes within the grace period, or runs again after the next start, and nothing
is logged as an error.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.faults.conftest import (
    SHORT_LEASE,
    START_TIMEOUT,
    client_for,
    error_lines,
    job_row,
    slow_csv,
    slow_params,
    start_slow_job,
)
from tests.processes import command_line, descendants, parents
from tests.stack import BIN, Stack
from tests.waiting import wait_until

pytestmark = [pytest.mark.service, pytest.mark.slow]


def worker_of_queue(serve: subprocess.Popen[bytes], queue: str) -> int | None:
    """The pid of serve's worker for `queue` (a direct child started with `worker --queue=...`)."""
    for pid, parent in parents().items():
        if parent == serve.pid and f"--queue={queue}" in command_line(pid):
            return pid
    return None


class Serve:
    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.log = stack.tmp / "serve.log"
        self.process = subprocess.Popen(
            [str(BIN / "fitexplain"), "serve"],
            env=stack.env(),
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def ready(self) -> bool:
        """serve said ready: its API listens and one of its workers is alive."""
        assert self.process.poll() is None, self.output()[-3000:]
        return "ready: fitexplain answers on" in self.output()

    def healthy(self) -> bool:
        assert self.process.poll() is None, self.output()[-3000:]
        try:
            return httpx.get(f"{self.stack.url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        family = descendants(self.process.pid)
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=40)
        for pid in [self.process.pid, *family]:  # whatever a failed test left behind
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.process.wait(timeout=10)


@pytest.fixture
def serve(stacks: Callable[..., Stack]) -> Iterator[Serve]:
    running = Serve(stacks())
    wait_until(running.healthy, START_TIMEOUT, "serve's API")
    yield running
    running.stop()


def test_serve_runs_one_worker_per_queue_and_restarts_a_killed_one(serve: Serve) -> None:
    small = wait_until(lambda: worker_of_queue(serve.process, "small"), START_TIMEOUT, "the small worker")
    assert wait_until(lambda: worker_of_queue(serve.process, "large"), START_TIMEOUT, "the large worker")

    os.kill(small, signal.SIGKILL)
    wait_until(lambda: "worker small was killed by SIGKILL" in serve.output(), 30, "serve to say why")
    restarted = wait_until(lambda: worker_of_queue(serve.process, "small"), 60, "a new small worker")
    assert restarted != small

    alice = client_for(serve.stack)
    response = alice.submit("gbdtclassification", "iris_dataset2.csv")
    assert response.status_code == 202, response.text
    job = alice.wait(response.json()["id"], timeout=START_TIMEOUT)
    assert job["status"] == "succeeded", job


def test_no_worker_outlives_serve_killed_with_sigkill(serve: Serve) -> None:
    alice = client_for(serve.stack)
    response = alice.submit("gbdtclassification", slow_csv(), **slow_params())
    job_id = response.json()["id"]
    wait_until(
        lambda: alice.http.get(f"/jobs/{job_id}").json()["status"] == "running", START_TIMEOUT, "the job"
    )
    # serve -> two workers -> their pool processes -> the job's computation
    family = wait_until(lambda: d if len(d := descendants(serve.process.pid)) >= 5 else None, 30, "processes")
    assert any("worker" in command_line(pid) for pid in family)

    serve.process.send_signal(signal.SIGKILL)
    serve.process.wait(timeout=10)

    # No process of serve's outlives it: none of them is left within 10 s.
    wait_until(lambda: not (family & set(parents())), 10, f"serve's processes {sorted(family)} to exit")


def stop_with_sigterm(serve: Serve) -> None:
    serve.process.send_signal(signal.SIGTERM)
    assert serve.process.wait(timeout=120) == 128 + signal.SIGTERM, serve.output()[-3000:]
    assert "stopped" in serve.output().splitlines()[-1], serve.output()[-3000:]


def test_serve_says_ready_once_a_worker_is_alive_and_how_to_get_a_token(serve: Serve) -> None:
    wait_until(serve.ready, START_TIMEOUT, "serve to say ready")
    assert "fitexplain create-token YOUR_NAME" in serve.output()
    readiness = httpx.get(f"{serve.stack.url}/readyz", timeout=10).json()
    assert readiness["workers_alive"] >= 1, readiness


def test_sigterm_lets_the_running_job_finish_and_logs_no_error(stacks: Callable[..., Stack]) -> None:
    serve = Serve(stacks(extra_env={"FITEXPLAIN_STOP_GRACE_SECONDS": "240"}))
    try:
        wait_until(serve.ready, START_TIMEOUT, "serve to say ready")
        job_id, _ = start_slow_job(serve.stack, client_for(serve.stack))

        stop_with_sigterm(serve)

        assert job_row(serve.stack, job_id)["status"] == "succeeded"
        assert error_lines(serve.output()) == [], serve.output()[-3000:]
    finally:
        serve.stop()


def test_a_job_cut_by_the_grace_period_finishes_after_restart(stacks: Callable[..., Stack]) -> None:
    stack = stacks(extra_env={**SHORT_LEASE, "FITEXPLAIN_STOP_GRACE_SECONDS": "0"})
    first = Serve(stack)
    try:
        wait_until(first.ready, START_TIMEOUT, "serve to say ready")
        job_id, _ = start_slow_job(stack, client_for(stack))

        stop_with_sigterm(first)
        assert "did not stop within 0 s: killed" in first.output(), first.output()[-3000:]
        assert job_row(stack, job_id)["status"] == "running"  # left for the next start to requeue
    finally:
        first.stop()

    second = Serve(stack)
    try:
        wait_until(second.healthy, START_TIMEOUT, "serve's API")
        job = client_for(stack).wait(job_id, timeout=2 * START_TIMEOUT)
        assert job["status"] == "succeeded", job
        stop_with_sigterm(second)
        assert error_lines(second.output()) == [], second.output()[-3000:]
    finally:
        second.stop()
