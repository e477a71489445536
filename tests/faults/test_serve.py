"""`fitexplain serve` supervises its workers: one per queue, a killed worker is restarted (and serve says
why), and no worker, pool process or computation outlives a serve killed with SIGKILL.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.faults.conftest import client_for, slow_csv, slow_params
from tests.stack import BIN, Stack
from tests.waiting import wait_until

pytestmark = [pytest.mark.service, pytest.mark.slow]

START_TIMEOUT = 120  # a cold worker imports the ML stack


def parents() -> dict[int, int]:
    """Every live process's parent (zombies count as gone)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if state != "Z":
            found[int(entry.name)] = int(ppid)
    return found


def descendants(pid: int) -> set[int]:
    tree = parents()
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in tree.items() if parent in frontier} - found
        found |= frontier
    return found


def command_line(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


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
