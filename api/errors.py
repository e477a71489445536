"""One error body for the whole API, `{"code": ..., "detail": ...}`, and the table of its codes.

Every 4xx and 5xx answer of the service's own routes carries a stable snake_case `code` (listed in
`CODES`, the one table the docs cite) and a human-readable `detail`; some add fields beside them
(`column`, `parameter`, `errors`, `limit`, `retry_after`, `usage`, `job_id`, `prefix`, `matches`,
`status`...).

Two parts of the app answer otherwise, on purpose: the techtonique-compatible mount keeps FastAPI's own
bodies (`{"detail": ...}`, a list for a bad parameter), which techtonique's users' scripts read; the
dashboard answers its errors with an HTML page.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler, request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException

from api.serialize import usage_public
from shared.limits import RateLimited
from shared.ml.errors import UserInputError
from shared.store.uploads import StorageQuotaExceeded

log = logging.getLogger("fitexplain.api")


@dataclass(frozen=True)
class ErrorCode:
    status: int
    meaning: str


CODES: dict[str, ErrorCode] = {
    "bad_request": ErrorCode(400, "The multipart body could not be parsed."),
    "unauthorized": ErrorCode(401, "Missing, invalid, revoked or expired token."),
    "forbidden": ErrorCode(403, "The token may not use this route (administrators only)."),
    "not_found": ErrorCode(404, "No such route, no such job for this user, or its result was deleted."),
    "method_not_allowed": ErrorCode(405, "The route does not take this method (see the `Allow` header)."),
    "not_acceptable": ErrorCode(406, "The Accept header matches none of the result's media types."),
    "conflict": ErrorCode(
        409, "The job is not in a state for this: not succeeded yet, still stopping, or no webhook."
    ),
    "job_cancelled": ErrorCode(
        409,
        "A submit with `wait`: the job was cancelled (`job_id`). `GET /jobs/{id}/model`: a cancelled job has "
        "no model.",
    ),
    "job_failed": ErrorCode(
        409, "`GET /jobs/{id}/model`: the job failed (its `error_code`), so it has no model."
    ),
    "job_not_finished": ErrorCode(
        409, "`GET /jobs/{id}/model`: the job is still queued or running (`status`): no model yet."
    ),
    "model_not_kept": ErrorCode(
        409,
        "The job's model was not kept: larger than FITEXPLAIN_MAX_MODEL_BYTES, or fitted on the Dask "
        "cluster, or before models were kept (`notes`).",
    ),
    "format_not_applicable": ErrorCode(
        409, "`GET /jobs/{id}/model/download`: the model has no file in this format, and the detail says why."
    ),
    "model_conversion_failed": ErrorCode(
        409,
        "`GET /jobs/{id}/model/download`: the worker could not make the model's file in this format on its "
        "first download, and the detail says why (`reason`).",
    ),
    "model_integrity": ErrorCode(
        409,
        "The stored model file no longer has the sha256 recorded when it was written: it is not served "
        "(`sha256`).",
    ),
    "ambiguous_id": ErrorCode(
        409, "A job id prefix matches several of the caller's jobs (`prefix`, `count`, `matches`)."
    ),
    "job_finished": ErrorCode(
        409, "`POST /jobs/{id}/cancel`: the job already succeeded or failed (`status`); it is kept."
    ),
    "upload_too_large": ErrorCode(413, "The upload exceeds FITEXPLAIN_MAX_UPLOAD_BYTES (`limit`)."),
    "storage_quota_exceeded": ErrorCode(
        413, "Keeping the upload would exceed the user's storage quota (`usage`)."
    ),
    "id_too_short": ErrorCode(
        422, "A job id prefix is shorter than the minimum (`minimum`, characters) and no full id."
    ),
    "decompressed_too_large": ErrorCode(
        413,
        "The upload decodes to more than FITEXPLAIN_MAX_DECOMPRESSED_BYTES, found while it is read "
        "(`setting`, `limit`, `read`).",
    ),
    "compression_ratio_too_high": ErrorCode(
        413,
        "The upload decodes to more than FITEXPLAIN_MAX_DECOMPRESSION_RATIO times the bytes read so far: "
        "a decompression bomb (`setting`, `limit`, `read`).",
    ),
    "line_too_long": ErrorCode(
        422, "A CSV line is longer than FITEXPLAIN_MAX_LINE_BYTES (`setting`, `limit`, `read`)."
    ),
    "too_many_rows": ErrorCode(
        422,
        "More data rows than FITEXPLAIN_MAX_ROWS, as read or as a Parquet footer or an Arrow message "
        "declares them (`setting`, `limit`, `read`).",
    ),
    "too_many_columns": ErrorCode(
        422, "More columns than FITEXPLAIN_MAX_COLUMNS (`setting`, `limit`, `read`)."
    ),
    "unsupported_type": ErrorCode(
        422, "A Parquet or Arrow column holds a type that is neither numbers nor text (`column`)."
    ),
    "unknown_format": ErrorCode(
        422, "`GET /jobs/{id}/model/download`: `format` is none of the model formats (`allowed`)."
    ),
    "invalid_parameter": ErrorCode(
        422,
        "A query parameter or form field is missing or invalid (`parameter`, and `errors` as listed "
        "by FastAPI).",
    ),
    "rate_limited": ErrorCode(
        429,
        "Too many submissions this minute, unfinished jobs, or uploads refused this minute (the "
        "rejected-upload budget) for this user (`retry_after`, seconds).",
    ),
    "headers_too_large": ErrorCode(431, "The request line and headers exceed FITEXPLAIN_MAX_HEADER_BYTES."),
    "internal_error": ErrorCode(500, "A bug: it has been logged."),
    "not_ready": ErrorCode(503, "`/readyz`: the database or the broker is unreachable (`checks`)."),
    "database_unavailable": ErrorCode(503, "The database is unreachable; nothing was lost (`retry_after`)."),
    "service_busy": ErrorCode(503, "No free database connection (`retry_after`)."),
    "worker_lost": ErrorCode(503, "A submit with `wait`: the job's worker was lost too often (`job_id`)."),
    "time_limit": ErrorCode(504, "A submit with `wait`: the job ran past FITEXPLAIN_SOFT_TIME_LIMIT."),
    "cluster_unavailable": ErrorCode(
        503, "A submit with `wait`: the job's Dask cluster (FITEXPLAIN_DASK_SCHEDULER) could not be reached."
    ),
}
"""Every code of the service's own, its HTTP status and what it means.

