"""The small task that makes a kept model's download file in a format not written at fit time.

Its message carries the job's id and the format. It runs in the pool process's killable child (as fan-out
chunks do), under the job time limit: it loads the kept model (sha256 verified before unpickling), writes
the format (`shared.ml.model.export`) and stores the file as fit-time files are stored
(`shared.store.model_conversions.store_file`), once however many tasks race. A conversion that raises, or
whose child is killed, is recorded as failed with why; one lost with its whole worker is published again
by a later download.
"""

from __future__ import annotations

import logging
from functools import partial

from shared.blobs.store import current_store
from shared.db import session_scope
from shared.dispatch.queue import CONVERT_MODEL_TASK
from shared.ml.model import codec, export
from shared.settings import get_settings
from shared.store import kept_models, model_conversions
from shared.store.kept_models import DownloadFile
from worker.app import app
from worker.computation import Progress
from worker.tasks import executor

log = logging.getLogger("fitexplain.worker")


@app.task(name=CONVERT_MODEL_TASK)
def convert_model(job_id: str, fmt: str) -> str:
    """Make and store the job's model file in `fmt`, unless it is there already; what happened."""
    settings = get_settings()
    with session_scope() as session:
        card = kept_models.card_of(session, job_id)
        sha256 = None if card is None else card.model_sha256
        if sha256 is None or model_conversions.has_file(session, sha256, fmt):
            return "nothing to do"
    ended = executor().run(
        partial(make_file, sha256, fmt),
        time_limit=settings.soft_time_limit,
        poll_seconds=settings.cancel_poll_seconds,
        still_wanted=lambda: True,
        on_progress=lambda *_: None,
    )
    if ended.ended == "finished":
        return ended.detail
    reason = f"the conversion was stopped ({ended.ended}: {ended.detail})"
    log.warning("model %s as %s: %s", sha256, fmt, reason)
    with session_scope() as session:
        model_conversions.record_failure(session, sha256, fmt, reason)
    return "failed"


def make_file(sha256: str, fmt: str, _progress: Progress) -> str:
    """Load, convert and store (run in the killable child): "stored", "stored already", "failed" or
    "not stored"."""
    with session_scope() as session:
        stored = kept_models.stored_model(session, sha256)
        if stored is None or model_conversions.has_file(session, sha256, fmt):
            return "stored already"
        blob_key = stored.blob_key
    try:
        kept = codec.load(current_store().get_bytes(blob_key), sha256)
        made = export.export(kept, fmt)
    except Exception as exc:
        log.exception("model %s could not be written as %s", sha256, fmt)
        with session_scope() as session:
            model_conversions.record_failure(session, sha256, fmt, str(exc) or type(exc).__name__)
        return "failed"
    found = DownloadFile(fmt, made.body, made.filename, made.media_type, dict(made.headers))
    try:
        with session_scope() as session:
            stored_now = model_conversions.store_file(session, sha256, found)
    except Exception:  # a database blip (or a deadlock with a delete): not the format's fault
        log.exception("model %s as %s could not be stored; a later download asks again", sha256, fmt)
        return "not stored"
    return "stored" if stored_now else "stored already"
