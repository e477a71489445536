"""Per-user storage quota (uploads and results kept), and what cancelled and deleted jobs leave behind:
nothing, but for content still used by another job.

The first tests run with no worker, so every accepted job stays queued and holds exactly its upload;
the `worker` fixture starts one (two pool processes) for the tests after them.
"""

from __future__ import annotations

import queue
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, delete, func, select, text, update
from sqlalchemy.orm import Session

from shared.db import make_engine
from shared.dispatch import chunks
from shared.ml.ingest.upload import ingest
from shared.ml.spec import JobSpec, Limits, ModelSpec
from shared.store.jobstore import cancel, claim, create_job, delete_job, fail, succeed
from shared.store.retention import purge_expired
from shared.store.uploads import release_upload, sha256_hex, store_upload
from shared.tables import Job, JobChunk, JobPrepared, Upload, User, utcnow
from tests.parts import shap_part
from tests.stack import DATA, Client, Stack

pytestmark = [pytest.mark.service]

IRIS = (DATA / "iris_dataset2.csv").read_bytes()


def stored_size(content: bytes) -> int:
    """What the service keeps of a CSV upload, and charges: its canonical Parquet file."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "upload.csv"
        path.write_bytes(content)
        return ingest(path, Path(directory) / "canonical.parquet", Limits()).size_bytes


# Three iris-sized uploads fit, a fourth does not; two fit, but not one with its SHAP result (about 5.2 kB,
# more than the 4.6 kB of iris's Parquet file) and another.
QUOTA = int(3.05 * stored_size(IRIS))
SETTING = "FITEXPLAIN_MAX_STORAGE_BYTES_PER_USER"


def variant(i: int) -> bytes:
    """A distinct CSV (its own sha256) of about iris's size, valid for classification."""
    return IRIS.replace(b"sepal length (cm)", f"sepal length {i:05d}".encode(), 1)


@pytest.fixture(scope="module")
def quota(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = Stack(
        tmp_path_factory.mktemp("quota"),
        extra_env={
            SETTING: str(QUOTA),
            # Fan iris's 45 test rows out in chunks, so finished jobs have chunk parts to drop.
            "FITEXPLAIN_FANOUT_MIN_ROWS": "20",
            "FITEXPLAIN_FANOUT_CHUNK_ROWS": "10",
        },
    ).setup()
    stack.start_api()
    with stack.as_this_process():  # the job store calls below write to the stack's blob store
        yield stack
    stack.stop()


@pytest.fixture(scope="module")
def engine(quota: Stack) -> Iterator[Engine]:
    made = make_engine(quota.database_url)
    yield made
    made.dispose()


@pytest.fixture(scope="module")
def worker(quota: Stack, engine: Engine) -> Stack:
    with engine.connect() as conn:  # every earlier test cancelled what it left queued
        assert conn.scalar(text("SELECT count(*) FROM jobs WHERE status = 'queued'")) == 0
    quota.start_worker(concurrency=2)  # two pool processes: a job fans out only when another can help
    quota.wait_for_workers(2)
    return quota


def user(stack: Stack, name: str) -> Client:
    return Client(stack.url, stack.token(name))


def usage(client: Client) -> dict[str, int]:
    response = client.http.get("/account/usage")
    assert response.status_code == 200, response.text
    return response.json()


def accepted(response: httpx.Response) -> str:
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def cancel_unfinished(client: Client) -> None:
    for status in ("queued", "running"):
        for job in client.http.get("/jobs", params={"status": status, "limit": 100}).json()["items"]:
            assert client.http.delete(f"/jobs/{job['id']}").status_code == 200


STORED = ("upload_bytes", "uploads", "result_bytes", "results", "chunks", "prepared")
HOLDS_A_PART = "blob_key IS NOT NULL"


def stored(engine: Engine, stack: Stack) -> dict[str, int]:
    """Everything the service keeps: rows with their stored sizes (uploads, results, chunk parts,
    prepared models), and the blobs in its store."""
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT (SELECT coalesce(sum(size_bytes), 0) FROM datasets),"
                " (SELECT count(*) FROM datasets),"
                " (SELECT coalesce(sum(stored_bytes), 0) FROM job_results),"
                " (SELECT count(*) FROM job_results),"
                f" (SELECT count(*) FROM job_chunks WHERE {HOLDS_A_PART}),"
                " (SELECT count(*) FROM job_prepared)"
            )
        ).one()
    blobs = {blob.key: blob.size for blob in stack.blob_store().list()}
    return {
        **dict(zip(STORED, map(int, row), strict=True)),
        "blobs": len(blobs),
        "blob_bytes": sum(blobs.values()),
    }


