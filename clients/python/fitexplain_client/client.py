"""`Client` and `AsyncClient`: the same methods, one blocking, one awaited (for many jobs at once).

`BaseClient` holds everything both share, as httpx's and openai-python's base clients do: where the
service is, how each call's request is built (`requests_for`) and how each answer is read (`read`). The
two faces only send, through their transport, and wrap what they read in a `Job` or `AsyncJob`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Generic, TypeVar, cast

import httpx

from fitexplain_client import config
from fitexplain_client.binary import ResultFormat, check_format
from fitexplain_client.data import BackgroundLike, DataLike, background_part, rows_upload, upload
from fitexplain_client.endpoints import ENDPOINTS, Endpoints, query
from fitexplain_client.errors import WaitTimeoutError, retry_after_seconds
from fitexplain_client.jobs import MODEL_CONVERSION_TIMEOUT, AsyncJob, Job
from fitexplain_client.models import JobState, ModelCard
from fitexplain_client.result import Result
from fitexplain_client.transport import AsyncTransport, BaseTransport, Request, RetryPolicy, SyncTransport

DEFAULT_TIMEOUT = 120.0  # seconds per HTTP request (uploads of large files included)
CONVERSION_POLL_SECONDS = 2.0  # between two asks of a format being written, when no Retry-After says
TransportT = TypeVar("TransportT", bound=BaseTransport)


class requests_for:
    """The request of each call of the service."""

    @staticmethod
    def submit(
        endpoint: str,
        data: DataLike,
        training_index: str | Sequence[int] | None,
        params: dict[str, Any],
    ) -> Request:
        if endpoint not in ENDPOINTS:
            raise ValueError(f"unknown endpoint {endpoint!r}; one of {', '.join(ENDPOINTS)}")
        sent = upload(data, params.get("target"), training_index)
        params, background = background_part(params)
        return Request("POST", f"/{endpoint}", params=query(params), upload=sent, background=background)

    @staticmethod
    def predict(job_id: str, data: DataLike, params: dict[str, Any]) -> Request:
        params, background = background_part(params)
        path = f"/jobs/{job_id}/predict"
        return Request("POST", path, params=query(params), upload=rows_upload(data), background=background)

    @staticmethod
    def job(job_id: str, wait: float = 0) -> Request:
        return Request("GET", f"/jobs/{job_id}", params={"wait": round(wait, 3)} if wait else None)

    @staticmethod
    def jobs(limit: int, offset: int, status: str | None) -> Request:
        params: dict[str, str | int] = {"limit": limit, "offset": offset}
        if status:
            params["status"] = status
        return Request("GET", "/jobs", params=params)

    @staticmethod
    def cancel(job_id: str) -> Request:
        return Request("POST", f"/jobs/{job_id}/cancel")

    @staticmethod
    def delete(job_id: str) -> Request:
        return Request("DELETE", f"/jobs/{job_id}")

    @staticmethod
    def result(job_id: str, include: Sequence[str] = ()) -> Request:
        return Request(
            "GET", f"/jobs/{job_id}/result", params={"include": ",".join(include)} if include else None
        )

    @staticmethod
    def download(job_id: str, format: ResultFormat) -> Request:
        return Request("GET", f"/jobs/{job_id}/result", params={"format": check_format(format)})

    @staticmethod
    def models() -> Request:
        return Request("GET", "/models")

    @staticmethod
    def webhook_secret() -> Request:
        return Request("GET", "/webhook-secret")

    @staticmethod
    def model_card(job_id: str) -> Request:
        return Request("GET", f"/jobs/{job_id}/model")

    @staticmethod
    def download_model(job_id: str, format: str) -> Request:
        return Request("GET", f"/jobs/{job_id}/model/download", params={"format": format})


class read:
    """How each answer is read."""

    @staticmethod
    def job(response: httpx.Response) -> JobState:
        return JobState.from_json(response.json())

    @staticmethod
    def deleted(response: httpx.Response) -> JobState | None:
        """204: deleted; 200: the job had not finished, and was cancelled."""
        return None if response.status_code == 204 else JobState.from_json(response.json())

    @staticmethod
    def jobs(response: httpx.Response) -> list[JobState]:
        return [JobState.from_json(item) for item in response.json()["items"]]

    @staticmethod
    def result(response: httpx.Response, job_id: str) -> Result:
        return Result.from_json(response.json(), job_id=job_id)

    @staticmethod
    def download(response: httpx.Response, path: str | Path | None) -> bytes:
        """The result's bytes, also written to `path` when given."""
        if path is not None:
            Path(path).write_bytes(response.content)
        return response.content

    @staticmethod
    def model_card(response: httpx.Response) -> ModelCard:
        return ModelCard.from_json(response.json())

    @staticmethod
    def model_file(response: httpx.Response, path: str | Path) -> Path:
        """Write a downloaded model file to `path` (a directory: the file's own name in it)."""
        target = Path(path)
        if target.is_dir():
            target = target / model_filename(response)
        target.write_bytes(response.content)
        return target

    @staticmethod
    def models(response: httpx.Response) -> dict[str, Any]:
        return cast(dict[str, Any], response.json())

    @staticmethod
    def webhook_secret(response: httpx.Response) -> str:
        return cast(str, response.json()["secret"])


