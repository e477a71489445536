"""The `fitexplain` command's exit codes (the same table as the R client's, docs/clients.md), and the one
line on standard error that says why, for each error of the client."""

from __future__ import annotations

from enum import IntEnum

from fitexplain_client.errors import (
    APIConnectionError,
    APIStatusError,
    JobFailedError,
    WaitTimeoutError,
)


class ExitCode(IntEnum):
    OK = 0
    JOB_FAILED = 1  # the job failed or was cancelled
    USAGE = 2  # bad usage, or a request the service rejected (400, 409, 413, 422)
    NOT_FINISHED = 3  # the job is queued or running, or the wait timed out
    NOT_FOUND = 4  # 404: no such job (or route) for this token
    UNAVAILABLE = 5  # the service is unreachable or unavailable (refused, timeout, 5xx, 429 after retries)
    AUTH = 6  # 401 or 403


class JobNotFinished(Exception):
    """A command that needs a finished job met one still queued or running."""


def exit_code(error: BaseException) -> ExitCode:
    """The exit code of a command that ended with `error`."""
    if isinstance(error, JobFailedError):
        return ExitCode.JOB_FAILED
    if isinstance(error, WaitTimeoutError | JobNotFinished):
        return ExitCode.NOT_FINISHED
    if isinstance(error, APIConnectionError):
        return ExitCode.UNAVAILABLE
    if isinstance(error, APIStatusError):
        return status_exit_code(error.status_code)
    return ExitCode.USAGE


def status_exit_code(status: int) -> ExitCode:
    if status in (401, 403):
        return ExitCode.AUTH
    if status == 404:
        return ExitCode.NOT_FOUND
    if status == 429 or status >= 500:
        return ExitCode.UNAVAILABLE
    return ExitCode.USAGE


def one_line(error: BaseException) -> str:
    """What the command prints for `error`: one line, naming the column, URL or hint when known."""
    if isinstance(error, APIStatusError):
        text = str(error) + (f" (column {error.column!r})" if error.column else "")
    elif isinstance(error, JobFailedError | WaitTimeoutError | JobNotFinished | APIConnectionError):
        text = str(error)
    elif isinstance(error, FileNotFoundError) and error.filename:
        text = f"no such file: {error.filename}"
    else:
        text = f"{type(error).__name__}: {error}" if not isinstance(error, ValueError) else str(error)
    return " ".join(text.split())
