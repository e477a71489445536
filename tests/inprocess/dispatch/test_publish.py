"""Getting jobs to workers (shared/dispatch/publish.py): publish after commit, and the sweep that publishes
what was missed, requeues jobs of vanished workers and publishes everything again when the broker lost its
queue. Publishing is recorded; the outbox marker lives in the real Redis."""

from __future__ import annotations

import pytest
import redis

from shared.dispatch.publish import dispatch, mark_published, sweep
from shared.dispatch.queue import RUN_JOB_TASK, broker_lost_messages
from shared.settings import Settings
from tests.inprocess.factories import (
    TINY_GBDT,
    ago,
    events,
    load_job,
    make_job,
    make_user,
    set_job,
    webhook_outbox,
)
from tests.inprocess.recorder import PublishRecorder
from tests.stack import purge_queue


@pytest.fixture
def user_id() -> int:
    return make_user("alice")[0]


@pytest.fixture
def healthy_broker(broker: redis.Redis) -> redis.Redis:
    """A broker that has kept its messages: the outbox marker is set, so no republish is due."""
    broker_lost_messages()
    return broker


def old_job(user_id: int, **params: object) -> str:
    """A queued, undispatched job older than the sweep's one-second grace."""
    job_id = make_job(user_id, params={**TINY_GBDT, **params})
    set_job(job_id, created_at=ago(10))
    return job_id


def test_dispatch_publishes_the_job_id_then_marks_it(
    user_id: int, published: PublishRecorder, service_settings: Settings
) -> None:
    job_id = make_job(user_id)
    assert dispatch(job_id, "small")
    assert published.job_ids(RUN_JOB_TASK) == [job_id]
    assert published.messages[0].queue == service_settings.queue  # the small jobs' broker queue
    job = load_job(job_id)
    assert job is not None and job.dispatched_at is not None
    assert events(job_id) == ["submitted", "dispatched"]


def test_a_broker_outage_leaves_the_job_undispatched(user_id: int, published: PublishRecorder) -> None:
    published.broker_down = True
    job_id = make_job(user_id)
    assert not dispatch(job_id, "small")
    job = load_job(job_id)
    assert job is not None and (job.status, job.dispatched_at) == ("queued", None)
    assert events(job_id) == ["submitted"]


def test_the_sweep_publishes_undispatched_jobs_past_their_grace(
    user_id: int, published: PublishRecorder, healthy_broker: redis.Redis
) -> None:
    first, second = old_job(user_id), old_job(user_id)
    set_job(first, created_at=ago(20))
    just_submitted = make_job(user_id)  # its own request is publishing it right now:
    set_job(just_submitted, created_at=ago(-60))  # inside the sweep's grace however slow this machine is
    assert sweep() == {"requeued": 0, "dispatched": 2}
    assert published.job_ids() == [first, second]
    assert events(first)[-1] == "dispatched"
    assert events(just_submitted) == ["submitted"]
    assert sweep() == {"requeued": 0, "dispatched": 0}  # published once, not at every sweep
    assert published.job_ids() == [first, second]


def test_the_sweep_publishes_after_an_outage_ends(
    user_id: int, published: PublishRecorder, healthy_broker: redis.Redis
) -> None:
    published.broker_down = True
    job_id = make_job(user_id)
    assert not dispatch(job_id, "small")
    set_job(job_id, created_at=ago(10))
    assert sweep() == {"requeued": 0, "dispatched": 0}
    published.broker_down = False
    assert sweep() == {"requeued": 0, "dispatched": 1}
    assert published.job_ids() == [job_id]


def test_the_sweep_republishes_every_queued_job_when_the_broker_lost_its_queue(
    user_id: int, published: PublishRecorder, healthy_broker: redis.Redis, service_settings: Settings
) -> None:
    waiting = old_job(user_id)
    started = old_job(user_id)
    assert sweep()["dispatched"] == 2
    set_job(started, status="running", worker="w1", heartbeat_at=ago(0))
    published.messages.clear()
    assert sweep()["dispatched"] == 0  # the broker still holds them: nothing to do

    purge_queue(service_settings.queue)  # Redis restarted without persistence: every key of ours is gone
    assert sweep() == {"requeued": 0, "dispatched": 1}
    assert published.job_ids() == [waiting]
    assert events(waiting)[-2:] == ["undispatched", "dispatched"]
    assert "undispatched" not in events(started)


@pytest.mark.parametrize("republished", [True, False])
def test_a_job_published_just_before_the_broker_lost_its_queue_is_published_again(
    user_id: int,
    published: PublishRecorder,
    healthy_broker: redis.Redis,
    service_settings: Settings,
    republished: bool,
) -> None:
    """Its submit published it a moment ago and still owes its dispatch mark (written 0.25 s later in a
    batch, shared/dispatch/marks.py) when the sweep finds the queue lost: the sweep publishes it again at
    once, not after its grace, and the late mark of the lost message is not written (it would say the
    job was dispatched). When the broker fails again before the job is republished, a later sweep does."""
    young = make_job(user_id, params=TINY_GBDT)
    publish_time = ago(0)  # its message, about to be lost
    purge_queue(service_settings.queue)  # Redis restarted without persistence
    published.broker_down = not republished
    assert sweep() == {"requeued": 0, "dispatched": 1 if republished else 0}
    mark_published([(young, publish_time)])  # the late mark of the lost message
    job = load_job(young)
    assert job is not None
    if republished:
        assert published.job_ids() == [young] and job.dispatched_at is not None
        assert job.dispatched_at > publish_time  # the sweep's own mark
    else:
        assert job.dispatched_at is None
        published.broker_down = False
        set_job(young, created_at=ago(10))
        assert sweep() == {"requeued": 0, "dispatched": 1}
        assert published.job_ids() == [young]


def test_the_sweep_requeues_and_republishes_a_job_whose_worker_vanished(
    user_id: int, published: PublishRecorder, healthy_broker: redis.Redis, service_settings: Settings
) -> None:
    job_id = old_job(user_id)
    set_job(
        job_id,
        status="running",
        worker="w1",
        attempts=1,
        dispatched_at=ago(100),
        heartbeat_at=ago(service_settings.stale_after_seconds + 5),
    )
    assert sweep() == {"requeued": 1, "dispatched": 1}
    assert published.job_ids() == [job_id]
    job = load_job(job_id)
    assert job is not None and (job.status, job.attempts) == ("queued", 1)
    assert events(job_id)[-2:] == ["requeued", "dispatched"]


def test_the_sweep_fails_a_job_that_used_its_attempts_and_writes_its_webhook(
    user_id: int, published: PublishRecorder, healthy_broker: redis.Redis, service_settings: Settings
) -> None:
    job_id = old_job(user_id, webhook_url="https://example.com/hook")
    set_job(
        job_id,
        status="running",
        worker="w1",
        attempts=service_settings.max_attempts,
        dispatched_at=ago(100),
        heartbeat_at=ago(service_settings.stale_after_seconds + 5),
    )
    assert sweep() == {"requeued": 0, "dispatched": 0}
    job = load_job(job_id)
    assert job is not None and (job.status, job.error_code) == ("failed", "worker_lost")
    assert published.job_ids(RUN_JOB_TASK) == []
    assert webhook_outbox(job_id) == ["job.failed"]
