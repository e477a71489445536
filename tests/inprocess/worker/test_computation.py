"""The computation child's supervisor notes a computation as its worker's current job only once it has
run for a while: a short one is never noted (nothing written while it computes), a long one is, once; and a
child that died while idle is replaced, not sent the next computation."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.waiting import wait_until
from worker.computation import KillableExecutor, Outcome, Progress


def quick(progress: Progress) -> str:
    return "quick"


def slow(progress: Progress) -> str:
    time.sleep(0.4)
    return "slow"


@pytest.fixture
def executor() -> Iterator[KillableExecutor]:
    executor = KillableExecutor()
    yield executor
    executor.close()


def run(executor: KillableExecutor, compute: object, started_after: float) -> tuple[Outcome, list[float]]:
    noted: list[float] = []
    sent = time.monotonic()
    outcome = executor.run(
        compute,  # type: ignore[arg-type]
        time_limit=30,
        poll_seconds=0.05,
        still_wanted=lambda: True,
        on_progress=lambda fraction, message: None,
        on_started=lambda: noted.append(time.monotonic() - sent),
        started_after=started_after,
    )
    return outcome, noted


def test_a_short_computation_is_never_noted(executor: KillableExecutor) -> None:
    assert run(executor, quick, started_after=5) == (Outcome("finished", "quick"), [])


def test_a_long_computation_is_noted_once_after_the_delay(executor: KillableExecutor) -> None:
    outcome, noted = run(executor, slow, started_after=0.1)
    assert outcome == Outcome("finished", "slow")
    assert len(noted) == 1 and noted[0] >= 0.1


def exited(pid: int) -> bool:
    """Whether the process has exited (a zombie not yet reaped counts), without reaping it."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith(("Z", "X"))
    except FileNotFoundError:
        return True


def test_a_child_forked_by_a_thread_that_ended_is_replaced(executor: KillableExecutor) -> None:
    """The parent-death signal belongs to the forking thread: a child forked while an ASGI request's
    thread ran a job is killed when that thread ends, and the next job must get a new child."""
    first: list[Outcome] = []
    forking = threading.Thread(target=lambda: first.append(run(executor, quick, started_after=5)[0]))
    forking.start()
    forking.join()
    assert first == [Outcome("finished", "quick")]
    child = executor.child_pid
    assert child is not None
    wait_until(lambda: exited(child), 10, "the child to get its parent-death signal")
    assert run(executor, quick, started_after=5)[0] == Outcome("finished", "quick")
    assert executor.child_pid not in (None, child, os.getpid())
