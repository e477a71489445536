"""The Python SDK against the real stack: every endpoint, waiting with progress, typed results and errors,
pandas and shap views, every plot written to a PNG, and 20 jobs at once through AsyncClient."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
import shap

from fitexplain_client import (
    AsyncClient,
    AuthenticationError,
    BadRequestError,
    Client,
    ConflictError,
    InternalServerError,
    JobFailedError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitError,
    Result,
    RetryPolicy,
    ServiceUnavailableError,
    UnprocessableEntityError,
    ValidationError,
    WebhookVerificationError,
    verify_webhook,
)
from tests.faults.conftest import slow_csv, slow_params
from tests.service.test_client_cli import copies_sharing_a_prefix
from tests.stack import DATA, Stack, free_port
from tests.webhook_receiver import Receiver

pytestmark = pytest.mark.service

CASES = {  # endpoint: (CSV, parameters)
    "mlclassification": ("breast_cancer_dataset2.csv", {"interpretability": "permutation,shap"}),
    "gbdtclassification": ("breast_cancer_dataset2.csv", {"interpretability": ["shap", "permutation"]}),
    "mlregression": ("boston_dataset2.csv", {"interpretability": "permutation,shap", "return_pi": True}),
    "gbdtregression": ("boston_dataset2.csv", {"interpretability": "shap,permutation", "return_pi": True}),
}


@pytest.fixture(scope="module")
def token(stack: Stack) -> str:
    return stack.token("sdk-user")


@pytest.fixture(scope="module")
def client(stack: Stack, token: str) -> Client:
    return Client(stack.url, token)


@pytest.fixture(scope="module")
def results(client: Client) -> dict[str, Result]:
    jobs = {
        endpoint: getattr(client, endpoint)(DATA / csv, **params) for endpoint, (csv, params) in CASES.items()
    }
    return {endpoint: job.wait(timeout=300, progress=False) for endpoint, job in jobs.items()}


def assert_png(path: Path) -> None:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path
    assert path.stat().st_size > 5000, f"{path} is almost empty"


def test_wait_shows_progress_and_returns_the_result(
    client: Client, capsys: pytest.CaptureFixture[str]
) -> None:
    job = client.gbdtclassification(DATA / "iris_dataset2.csv", interpretability="shap")
    assert job.state.status == "queued"
    result = job.wait(timeout=120, progress=True)
    shown = capsys.readouterr().err
    assert job.id[:8] in shown and "succeeded" in shown and "100%" in shown, shown
    assert job.status() == "succeeded" and job.state.progress == 1.0
    assert result.job_id == job.id and result.class_labels == ["0", "1", "2"]


@pytest.mark.parametrize("endpoint", CASES)
def test_every_endpoint_result_and_plots(results: dict[str, Result], endpoint: str, tmp_path: Path) -> None:
    result = results[endpoint]
    methods = [item["method"] for item in result.explanations]
    asked = CASES[endpoint][1]["interpretability"]
    assert methods == (asked if isinstance(asked, list) else asked.split(","))  # in the order asked
    assert result.permutation is not None and result.shap is not None
    n_rows, n_features = len(result.y_pred), len(result.feature_names)

    predictions = result.to_frame("predictions")
    assert len(predictions) == n_rows and {"y_true", "y_pred"} <= set(predictions.columns)
    importances = result.to_frame("importances")
    assert sorted(importances["feature"]) == sorted(result.feature_names)
    assert importances["importance_mean"].is_monotonic_decreasing
    long_shap = result.to_frame("shap")
    explanation = result.shap_explanation()
    assert isinstance(explanation, shap.Explanation)

    plots = {"importance": result.plot_importance(), "shap-summary": result.plot_shap_summary()}
    plots["shap-beeswarm"] = result.plot_shap_beeswarm()
    if result.task == "classification":
        assert result.proba is not None and len(result.proba) == n_rows
        assert [f"proba_{label}" for label in result.class_labels] == list(predictions.columns[2:])
        assert 0.8 < result.metrics["accuracy"] <= 1
        assert explanation.shape == (n_rows, n_features, len(result.class_labels))
        assert result.shap_explanation(class_label="1").shape == (n_rows, n_features)
        assert len(long_shap) == n_rows * n_features * len(result.class_labels)
    else:
        assert result.pi_lower is not None and result.pi_upper is not None and result.pi_coverage is not None
        assert list(predictions.columns) == ["y_true", "y_pred", "pi_lower", "pi_upper"]
        assert explanation.shape == (n_rows, n_features)
        assert len(long_shap) == n_rows * n_features
        plots["intervals"] = result.plot_intervals()
    # additivity survives the conversion: values plus base value give the model output in output_space
    values = explanation.values if explanation.values.ndim == 2 else explanation.values[:, :, -1]
    base = explanation.base_values if explanation.values.ndim == 2 else explanation.base_values[:, -1]
    output = values.sum(axis=1) + base
    if result.task == "regression" and result.shap["output_space"] == "raw":
        np.testing.assert_allclose(output, result.y_pred, rtol=1e-4, atol=1e-4)
    for kind, figure in plots.items():
        path = tmp_path / f"{endpoint}-{kind}.png"
        figure.savefig(path)
        assert_png(path)


def test_every_shap_plot_works_on_the_explanation(results: dict[str, Result], tmp_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    explanation = results["mlclassification"].shap_explanation(class_label="1")
    for draw in (shap.plots.beeswarm, shap.plots.bar, shap.plots.violin):
        draw(explanation, show=False)
        plt.savefig(tmp_path / f"{draw.__name__}.png")
        plt.close("all")
        assert_png(tmp_path / f"{draw.__name__}.png")
    shap.plots.waterfall(results["gbdtregression"].shap_explanation()[0], show=False)
    plt.savefig(tmp_path / "waterfall.png")
    plt.close("all")
    assert_png(tmp_path / "waterfall.png")


def test_webhook_verified_with_the_users_secret(client: Client) -> None:
    receiver = Receiver().start()
    try:
        job = client.gbdtclassification(DATA / "iris_dataset2.csv", webhook_url=receiver.url())
        body, headers = receiver.received.get(timeout=120)
    finally:
        receiver.stop()
    message = verify_webhook(headers, body, client.webhook_secret())
    assert message["type"] == "job.succeeded" and message["data"]["id"] == job.id
    with pytest.raises(WebhookVerificationError):
        verify_webhook(headers, body.replace(b"succeeded", b"failed"), client.webhook_secret())


def test_shap_beeswarm_coloured_by_feature_values(results: dict[str, Result], tmp_path: Path) -> None:
    result = results["gbdtregression"]
    values = np.zeros((len(result.y_pred), len(result.feature_names)))  # any numbers of the right shape
    result.plot_shap_beeswarm(data=values).savefig(tmp_path / "coloured.png")
    assert_png(tmp_path / "coloured.png")
    with pytest.raises(ValueError, match="shape"):
        result.plot_shap_beeswarm(data=values[:, :3])


def test_dataframe_with_target_and_training_index(client: Client) -> None:
    frame = pd.read_csv(DATA / "iris_dataset2.csv").rename(columns={"target": "species"})
    split = [1 if row % 4 else 0 for row in range(len(frame))]  # every 4th row is a test row
    result = client.gbdtclassification(frame, target="species", training_index=split).wait(progress=False)
    assert len(result.y_pred) == split.count(0)
    assert result.y_true == frame["species"][[flag == 0 for flag in split]].tolist()


def test_a_bad_column_is_a_typed_error_naming_it(client: Client) -> None:
    with pytest.raises(ValidationError) as caught:
        client.mlclassification(DATA / "malformed" / "non_numeric.csv")
    assert caught.value.status_code == 422
    assert caught.value.column == "b" and caught.value.code == "non_numeric"
    assert "Column 'b'" in str(caught.value)


def test_a_bad_parameter_is_a_typed_error_naming_it(client: Client) -> None:
    with pytest.raises(ValidationError, match="model_type"):
        client.gbdtregression(DATA / "boston_dataset2.csv", model_type="randomforest")  # type: ignore[arg-type]


def test_a_wrong_token_and_an_unknown_job(stack: Stack, client: Client) -> None:
    with pytest.raises(AuthenticationError):
        Client(stack.url, "fx_wrong").jobs()
    with pytest.raises(NotFoundError):
        client.job("no-such-job")


def test_cancel_then_result_raises_the_jobs_failure(client: Client) -> None:
    job = client.gbdtclassification(slow_csv(), **slow_params())
    state = job.cancel()
    assert state.status in ("cancelled", "running")  # a running job is cancelled by its worker soon
    with pytest.raises(JobFailedError) as caught:
        job.wait(timeout=120, progress=False)
    assert caught.value.status == "cancelled"
    assert job.id in [listed.id for listed in client.jobs(limit=100, status="cancelled")]


def test_twenty_jobs_at_once_through_async_client(stack: Stack, token: str) -> None:
    csv = (DATA / "iris_dataset2.csv").read_bytes()

    async def run_all() -> list[Result]:
        async with AsyncClient(stack.url, token) as client:
            jobs = await asyncio.gather(
                *(
                    client.gbdtclassification(csv, seed=seed, interpretability="permutation")
                    for seed in range(20)
                )
            )
            assert len({job.id for job in jobs}) == 20
            results = await asyncio.gather(*(job.wait(timeout=300) for job in jobs))
            listed = await client.jobs(limit=100)
            assert {job.id for job in jobs} <= {job.id for job in listed}
            again = await (await client.job(jobs[0].id)).result()
            assert again.json == results[0].json
            return results

    results = asyncio.run(run_all())
    assert all(result.permutation is not None for result in results)
    assert len({tuple(result.permutation["importances_mean"]) for result in results}) > 1  # seeds differ


def test_async_errors_are_typed_too(stack: Stack, token: str) -> None:
    async def submit_bad() -> None:
        async with AsyncClient(stack.url, token) as client:
            await client.mlregression(DATA / "malformed" / "missing_feature.csv")

    with pytest.raises(ValidationError) as caught:
        asyncio.run(submit_bad())
    assert caught.value.column == "a" and caught.value.code == "missing_value"


@pytest.mark.slow
def test_the_running_jobs_limit_is_waited_out_through_retry_after(tmp_path: Path) -> None:
    """A user allowed 2 unfinished jobs submits 6 at once: the server answers 429 with Retry-After, and
    the client waits it out and resubmits until every job is accepted and has finished."""
    limited = Stack(tmp_path, extra_env={"FITEXPLAIN_MAX_RUNNING_JOBS_PER_USER": "2"}).setup()
    try:
        limited.start_worker(concurrency=2)
        limited.start_api()
        token = limited.token("limited")
        csv = (DATA / "iris_dataset2.csv").read_bytes()
        refused: list[int] = []

        async def run_all() -> list[Result]:
            async with AsyncClient(limited.url, token) as client:
                client.transport.http.event_hooks["response"] = [
                    lambda response: _record_refusal(response, refused)
                ]
                jobs = await asyncio.gather(*(client.gbdtclassification(csv, seed=seed) for seed in range(6)))
                return await asyncio.gather(*(job.wait(timeout=300) for job in jobs))

        results = asyncio.run(run_all())
        assert len(results) == 6 and all(result.y_pred for result in results)
        assert refused and set(refused) == {5}, (
            "the limit was hit, and its Retry-After (5 s) was what we read"
        )
    finally:
        limited.stop()


async def _record_refusal(response: httpx.Response, refused: list[int]) -> None:
    if response.status_code == 429:
        refused.append(int(response.headers["Retry-After"]))


# ----------------------------------------------------------------------------- every error, for real


def test_each_status_error_from_the_real_service(stack: Stack, client: Client) -> None:
    """400, 401, 403, 404, 409 (a result not ready, an ambiguous id, cancelling a finished job), 422:
    each the class of its status, with the server's code."""
    with pytest.raises(BadRequestError) as bad:
        client.request("POST", "/mlclassification", content=b"--x\r\nnot multipart",
                       headers={"Content-Type": "multipart/form-data; boundary=x"})  # fmt: skip
    assert bad.value.status_code == 400 and bad.value.code == "bad_request"
    with pytest.raises(AuthenticationError) as unauthorized:
        Client(stack.url, "fx_wrong").jobs()
    assert unauthorized.value.code == "unauthorized"
    with pytest.raises(PermissionDeniedError) as forbidden:
        client.request("GET", "/admin/jobs")
    assert forbidden.value.code == "forbidden"
    with pytest.raises(NotFoundError):
        client.job("0123456789abcdef")
    with pytest.raises(UnprocessableEntityError) as too_short:
        client.job("01234")
    assert too_short.value.code == "id_too_short"

    running = client.gbdtclassification(slow_csv(), **slow_params())
    with pytest.raises(ConflictError):
        client.result(running.id)
    assert client.cancel(running.id).status == "cancelled"
    finished = client.gbdtclassification(DATA / "iris_dataset2.csv")
    finished.wait(timeout=120)
    with pytest.raises(ConflictError) as refused:
        client.cancel(finished.id)
    assert refused.value.code == "job_finished" and finished.status() == "succeeded"
    copies_sharing_a_prefix(stack, finished.id, "abcdef9")
    with pytest.raises(ConflictError) as ambiguous:
        client.job("abcdef9")
    assert ambiguous.value.code == "ambiguous_id"
    assert client.job(finished.id[:8]).id == finished.id


