"""A cluster's jobs: every endpoint's result equals one host's, a fanned-out SHAP job's chunks are computed
on several machines, and no machine reads another's disk or a shared local directory."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from tests.cluster.conftest import FANOUT, Cluster, make_cluster
from tests.cluster.fault_proxy import FaultProxy
from tests.cluster.hosts import host_of_worker
from tests.contract import assert_same_result
from tests.s3 import S3Server
from tests.service.test_fanout import REQUESTS
from tests.stack import Client

pytestmark = [pytest.mark.service, pytest.mark.slow]


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, s3_server: S3Server, s3_proxy: FaultProxy
) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("cluster")
    with make_cluster(tmp, s3_server, s3_proxy, ("a", "b"), FANOUT) as cluster:
        cluster.stack.wait_for_workers(2)  # a job fans out only when another worker is there to help
        yield cluster


@pytest.fixture(scope="module")
def carol(cluster: Cluster) -> Client:
    return cluster.client("carol")


@pytest.mark.parametrize(("endpoint", "csv", "params"), REQUESTS)
def test_every_endpoint_gives_one_hosts_numbers(
    carol: Client, alice: Client, endpoint: str, csv: str, params: dict[str, object]
) -> None:
    on_cluster = carol.run(endpoint, csv, interpretability="permutation,shap", **params)
    on_one_host = alice.run(endpoint, csv, interpretability="permutation,shap", **params)
    assert_same_result(on_one_host, on_cluster)


def test_fanned_out_shap_is_computed_on_several_hosts(cluster: Cluster, carol: Client) -> None:
    response = carol.submit("mlclassification", "breast_cancer_dataset2.csv", interpretability="shap")
    assert response.status_code == 202, response.text
    job = carol.wait(response.json()["id"])
    assert job["status"] == "succeeded", job

    rows = cluster.query(
        "SELECT index, status, worker FROM job_chunks WHERE job_id = %s AND method = 'shap'", job["id"]
    )
    assert len(rows) >= 4, rows
    assert all(status == "done" for _, status, _ in rows), rows
    machines = {host_of_worker(str(worker)) for _, _, worker in rows}
    assert machines == {cluster.hosts["a"].user, cluster.hosts["b"].user}, rows


def test_hosts_share_nothing_on_disk(cluster: Cluster, carol: Client) -> None:
    carol.run("gbdtregression", "boston_dataset2.csv")
    api, a, b = (cluster.hosts[name] for name in ("api", "a", "b"))
    for host in (api, a, b):  # the bytes are in the bucket: no machine has the local store's directory
        assert not (host.home / "fitexplain" / "blobs").exists(), host
        assert not list(host.home.rglob("results")), host
    # Each worker that ran a job fetched its upload from the bucket into its own cache.
    assert list(a.home.glob("fitexplain/cache/blobs/uploads/*")) or list(
        b.home.glob("fitexplain/cache/blobs/uploads/*")
    )
    # A machine's user cannot read another machine's home.
    peeked = subprocess.run(["runuser", "-u", a.user, "--", "ls", str(b.home)], capture_output=True)
    assert peeked.returncode != 0, peeked
    assert b"Permission denied" in peeked.stderr
