"""What an operator can do to a job from the dashboard: cancel, re-run, delete. Each is recorded as a
job event naming who did it (the event's time says when); a deletion, whose events go with the job, is
logged instead.
"""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from shared.limits import reserve_submission
from shared.settings import Settings
from shared.store.backgrounds import copy_background
from shared.store.jobstore import add_event, cancel, create_job, delete_job
from shared.tables import FINISHED, Job, JobStatus

log = logging.getLogger("fitexplain.audit")

RERUNNABLE = (JobStatus.failed, JobStatus.cancelled)


class ActionRefused(Exception):
    """The job is not in a state that allows the action; the message says why."""


def cancel_job(session: Session, job: Job, by: str) -> None:
    if job.status in FINISHED:
        raise ActionRefused(
            f"Job {job.id} is already {job.status}: only queued or running jobs can be cancelled."
        )
    add_event(session, job.id, "cancel", f"by {by}")
    if not cancel(session, job.id):
        raise ActionRefused(f"Job {job.id} finished before it could be cancelled.")


def can_rerun(job: Job) -> bool:
    """Whether Re-run can work: a failed or cancelled job that still has its upload (a cancelled job
    lets go of its upload at once, for the storage quota, so it has none)."""
    return job.status in RERUNNABLE and job.dataset_sha256 is not None


def rerun_job(session: Session, job: Job, by: str, settings: Settings) -> Job:
    """A new job with the same endpoint, parameters and data, owned by the same user, linked to the old
    one (`rerun_of`). Counts against the owner's submission limits (may raise RateLimited)."""
    if job.status not in RERUNNABLE:
        raise ActionRefused(f"Job {job.id} is {job.status}: only failed or cancelled jobs can be re-run.")
    if job.dataset_sha256 is None:  # a cancelled job's upload is released at once (storage quota)
        raise ActionRefused(
            f"Job {job.id} no longer has its upload (released when it was cancelled): submit the file again."
        )
    reserve_submission(session, job.user_id, settings)
    new = create_job(
        session,
        user_id=job.user_id,
        endpoint=job.endpoint,
        params=dict(job.params),
        spec=dict(job.spec),  # the same validated spec: a rerun is never validated differently
        dataset=job.dataset_sha256,
        estimated_seconds=job.estimated_seconds,  # same spec and data: same cost, same queue
        queue=job.queue,
        data_filename=job.data_filename,
    )
    new.rerun_of = job.id
    copy_background(session, job.id, new.id)
    add_event(session, job.id, "rerun", f"as job {new.id}, by {by}")
    add_event(session, new.id, "rerun_of", f"job {job.id}, by {by}")
    return new


def delete_finished_job(session: Session, job: Job, by: str) -> None:
    if job.status not in FINISHED:
        raise ActionRefused(f"Job {job.id} is {job.status}: cancel it before deleting it.")
    delete_job(session, job.id)
    log.info("job %s deleted by %s", job.id, by)
