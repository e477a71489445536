"""Every error this client raises, in one tree a caller can catch by meaning:

    FitexplainError
    ├── APIError                          talking to the service went wrong
    │   ├── APIConnectionError            no answer: refused, reset, DNS... (`url`, `hint`)
    │   │   └── APITimeoutError           the service did not answer in time
    │   └── APIStatusError                an error status (`status_code`, `code`, `detail`, `response`)
    │       ├── BadRequestError           400
    │       ├── AuthenticationError       401
    │       ├── PermissionDeniedError     403
    │       ├── NotFoundError             404
    │       ├── ConflictError             409 (`code`: ambiguous_id, job_finished, conflict...)
    │       ├── PayloadTooLargeError      413
    │       ├── UnprocessableEntityError  422 (alias ValidationError; `column`)
    │       ├── RateLimitError            429 (alias RateLimitedError; `retry_after`)
    │       └── InternalServerError       5xx (alias ServerError)
    │           └── ServiceUnavailableError  503 (`retry_after`)
    ├── JobFailedError                    the job finished failed or cancelled
    ├── WaitTimeoutError                  `Job.wait(timeout=)` ran out (also a TimeoutError)
    └── WebhookVerificationError          a webhook's signature or timestamp did not verify

No exception of the HTTP library escapes: the transport wraps each in an `APIConnectionError` (the
original is its `__cause__`). The server's error body is `{"code", "detail", ...}` (its codes:
api/errors.py); the /techtonique mount's is FastAPI's, `{"detail"}` with a list of errors for a bad
parameter: both are read.
"""

from __future__ import annotations

from typing import Any

import httpx


class FitexplainError(Exception):
    """Base class of every error this client raises."""


class APIError(FitexplainError):
    """Talking to the service went wrong: no answer (`APIConnectionError`) or an error status
    (`APIStatusError`). `url` is the request's."""

    def __init__(self, message: str, *, url: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.url = url


class APIConnectionError(APIError):
    """The service could not be reached, or the connection broke before an answer."""

    def __init__(self, message: str, *, url: str, hint: str | None = None) -> None:
        super().__init__(message, url=url)
        self.hint = hint

    def __str__(self) -> str:
        hint = f" ({self.hint})" if self.hint else ""
        return f"{self.message}: {self.url}{hint}"


class APITimeoutError(APIConnectionError):
    """The service took longer than the client's `timeout` to connect or answer."""


class APIStatusError(APIError):
    """The service answered with an error status; `code` and `detail` are its body's, `body` all of it."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        code: str | None = None,
        column: str | None = None,
        body: Any = None,
        retry_after: float | None = None,
        response: httpx.Response | None = None,
        url: str | None = None,
    ) -> None:
        super().__init__(message, url=url)
        self.status_code = status_code
        self.code = code
        self.column = column
        self.body = body
        self.retry_after = retry_after
        self.response = response

    @property
    def detail(self) -> str:
        """The server's human-readable explanation (the body's `detail`)."""
        return self.message

    def __str__(self) -> str:
        code = f" {self.code}" if self.code else ""
        return f"HTTP {self.status_code}{code}: {self.message}"


class BadRequestError(APIStatusError):
    """400: the request could not be parsed."""


class AuthenticationError(APIStatusError):
    """401: missing, invalid, expired or revoked token."""


class PermissionDeniedError(APIStatusError):
    """403: the token may not use this route."""


class NotFoundError(APIStatusError):
    """404: no such job for this user (or its result was deleted)."""


class ConflictError(APIStatusError):
    """409: an id prefix that matches several jobs (`code` "ambiguous_id"), cancelling a finished job
    ("job_finished"), the result of a job that has not succeeded."""


class PayloadTooLargeError(APIStatusError):
    """413: the upload is larger than the server accepts, or keeping it would exceed the user's storage
    quota (`code` "storage_quota_exceeded"; `body["usage"]` shows what is used)."""


class UnprocessableEntityError(APIStatusError):
    """422: a bad parameter or an unusable table; `column` names the offending column when there is one."""


class RateLimitError(APIStatusError):
    """429: too many submissions or running jobs (raised once the retries are used up)."""


class InternalServerError(APIStatusError):
    """5xx: the service failed (raised once the retries are used up, for those retried)."""


class ServiceUnavailableError(InternalServerError):
    """503: the database or broker is unavailable (raised once the retries are used up)."""


ValidationError = UnprocessableEntityError
RateLimitedError = RateLimitError
ServerError = InternalServerError


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


BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    422: UnprocessableEntityError,
    429: RateLimitError,
    503: ServiceUnavailableError,
}


def retry_after_seconds(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: not sent by fitexplain; fall back to our own backoff


def _message(detail: Any, response: httpx.Response) -> tuple[str, bool]:
    """The detail as one line, and whether it was FastAPI's list of parameter errors."""
    if not isinstance(detail, list):
        return str(detail or response.reason_phrase or "error"), False
    messages = []
    for item in detail:  # request validation: [{"loc": [...], "msg": ...}, ...]
        if isinstance(item, dict):
            where = ".".join(str(part) for part in item.get("loc", ())[1:])
            messages.append(f"{where}: {item.get('msg', '')}" if where else str(item.get("msg", "")))
        else:
            messages.append(str(item))
    return "; ".join(messages), True


def error_from_response(response: httpx.Response) -> APIStatusError:
    """The typed error for an error response: `{"code", "detail", "column"...}` or FastAPI's list of
    errors; the whole body stays in `.body`, the response in `.response`."""
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text
    fields = body if isinstance(body, dict) else {}
    message, listed = _message(fields.get("detail") if fields else body, response)
    code = fields.get("code") or ("invalid_parameter" if listed else None)
    status = response.status_code
    cls = BY_STATUS.get(status, InternalServerError if status >= 500 else APIStatusError)
    return cls(
        message,
        status_code=status,
        code=code,
        column=fields.get("column"),
        body=body,
        retry_after=retry_after_seconds(response),
        response=response,
        url=_request_url(response),
    )


def _request_url(response: httpx.Response) -> str | None:
    try:
        return str(response.request.url)
    except RuntimeError:  # a response built without its request
        return None


def connection_error(exc: httpx.TransportError, url: str) -> APIConnectionError:
    """The client's error for a failure of the HTTP library, naming the URL and what to check."""
    if isinstance(exc, httpx.TimeoutException):
        what = "connecting" if isinstance(exc, httpx.ConnectTimeout) else "waiting for the answer"
        return APITimeoutError(
            f"timed out {what}", url=url, hint="the service is slow or stuck; raise timeout= or retry later"
        )
    if isinstance(exc, httpx.ConnectError):
        hint = "is the service running at this address? check --url / FITEXPLAIN_URL"
        return APIConnectionError(f"could not connect ({exc})", url=url, hint=hint)
    return APIConnectionError(f"the connection failed ({type(exc).__name__}: {exc})", url=url)
