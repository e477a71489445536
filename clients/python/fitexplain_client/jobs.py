"""A submitted job: its state, waiting for it with a progress bar, its result, cancelling it.

A `Job` asks its client through the client's public methods only (`job_state`, `cancel`, `delete`,
`result`, `download`): `JobCalls` names that shape, so this module need not import the client's.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from fitexplain_client.binary import ResultFormat, ResultFrame, read_parquet
from fitexplain_client.errors import ConflictError, WaitTimeoutError
from fitexplain_client.models import FINISHED, JobState, ModelCard
from fitexplain_client.progress import JobProgress
from fitexplain_client.result import Result

__all__ = ["FINISHED", "AsyncJob", "Job", "JobState", "poll_delays"]


def poll_delays(first: float = 0.1, factor: float = 1.5, cap: float = 1.0) -> Iterator[float]:
    delay = first
    while True:
        yield delay
        delay = min(delay * factor, cap)


LONG_POLL_SECONDS = 2.0  # how long each status request of a wait may be held: the progress bar's pace
MODEL_CONVERSION_TIMEOUT = 600.0  # seconds a model download waits for a worker to write its format


def show_progress(asked: bool | None) -> bool:
    """A progress bar when asked, or by default when standard error is a terminal (not a log file)."""
    return sys.stderr.isatty() if asked is None else asked


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
        if self.deadline is not None and time.monotonic() >= self.deadline:
            raise WaitTimeoutError(
                f"job {self.job_id} still {state.status} after {self.timeout} s (it goes on running)"
            )
        if time.monotonic() - self._asked_at >= self._asked / 2:
            return 0.0  # the server held the request: ask again at once
        delay = next(self._delays)
        return delay if self.deadline is None else max(0.0, min(delay, self.deadline - time.monotonic()))


class JobCalls(Protocol):
    """The public methods of `Client` a `Job` uses."""

    def job_state(self, job_id: str, wait: float = 0) -> JobState: ...

    def cancel(self, job_id: str) -> JobState: ...

    def delete(self, job_id: str) -> JobState | None: ...

    def result(self, job_id: str, include: Sequence[str] = ()) -> Result: ...

    def download(
        self, job_id: str, format: ResultFormat = "parquet", path: str | Path | None = None
    ) -> bytes: ...

    def model_card(self, job_id: str) -> ModelCard: ...

    def download_model(
        self, job_id: str, path: str | Path = ".", format: str = "native", timeout: float | None = ...
    ) -> Path: ...


class AsyncJobCalls(Protocol):
    """The public methods of `AsyncClient` an `AsyncJob` uses."""

    async def job_state(self, job_id: str, wait: float = 0) -> JobState: ...

    async def cancel(self, job_id: str) -> JobState: ...

    async def delete(self, job_id: str) -> JobState | None: ...

    async def result(self, job_id: str, include: Sequence[str] = ()) -> Result: ...

    async def download(
        self, job_id: str, format: ResultFormat = "parquet", path: str | Path | None = None
    ) -> bytes: ...

    async def model_card(self, job_id: str) -> ModelCard: ...

    async def download_model(
        self, job_id: str, path: str | Path = ".", format: str = "native", timeout: float | None = ...
    ) -> Path: ...


def _finished_already(error: ConflictError) -> bool:
    return error.code == "job_finished"


CallsT = TypeVar("CallsT", bound=JobCalls | AsyncJobCalls)


class BaseJob(Generic[CallsT]):
    """What `Job` and `AsyncJob` share: the client they ask and the `JobState` last read."""

    def __init__(self, client: CallsT, state: JobState) -> None:
        self.client = client
        self.state = state

    @property
    def id(self) -> str:
        return self.state.id

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id} {self.state.status} {self.state.progress:.0%}>"


class Job(BaseJob[JobCalls]):
    """A job of a `Client`: `state` is the `JobState` last read."""

    def refresh(self, wait: float = 0) -> JobState:
        """The job's state now, or (`wait` seconds at most) as soon as it finishes."""
        self.state = self.client.job_state(self.id, wait)
        return self.state

    def status(self) -> str:
        """The job's status now: queued, running, succeeded, failed or cancelled."""
        return self.refresh().status

    def cancel(self) -> JobState:
        """Cancel the job if it has not finished (a finished job is left as it is, and kept)."""
        try:
            self.state = self.client.cancel(self.id)
        except ConflictError as exc:
            if not _finished_already(exc):
                raise
            self.refresh()
        return self.state

    def delete(self) -> None:
        """Delete the finished job with its result and upload (one that has not finished is cancelled)."""
        state = self.client.delete(self.id)
        if state is not None:
            self.state = state

    def result(self, include: Sequence[str] = ()) -> Result:
        """The result of a succeeded job (raises JobFailedError if it failed or was cancelled)."""
        self._require_success()
        return self.client.result(self.id, include)

    def download(self, format: ResultFormat = "parquet", path: str | os.PathLike[str] | None = None) -> bytes:
        """The result as the server sends it in `format` (json, arrow, arrow-file, parquet or npz), written
        to `path` too when given: for R (`arrow::read_parquet`), NumPy (`np.load`) or another tool."""
        self._require_success()
        return self.client.download(self.id, format, None if path is None else Path(path))

    def model(self) -> ModelCard:
        """The card of the succeeded job's kept model (raises JobFailedError if it failed or was
        cancelled)."""
        self._require_success()
        return self.client.model_card(self.id)

    def download_model(
        self,
        path: str | os.PathLike[str] = ".",
        format: str = "native",
        timeout: float | None = MODEL_CONVERSION_TIMEOUT,
    ) -> Path:
        """Write the job's model in `format` (native: its booster's own file; skops; or another of the
        card's `formats`) to `path` (a directory: the server's file name in it); the file's path. A format
        a worker writes on its first download (skops, onnx, mlflow, bundle) is waited for, following the
        server's Retry-After, `timeout` seconds at most (then WaitTimeoutError; None: no limit)."""
        self._require_success()
        return self.client.download_model(self.id, Path(path), format, timeout)

    def result_frame(self) -> ResultFrame:
        """The result as a pandas DataFrame, one row per test row, and the rest as `metadata` (its Parquet
        form; extra `arrow`). Much faster than `result()` for a SHAP result of many rows."""
        return read_parquet(self.download("parquet"))

    def shap_explanation(self, class_label: str | None = None) -> Any:
        """The SHAP values as a `shap.Explanation` whose `data` holds the test rows' feature values (the
        result is asked for with `include=X_test`), so `shap.plots.beeswarm` colours by feature value."""
        return self.result(include=["X_test"]).shap_explanation(class_label)

    def _require_success(self) -> None:
        if self.state.status != "succeeded":
            self.refresh()
            if self.state.finished:
                self.state.raise_unless_succeeded()

    def wait(self, timeout: float | None = None, progress: bool | None = None) -> Result:
        """Wait until the job finishes; its Result. A progress bar when `progress` is True, or by default
        when standard error is a terminal. The server is asked to answer as the job ends (long polls of
        LONG_POLL_SECONDS), so the wait ends with the job, not at a poll tick."""
        schedule = _Schedule(self.id, timeout)
        with JobProgress(self.id, enabled=show_progress(progress)) as bar:
            while True:
                bar.update(self.refresh(wait=schedule.long_poll()))
                if self.state.finished:
                    break
                time.sleep(schedule.pause(self.state))
        self.state.raise_unless_succeeded()
        return self.result()


