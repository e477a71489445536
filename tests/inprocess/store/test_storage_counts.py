"""Each user's storage counts (`storage_usage`, kept by the initial migration's triggers) equal what
counting the user's jobs gives, after every change a job goes through, on SQLite and on Postgres."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from shared.limits import reserve_submission
from shared.ml.spec import JobSpec, ModelSpec
from shared.settings import Settings
from shared.store import model_conversions
from shared.store.jobstore import cancel, claim, create_job, delete_job, succeed
from shared.store.kept_models import DownloadFile, ModelToKeep, keep_model
from shared.store.retention import purge_expired
from shared.store.uploads import StorageUsage, sha256_hex, store_upload, usage
from shared.tables import (
    Job,
    JobModel,
    JobResult,
    JobStatus,
    ModelConversion,
    ModelFile,
    StoredModel,
    Upload,
    utcnow,
)
from tests.inprocess.factories import Jobs

SPEC = JobSpec(model=ModelSpec(task="classification", family="gbdt")).to_json()


def counted(session: Session, user_id: int) -> StorageUsage:
    """The usage as the API counted it before the counts were kept: over all the user's jobs."""
    referenced = select(Job.dataset_sha256).where(Job.user_id == user_id)
    uploads = session.execute(
        select(func.coalesce(func.sum(Upload.size_bytes), 0), func.count()).where(
            Upload.sha256.in_(referenced)
        )
    ).one()
    results = session.execute(
        select(func.coalesce(func.sum(JobResult.stored_bytes), 0), func.count())
        .join(Job, Job.id == JobResult.job_id)
        .where(Job.user_id == user_id)
    ).one()
    return StorageUsage(int(uploads[0]), int(results[0]), int(uploads[1]), int(results[1]))


def assert_kept(sessions: sessionmaker[Session], *users: int) -> None:
    with sessions() as session:
        for user_id in users:
            assert usage(session, user_id) == counted(session, user_id)


def succeeded(sessions: sessionmaker[Session], job_id: str, result: dict) -> None:
    with sessions.begin() as session:
        assert claim(session, job_id, worker="w:1", stale_after=60, max_attempts=3).job is not None
    with sessions.begin() as session:
        assert succeed(session, job_id, "w:1", result)


def test_counts_follow_submits_results_cancels_deletes_and_retention(jobs: Jobs) -> None:
    sessions = jobs.sessions
    alice, bob = jobs.user("alice"), jobs.user("bob")
    assert_kept(sessions, alice, bob)
    x, y = b"x,target\n1,0\n2,1\n", b"y,target\n" + b"3,0\n" * 50
    a1, a2 = jobs.job(alice, content=x), jobs.job(alice, content=x)  # one upload, counted once
    a3, b1 = jobs.job(alice, content=y), jobs.job(bob, content=x)  # bob's jobs keep x for bob too
    with sessions() as session:
        assert usage(session, alice).uploads == 2 and usage(session, bob).uploads == 1
    assert_kept(sessions, alice, bob)

    succeeded(sessions, a1, {"y_pred": [0, 1] * 100})
    succeeded(sessions, b1, {"y_pred": [1]})
    with sessions() as session:
        assert usage(session, alice).results == 1 and usage(session, alice).results_bytes > 0
    assert_kept(sessions, alice, bob)

    with sessions.begin() as session:  # releases y: no other job of alice's uses it
        assert cancel(session, a3)
    with sessions() as session:
        assert usage(session, alice).uploads == 1
    assert_kept(sessions, alice, bob)

    with sessions.begin() as session:  # its result goes; x stays, a2 still uses it
        delete_job(session, a1)
    assert_kept(sessions, alice, bob)

    # Retention deletes two finished jobs of alice's on x in one statement: x is counted off once.
    a4 = jobs.job(alice, content=x)
    succeeded(sessions, a4, {"y_pred": [0]})
    with sessions.begin() as session:
        long_ago = utcnow() - timedelta(days=40)
        session.execute(
            update(Job).where(Job.id.in_([a2, a4])).values(status=JobStatus.succeeded, finished_at=long_ago)
        )
    with sessions.begin() as session:
        assert purge_expired(session, retention_days=30)["jobs"] == 2
    with sessions() as session:
        assert usage(session, alice) == StorageUsage(0, 0, 0, 0)
    assert_kept(sessions, alice, bob)

    with sessions.begin() as session:
        delete_job(session, b1)
    with sessions() as session:
        assert usage(session, bob) == StorageUsage(0, 0, 0, 0)