Besides these, unusable data, a bad parameter value or a job over a limit answer 422 with the ML core's
own code (`UserInputError.code` in shared/ml: e.g. `missing_value`, `non_numeric`, `unknown_base_model`,
`over_budget`, `over_memory`) and the `column` it concerns (null when none); a limit met while an upload
is read (the codes above that name `read`) adds `setting`, `limit` and `read`: what had been read when it
stopped (`sent_bytes`, `decoded_bytes`, `rows`). A submit with `wait` whose job failed answers with the
job's own `error.code` and its `job_id`."""

CODE_BY_STATUS: dict[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "upload_too_large",
    422: "invalid_parameter",
    429: "rate_limited",
    500: "internal_error",
    503: "service_busy",
}
"""The code of an HTTPException, by its status."""


class CodedHTTPException(HTTPException):
    """An HTTPException answered with its own code (one of CODES) and extra fields beside `detail`."""

    def __init__(self, status_code: int, code: str, detail: str, **extra: Any) -> None:
        if CODES[code].status != status_code:
            raise ValueError(f"{code} is declared with status {CODES[code].status}, not {status_code}")
        super().__init__(status_code, detail)
        self.code = code
        self.extra = extra


class ErrorBody(BaseModel):
    """The body of every error answer: a stable `code`, a message, and fields some codes add."""

    model_config = ConfigDict(extra="allow")

    code: str = Field(description="stable, snake_case; the table is `CODES` in api/errors.py")
    detail: str = Field(description="what went wrong and what to do, for people")


