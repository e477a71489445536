"""A submitted job: its state, waiting for it with a progress bar, its result, cancelling it."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from fitexplain_client.binary import ResultFormat, ResultFrame, check_format, read_parquet
from fitexplain_client.errors import JobFailedError, WaitTimeoutError
from fitexplain_client.progress import JobProgress
from fitexplain_client.result import Result

FINISHED = frozenset({"succeeded", "failed", "cancelled"})


@dataclass(frozen=True)
class JobState:
    """GET /jobs/{id}, as the server sent it (`raw`), with the fields scripts read most."""

    id: str
    status: str
    progress: float
    progress_message: str
    error: dict[str, str] | None
    raw: dict[str, Any]

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> JobState:
        return cls(
            id=body["id"],
            status=body["status"],
            progress=float(body.get("progress") or 0.0),
            progress_message=body.get("progress_message") or "",
            error=body.get("error"),
            raw=body,
        )

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    def raise_unless_succeeded(self) -> None:
        if self.status != "succeeded":
            error = self.error or {}
            message = error.get("message") or f"the job was {self.status}"
            raise JobFailedError(self.id, self.status, error.get("code"), message)


def poll_delays(first: float = 0.1, factor: float = 1.5, cap: float = 1.0) -> Iterator[float]:
    delay = first
    while True:
        yield delay
        delay = min(delay * factor, cap)


LONG_POLL_SECONDS = 2.0  # how long each status request of a wait may be held: the progress bar's pace


class _Schedule:
    """One wait's requests: each asks the server to hold it until the job finishes (`GET /jobs/{id}?wait=`),
    so the answer comes as the job ends; a server from before long polls answers at once, and is then
    polled, backing off as `poll_delays`."""

    def __init__(self, job_id: str, timeout: float | None) -> None:
        self.job_id, self.timeout = job_id, timeout
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self._delays = poll_delays()
        self._asked_at = self._asked = 0.0

    def long_poll(self) -> float:
        """The `wait` of the next status request (0 once the deadline passed)."""
        self._asked_at = time.monotonic()
        left = LONG_POLL_SECONDS if self.deadline is None else self.deadline - self._asked_at
        self._asked = max(0.0, min(LONG_POLL_SECONDS, left))
        return self._asked

    def pause(self, state: JobState) -> float:
        """Seconds to sleep before the next request for a job still unfinished (raises past the deadline)."""
        _timed_out(self.deadline, self.job_id, self.timeout, state)
        if time.monotonic() - self._asked_at >= self._asked / 2:
            return 0.0  # the server held the request: ask again at once
        delay = next(self._delays)
        return delay if self.deadline is None else max(0.0, min(delay, self.deadline - time.monotonic()))


def _timed_out(deadline: float | None, job_id: str, timeout: float | None, state: JobState) -> None:
    if deadline is not None and time.monotonic() >= deadline:
        raise WaitTimeoutError(f"job {job_id} still {state.status} after {timeout} s (it goes on running)")


class JobRequests(Protocol):
    """What a `Job` asks of the `Client` that made it: the client module builds jobs, so jobs name only
    this shape of it."""

    def _get_json(self, path: str, **params: Any) -> Any: ...

    def _get_bytes(self, path: str, **params: Any) -> bytes: ...

    def _delete_json(self, path: str) -> Any: ...


class AsyncJobRequests(Protocol):
    """What an `AsyncJob` asks of the `AsyncClient` that made it."""

    async def _get_json(self, path: str, **params: Any) -> Any: ...

    async def _get_bytes(self, path: str, **params: Any) -> bytes: ...

    async def _delete_json(self, path: str) -> Any: ...


class Job:
    """A job of a `Client`."""

    def __init__(self, client: JobRequests, body: dict[str, Any]) -> None:
        self._client = client
        self.state = JobState.from_json(body)

    @property
    def id(self) -> str:
        return self.state.id

    def __repr__(self) -> str:
        return f"<Job {self.id} {self.state.status} {self.state.progress:.0%}>"

    def refresh(self, wait: float = 0) -> JobState:
        """The job's state now, or (`wait` seconds at most) as soon as it finishes."""
        params = {"wait": round(wait, 3)} if wait else {}
        self.state = JobState.from_json(self._client._get_json(f"/jobs/{self.id}", **params))
        return self.state

    def status(self) -> str:
        """The job's status now: queued, running, succeeded, failed or cancelled."""
        return self.refresh().status

    def cancel(self) -> JobState:
        """Cancel the job if it has not finished (a finished job is left as it is)."""
        if self.refresh().finished:
            return self.state
        body = self._client._delete_json(f"/jobs/{self.id}")
        if body is not None:  # None: it finished meanwhile, and the DELETE removed it
            self.state = JobState.from_json(body)
        return self.state

    def delete(self) -> None:
        """Delete a finished job with its result and upload (cancel it first if it is still running)."""
        self._client._delete_json(f"/jobs/{self.id}")

    def result(self) -> Result:
        """The result of a succeeded job (raises JobFailedError if it failed or was cancelled)."""
        self._require_success()
        return Result(self._client._get_json(f"/jobs/{self.id}/result"), job_id=self.id)

    def download(self, format: ResultFormat = "parquet", path: str | os.PathLike[str] | None = None) -> bytes:
        """The result as the server sends it in `format` (json, arrow, arrow-file, parquet or npz), written
        to `path` too when given: for R (`arrow::read_parquet`), NumPy (`np.load`) or another tool."""
        self._require_success()
        data = self._client._get_bytes(f"/jobs/{self.id}/result", format=check_format(format))
        if path is not None:
            Path(path).write_bytes(data)
        return data

    def result_frame(self) -> ResultFrame:
        """The result as a pandas DataFrame, one row per test row, and the rest as `metadata` (its Parquet
        form; extra `arrow`). Much faster than `result()` for a SHAP result of many rows."""
        return read_parquet(self.download("parquet"))

    def _require_success(self) -> None:
        if self.state.status != "succeeded":
            self.refresh()
            if self.state.finished:
                self.state.raise_unless_succeeded()

    def wait(self, timeout: float | None = None, progress: bool = True) -> Result:
        """Wait until the job finishes, showing a progress bar; its Result. The server is asked to answer as
        the job ends (long polls of LONG_POLL_SECONDS), so the wait ends with the job, not at a poll tick."""
        schedule = _Schedule(self.id, timeout)
        with JobProgress(self.id, enabled=progress) as bar:
            while True:
                bar.update(self.refresh(wait=schedule.long_poll()).raw)
                if self.state.finished:
                    break
                time.sleep(schedule.pause(self.state))
        self.state.raise_unless_succeeded()
        return self.result()


