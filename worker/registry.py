"""Each pool process keeps its row in the `workers` table fresh from a daemon thread.

The row is written when Celery starts the process, beaten every `heartbeat_seconds`, and deleted when
the process exits cleanly; a killed process stops beating and its row ages out (shared/store/workers.py).
"""

from __future__ import annotations

import logging
import os
import socket
import threading

from celery.signals import celeryd_after_setup, worker_process_init, worker_process_shutdown

from shared.db import session_scope
from shared.settings import get_settings
from shared.store import workers

log = logging.getLogger("fitexplain.worker")

_consumed_queues: list[str] = []  # set in the main process before the pool forks


def process_name() -> str:
    """host:pid, the same name the job rows carry in `worker`."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _register() -> None:
    queue = ",".join(_consumed_queues) or get_settings().queue
    with session_scope() as session:
        workers.register(
            session, name=process_name(), host=socket.gethostname(), pid=os.getpid(), queue=queue
        )


def _beat_forever(stop: threading.Event, interval: float) -> None:
    while not stop.wait(interval):
        try:
            with session_scope() as session:
                still_there = workers.beat(session, process_name())
            if not still_there:
                _register()
        except Exception as exc:  # a database blip: the next beat tries again
            log.warning("worker heartbeat failed: %s", exc)


_stop = threading.Event()


@celeryd_after_setup.connect
def _remember_queues(sender: object, instance: object, **_: object) -> None:
    app = getattr(instance, "app", None)
    if app is not None:
        _consumed_queues[:] = sorted(app.amqp.queues.consume_from or app.amqp.queues)


@worker_process_init.connect
def _start_heartbeat(**_: object) -> None:
    try:
        _register()
    except Exception as exc:  # the thread registers on its first successful beat
        log.warning("could not register worker: %s", exc)
    interval = get_settings().heartbeat_seconds
    thread = threading.Thread(target=_beat_forever, args=(_stop, interval), name="worker-beat", daemon=True)
    thread.start()


@worker_process_shutdown.connect
def _unregister(**_: object) -> None:
    _stop.set()
    try:
        with session_scope() as session:
            workers.unregister(session, process_name())
    except Exception as exc:
        log.warning("could not unregister worker: %s", exc)