@pytest.fixture(scope="module")
def refusing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """An API alone, with a 64 MiB upload limit, one submission a minute, and a broker that is down."""
    deployment = Stack(
        tmp_path_factory.mktemp("refusing"),
        extra_env={
            "FITEXPLAIN_MAX_UPLOAD_BYTES": str(64 << 20),
            "FITEXPLAIN_MAX_SUBMISSIONS_PER_MINUTE": "1",
            "FITEXPLAIN_BROKER_URL": f"redis://127.0.0.1:{free_port()}/0",
        },
    ).setup()
    deployment.start_api()
    yield deployment
    deployment.stop()


def test_413_429_and_503_from_the_real_service(refusing: Stack, tmp_path: Path) -> None:
    client = Client(refusing.url, refusing.token("refused"), retry=RetryPolicy(attempts=1))
    with pytest.raises(ServiceUnavailableError) as unavailable:
        client.request("GET", "/readyz")
    assert unavailable.value.code == "not_ready" and isinstance(unavailable.value, InternalServerError)
    big = tmp_path / "big.csv"
    with big.open("wb") as handle:
        handle.truncate(65 << 20)
    with pytest.raises(PayloadTooLargeError) as too_large:
        client.mlclassification(big)
    assert too_large.value.code == "upload_too_large"
    client.gbdtclassification(DATA / "iris_dataset2.csv")  # accepted: the job waits for the broker
    with pytest.raises(RateLimitError) as limited:
        client.gbdtclassification(DATA / "iris_dataset2.csv")
    assert limited.value.code == "rate_limited" and limited.value.retry_after