class AsyncJob:
    """A job of an `AsyncClient`: the same methods as `Job`, awaited."""

    def __init__(self, client: AsyncJobRequests, body: dict[str, Any]) -> None:
        self._client = client
        self.state = JobState.from_json(body)

    @property
    def id(self) -> str:
        return self.state.id

    def __repr__(self) -> str:
        return f"<AsyncJob {self.id} {self.state.status} {self.state.progress:.0%}>"

    async def refresh(self, wait: float = 0) -> JobState:
        params = {"wait": round(wait, 3)} if wait else {}
        self.state = JobState.from_json(await self._client._get_json(f"/jobs/{self.id}", **params))
        return self.state

    async def status(self) -> str:
        return (await self.refresh()).status

    async def cancel(self) -> JobState:
        if (await self.refresh()).finished:
            return self.state
        body = await self._client._delete_json(f"/jobs/{self.id}")
        if body is not None:
            self.state = JobState.from_json(body)
        return self.state

    async def delete(self) -> None:
        await self._client._delete_json(f"/jobs/{self.id}")

    async def result(self) -> Result:
        if self.state.status != "succeeded":
            await self.refresh()
            if self.state.finished:
                self.state.raise_unless_succeeded()
        return Result(await self._client._get_json(f"/jobs/{self.id}/result"), job_id=self.id)

    async def download(
        self, format: ResultFormat = "parquet", path: str | os.PathLike[str] | None = None
    ) -> bytes:
        """As `Job.download`."""
        if self.state.status != "succeeded":
            await self.refresh()
            if self.state.finished:
                self.state.raise_unless_succeeded()
        data = await self._client._get_bytes(f"/jobs/{self.id}/result", format=check_format(format))
        if path is not None:
            Path(path).write_bytes(data)
        return data

    async def result_frame(self) -> ResultFrame:
        """As `Job.result_frame`."""
        return read_parquet(await self.download("parquet"))

    async def wait(self, timeout: float | None = None, progress: bool = False) -> Result:
        """As `Job.wait`; no progress bar by default, as many jobs are usually awaited together."""
        schedule = _Schedule(self.id, timeout)
        with JobProgress(self.id, enabled=progress) as bar:
            while True:
                bar.update((await self.refresh(wait=schedule.long_poll())).raw)
                if self.state.finished:
                    break
                await asyncio.sleep(schedule.pause(self.state))
        self.state.raise_unless_succeeded()
        return await self.result()