class TechtoniqueErrorBody(BaseModel):
    """Error bodies of the /techtonique mount, as FastAPI (and techtonique.net) answers them."""

    model_config = ConfigDict(extra="allow")

    detail: str | list[dict[str, Any]]


def documented(
    descriptions: Mapping[int, str], model: type[BaseModel] = ErrorBody
) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries for these error statuses, each with the error body's schema."""
    return {status: {"model": model, "description": text} for status, text in descriptions.items()}


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    "4XX": {"model": ErrorBody, "description": "Client error: see `code`."},
    "5XX": {"model": ErrorBody, "description": "Server error: see `code`."},
}
"""The error body declared for every route of a router included with `responses=ERROR_RESPONSES`."""


def error_response(
    status_code: int,
    code: str,
    detail: str,
    *,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body = {"code": code, "detail": detail, **jsonable_encoder(extra)}
    return JSONResponse(body, status_code=status_code, headers=dict(headers) if headers else None)


def validation_message(errors: list[Any]) -> str:
    """FastAPI's list of validation errors as one sentence naming each parameter."""
    problems = []
    for error in errors:
        where = ".".join(str(part) for part in error.get("loc", ())[1:])
        problems.append(f"{where}: {error.get('msg', '')}" if where else str(error.get("msg", "")))
    return "; ".join(problems) or "Invalid request."


def _parameter(errors: list[Any]) -> str | None:
    """The first invalid parameter's name (`limit` for the location `["query", "limit"]`)."""
    for error in errors:
        names = [part for part in error.get("loc", ())[1:] if not isinstance(part, int)]
        if names:
            return str(names[0])
    return None


PageRenderer = Callable[[Request, int, str], Response]


@dataclass(frozen=True)
class Scopes:
    """Which requests answer in another style: the techtonique mount's prefix, the HTML pages' prefix."""

    techtonique_prefix: str
    page_prefix: str
    render_page: PageRenderer

    def techtonique(self, request: Request) -> bool:
        return under_prefix(request.url.path, self.techtonique_prefix)

    def page(self, request: Request) -> bool:
        return under_prefix(request.url.path, self.page_prefix)


def under_prefix(path: str, prefix: str) -> bool:
    """Whether `path` is `prefix` or below it (`/dashboard/jobs`, not `/dashboards`)."""
    return path == prefix or path.startswith(prefix + "/")


Handler = Callable[[Request, Any], Awaitable[Response]]


def install(app: FastAPI, scopes: Scopes) -> None:
    """The exception handlers that answer every error of `app` in its one shape (or its scope's)."""
    handlers: dict[type[Exception], Handler] = {
        HTTPException: _http_error(scopes),
        RequestValidationError: _validation_error(scopes),
        UserInputError: _user_input_error(scopes),
        RateLimited: _rate_limited(scopes),
        StorageQuotaExceeded: _storage_quota_exceeded(scopes),
        DBAPIError: _database_error(scopes),
        PoolTimeout: _database_busy(scopes),
        Exception: _internal_error(scopes),  # Starlette's last resort: answered, then re-raised and logged
    }
    for exception_class, handler in handlers.items():
        app.add_exception_handler(exception_class, handler)


def _http_error(scopes: Scopes) -> Handler:
    async def handle(request: Request, exc: HTTPException) -> Response:
        headers = dict(exc.headers or {})
        if exc.status_code == 429:  # every 429 says when to come back
            headers.setdefault("Retry-After", str(RETRY_SECONDS))
        if scopes.page(request):
            return _with_headers(scopes.render_page(request, exc.status_code, str(exc.detail)), headers)
        if scopes.techtonique(request):
            return _with_headers(await http_exception_handler(request, exc), headers)
        if isinstance(exc, CodedHTTPException):
            return error_response(exc.status_code, exc.code, str(exc.detail), headers=headers, **exc.extra)
        code = CODE_BY_STATUS.get(exc.status_code, _generic_code(exc.status_code))
        return error_response(exc.status_code, code, str(exc.detail), headers=headers)

    return handle


def _with_headers(response: Response, headers: Mapping[str, str]) -> Response:
    for name, value in headers.items():
        response.headers[name] = value
    return response


def _generic_code(status_code: int) -> str:
    return "internal_error" if status_code >= 500 else "bad_request"


def _validation_error(scopes: Scopes) -> Handler:
    async def handle(request: Request, exc: RequestValidationError) -> Response:
        errors = list(exc.errors())
        if scopes.page(request):
            return scopes.render_page(request, 422, validation_message(errors))
        if scopes.techtonique(request):
            return await request_validation_exception_handler(request, exc)
        return error_response(
            422,
            "invalid_parameter",
            validation_message(errors),
            parameter=_parameter(errors),
            errors=errors,
        )

    return handle


def _user_input_error(scopes: Scopes) -> Handler:
    async def handle(request: Request, exc: UserInputError) -> Response:
        # the same on the /techtonique mount: its scripts read `detail`, `code` and `column` are extra
        return error_response(exc.status, exc.code, exc.message, column=exc.column, **exc.details)

    return handle


def _rate_limited(scopes: Scopes) -> Handler:
    async def handle(request: Request, exc: RateLimited) -> Response:
        # The connection closes: an upload refused before its body would otherwise be read to its end
        # (and thrown away) for the connection to be used again.
        headers = {"Retry-After": str(exc.retry_after), "Connection": "close"}
        if scopes.page(request):
            return _with_headers(scopes.render_page(request, 429, exc.message), headers)
        if scopes.techtonique(request):
            return JSONResponse({"detail": exc.message}, status_code=429, headers=headers)
        return error_response(429, "rate_limited", exc.message, headers=headers, retry_after=exc.retry_after)

    return handle


def _storage_quota_exceeded(scopes: Scopes) -> Handler:
    async def handle(request: Request, exc: StorageQuotaExceeded) -> Response:
        usage = usage_public(exc.usage, exc.quota).model_dump()
        return error_response(413, "storage_quota_exceeded", exc.message, usage=usage)

    return handle


UNAVAILABLE = "The database is unavailable; nothing was lost. Retry in a few seconds."
BUSY = "The service is busy (no free database connection); retry in a few seconds."
INTERNAL = "Internal error; it has been logged."
RETRY_SECONDS = 5


def _database_error(scopes: Scopes) -> Handler:
    async def handle(request: Request, exc: DBAPIError) -> Response:
        if not (isinstance(exc, OperationalError | InterfaceError) or exc.connection_invalidated):
            log.error("database error on %s %s", request.method, request.url.path, exc_info=exc)
            return _plain_or(scopes, request, 500, "internal_error", INTERNAL)
        log.warning("database unavailable: %s", exc)
        return _plain_or(scopes, request, 503, "database_unavailable", UNAVAILABLE, retry=True)

    return handle


def _database_busy(scopes: Scopes) -> Handler:
    async def handle(request: Request, exc: PoolTimeout) -> Response:
        log.warning("no free database connection for %s %s: %s", request.method, request.url.path, exc)
        return _plain_or(scopes, request, 503, "service_busy", BUSY, retry=True)

    return handle


def _internal_error(scopes: Scopes) -> Handler:
    async def handle(request: Request, exc: Exception) -> Response:
        return _plain_or(scopes, request, 500, "internal_error", INTERNAL)

    return handle


def _plain_or(
    scopes: Scopes, request: Request, status_code: int, code: str, detail: str, *, retry: bool = False
) -> Response:
    """The error in the request's shape: `{"detail"}` on the /techtonique mount, else the error body."""
    headers = {"Retry-After": str(RETRY_SECONDS)} if retry else None
    if scopes.techtonique(request):
        return JSONResponse({"detail": detail}, status_code=status_code, headers=headers)
    extra = {"retry_after": RETRY_SECONDS} if retry else {}
    return error_response(status_code, code, detail, headers=headers, **extra)