def upload_exists(engine: Engine, content: bytes) -> bool:
    with Session(engine) as session:
        return session.get(Upload, sha256_hex(content)) is not None


def test_usage_of_a_new_user(quota: Stack) -> None:
    assert usage(user(quota, "newcomer")) == {
        "used_bytes": 0,
        "quota_bytes": QUOTA,
        "available_bytes": QUOTA,
        "uploads_bytes": 0,
        "results_bytes": 0,
        "uploads": 0,
        "results": 0,
        "models_bytes": 0,
        "models": 0,
    }


def test_uploads_beyond_the_quota_are_refused_until_jobs_are_deleted(quota: Stack) -> None:
    ann = user(quota, "ann")
    jobs = [accepted(ann.submit("gbdtclassification", variant(i))) for i in range(3)]
    sizes = [stored_size(variant(i)) for i in range(3)]
    assert usage(ann)["used_bytes"] == usage(ann)["uploads_bytes"] == sum(sizes)
    again = accepted(ann.submit("gbdtclassification", variant(0)))  # stored and charged once
    assert usage(ann)["uploads"] == 3 and usage(ann)["used_bytes"] == sum(sizes)

    refused = ann.submit("gbdtclassification", variant(3))
    assert refused.status_code == 413, refused.text
    body = refused.json()
    assert set(body) == {"detail", "code", "usage"} and body["code"] == "storage_quota_exceeded"
    assert SETTING in body["detail"] and f"{QUOTA:,}" in body["detail"]
    assert f"{sum(sizes):,}" in body["detail"] and "DELETE /jobs" in body["detail"]
    assert body["usage"] == usage(ann)
    assert ann.http.get("/jobs").json()["total"] == 4  # the refused upload left no job behind

    assert ann.http.delete(f"/jobs/{again}").json()["status"] == "cancelled"
    assert usage(ann)["used_bytes"] == sum(sizes)  # the first job still uses that upload
    assert ann.http.delete(f"/jobs/{jobs[1]}").json()["status"] == "cancelled"
    assert usage(ann)["used_bytes"] == sum(sizes) - sizes[1]
    accepted(ann.submit("gbdtclassification", variant(3)))  # the space is free again
    cancel_unfinished(ann)
    assert usage(ann)["used_bytes"] == 0


def test_an_upload_shared_by_two_users_is_charged_to_each_and_kept_while_used(
    quota: Stack, engine: Engine
) -> None:
    ben, cid = user(quota, "ben"), user(quota, "cid")
    shared = variant(10)
    ben_job = accepted(ben.submit("gbdtclassification", shared))
    cid_job = accepted(cid.submit("gbdtclassification", shared))
    assert usage(ben)["uploads_bytes"] == usage(cid)["uploads_bytes"] == stored_size(shared)
    ben.http.delete(f"/jobs/{ben_job}")
    assert usage(ben)["used_bytes"] == 0
    assert upload_exists(engine, shared)  # cid's job still needs it
    cid.http.delete(f"/jobs/{cid_job}")
    assert not upload_exists(engine, shared)


def test_parallel_submits_do_not_slip_past_the_quota(quota: Stack) -> None:
    dee = user(quota, "dee")
    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(lambda i: dee.submit("gbdtclassification", variant(20 + i)), range(8)))
    codes = [response.status_code for response in responses]
    assert set(codes) == {202, 413} and codes.count(202) == 3, codes
    assert usage(dee)["used_bytes"] <= QUOTA
    cancel_unfinished(dee)


