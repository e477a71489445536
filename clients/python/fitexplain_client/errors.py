"""Typed errors: each carries the HTTP status, the server's `code` and message (and the column for a 422).

The server's error body is `{"code", "detail", ...}` (its codes: api/errors.py); the /techtonique mount's
is FastAPI's, `{"detail"}` with a list of errors for a bad parameter: both are read."""

from __future__ import annotations

from typing import Any

import httpx


class FitexplainError(Exception):
    """Base class of every error this client raises."""


class APIError(FitexplainError):
    """The server answered with an error status."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        code: str | None = None,
        column: str | None = None,
        body: Any = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.code = code
        self.column = column
        self.body = body
        self.retry_after = retry_after

    def __str__(self) -> str:
        code = f" {self.code}" if self.code else ""
        return f"HTTP {self.status_code}{code}: {self.message}"


class BadRequestError(APIError):
    """400: the request could not be parsed."""


class AuthenticationError(APIError):
    """401: missing, invalid, expired or revoked token."""


class PermissionDeniedError(APIError):
    """403: the token may not use this route."""


class NotFoundError(APIError):
    """404: no such job for this user (or its result was deleted)."""


class ConflictError(APIError):
    """409: e.g. the result of a job that has not succeeded."""


class PayloadTooLargeError(APIError):
    """413: the upload is larger than the server accepts, or keeping it would exceed the user's storage
    quota (`code` "storage_quota_exceeded"; `body["usage"]` shows what is used)."""


class ValidationError(APIError):
    """422: a bad parameter or an unusable CSV; `column` names the offending column when there is one."""


class RateLimitedError(APIError):
    """429: too many submissions or running jobs (raised once the retries are used up)."""


class ServiceUnavailableError(APIError):
    """503: the database or broker is unavailable (raised once the retries are used up)."""


class ServerError(APIError):
    """Any other 5xx."""


class JobFailedError(FitexplainError):
    """The job finished as failed (or cancelled); `code` and `message` are the job's error."""

    def __init__(self, job_id: str, status: str, code: str | None, message: str) -> None:
        super().__init__(f"job {job_id} {status}" + (f" ({code}): {message}" if code else f": {message}"))
        self.job_id = job_id
        self.status = status
        self.code = code
        self.message = message


class WaitTimeoutError(FitexplainError, TimeoutError):
    """`Job.wait(timeout=...)` ran out before the job finished (the job itself goes on)."""


class WebhookVerificationError(FitexplainError):
    """A webhook's signature or timestamp did not verify."""


_BY_STATUS: dict[int, type[APIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    422: ValidationError,
    429: RateLimitedError,
    503: ServiceUnavailableError,
}


def retry_after_seconds(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: not sent by fitexplain; fall back to our own backoff


def error_from_response(response: httpx.Response) -> APIError:
    """The typed error for an error response: `{"code", "detail", "column"...}` or FastAPI's list of
    errors; the whole body stays in `.body`."""
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text
    detail: Any = body.get("detail") if isinstance(body, dict) else body
    code = body.get("code") if isinstance(body, dict) else None
    column = body.get("column") if isinstance(body, dict) else None
    if isinstance(detail, list):  # request validation: [{"loc": [...], "msg": ...}, ...]
        messages = []
        for item in detail:
            if isinstance(item, dict):
                where = ".".join(str(part) for part in item.get("loc", ())[1:])
                messages.append(f"{where}: {item.get('msg', '')}" if where else str(item.get("msg", "")))
            else:
                messages.append(str(item))
        message = "; ".join(messages)
        code = code or "invalid_parameter"
    else:
        message = str(detail or response.reason_phrase or "error")
    cls = _BY_STATUS.get(response.status_code, ServerError if response.status_code >= 500 else APIError)
    return cls(
        message,
        status_code=response.status_code,
        code=code,
        column=column,
        body=body,
        retry_after=retry_after_seconds(response),
    )
