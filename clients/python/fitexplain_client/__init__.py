"""Python client of the fitexplain service: `Client`, `AsyncClient`, `Job`, `Result`, typed errors."""

from __future__ import annotations

from fitexplain_client.binary import ResultFrame
from fitexplain_client.client import AsyncClient, Client
from fitexplain_client.errors import (
    APIError,
    AuthenticationError,
    ConflictError,
    FitexplainError,
    JobFailedError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitedError,
    ServerError,
    ServiceUnavailableError,
    ValidationError,
    WaitTimeoutError,
    WebhookVerificationError,
)
from fitexplain_client.jobs import AsyncJob, Job, JobState
from fitexplain_client.result import Result
from fitexplain_client.transport import RetryPolicy
from fitexplain_client.version import __version__
from fitexplain_client.webhooks import verify_webhook

__all__ = [
    "APIError",
    "AsyncClient",
    "AsyncJob",
    "AuthenticationError",
    "Client",
    "ConflictError",
    "FitexplainError",
    "Job",
    "JobFailedError",
    "JobState",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "RateLimitedError",
    "Result",
    "ResultFrame",
    "RetryPolicy",
    "ServerError",
    "ServiceUnavailableError",
    "ValidationError",
    "WaitTimeoutError",
    "WebhookVerificationError",
    "__version__",
    "verify_webhook",
]