def test_cancelled_queued_jobs_leave_nothing_behind(quota: Stack, engine: Engine) -> None:
    """Six of the acceptance test's twelve rounds: submit a distinct CSV, cancel it while it is queued."""
    eli = user(quota, "eli")
    before = stored(engine, quota)
    for i in range(6):
        job_id = accepted(eli.submit("gbdtclassification", variant(100 + i)))
        assert eli.http.delete(f"/jobs/{job_id}").json()["status"] == "cancelled"
        assert stored(engine, quota) == before
    assert usage(eli)["used_bytes"] == 0


def session_user(session: Session, name: str) -> int:
    return int(session.scalar(select(User.id).where(User.name == name)))


def new_job(session: Session, owner: int, content: bytes, interpretability: tuple[str, ...] = ()) -> str:
    """What a submit does in its transaction: store (or lock) the upload, insert the job."""
    digest = sha256_hex(content)
    store_upload(session, content, digest, 150, 4)
    model = ModelSpec(task="classification", family="gbdt")
    spec = JobSpec(model=model, interpretability=interpretability).to_json()
    return create_job(
        session, user_id=owner, endpoint="gbdtclassification", params={}, spec=spec, dataset=digest
    ).id


class BlockedTransaction:
    """Runs `work(session)` and commits, in a thread; the constructor returns once that transaction
    waits for a row lock another one holds (the race under test is then set up), `join` after."""

    def __init__(self, engine: Engine, work: Callable[[Session], object]) -> None:
        self.errors: list[BaseException] = []
        self.result: object = None
        self._pid: queue.Queue[int] = queue.Queue()
        self.thread = threading.Thread(target=self._run, args=(engine, work))
        self.thread.start()
        pid = self._pid.get(timeout=30)
        waiting = text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid AND wait_event_type = 'Lock'")
        deadline = time.monotonic() + 30
        with engine.connect() as conn:
            while not conn.scalar(waiting, {"pid": pid}) and self.thread.is_alive():
                conn.rollback()
                assert time.monotonic() < deadline, "the transaction never waited for the lock"
                time.sleep(0.02)  # polling for a state, as Client.wait does; nothing is timed

    def _run(self, engine: Engine, work: Callable[[Session], object]) -> None:
        try:
            with Session(engine) as session:
                self._pid.put(int(session.scalar(text("SELECT pg_backend_pid()"))))
                self.result = work(session)
                session.commit()
        except BaseException as exc:
            self.errors.append(exc)

    def join(self) -> object:
        self.thread.join(timeout=60)
        assert not self.thread.is_alive()
        if self.errors:
            raise self.errors[0]
        return self.result


def test_delete_waits_for_a_submit_reusing_the_upload(quota: Stack, engine: Engine) -> None:
    """A submit holds the upload it deduplicated against: a concurrent delete of the last other job
    using it leaves it in place (and does not fail)."""
    user(quota, "fay")
    content = variant(200)
    with Session(engine) as setup:
        fay = session_user(setup, "fay")
        old = new_job(setup, fay, content)
        setup.commit()
    submit = Session(engine)
    new = new_job(submit, fay, content)  # deduplicated: the stored copy is locked, the commit comes later
    deleter = BlockedTransaction(engine, lambda session: delete_job(session, old))
    submit.commit()
    submit.close()
    deleter.join()
    with Session(engine) as session:
        assert session.get(Job, old) is None
        assert session.get(Job, new).dataset_sha256 == sha256_hex(content)
        assert session.get(Upload, sha256_hex(content)) is not None
        delete_job(session, new)
        session.commit()
    assert not upload_exists(engine, content)


def test_submit_waits_for_a_delete_removing_the_upload(quota: Stack, engine: Engine) -> None:
    """A delete is removing the upload a submit deduplicates against: the submit stores it again."""
    user(quota, "gus")
    content = variant(201)
    with Session(engine) as setup:
        gus = session_user(setup, "gus")
        old = new_job(setup, gus, content)
        setup.commit()
    deleting = Session(engine)
    delete_job(deleting, old)  # the upload is deleted in this open transaction
    submitter = BlockedTransaction(engine, lambda session: new_job(session, gus, content))
    deleting.commit()
    deleting.close()
    created = submitter.join()
    with Session(engine) as session:
        job = session.get(Job, created)
        assert job is not None and job.dataset_sha256 == sha256_hex(content)
        assert session.get(Upload, sha256_hex(content)) is not None
        delete_job(session, job.id)
        session.commit()
    assert not upload_exists(engine, content)