class _ConversionWait:
    """The pauses of a model download answered 202 (`model_converting`): the server's Retry-After, up to
    the download's deadline."""

    def __init__(self, job_id: str, format: str, timeout: float | None) -> None:
        self.job_id, self.format, self.timeout = job_id, format, timeout
        self.deadline = None if timeout is None else time.monotonic() + timeout

    def pause(self, response: httpx.Response) -> float:
        """Seconds to sleep before asking again (raises WaitTimeoutError past the deadline)."""
        delay = retry_after_seconds(response)
        delay = CONVERSION_POLL_SECONDS if delay is None else delay
        if self.deadline is None:
            return delay
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise WaitTimeoutError(
                f"job {self.job_id}'s model is still being written as {self.format} after {self.timeout} s "
                "(the worker goes on: download it again later)"
            )
        return min(delay, left)


def model_filename(response: httpx.Response) -> str:
    """The file name of a model download (`Content-Disposition`), or model.bin."""
    disposition = str(response.headers.get("content-disposition", ""))
    if 'filename="' in disposition:
        return disposition.split('filename="', 1)[1].split('"', 1)[0]
    return "model.bin"


class BaseClient(Generic[TransportT]):
    """Where the service is and how to reach it; `Client` and `AsyncClient` name their transport, which
    sends."""

    transport_class: type[TransportT]
    transport: TransportT

    def __init__(
        self,
        base_url: str | None = None,
        token: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
    ) -> None:
        found = config.resolve(base_url, token)
        self.base_url = found.base_url
        self.token = found.token
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.transport = self.transport_class(self.base_url, self.token, self.timeout, self.retry)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.base_url}>"


