"""The worker registry: one row per worker process, heartbeated by the process itself.

A worker is alive while its heartbeat is younger than `stale_after_seconds` (the same rule as a job's
heartbeat); rows older than `worker_forget_seconds` are deleted by the API's sweep.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from shared.db import rows_changed
from shared.tables import WorkerRow, heartbeat_stale, utcnow


def register(session: Session, *, name: str, host: str, pid: int, queue: str) -> None:
    """Insert (or reset) this process's row."""
    now = utcnow()
    session.merge(
        WorkerRow(
            name=name,
            host=host,
            pid=pid,
            queue=queue,
            started_at=now,
            heartbeat_at=now,
            current_job=None,
            jobs_done=0,
            jobs_failed=0,
        )
    )


def beat(session: Session, name: str) -> bool:
    """Record liveness; False when the row is gone (aged out while the process was stopped)."""
    return bool(
        rows_changed(session, update(WorkerRow).where(WorkerRow.name == name).values(heartbeat_at=utcnow()))
    )


def job_started(session: Session, name: str, job_id: str) -> None:
    session.execute(
        update(WorkerRow).where(WorkerRow.name == name).values(current_job=job_id, heartbeat_at=utcnow())
    )


def job_finished(session: Session, name: str, outcome: Literal["done", "failed", "stopped"]) -> None:
    """Clear the current job and count it: done (succeeded), failed, or stopped (cancelled under us)."""
    values: dict[str, Any] = {"current_job": None, "heartbeat_at": utcnow()}
    if outcome == "done":
        values["jobs_done"] = WorkerRow.jobs_done + 1
    elif outcome == "failed":
        values["jobs_failed"] = WorkerRow.jobs_failed + 1
    session.execute(update(WorkerRow).where(WorkerRow.name == name).values(**values))


def unregister(session: Session, name: str) -> None:
    session.execute(delete(WorkerRow).where(WorkerRow.name == name))


def alive_count(session: Session, stale_after: float) -> int:
    stale = heartbeat_stale(WorkerRow.heartbeat_at, stale_after)
    return int(session.scalar(select(func.count()).select_from(WorkerRow).where(~stale)) or 0)


def idle_helpers(
    session: Session,
    *,
    me: str,
    queue: str,
    stale_after: float,
    threads_per_job: int = 1,
    cores_here: int | None = None,
) -> int:
    """Live workers other than `me` that consume the Celery queue `queue`, run no job now, and would add
    cores to a fanned-out job's chunks: every such worker on another host, and those on `me`'s own host
    only while that host has cores to spare (`cores_here` split into jobs of `threads_per_job` threads,
    less `me` and the host's busy workers; None: no limit). Two workers of 2 threads on 2 cores would
    only take turns on the same cores, paying for the split."""
    stale = heartbeat_stale(WorkerRow.heartbeat_at, stale_after)
    live = session.execute(
        select(WorkerRow.name, WorkerRow.host, WorkerRow.queue, WorkerRow.current_job).where(~stale)
    ).all()
    my_host = next((host for name, host, _, _ in live if name == me), me.rsplit(":", 1)[0])
    others = [(host, names, job) for name, host, names, job in live if name != me]
    idle = [host for host, names, job in others if job is None and queue in names.split(",")]
    elsewhere = sum(host != my_host for host in idle)
    here = len(idle) - elsewhere
    if cores_here is not None:
        busy_here = sum(host == my_host and job is not None for host, _, job in others)
        here = min(here, max(0, cores_here // max(1, threads_per_job) - 1 - busy_here))
    return elsewhere + here


def forget_dead(session: Session, forget_after: float) -> int:
    """Delete the rows of workers silent for `forget_after` seconds; returns how many."""
    cutoff = utcnow() - timedelta(seconds=forget_after)
    return rows_changed(session, delete(WorkerRow).where(WorkerRow.heartbeat_at < cutoff))


def all_workers(session: Session) -> list[WorkerRow]:
    return list(session.scalars(select(WorkerRow).order_by(WorkerRow.host, WorkerRow.pid)))
