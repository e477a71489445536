"""Whether a large explanation fans out (worker/fanout.py): only when the workers table shows another
live, idle worker on the job's queue; otherwise the job's own worker explains it in one piece, with the
same numbers and no chunk rows or messages."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import orjson
import pytest
from sqlalchemy import func, select, update

from shared.db import session_scope
from shared.ml import pipeline
from shared.ml.spec import JobSpec, ModelSpec
from shared.settings import Settings
from shared.store import workers
from shared.tables import JobChunk, WorkerRow
from tests.canonical import canonical
from tests.inprocess.factories import IRIS, Account, ago, make_job, set_job
from tests.inprocess.recorder import PublishRecorder

ME = "host:1"
STALE = 60.0
SPEC = JobSpec(
    ModelSpec(task="classification", family="gbdt", model_type="xgboost", n_estimators=5),
    interpretability=("shap",),
)


@pytest.fixture(scope="module")
def prepared() -> pipeline.PreparedJob:
    """Iris fitted once: 45 test rows, which the settings below cut into 5 chunks."""
    return pipeline.prepare(canonical(IRIS), SPEC, Settings().limits(), n_threads=1)


@pytest.fixture
def fanning(service_settings: Settings) -> Settings:
    # one thread per job on two cores: a second worker on this host brings a core (whatever this machine has)
    update = {"fanout_min_rows": 20, "fanout_chunk_rows": 10, "model_threads": 1, "worker_cores": 2}
    return service_settings.model_copy(update=update)


@pytest.fixture
def job_id(alice: Account) -> Iterator[str]:
    job_id = make_job(alice.id)
    set_job(job_id, status="running", worker=ME)
    yield job_id


def add_worker(name: str, queue: str, *, current_job: str | None = None, beat_seconds_ago: float = 0) -> None:
    host, pid = name.split(":")
    with session_scope() as session:
        workers.register(session, name=name, host=host, pid=int(pid), queue=queue)
        session.flush()
        values = {"current_job": current_job, "heartbeat_at": ago(beat_seconds_ago)}
        session.execute(update(WorkerRow).where(WorkerRow.name == name).values(**values))


def idle_helpers(queue: str) -> int:
    with session_scope() as session:
        return workers.idle_helpers(session, me=ME, queue=queue, stale_after=STALE)


def test_only_other_live_idle_workers_of_the_queue_count_as_helpers(service_settings: Settings) -> None:
    small, large = service_settings.queue, service_settings.large_queue
    add_worker(ME, f"{small},{large}")  # the job's own worker never helps itself
    add_worker("host:2", large)  # another queue
    add_worker("host:3", f"{small},{large}", current_job="busy")  # running a job
    add_worker("host:4", small, beat_seconds_ago=10 * STALE)  # dead
    assert idle_helpers(small) == 0
    assert idle_helpers(large) == 1
    add_worker("host:5", f"{small},{large}")
    assert (idle_helpers(small), idle_helpers(large)) == (1, 2)


def helpers_here(threads_per_job: int, cores_here: int) -> int:
    with session_scope() as session:
        asked = {"threads_per_job": threads_per_job, "cores_here": cores_here}
        return workers.idle_helpers(session, me=ME, queue="q", stale_after=STALE, **asked)


def test_a_worker_on_the_same_host_helps_only_while_the_cores_leave_room() -> None:
    add_worker(ME, "q")
    add_worker("host:2", "q")  # idle, same host as ME
    assert helpers_here(threads_per_job=1, cores_here=2) == 1  # one core each
    assert helpers_here(threads_per_job=2, cores_here=2) == 0  # both would share the same two cores
    assert helpers_here(threads_per_job=2, cores_here=4) == 1
    add_worker("host:3", "other", current_job="busy")  # busy on this host: its job holds a core
    assert helpers_here(threads_per_job=1, cores_here=2) == 0
    assert helpers_here(threads_per_job=1, cores_here=3) == 1
    add_worker("elsewhere:7", "q")  # another machine brings its own cores
    assert helpers_here(threads_per_job=2, cores_here=2) == 1
    assert helpers_here(threads_per_job=1, cores_here=8) == 2


def test_the_runner_counts_a_same_host_helper_only_with_cores_to_spare(
    job_id: str, fanning: Settings, prepared: pipeline.PreparedJob, published: PublishRecorder
) -> None:
    add_worker(ME, fanning.queue)
    add_worker("host:2", fanning.queue)
    two_threads = fanning.model_copy(update={"model_threads": 2, "worker_cores": 2})
    explain_with_runner(job_id, two_threads, prepared)
    assert chunk_count(job_id) == 0 and published.messages == []
    one_thread = fanning.model_copy(update={"model_threads": 1, "worker_cores": 2})
    explain_with_runner(job_id, one_thread, prepared)
    assert chunk_count(job_id) == 5


def explain_with_runner(job_id: str, settings: Settings, prepared: pipeline.PreparedJob) -> dict:
    from worker.fanout import FanOutRunner

    runner = FanOutRunner(job_id, settings, queue="small", worker=ME)
    return runner(prepared, "shap", lambda done, total: None)


def as_json(explanation: dict) -> dict:
    """The explanation as a worker stores it: orjson's JSON, read back."""
    return orjson.loads(orjson.dumps(explanation, option=orjson.OPT_SERIALIZE_NUMPY))


def chunk_count(job_id: str) -> int:
    with session_scope() as session:
        return int(session.scalar(select(func.count()).where(JobChunk.job_id == job_id)) or 0)


def test_a_worker_alone_explains_in_one_piece(
    job_id: str, fanning: Settings, prepared: pipeline.PreparedJob, published: PublishRecorder
) -> None:
    add_worker(ME, fanning.queue)
    add_worker("host:2", fanning.queue, current_job="busy")
    explained = explain_with_runner(job_id, fanning, prepared)
    assert chunk_count(job_id) == 0 and published.messages == []
    whole = pipeline.explain_whole(fanning.limits())(prepared, "shap", lambda done, total: None)
    assert isinstance(explained["values"], np.ndarray)  # kept for orjson, which writes the same JSON
    assert as_json(explained) == whole


def test_an_idle_helper_makes_the_job_fan_out(
    job_id: str, fanning: Settings, prepared: pipeline.PreparedJob, published: PublishRecorder
) -> None:
    add_worker(ME, fanning.queue)
    add_worker("host:2", fanning.queue)
    explained = explain_with_runner(job_id, fanning, prepared)  # this process computes every chunk
    assert chunk_count(job_id) == 5
    assert [m.queue for m in published.messages] == [fanning.queue] * 4
    whole = pipeline.explain_whole(fanning.limits())(prepared, "shap", lambda done, total: None)
    np.testing.assert_allclose(explained["values"], whole["values"], rtol=1e-12, atol=1e-12)
    assert {k: v for k, v in as_json(explained).items() if k != "values"} == {
        k: v for k, v in whole.items() if k != "values"
    }
