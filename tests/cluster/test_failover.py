"""A cluster keeps its jobs through faults of one machine or of the blob store: a host's worker killed
with SIGKILL (its heartbeat with it), and the S3 server unreachable for a while mid-job. Every job is
run, none lost, none run twice at once."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest

from tests.cluster.conftest import Cluster, make_cluster
from tests.cluster.fault_proxy import FaultProxy
from tests.cluster.hosts import host_of_worker
from tests.faults.conftest import assert_finished_exactly_once, job_events, job_row, slow_csv, slow_params
from tests.s3 import S3Server
from tests.waiting import wait_until

pytestmark = [pytest.mark.service, pytest.mark.slow]

START_TIMEOUT = 120  # a cold worker imports the ML stack
FINISH_TIMEOUT = 240  # slow jobs one after another on a loaded machine, with a stale heartbeat between


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, s3_server: S3Server, s3_proxy: FaultProxy
) -> Iterator[Cluster]:
    with make_cluster(tmp_path_factory.mktemp("cluster"), s3_server, s3_proxy, ("a", "b"), {}) as cluster:
        cluster.stack.wait_for_workers(2)
        yield cluster


def runs_twice_at_once(history: list[str]) -> bool:
    """A job started again while an earlier start had not ended (requeued, or finished)."""
    running = False
    for event in history:
        if event == "started":
            if running:
                return True
            running = True
        elif event in ("requeued", "succeeded", "failed", "cancelled"):
            running = False
    return False


def counts(cluster: Cluster, job_ids: list[str]) -> dict[str, int]:
    """How many jobs ran to success, were lost (anything else), and ran twice at once."""
    events = assert_finished_exactly_once(cluster.stack, job_ids)
    statuses = [job_row(cluster.stack, job_id)["status"] for job_id in job_ids]
    found = {
        "run": statuses.count("succeeded"),
        "lost": len(job_ids) - statuses.count("succeeded"),
        "run twice at once": sum(runs_twice_at_once(events[job_id]) for job_id in job_ids),
    }
    print(f"jobs: {found}")
    return found


def submit_slow(cluster: Cluster, count: int) -> list[str]:
    alice = cluster.client()
    ids = []
    for seed in range(count):
        response = alice.submit("gbdtclassification", slow_csv(seed=seed), **slow_params())
        assert response.status_code == 202, response.text
        ids.append(response.json()["id"])
    return ids


def running_on(cluster: Cluster, job_ids: list[str], user: str) -> str | None:
    for job_id in job_ids:
        row = job_row(cluster.stack, job_id)
        if row["status"] == "running" and row["worker"] and host_of_worker(row["worker"]) == user:
            return job_id
    return None


def test_s3_unreachable_mid_job_the_job_retries_and_succeeds(cluster: Cluster) -> None:
    [job_id] = submit_slow(cluster, 1)
    wait_until(lambda: job_row(cluster.stack, job_id)["status"] == "running", START_TIMEOUT, "its start")
    cluster.proxy.cut()
    try:  # its result cannot be stored: the computation gives up, and the job is queued again
        wait_until(
            lambda: "requeued" in job_events(cluster.stack).get(job_id, []), FINISH_TIMEOUT, "a requeue"
        )
    finally:
        cluster.proxy.restore()
    job = cluster.client().wait(job_id, timeout=FINISH_TIMEOUT)

    assert job["status"] == "succeeded", job
    assert cluster.proxy.refused > 0
    assert job_row(cluster.stack, job_id)["attempts"] == 2
    assert counts(cluster, [job_id]) == {"run": 1, "lost": 0, "run twice at once": 0}
    assert cluster.client().result(job_id)["y_pred"]


def test_a_hosts_worker_killed_mid_job_its_job_finishes_on_the_other(cluster: Cluster) -> None:
    job_ids = submit_slow(cluster, 3)
    user_a = cluster.hosts["a"].user
    victim = wait_until(lambda: running_on(cluster, job_ids, user_a), START_TIMEOUT, "a job on host a")
    cluster.stack.stop_worker(cluster.workers["a"], signal.SIGKILL)  # the worker, its pool, its heartbeat

    for job_id in job_ids:
        job = cluster.client().wait(job_id, timeout=FINISH_TIMEOUT)
        assert job["status"] == "succeeded", job
    assert host_of_worker(str(job_row(cluster.stack, victim)["worker"])) == cluster.hosts["b"].user
    assert job_row(cluster.stack, victim)["attempts"] == 2
    assert "requeued" in job_events(cluster.stack)[victim]
    assert counts(cluster, job_ids) == {"run": 3, "lost": 0, "run twice at once": 0}