def test_two_deletes_at_once_release_the_upload_they_shared(quota: Stack, engine: Engine) -> None:
    """Each delete sees the other's job still there until it commits: the second must look again."""
    user(quota, "gil")
    content = variant(202)
    with Session(engine) as setup:
        gil = session_user(setup, "gil")
        first, second = new_job(setup, gil, content), new_job(setup, gil, content)
        setup.commit()
    deleting = Session(engine)
    delete_job(deleting, first)  # keeps the upload: `second` still uses it
    other = BlockedTransaction(engine, lambda session: delete_job(session, second))
    deleting.commit()
    deleting.close()
    other.join()
    assert not upload_exists(engine, content)


def running_job_with_working_data(engine: Engine, owner: str, content: bytes) -> str:
    """A job claimed by a (pretend) worker "w", with two chunk parts and a prepared model stored."""
    with Session(engine) as session:
        job_id = new_job(session, session_user(session, owner), content, interpretability=("shap",))
        session.commit()
        assert claim(session, job_id, worker="w", stale_after=60, max_attempts=3).job is not None
        chunks.create_chunks(session, job_id, "shap", [(0, 1), (1, 2), (2, 3)])
        chunks.store_prepared(session, job_id, {"model": "fitted"})
        session.commit()
        for _ in range(2):
            chunk = chunks.claim_next(session, job_id, stale_after=60)
            assert chunk is not None
            chunks.finish(session, chunk, shap_part(chunk.start, chunk.stop))
            session.commit()
        return job_id


def working_data(engine: Engine, job_id: str) -> tuple[int, int]:
    """(chunk parts, prepared models) the job keeps."""
    with Session(engine) as session:
        parts = session.scalar(select(func.count()).where(JobChunk.job_id == job_id, text(HOLDS_A_PART)))
        return int(parts or 0), int(session.get(JobPrepared, job_id) is not None)


@pytest.mark.parametrize(("outcome", "index"), [("succeeded", 300), ("failed", 301), ("cancelled", 302)])
def test_a_finished_job_drops_its_working_data(
    quota: Stack, engine: Engine, outcome: str, index: int
) -> None:
    user(quota, "hal")
    content = variant(index)
    job_id = running_job_with_working_data(engine, "hal", content)
    assert working_data(engine, job_id) == (2, 1)
    with Session(engine) as session:
        if outcome == "succeeded":
            assert succeed(session, job_id, "w", {"ok": True})
        elif outcome == "failed":
            assert fail(session, job_id, "internal_error", "boom", worker="w")
        else:
            assert cancel(session, job_id)
        session.commit()
    assert working_data(engine, job_id) == (0, 0)
    assert upload_exists(engine, content) is (outcome != "cancelled")  # cancelled: released at once
    with Session(engine) as session:
        delete_job(session, job_id)
        session.commit()
    assert not upload_exists(engine, content)


def test_chunk_parts_of_a_finished_job_are_not_stored(quota: Stack, engine: Engine) -> None:
    """A helper that finishes its chunk after the job was cancelled stores nothing."""
    user(quota, "ivy")
    job_id = running_job_with_working_data(engine, "ivy", variant(303))
    with Session(engine) as session:
        chunk = chunks.claim_next(session, job_id, stale_after=60)
        session.commit()
        assert chunk is not None and cancel(session, job_id)
        session.commit()
        chunks.finish(session, chunk, shap_part(chunk.start, chunk.stop))
        session.commit()
        assert not chunks.still_running(session, job_id)
    assert working_data(engine, job_id) == (0, 0)