class Client(BaseClient[SyncTransport], Endpoints[Job]):
    """`Client(base_url=None, token=None)`: defaults from FITEXPLAIN_URL / FITEXPLAIN_TOKEN, then the file
    written by `fitexplain login`. `client.mlclassification("data.csv", interpretability="shap").wait()`.
    A job id may be any unique prefix of 6 characters or more of one of your jobs' ids.
    """

    transport_class = SyncTransport

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self.transport.close()

    def request(self, method: str, path: str, **arguments: Any) -> httpx.Response:
        """Any route of the service, with this client's token, retries and typed errors; `arguments` are
        httpx's (params, json, content, headers...)."""
        return self.transport.send(Request(method, path, extra=arguments))

    def submit(
        self,
        endpoint: str,
        data: DataLike,
        *,
        training_index: str | Sequence[int] | None = None,
        **params: Any,
    ) -> Job:
        sent = self.transport.send(requests_for.submit(endpoint, data, training_index, params))
        return Job(self, read.job(sent))

    def predict(
        self,
        job: str | Job,
        data: DataLike,
        *,
        interpretability: str = "shap",
        top_n: int | None = None,
        threshold: float | None = None,
        background: BackgroundLike | None = None,
        **params: Any,
    ) -> Job:
        """Score (and explain) new rows with a succeeded job's kept model: a `predict` job. `data` is a path,
        bytes or a DataFrame holding the training columns (the target may be absent); `background` is SHAP's
        background for this job only: "sample:N" (N rows of the model's own), or rows of the training
        features (a path, bytes or a DataFrame); `params` are the route's others (`below`, `return_pi`,
        `id_column`, `strict`, `wait`, `webhook_url`).
        `job.wait()` gives the Result: `y_pred`, `proba`, `shap_explanation()`, `reasons_frame()`."""
        job_id = job.id if isinstance(job, Job) else job
        asked = {
            "interpretability": interpretability,
            "top_n": top_n,
            "threshold": threshold,
            "background": background,
            **params,
        }
        sent = self.transport.send(requests_for.predict(job_id, data, asked))
        return Job(self, read.job(sent))

    def job(self, job_id: str) -> Job:
        """A job, by its id or a unique prefix of it (6 characters or more)."""
        return Job(self, self.job_state(job_id))

    def jobs(self, limit: int = 20, offset: int = 0, status: str | None = None) -> list[Job]:
        """Your jobs, newest first."""
        return [
            Job(self, state)
            for state in read.jobs(self.transport.send(requests_for.jobs(limit, offset, status)))
        ]

    def job_state(self, job_id: str, wait: float = 0) -> JobState:
        """The job's state now, or (`wait` seconds at most) as soon as it finishes."""
        return read.job(self.transport.send(requests_for.job(job_id, wait)))

    def cancel(self, job_id: str) -> JobState:
        """Cancel a job that has not finished; the job stays listed as cancelled. A finished job raises
        ConflictError (code "job_finished")."""
        return read.job(self.transport.send(requests_for.cancel(job_id)))

    def delete(self, job_id: str) -> JobState | None:
        """Delete a finished job with its result and upload (None); a job that has not finished is
        cancelled instead, as `DELETE /jobs/{id}` does (its state)."""
        return read.deleted(self.transport.send(requests_for.delete(job_id)))

    def result(self, job_id: str, include: Sequence[str] = ()) -> Result:
        """A succeeded job's result (ConflictError while it has not succeeded)."""
        return read.result(self.transport.send(requests_for.result(job_id, include)), job_id)

    def download(
        self, job_id: str, format: ResultFormat = "parquet", path: str | Path | None = None
    ) -> bytes:
        """A succeeded job's result in `format` (json, arrow, arrow-file, parquet or npz), also written to
        `path` when given."""
        return read.download(self.transport.send(requests_for.download(job_id, format)), path)

    def model_card(self, job_id: str) -> ModelCard:
        """A succeeded job's model card (ConflictError while it has none: see its `code`)."""
        return read.model_card(self.transport.send(requests_for.model_card(job_id)))

    def download_model(
        self,
        job_id: str,
        path: str | Path = ".",
        format: str = "native",
        timeout: float | None = MODEL_CONVERSION_TIMEOUT,
    ) -> Path:
        """Write a succeeded job's model in `format` (native, skops, or another of the card's `formats`) to
        `path` (a directory: the server's file name in it); the file's path. A format made on its first
        download (skops, onnx, mlflow, bundle) answers 202 while a worker writes it: the download is asked
        again after each Retry-After, for `timeout` seconds at most (then WaitTimeoutError)."""
        pace = _ConversionWait(job_id, format, timeout)
        while True:
            response = self.transport.send(requests_for.download_model(job_id, format))
            if response.status_code != 202:
                return read.model_file(response, path)
            time.sleep(pace.pause(response))

    def models(self) -> dict[str, Any]:
        """The accepted `base_model` names (GET /models)."""
        return read.models(self.transport.send(requests_for.models()))

    def webhook_secret(self) -> str:
        """The secret that signs your webhooks (for `verify_webhook`)."""
        return read.webhook_secret(self.transport.send(requests_for.webhook_secret()))