def test_a_result_deleted_alone_is_counted_off(jobs: Jobs) -> None:
    alice = jobs.user("alice")
    job_id = jobs.job(alice)
    succeeded(jobs.sessions, job_id, {"y_pred": [0]})
    with jobs.sessions.begin() as session:
        session.query(JobResult).filter(JobResult.job_id == job_id).delete()
    assert_kept(jobs.sessions, alice)
    with jobs.sessions() as session:
        assert usage(session, alice).results == 0 and usage(session, alice).uploads == 1


def on_postgres_only(jobs: Jobs) -> None:
    if jobs.sessions.kw["bind"].dialect.name != "postgresql":
        pytest.skip("SQLite runs one writing transaction at a time")


@contextmanager
def waiting(sessions: sessionmaker[Session], change: Callable[[Session], object]) -> Iterator[None]:
    """`change` in a transaction of its own, in a thread, checked to wait for the transaction the caller
    holds open; the block commits that one, and `change` must then complete."""
    done = threading.Event()

    def run() -> None:
        with sessions.begin() as session:
            change(session)
        done.set()

    thread = threading.Thread(target=run)
    thread.start()
    assert not done.wait(0.5), "it should wait for the open transaction"
    yield
    thread.join(10)
    assert done.is_set()


def test_two_deletes_at_once_count_off_the_upload_they_shared(jobs: Jobs) -> None:
    """Each delete alone sees the other's job still keeping the upload; the user's counts, which the
    first locks before its job (`lock_storage_counts`), make the second see the first's delete committed
    (Postgres; SQLite has one writer at a time)."""
    on_postgres_only(jobs)
    sessions = jobs.sessions
    alice = jobs.user("alice")
    first, second = (jobs.job(alice) for _ in range(2))
    with sessions() as deleting:
        delete_job(deleting, first)  # holds alice's counts until it commits
        with waiting(sessions, lambda session: delete_job(session, second)):
            deleting.commit()
    with sessions() as session:
        assert usage(session, alice) == StorageUsage(0, 0, 0, 0)
    assert_kept(sessions, alice)


def test_a_delete_during_a_submit_sharing_its_upload_waits_instead_of_deadlocking(jobs: Jobs) -> None:
    """A submit locks the user's counts with the user's row, before the upload it shares; a delete of the
    user's other job on that upload locks the counts before the upload too, so it waits for the submit
    (taking the counts only at the job's insert, the submit would deadlock with it)."""
    on_postgres_only(jobs)
    sessions = jobs.sessions
    alice = jobs.user("alice")
    content = b"x,target\n1,0\n"
    digest = sha256_hex(content)
    old = jobs.job(alice, content=content)
    settings = Settings(database_url=str(sessions.kw["bind"].url))
    with sessions() as submit:
        reserve_submission(submit, alice, settings, upload=(digest, len(content)))
        store_upload(submit, content, digest, 1, 2)  # shares the stored upload until it commits
        with waiting(sessions, lambda session: delete_job(session, old)):
            job = create_job(
                submit, user_id=alice, endpoint="gbdtclassification", params={}, spec=SPEC, dataset=digest
            )
            submit.commit()
    with sessions() as session:
        assert session.get(Job, job.id) is not None and session.get(Job, old) is None
        assert usage(session, alice).uploads == 1
    assert_kept(sessions, alice)


def test_a_cancel_during_a_delete_of_a_job_on_the_same_upload_counts_it_off_once(jobs: Jobs) -> None:
    """The cancel's trigger waits for the user's counts, which the delete holds, and then sees the deleted
    job gone: without that lock each would see the other's job still keeping the upload."""
    on_postgres_only(jobs)
    sessions = jobs.sessions
    alice = jobs.user("alice")
    queued, other = (jobs.job(alice) for _ in range(2))
    with sessions() as deleting:
        delete_job(deleting, other)
        with waiting(sessions, lambda session: cancel(session, queued)):
            deleting.commit()
    with sessions() as session:
        assert usage(session, alice) == StorageUsage(0, 0, 0, 0)
    assert_kept(sessions, alice)


def models_counted(session: Session, user_id: int) -> tuple[int, int]:
    """(models, bytes) as counting the user's cards gives: each stored model once."""
    kept = select(JobModel.model_sha256).join(Job, Job.id == JobModel.job_id).where(Job.user_id == user_id)
    found = session.execute(
        select(func.count(), func.coalesce(func.sum(StoredModel.stored_bytes), 0)).where(
            StoredModel.sha256.in_(kept)
        )
    ).one()
    return int(found[0]), int(found[1])