def test_a_cancel_waits_for_working_data_being_stored_and_drops_it(quota: Stack, engine: Engine) -> None:
    """The job's worker stores its prepared model while the user cancels: the model must not outlive it."""
    user(quota, "ike")
    job_id = running_job_with_working_data(engine, "ike", variant(304))
    with Session(engine) as session:
        session.execute(delete(JobPrepared).where(JobPrepared.job_id == job_id))
        session.commit()
    storing = Session(engine)
    assert chunks.still_running(storing, job_id)  # what the fan-out does before storing its work
    chunks.store_prepared(storing, job_id, {"model": "fitted"})
    canceller = BlockedTransaction(engine, lambda session: cancel(session, job_id))
    storing.commit()
    storing.close()
    assert canceller.join() is True
    assert working_data(engine, job_id) == (0, 0)


def test_retention_releases_only_uploads_no_job_uses(quota: Stack, engine: Engine) -> None:
    user(quota, "jon")
    kept, dropped = variant(400), variant(401)
    with Session(engine) as session:
        jon = session_user(session, "jon")
        old_kept, old_dropped, queued = (new_job(session, jon, c) for c in (kept, dropped, kept))
        session.commit()
        for job_id in (old_kept, old_dropped):
            assert fail(session, job_id, "internal_error", "boom")
        long_ago = utcnow() - timedelta(days=40)
        session.execute(update(Job).where(Job.id.in_([old_kept, old_dropped])).values(finished_at=long_ago))
        session.commit()
        assert purge_expired(session, retention_days=30) == {
            "jobs": 2,
            "results": 0,
            "datasets": 1,
            "models": 0,
        }
        session.commit()
        assert upload_exists(engine, kept) and not upload_exists(engine, dropped)  # `queued` uses `kept`
        assert release_upload(session, sha256_hex(kept)) is False
        assert cancel(session, queued)
        session.commit()
    assert not upload_exists(engine, kept)


def test_finished_and_deleted_jobs_leave_nothing_behind(worker: Stack, engine: Engine) -> None:
    """The other six rounds: submit a distinct CSV, let it finish (SHAP fanned out in chunks), delete it."""
    kim = user(worker, "kim")
    before = stored(engine, worker)
    for i in range(6):
        content = variant(500 + i)
        job_id = accepted(kim.submit("gbdtclassification", content, interpretability="shap"))
        assert kim.wait(job_id)["status"] == "succeeded"
        account = usage(kim)
        assert account["results"] == 1 and account["results_bytes"] > 0
        assert account["models"] == 1 and account["models_bytes"] > 0  # its kept model
        assert account["used_bytes"] == (
            stored_size(content) + account["results_bytes"] + account["models_bytes"]
        )
        with Session(engine) as session:  # the explanation was fanned out, and its parts dropped since
            assert session.scalar(select(func.count()).where(JobChunk.job_id == job_id)) >= 2
        assert working_data(engine, job_id) == (0, 0)
        assert kim.http.delete(f"/jobs/{job_id}").status_code == 204
        assert stored(engine, worker) == before
    assert usage(kim)["used_bytes"] == 0


def test_a_result_counts_against_the_quota(worker: Stack) -> None:
    """Two iris uploads fit the quota, but not one upload, its SHAP result and another upload."""
    lea = user(worker, "lea")
    first = accepted(lea.submit("gbdtclassification", variant(600), interpretability="shap"))
    assert lea.wait(first)["status"] == "succeeded"
    account = usage(lea)
    assert account["used_bytes"] == (
        stored_size(variant(600)) + account["results_bytes"] + account["models_bytes"]
    )
    assert 2 * stored_size(variant(601)) <= QUOTA < account["used_bytes"] + stored_size(variant(601))
    refused = lea.submit("gbdtclassification", variant(601))
    assert refused.status_code == 413 and f"results {account['results_bytes']:,}" in refused.json()["detail"]
    assert lea.http.delete(f"/jobs/{first}").status_code == 204  # deleting the finished job frees it all
    assert usage(lea)["used_bytes"] == 0
    second = accepted(lea.submit("gbdtclassification", variant(601)))
    assert lea.wait(second)["status"] == "succeeded"