def test_a_dataframe_goes_as_parquet_with_its_dtypes(client: Client) -> None:
    """Every endpoint takes the Parquet upload; a categorical text target arrives as its labels."""
    iris = pd.read_csv(DATA / "iris_dataset2.csv")
    iris["target"] = iris["target"].map({0: "setosa", 1: "versicolor", 2: "virginica"}).astype("category")
    boston = pd.read_csv(DATA / "boston_dataset2.csv").astype({"target": "float32"})
    jobs = [client.gbdtclassification(iris), client.mlclassification(iris, n_hidden_features=0),
            client.gbdtregression(boston), client.mlregression(boston)]  # fmt: skip
    classified, *others = [job.wait(timeout=120, progress=False) for job in jobs]
    assert set(classified.y_true) <= {"setosa", "versicolor", "virginica"}
    assert classified.class_labels == ["setosa", "versicolor", "virginica"]
    assert others[0].class_labels == classified.class_labels
    assert all(result.y_pred for result in others)
    assert [job.state.data_filename for job in jobs] == ["data.parquet"] * 4


def test_a_jobs_shap_explanation_carries_the_test_rows_values(client: Client) -> None:
    table = pd.read_csv(DATA / "tables" / "customers.csv")
    job = client.gbdtclassification(
        table, target="churned", id_column="customer_id", model_type="xgboost", interpretability="shap"
    )
    result = job.wait(progress=False)
    assert result.X_test is None, "the plain result does not carry the feature values"
    explanation = job.shap_explanation(class_label="yes")
    rows = table.set_index("customer_id").loc[result.raw["test_ids"]]
    assert explanation.shape == (len(rows), len(result.feature_names))
    for index, name in enumerate(result.feature_names):
        coded = pd.Series(explanation.data[:, index])  # numbers as sent, categories coded, missing NaN
        assert coded.nunique(dropna=False) == rows[name].nunique(dropna=False), name
        assert coded.isna().sum() == rows[name].isna().sum(), name
