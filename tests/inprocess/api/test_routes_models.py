"""A succeeded job keeps its model: `GET /jobs/{id}/model` (the card, a contract) and
`/jobs/{id}/model/download`, run by the worker's task in this process on tiny data. Every format but the
booster's own file is made on first download: 202 while the conversion task (run here) works, then the
file, or 409 why not.
Identical models are stored once and counted once per user; they go with their last job, by delete or
retention; another user gets 404; a job without a model 409 with its code; a changed file is never
served."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from shared.blobs.store import current_store
from shared.db import session_scope
from shared.dispatch.queue import CONVERT_MODEL_TASK
from shared.settings import Settings
from shared.store.retention import purge_expired
from shared.store.uploads import usage
from shared.tables import JobModel, ModelConversion, ModelFile, StoredModel, utcnow
from tests.inprocess.factories import TINY_GBDT, Account, make_job, set_job
from tests.inprocess.recorder import PublishRecorder

XGBOOST = {**TINY_GBDT, "model_type": "xgboost"}
NNETSAUCE = {"n_hidden_features": 3, "interpretability": "none"}
CARD_TYPES: dict[str, type | tuple[type, ...]] = {
    "job_id": str,
    "endpoint": str,
    "params": dict,
    "estimator": dict,
    "libraries": dict,
    "features": list,
    "target": dict,
    "metrics": dict,
    "background": (dict, type(None)),
    "size_bytes": int,
    "sha256": str,
    "formats": list,
    "kept": bool,
    "notes": (str, type(None)),
}
LIBRARIES = {"scikit-learn", "xgboost", "lightgbm", "catboost", "nnetsauce", "numpy", "python"}
IRIS_FEATURES = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]


def succeeded(run_job: Callable[[str], str], user: Account, **job: Any) -> str:
    job_id = make_job(user.id, **job)
    assert run_job(job_id) == "succeeded"
    return job_id


def card(client: TestClient, user: Account, job_id: str) -> dict[str, Any]:
    response = client.get(f"/jobs/{job_id}/model", headers=user.headers)
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def error(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


def test_the_card_holds_exactly_its_fields(
    client: TestClient, alice: Account, run_job: Callable[[str], str]
) -> None:
    job_id = succeeded(run_job, alice, params=XGBOOST)
    found = card(client, alice, job_id)
    assert set(found) == set(CARD_TYPES)
    for key, kind in CARD_TYPES.items():
        assert isinstance(found[key], kind), key
    assert found["job_id"] == job_id and found["endpoint"] == "gbdtclassification"
    assert found["params"]["model_type"] == "xgboost"
    assert found["estimator"]["name"] == "XGBClassifier"
    assert found["estimator"]["hyperparameters"]["n_estimators"] == 5
    assert set(found["libraries"]) == LIBRARIES
    assert [feature["name"] for feature in found["features"]] == IRIS_FEATURES
    assert all(feature == {"name": feature["name"], "dtype": "float64"} for feature in found["features"])
    assert found["target"] == {"name": "target", "classes": ["0", "1", "2"]}
    assert 0.5 <= found["metrics"]["accuracy"] <= 1
    assert found["background"] is None  # no SHAP asked
    assert found["formats"] == ["native", "skops", "onnx", "mlflow", "bundle"] and found["kept"] is True
    assert len(found["sha256"]) == 64 and found["size_bytes"] > 0


def test_an_nnetsauce_card_and_its_formats(
    client: TestClient, alice: Account, run_job: Callable[[str], str]
) -> None:
    job_id = succeeded(
        run_job, alice, endpoint="mlclassification", params={**NNETSAUCE, "interpretability": "shap"}
    )
    found = card(client, alice, job_id)
    assert found["estimator"]["library"] == "nnetsauce"
    assert found["estimator"]["hyperparameters"]["n_hidden_features"] == 3
    assert found["formats"] == ["skops", "mlflow", "bundle"]
    assert "native" in (found["notes"] or "")
    with session_scope() as session:  # no booster's own file: the fit wrote none
        assert not session.scalars(
            select(ModelFile.format).where(ModelFile.model_sha256 == found["sha256"])
        ).all()
    assert found["background"]["rows"] > 0 and found["background"]["features"] == 4
    refused = error(client.get(f"/jobs/{job_id}/model/download?format=native", headers=alice.headers), 409)
    assert refused["code"] == "format_not_applicable" and "skops" in refused["detail"]


def test_downloads_are_attachments_with_their_checksums(
    client: TestClient, alice: Account, run_job: Callable[[str], str]
) -> None:
    from worker.convert_model import convert_model

    job_id = succeeded(run_job, alice, params=XGBOOST)
    sha256 = card(client, alice, job_id)["sha256"]
    native = client.get(f"/jobs/{job_id}/model/download?format=native", headers=alice.headers)
    assert native.status_code == 200
    assert native.headers["content-disposition"] == f'attachment; filename="{job_id}-model.ubj"'
    assert native.headers["x-model-sha256"] == sha256
    assert native.headers["etag"] == f'"{hashlib.sha256(native.content).hexdigest()}"'
    path = f"/jobs/{job_id}/model/download?format=skops"
    assert client.get(path, headers=alice.headers).status_code == 202  # made on its first download
    assert convert_model(job_id, "skops") == "stored"
    skops = client.get(path, headers=alice.headers)
    assert skops.status_code == 200
    assert skops.headers["content-disposition"] == f'attachment; filename="{job_id}-model.skops"'
    assert skops.headers["etag"] == f'"{hashlib.sha256(skops.content).hexdigest()}"'
    assert "xgboost.sklearn.XGBClassifier" in skops.headers["x-skops-untrusted-types"].split(",")
    unknown = error(client.get(f"/jobs/{job_id}/model/download?format=pmml", headers=alice.headers), 422)
    assert unknown["code"] == "unknown_format" and {"native", "skops"} <= set(unknown["allowed"])


def test_the_dashboard_asks_again_while_a_worker_writes_the_file(
    client: TestClient, alice: Account, run_job: Callable[[str], str]
) -> None:
    from worker.convert_model import convert_model

    job_id = succeeded(run_job, alice, params=XGBOOST)
    assert client.post("/dashboard/sign-in", data={"token": alice.token}).status_code in (200, 303)
    page = client.get(f"/dashboard/jobs/{job_id}")
    link = f"/dashboard/jobs/{job_id}/model/skops"
    assert f'<a href="{link}">skops</a>' in page.text  # no `download`: a waiting page is not saved
    waiting = client.get(link)
    assert waiting.status_code == 202 and waiting.headers["content-type"].startswith("text/html")
    assert waiting.headers["retry-after"] == "2" and '<meta http-equiv="refresh" content="2">' in waiting.text
    assert convert_model(job_id, "skops") == "stored"
    downloaded = client.get(link)
    assert downloaded.status_code == 200
    assert downloaded.headers["content-disposition"] == f'attachment; filename="{job_id}-model.skops"'
    api = client.get(f"/jobs/{job_id}/model/download?format=skops", headers=alice.headers)
    assert downloaded.content == api.content


def test_another_user_gets_404(
    client: TestClient, alice: Account, bob: Account, run_job: Callable[[str], str]
) -> None:
    job_id = succeeded(run_job, alice, params=XGBOOST)
    for path in (f"/jobs/{job_id}/model", f"/jobs/{job_id}/model/download?format=native"):
        assert error(client.get(path, headers=bob.headers), 404)["code"] == "not_found"


@pytest.mark.parametrize(
    ("status", "code"),
    [("queued", "job_not_finished"), ("running", "job_not_finished"), ("failed", "job_failed")],
)
def test_a_job_without_a_model_answers_409_with_its_code(
    client: TestClient, alice: Account, status: str, code: str
) -> None:
    job_id = make_job(alice.id, params=XGBOOST)
    set_job(job_id, status=status, error_code="non_numeric" if status == "failed" else None)
    for path in (f"/jobs/{job_id}/model", f"/jobs/{job_id}/model/download"):
        assert error(client.get(path, headers=alice.headers), 409)["code"] == code


def test_a_cancelled_job_has_no_model(client: TestClient, alice: Account) -> None:
    job_id = make_job(alice.id, params=XGBOOST)
    assert client.post(f"/jobs/{job_id}/cancel", headers=alice.headers).status_code == 200
    assert error(client.get(f"/jobs/{job_id}/model", headers=alice.headers), 409)["code"] == "job_cancelled"


def test_a_changed_file_is_never_served(
    client: TestClient, alice: Account, run_job: Callable[[str], str]
) -> None:
    job_id = succeeded(run_job, alice, params=XGBOOST)
    sha256 = card(client, alice, job_id)["sha256"]
    with session_scope() as session:
        stored = session.get(ModelFile, (sha256, "native"))
        assert stored is not None
        current_store().put_bytes(stored.blob_key, b"not the model")
    refused = error(client.get(f"/jobs/{job_id}/model/download?format=native", headers=alice.headers), 409)
    assert refused["code"] == "model_integrity" and refused["sha256"] == stored.sha256


def stored_models() -> int:
    with session_scope() as session:
        return session.scalar(select(func.count()).select_from(StoredModel)) or 0


def test_identical_models_are_stored_once_counted_once_and_go_with_their_last_job(
    client: TestClient, alice: Account, bob: Account, run_job: Callable[[str], str]
) -> None:
    first = succeeded(run_job, alice, params=XGBOOST)
    again = succeeded(run_job, alice, params=XGBOOST)  # a deterministic re-run: the same model
    theirs = succeeded(run_job, bob, params=XGBOOST)
    sha256 = card(client, alice, first)["sha256"]
    assert card(client, alice, again)["sha256"] == card(client, bob, theirs)["sha256"] == sha256
    assert stored_models() == 1
    with session_scope() as session:
        model = session.get(StoredModel, sha256)
        assert model is not None and model.stored_bytes > model.size_bytes  # with its files
        keys = [model.blob_key, *session.scalars(select(ModelFile.blob_key))]
        for user in (alice, bob):  # each user charged once, in full
            counted = usage(session, user.id)
            assert (counted.models, counted.models_bytes) == (1, model.stored_bytes)
            assert counted.used_bytes == counted.uploads_bytes + counted.results_bytes + model.stored_bytes
    assert client.delete(f"/jobs/{first}", headers=alice.headers).status_code == 204
    with session_scope() as session:
        assert usage(session, alice.id).models == 1  # the re-run still keeps it
    assert client.delete(f"/jobs/{again}", headers=alice.headers).status_code == 204
    with session_scope() as session:
        assert (usage(session, alice.id).models, usage(session, alice.id).models_bytes) == (0, 0)
    assert stored_models() == 1  # bob's job keeps it
    set_job(theirs, finished_at=utcnow() - timedelta(days=40))
    with session_scope() as session:
        assert purge_expired(session, 30)["models"] == 1
    with session_scope() as session:
        assert usage(session, bob.id).models_bytes == 0
        assert session.scalar(select(func.count()).select_from(JobModel)) == 0
    assert stored_models() == 0
    assert not any(current_store().exists(key) for key in keys)


def test_a_model_over_the_limit_is_not_kept_and_its_card_says_so(
    client: TestClient, alice: Account, run_job: Callable[[str], str], service_settings: Settings
) -> None:
    from shared.ml.pipeline import prepare
    from shared.ml.spec import JobSpec
    from shared.store.uploads import upload_path
    from shared.tables import Job
    from worker.keep_model import plan_model, record_model

    job_id = succeeded(run_job, alice, params=XGBOOST)
    with session_scope() as session:
        job = session.get(Job, job_id)
        assert job is not None
        source = upload_path(session, job.dataset_sha256)
        assert source is not None
        spec = JobSpec.from_json(job.spec)
        session.execute(JobModel.__table__.delete().where(JobModel.job_id == job_id))
    prepared = prepare(source, spec, service_settings.limits(), n_threads=1)
    plan = plan_model(job_id, prepared, service_settings.model_copy(update={"max_model_bytes": 100}))
    assert plan is not None and plan.model is None
    with session_scope() as session:
        record_model(session, job_id, plan)
    found = card(client, alice, job_id)
    assert found["kept"] is False and found["formats"] == []
    assert "FITEXPLAIN_MAX_MODEL_BYTES" in found["notes"] and found["size_bytes"] > 100
    refused = error(client.get(f"/jobs/{job_id}/model/download", headers=alice.headers), 409)
    assert refused["code"] == "model_not_kept" and "FITEXPLAIN_MAX_MODEL_BYTES" in refused["notes"]


def test_slow_formats_are_made_by_a_worker_on_their_first_download(
    client: TestClient, alice: Account, run_job: Callable[[str], str], published: PublishRecorder
) -> None:
    from worker.convert_model import convert_model

    job_id = succeeded(run_job, alice, params=XGBOOST)
    found = card(client, alice, job_id)
    sha256 = found["sha256"]
    assert "bundle" in found["formats"]
    with session_scope() as session:
        made = set(session.scalars(select(ModelFile.format).where(ModelFile.model_sha256 == sha256)))
        before = session.get(StoredModel, sha256)
        assert before is not None
        stored_before = before.stored_bytes
    assert made == {"native"}  # only the booster's own file at fit time
    path = f"/jobs/{job_id}/model/download?format=bundle"
    for _ in range(2):  # polling publishes one conversion, not one per request
        waiting = client.get(path, headers=alice.headers)
        assert waiting.status_code == 202, waiting.text
        assert waiting.json()["code"] == "model_converting" and "bundle" in waiting.json()["detail"]
        assert waiting.headers["retry-after"] == "2"
    conversions = [m for m in published.messages if m.task == CONVERT_MODEL_TASK]
    assert [m.args for m in conversions] == [(job_id, "bundle")]
    assert convert_model(job_id, "bundle") == "stored"
    assert convert_model(job_id, "bundle") == "nothing to do"  # a second task for the same file
    bundle = client.get(path, headers=alice.headers)
    assert bundle.status_code == 200, bundle.text
    assert bundle.headers["content-disposition"] == f'attachment; filename="{job_id}-model-bundle.zip"'
    assert bundle.content[:2] == b"PK"
    with session_scope() as session:
        model = session.get(StoredModel, sha256)
        assert model is not None and model.stored_bytes == stored_before + len(bundle.content)
        assert usage(session, alice.id).models_bytes == model.stored_bytes  # counted as fit-time files


def test_a_lost_conversion_is_published_again_after_a_while(
    client: TestClient, alice: Account, run_job: Callable[[str], str], published: PublishRecorder
) -> None:
    job_id = succeeded(run_job, alice, params=XGBOOST)
    sha256 = card(client, alice, job_id)["sha256"]
    path = f"/jobs/{job_id}/model/download?format=bundle"
    assert client.get(path, headers=alice.headers).status_code == 202
    with session_scope() as session:  # no worker took it for longer than the republish delay
        row = session.get(ModelConversion, (sha256, "bundle"))
        assert row is not None
        row.requested_at = utcnow() - timedelta(seconds=Settings().model_conversion_republish_seconds + 1)
    assert client.get(path, headers=alice.headers).status_code == 202
    assert client.get(path, headers=alice.headers).status_code == 202
    assert published.job_ids(CONVERT_MODEL_TASK) == [job_id, job_id]


def test_a_failed_conversion_answers_409_with_its_reason(
    client: TestClient, alice: Account, run_job: Callable[[str], str], published: PublishRecorder
) -> None:
    from worker.convert_model import convert_model

    job_id = succeeded(run_job, alice, params=XGBOOST)
    sha256 = card(client, alice, job_id)["sha256"]
    with session_scope() as session:  # the kept pickle changed: it is never unpickled
        model = session.get(StoredModel, sha256)
        assert model is not None
        current_store().put_bytes(model.blob_key, b"not the model")
    path = f"/jobs/{job_id}/model/download?format=bundle"
    assert client.get(path, headers=alice.headers).status_code == 202
    assert convert_model(job_id, "bundle") == "failed"
    refused = error(client.get(path, headers=alice.headers), 409)
    assert refused["code"] == "model_conversion_failed" and "bundle" in refused["detail"]
    assert "sha256" in refused["reason"]
    assert published.job_ids(CONVERT_MODEL_TASK) == [job_id]  # never 202 forever, never again