class AsyncClient(BaseClient[AsyncTransport], Endpoints[Coroutine[Any, Any, AsyncJob]]):
    """`Client`'s methods, awaited: `job = await client.mlregression(...)`, `result = await job.wait()`."""

    transport_class = AsyncTransport

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.transport.close()

    async def request(self, method: str, path: str, **arguments: Any) -> httpx.Response:
        """As `Client.request`."""
        return await self.transport.send(Request(method, path, extra=arguments))

    async def submit(
        self,
        endpoint: str,
        data: DataLike,
        *,
        training_index: str | Sequence[int] | None = None,
        **params: Any,
    ) -> AsyncJob:
        sent = await self.transport.send(requests_for.submit(endpoint, data, training_index, params))
        return AsyncJob(self, read.job(sent))

    async def predict(
        self,
        job: str | AsyncJob,
        data: DataLike,
        *,
        interpretability: str = "shap",
        top_n: int | None = None,
        threshold: float | None = None,
        background: BackgroundLike | None = None,
        **params: Any,
    ) -> AsyncJob:
        """As `Client.predict`."""
        job_id = job.id if isinstance(job, AsyncJob) else job
        asked = {
            "interpretability": interpretability,
            "top_n": top_n,
            "threshold": threshold,
            "background": background,
            **params,
        }
        sent = await self.transport.send(requests_for.predict(job_id, data, asked))
        return AsyncJob(self, read.job(sent))

    async def job(self, job_id: str) -> AsyncJob:
        return AsyncJob(self, await self.job_state(job_id))

    async def jobs(self, limit: int = 20, offset: int = 0, status: str | None = None) -> list[AsyncJob]:
        sent = await self.transport.send(requests_for.jobs(limit, offset, status))
        return [AsyncJob(self, state) for state in read.jobs(sent)]

    async def job_state(self, job_id: str, wait: float = 0) -> JobState:
        return read.job(await self.transport.send(requests_for.job(job_id, wait)))

    async def cancel(self, job_id: str) -> JobState:
        return read.job(await self.transport.send(requests_for.cancel(job_id)))

    async def delete(self, job_id: str) -> JobState | None:
        return read.deleted(await self.transport.send(requests_for.delete(job_id)))

    async def result(self, job_id: str, include: Sequence[str] = ()) -> Result:
        return read.result(await self.transport.send(requests_for.result(job_id, include)), job_id)

    async def download(
        self, job_id: str, format: ResultFormat = "parquet", path: str | Path | None = None
    ) -> bytes:
        return read.download(await self.transport.send(requests_for.download(job_id, format)), path)

    async def model_card(self, job_id: str) -> ModelCard:
        return read.model_card(await self.transport.send(requests_for.model_card(job_id)))

    async def download_model(
        self,
        job_id: str,
        path: str | Path = ".",
        format: str = "native",
        timeout: float | None = MODEL_CONVERSION_TIMEOUT,
    ) -> Path:
        pace = _ConversionWait(job_id, format, timeout)
        while True:
            response = await self.transport.send(requests_for.download_model(job_id, format))
            if response.status_code != 202:
                return read.model_file(response, path)
            await asyncio.sleep(pace.pause(response))

    async def models(self) -> dict[str, Any]:
        return read.models(await self.transport.send(requests_for.models()))

    async def webhook_secret(self) -> str:
        return read.webhook_secret(await self.transport.send(requests_for.webhook_secret()))
