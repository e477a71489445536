"""`fitexplain worker` and `fitexplain api` stopped as an operator or a terminal stops them: SIGTERM to
the worker's main process (what docker and systemd send), or Ctrl-C (SIGINT to the whole foreground
process group, pool processes included) is a warm shutdown: the running job finishes, exactly once, and
nothing is logged as an error.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable

import pytest

from tests.faults.conftest import (
    assert_finished_exactly_once,
    client_for,
    error_lines,
    job_row,
    start,
    start_slow_job,
)
from tests.stack import Stack

pytestmark = [pytest.mark.service, pytest.mark.slow]


@pytest.mark.parametrize(
    "stop",
    [
        pytest.param(lambda pid: os.kill(pid, signal.SIGTERM), id="sigterm"),
        pytest.param(lambda pid: os.killpg(pid, signal.SIGINT), id="ctrl-c"),
    ],
)
def test_a_stopped_worker_finishes_its_running_job_and_logs_no_error(
    stacks: Callable[..., Stack], stop: Callable[[int], None]
) -> None:
    stack = stacks()
    (worker,) = start(stack)
    job_id, _ = start_slow_job(stack, client_for(stack))

    stop(worker.pid)
    assert worker.wait(timeout=240) == 0

    assert job_row(stack, job_id)["status"] == "succeeded"
    assert_finished_exactly_once(stack, [job_id])
    assert stack.api is not None
    stack.api.send_signal(signal.SIGTERM)
    stack.api.wait(timeout=30)
    logs = {path.name: path.read_text(errors="replace") for path in stack.tmp.glob("*.log")}
    assert {name: error_lines(log) for name, log in logs.items()} == {name: [] for name in logs}, logs
