"""`Client` and `AsyncClient`: the same methods, one blocking, one awaited (for many jobs at once)."""

from __future__ import annotations

from collections.abc import Coroutine, Sequence
from types import TracebackType
from typing import Any, cast

from fitexplain_client import config
from fitexplain_client.data import DataLike, csv_bytes
from fitexplain_client.endpoints import ENDPOINTS, Endpoints, query
from fitexplain_client.jobs import AsyncJob, Job
from fitexplain_client.transport import AsyncTransport, RetryPolicy, SyncTransport

DEFAULT_TIMEOUT = 120.0  # seconds per HTTP request (uploads of large CSVs included)


def _check_endpoint(endpoint: str) -> None:
    if endpoint not in ENDPOINTS:
        raise ValueError(f"unknown endpoint {endpoint!r}; one of {', '.join(ENDPOINTS)}")


def _upload(
    data: DataLike, target: str | None, training_index: str | Sequence[int] | None
) -> dict[str, tuple[str, bytes, str]]:
    return {"file": ("data.csv", csv_bytes(data, target, training_index), "text/csv")}


def _list_params(limit: int, offset: int, status: str | None) -> dict[str, Any]:
    return {"limit": limit, "offset": offset, **({"status": status} if status else {})}


class Client(Endpoints[Job]):
    """`Client(base_url=None, token=None)`: defaults from FITEXPLAIN_URL / FITEXPLAIN_TOKEN, then the file
    written by `fitexplain login`. `client.mlclassification("data.csv", interpretability="shap").wait()`.
    """

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
        self._transport = SyncTransport(found.base_url, found.token, timeout, retry or RetryPolicy())

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._transport.close()

    def _get_json(self, path: str, **params: Any) -> Any:
        return self._transport.request("GET", path, params=params or None).json()

    def _get_bytes(self, path: str, **params: Any) -> bytes:
        return self._transport.request("GET", path, params=params or None).content

    def _delete_json(self, path: str) -> Any:
        response = self._transport.request("DELETE", path)
        return None if response.status_code == 204 else response.json()

    def submit(
        self,
        endpoint: str,
        data: DataLike,
        *,
        target: str | None = None,
        training_index: str | Sequence[int] | None = None,
        **params: Any,
    ) -> Job:
        _check_endpoint(endpoint)
        files = _upload(data, target, training_index)
        response = self._transport.request("POST", f"/{endpoint}", params=query(params), files=files)
        return Job(self, response.json())

    def job(self, job_id: str) -> Job:
        return Job(self, self._get_json(f"/jobs/{job_id}"))

    def jobs(self, limit: int = 20, offset: int = 0, status: str | None = None) -> list[Job]:
        """Your jobs, newest first."""
        page = self._get_json("/jobs", **_list_params(limit, offset, status))
        return [Job(self, item) for item in page["items"]]

    def models(self) -> dict[str, Any]:
        """The accepted `base_model` names (GET /models)."""
        return cast(dict[str, Any], self._get_json("/models"))

    def webhook_secret(self) -> str:
        """The secret that signs your webhooks (for `verify_webhook`)."""
        return cast(str, self._get_json("/webhook-secret")["secret"])


class AsyncClient(Endpoints[Coroutine[Any, Any, AsyncJob]]):
    """`Client`'s methods, awaited: `job = await client.mlregression(...)`, `result = await job.wait()`."""

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
        self._transport = AsyncTransport(found.base_url, found.token, timeout, retry or RetryPolicy())

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._transport.close()

    async def _get_json(self, path: str, **params: Any) -> Any:
        return (await self._transport.request("GET", path, params=params or None)).json()

    async def _get_bytes(self, path: str, **params: Any) -> bytes:
        return (await self._transport.request("GET", path, params=params or None)).content

    async def _delete_json(self, path: str) -> Any:
        response = await self._transport.request("DELETE", path)
        return None if response.status_code == 204 else response.json()

    async def submit(
        self,
        endpoint: str,
        data: DataLike,
        *,
        target: str | None = None,
        training_index: str | Sequence[int] | None = None,
        **params: Any,
    ) -> AsyncJob:
        _check_endpoint(endpoint)
        files = _upload(data, target, training_index)
        response = await self._transport.request("POST", f"/{endpoint}", params=query(params), files=files)
        return AsyncJob(self, response.json())

    async def job(self, job_id: str) -> AsyncJob:
        return AsyncJob(self, await self._get_json(f"/jobs/{job_id}"))

    async def jobs(self, limit: int = 20, offset: int = 0, status: str | None = None) -> list[AsyncJob]:
        page = await self._get_json("/jobs", **_list_params(limit, offset, status))
        return [AsyncJob(self, item) for item in page["items"]]

    async def models(self) -> dict[str, Any]:
        return cast(dict[str, Any], await self._get_json("/models"))

    async def webhook_secret(self) -> str:
        return cast(str, (await self._get_json("/webhook-secret"))["secret"])