def test_kept_models_are_counted_once_per_user_and_go_with_their_last_job(jobs: Jobs) -> None:
    sessions = jobs.sessions
    alice, bob = jobs.user("alice"), jobs.user("bob")
    body = b"a kept model"
    model = ModelToKeep(
        body, sha256_hex(body), [DownloadFile("native", b"its file", "model.txt", "text/plain")]
    )
    owners = {jobs.job(alice): alice, jobs.job(alice): alice, jobs.job(bob): bob}
    for job_id, owner in owners.items():
        succeeded(sessions, job_id, {"y_pred": [0]})
        with sessions.begin() as session:
            keep_model(session, job_id, owner, {"formats": ["native"]}, model)
    stored_bytes = len(body) + len(b"its file")
    with sessions() as session:
        for user_id in (alice, bob):  # each user charged once, in full
            found = usage(session, user_id)
            assert (found.models, found.models_bytes) == (1, stored_bytes) == models_counted(session, user_id)
        assert session.scalar(select(func.count()).select_from(StoredModel)) == 1
    # Retention deletes alice's two jobs on the same model in one statement: counted off once.
    a1, a2, b1 = owners
    with sessions.begin() as session:
        session.execute(
            update(Job).where(Job.id.in_([a1, a2])).values(finished_at=utcnow() - timedelta(days=40))
        )
    with sessions.begin() as session:
        assert purge_expired(session, retention_days=30)["models"] == 0  # bob's job still keeps it
    with sessions() as session:
        assert (usage(session, alice).models, usage(session, alice).models_bytes) == (0, 0)
        assert usage(session, bob).models == 1
    with sessions.begin() as session:
        delete_job(session, b1)
    with sessions() as session:
        assert (usage(session, bob).models, usage(session, bob).models_bytes) == (0, 0)
        assert session.scalar(select(func.count()).select_from(StoredModel)) == 0
        assert session.scalar(select(func.count()).select_from(ModelFile)) == 0


def test_a_file_made_on_first_download_counts_for_every_keeper_once(jobs: Jobs) -> None:
    sessions = jobs.sessions
    alice, bob = jobs.user("alice"), jobs.user("bob")
    body = b"a kept model"
    sha256 = sha256_hex(body)
    model = ModelToKeep(body, sha256, [DownloadFile("native", b"its file", "model.txt", "text/plain")])
    owners = {jobs.job(alice): alice, jobs.job(bob): bob}
    for job_id, owner in owners.items():
        succeeded(sessions, job_id, {"y_pred": [0]})
        with sessions.begin() as session:
            keep_model(session, job_id, owner, {"formats": ["native", "bundle"]}, model)
    bundle = DownloadFile("bundle", b"a bundle made later", "model-bundle.zip", "application/zip")
    with sessions.begin() as session:
        assert model_conversions.ask(session, sha256, "bundle", 60).action == "publish"
        assert model_conversions.ask(session, sha256, "bundle", 60).action == "wait"
    for stored_now in (True, False):  # a second task for the same file stores nothing
        with sessions.begin() as session:
            assert model_conversions.store_file(session, sha256, bundle) is stored_now
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(ModelFile)) == 2
        assert session.scalar(select(func.count()).select_from(ModelConversion)) == 0
        for user_id in (alice, bob):
            found = usage(session, user_id)
            assert found.models_bytes == len(body) + len(b"its file") + len(bundle.body)
            assert (found.models, found.models_bytes) == models_counted(session, user_id)
    for job_id in owners:
        with sessions.begin() as session:
            delete_job(session, job_id)
    with sessions() as session:
        assert [usage(session, user_id).models_bytes for user_id in (alice, bob)] == [0, 0]
        assert session.scalar(select(func.count()).select_from(StoredModel)) == 0


def test_a_file_stored_while_a_new_user_keeps_the_model_counts_for_them_too(jobs: Jobs) -> None:
    on_postgres_only(jobs)
    sessions = jobs.sessions
    alice, bob = jobs.user("alice"), jobs.user("bob")
    body = b"a shared model"
    sha256 = sha256_hex(body)
    model = ModelToKeep(body, sha256, [])
    first, second = jobs.job(alice), jobs.job(bob)
    for job_id in (first, second):
        succeeded(sessions, job_id, {"y_pred": [0]})
    with sessions.begin() as session:
        keep_model(session, first, alice, {"formats": ["bundle"]}, model)
    bundle = DownloadFile("bundle", b"a bundle", "model-bundle.zip", "application/zip")
    with sessions() as converting:
        assert model_conversions.store_file(converting, sha256, bundle)
        with waiting(sessions, lambda session: keep_model(session, second, bob, {}, model)):
            converting.commit()  # bob's card waited for the stored file, and counts it
    with sessions() as session:
        for user_id in (alice, bob):
            assert usage(session, user_id).models_bytes == len(body) + len(bundle.body)
            assert (usage(session, user_id).models, usage(session, user_id).models_bytes) == models_counted(
                session, user_id
            )
