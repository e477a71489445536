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

from tests.faults.conftest import assert_finished_exactly_once, client_for, job_row, slow_csv, slow_params
from tests.stack import Stack
from tests.waiting import wait_until

pytestmark = [pytest.mark.service, pytest.mark.slow]

START_TIMEOUT = 120  # a cold worker imports the ML stack


def error_lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if "ERROR" in line or "Traceback" in line]


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
    worker = stack.start_worker()
    stack.start_api()
    alice = client_for(stack)
    response = alice.submit("gbdtclassification", slow_csv(), **slow_params())
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    wait_until(lambda: job_row(stack, job_id)["status"] == "running", START_TIMEOUT, "the job to run")

    stop(worker.pid)
    assert worker.wait(timeout=240) == 0

    assert job_row(stack, job_id)["status"] == "succeeded"
    assert_finished_exactly_once(stack, [job_id])
    assert stack.api is not None
    stack.api.send_signal(signal.SIGTERM)
    stack.api.wait(timeout=30)
    logs = {path.name: path.read_text(errors="replace") for path in stack.tmp.glob("*.log")}
    assert {name: error_lines(log) for name, log in logs.items()} == {name: [] for name in logs}, logs