class AsyncJob(BaseJob[AsyncJobCalls]):
    """A job of an `AsyncClient`: the same methods as `Job`, awaited."""

    async def refresh(self, wait: float = 0) -> JobState:
        self.state = await self.client.job_state(self.id, wait)
        return self.state

    async def status(self) -> str:
        return (await self.refresh()).status

    async def cancel(self) -> JobState:
        try:
            self.state = await self.client.cancel(self.id)
        except ConflictError as exc:
            if not _finished_already(exc):
                raise
            await self.refresh()
        return self.state

    async def delete(self) -> None:
        state = await self.client.delete(self.id)
        if state is not None:
            self.state = state

    async def _require_success(self) -> None:
        if self.state.status != "succeeded":
            await self.refresh()
            if self.state.finished:
                self.state.raise_unless_succeeded()

    async def result(self, include: Sequence[str] = ()) -> Result:
        await self._require_success()
        return await self.client.result(self.id, include)

    async def download(
        self, format: ResultFormat = "parquet", path: str | os.PathLike[str] | None = None
    ) -> bytes:
        """As `Job.download`."""
        await self._require_success()
        return await self.client.download(self.id, format, None if path is None else Path(path))

    async def model(self) -> ModelCard:
        """As `Job.model`."""
        await self._require_success()
        return await self.client.model_card(self.id)

    async def download_model(
        self,
        path: str | os.PathLike[str] = ".",
        format: str = "native",
        timeout: float | None = MODEL_CONVERSION_TIMEOUT,
    ) -> Path:
        """As `Job.download_model`."""
        await self._require_success()
        return await self.client.download_model(self.id, Path(path), format, timeout)

    async def result_frame(self) -> ResultFrame:
        """As `Job.result_frame`."""
        return read_parquet(await self.download("parquet"))

    async def shap_explanation(self, class_label: str | None = None) -> Any:
        """As `Job.shap_explanation`."""
        return (await self.result(include=["X_test"])).shap_explanation(class_label)

    async def wait(self, timeout: float | None = None, progress: bool = False) -> Result:
        """As `Job.wait`; no progress bar by default, as many jobs are usually awaited together."""
        schedule = _Schedule(self.id, timeout)
        with JobProgress(self.id, enabled=progress) as bar:
            while True:
                bar.update(await self.refresh(wait=schedule.long_poll()))
                if self.state.finished:
                    break
                await asyncio.sleep(schedule.pause(self.state))
        self.state.raise_unless_succeeded()
        return await self.result()
