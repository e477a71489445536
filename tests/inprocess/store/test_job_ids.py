"""A user's jobs by a prefix of their id, on SQLite and Postgres: only that user's, the newest first, a
count past the ids listed, and on Postgres through the prefix index."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text

from shared.db import on_postgres
from shared.store.job_ids import jobs_with_prefix, owned_with_prefix
from shared.tables import Job
from tests.inprocess.factories import Jobs

ABC = "abc123"


def ids(prefix: str, *rest: str) -> list[str]:
    """Full ids (32 hex characters) that start with `prefix` and go on with each of `rest`."""
    return [(prefix + tail).ljust(32, "0") for tail in rest]


def test_a_prefix_matches_the_users_jobs_that_start_with_it(jobs: Jobs) -> None:
    alice, bob = jobs.user("alice"), jobs.user("bob")
    older, newer = ids(ABC, "a", "b")
    for age, job_id in ((20, older), (10, newer)):
        jobs.job(alice, job_id=job_id, age=age)
    jobs.job(alice, job_id=ids("abc124", "")[0])  # the next prefix up: not a match
    jobs.job(bob, job_id=ids(ABC, "c")[0])  # bob's: never alice's match
    with jobs.sessions() as session:
        found = jobs_with_prefix(session, alice, ABC)
        assert (found.count, found.ids) == (2, [newer, older])
        assert jobs_with_prefix(session, alice, ABC + "a").ids == [older]
        assert jobs_with_prefix(session, alice, older).ids == [older]  # a full id is its own prefix
        assert jobs_with_prefix(session, alice, "abc12f").count == 0
        assert jobs_with_prefix(session, bob, ABC).count == 1


def test_the_count_goes_past_the_ids_listed(jobs: Jobs) -> None:
    alice = jobs.user("alice")
    for job_id in ids("ffffff", *"0123"):  # the last prefix of all: no upper neighbour to stop at
        jobs.job(alice, job_id=job_id)
    with jobs.sessions() as session:
        found = jobs_with_prefix(session, alice, "ffffff", limit=2)
    assert (found.count, len(found.ids)) == (4, 2)


@pytest.mark.parametrize("prefix", ["ABC123", "abc12%", "abc_23", "", "0" * 33])
def test_anything_but_lowercase_hex_is_refused(jobs: Jobs, prefix: str) -> None:
    alice = jobs.user("alice")
    with jobs.sessions() as session, pytest.raises(ValueError, match="not a job id prefix"):
        jobs_with_prefix(session, alice, prefix)


def test_postgres_finds_a_prefix_through_its_index(jobs: Jobs) -> None:
    alice = jobs.user("alice")
    jobs.job(alice, job_id=ids(ABC, "")[0])
    with jobs.sessions() as session:
        if not on_postgres(session):
            pytest.skip("SQLite compares bytes in its primary key's index")
        query = select(Job.id).where(owned_with_prefix(session, alice, ABC))
        sql = query.compile(session.get_bind(), compile_kwargs={"literal_binds": True})
        session.execute(text("SET LOCAL enable_seqscan = off"))  # a tiny table is otherwise read whole
        plan = "\n".join(session.scalars(text(f"EXPLAIN {sql}")))
    assert "Index Cond" in plan and "ix_jobs_user_id_prefix" in plan, plan
