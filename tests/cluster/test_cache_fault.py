"""A machine whose cache disk cannot be written (here: its cache directory read-only, owned by another
user) stops taking jobs with a clear error, and its job runs on another machine: not failed, not lost."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.cluster.conftest import Cluster, make_cluster
from tests.cluster.fault_proxy import FaultProxy
from tests.cluster.hosts import host_of_worker
from tests.faults.conftest import assert_finished_exactly_once, job_row
from tests.s3 import S3Server
from tests.waiting import wait_until

pytestmark = [pytest.mark.service, pytest.mark.slow]

START_TIMEOUT = 120


@pytest.fixture
def cluster(
    tmp_path_factory: pytest.TempPathFactory, s3_server: S3Server, s3_proxy: FaultProxy
) -> Iterator[Cluster]:
    with make_cluster(
        tmp_path_factory.mktemp("cluster"), s3_server, s3_proxy, ("broken", "a"), {}, start_workers=False
    ) as cluster:
        yield cluster


def test_a_host_whose_cache_is_read_only_hands_its_job_over(cluster: Cluster) -> None:
    broken = cluster.hosts["broken"]
    home = broken.home / "fitexplain"
    home.mkdir()
    os.chown(home, broken.home.stat().st_uid, broken.home.stat().st_gid)
    (home / "cache").mkdir(mode=0o555)  # root's, read-only: the host's user cannot write there

    worker = cluster.start_worker("broken")
    cluster.stack.wait_for_workers(1)
    alice = cluster.client()
    response = alice.submit("gbdtregression", "boston_dataset2.csv")
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]

    wait_until(lambda: worker.poll() is not None, START_TIMEOUT, "the broken host's worker to stop")
    assert "stops taking jobs: " in cluster.log()
    assert "cannot be written: Permission denied" in cluster.log()
    assert job_row(cluster.stack, job_id)["status"] == "queued"  # given back, not failed

    cluster.start_worker("a")
    job = alice.wait(job_id, timeout=START_TIMEOUT)
    assert job["status"] == "succeeded", job
    row = job_row(cluster.stack, job_id)
    assert host_of_worker(str(row["worker"])) == cluster.hosts["a"].user
    assert row["attempts"] == 2  # the broken host's attempt, then host a's
    history = assert_finished_exactly_once(cluster.stack, [job_id])[job_id]
    assert history.count("started") == 2 and "requeued" in history, history
