"""The Celery application's configuration, shared by the API (which only publishes, by task name) and
the worker (which also registers the tasks). The API never imports worker/: that would load the ML stack.
"""

from __future__ import annotations

import uuid
from functools import lru_cache

import redis
from celery import Celery

from shared.dispatch import sql_broker
from shared.settings import Settings, get_settings

RUN_JOB_TASK = "fitexplain.run_job"
RUN_CHUNK_TASK = "fitexplain.run_chunk"
CONVERT_MODEL_TASK = "fitexplain.convert_model"


def celery_config(settings: Settings) -> dict[str, object]:
    transport_options: dict[str, object] = {}
    if settings.broker_url.startswith(("redis://", "rediss://")):
        # Redis redelivers an unacked message after this long: it must exceed the hard time limit.
        transport_options = {
            "visibility_timeout": settings.visibility_timeout,
            "socket_connect_timeout": 3,
            "socket_timeout": 10,
        }
    # A publish fails at once while the broker is down (kombu would otherwise retry for ~6 s inside
    # the submit request): the job row is the outbox and the sweep publishes it later.
    fail_fast = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2}
    return {
        **sql_broker.celery_settings(settings.broker_url),
        "broker_transport_options": {**transport_options, **fail_fast} if transport_options else {},
        "result_backend_transport_options": transport_options,
        "broker_connection_retry_on_startup": True,
        "broker_connection_timeout": 3,
        "task_ignore_result": True,
        "task_default_queue": settings.queue,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_acks_on_failure_or_timeout": True,
        # A worker kills a job's computation at soft_time_limit itself (worker/computation.py); Celery's
        # limits sit above that as a backstop for the supervising task.
        "task_soft_time_limit": (settings.soft_time_limit + settings.hard_time_limit) / 2,
        "task_time_limit": settings.hard_time_limit,
        "worker_prefetch_multiplier": 1,
        "worker_max_memory_per_child": settings.worker_max_memory_per_child_kb,
        "worker_hijack_root_logger": False,
        "task_serializer": "json",
        "accept_content": ["json"],
    }


@lru_cache
def get_celery() -> Celery:
    app = Celery("fitexplain")
    app.conf.update(celery_config(get_settings()))
    return app


def publish(task_name: str, *args: object, queue: str | None = None) -> None:
    """Send one message carrying only ids (to `queue`, else the default queue); raises if the broker
    cannot be reached right now."""
    get_celery().send_task(task_name, args=list(args), queue=queue, retry=False)


def broker_lost_messages() -> bool:
    """True once after the broker lost its stored messages (a Redis restarted without persistence,
    flushed, or replaced): a marker key kept next to the queue is then missing. The caller that sees
    True (only one does, even with several API processes) must publish every queued job again.

    Brokers other than Redis (the embedded SQLite one) keep their messages on disk: always False.
    Raises when the broker cannot be reached.
    """
    settings = get_settings()
    if not settings.broker_url.startswith(("redis://", "rediss://")):
        return False
    client = redis.Redis.from_url(settings.broker_url, socket_connect_timeout=3, socket_timeout=10)
    try:
        marker = f"fitexplain:outbox-marker:{settings.queue}"
        if client.exists(marker):
            return False
        return bool(client.set(marker, uuid.uuid4().hex, nx=True))
    finally:
        client.close()
