"""The computation child's supervisor notes a computation as its worker's current job only once it has
run for a while: a short one is never noted (nothing written while it computes), a long one is, once."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

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
