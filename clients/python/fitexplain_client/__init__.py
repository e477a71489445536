"""Python client of the fitexplain service: `Client`, `AsyncClient`, `Job`, `Result`, and the whole tree
of typed errors (drawn in `fitexplain_client.errors`)."""

from __future__ import annotations

from fitexplain_client.binary import ResultFrame
from fitexplain_client.client import AsyncClient, BaseClient, Client
from fitexplain_client.errors import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    FitexplainError,
    InternalServerError,
    JobFailedError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitedError,
    RateLimitError,
    ServerError,
    ServiceUnavailableError,
    UnprocessableEntityError,
    ValidationError,
    WaitTimeoutError,
    WebhookVerificationError,
)
from fitexplain_client.jobs import AsyncJob, Job
from fitexplain_client.models import (
    JobError,
    JobState,
    ModelCard,
    PermutationImportance,
    Score,
    ShapExplanation,
)
from fitexplain_client.result import Result
from fitexplain_client.transport import RetryPolicy
from fitexplain_client.version import __version__
from fitexplain_client.webhooks import verify_webhook

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncClient",
    "AsyncJob",
    "AuthenticationError",
    "BadRequestError",
    "BaseClient",
    "Client",
    "ConflictError",
    "FitexplainError",
    "InternalServerError",
    "Job",
    "JobError",
    "JobFailedError",
    "JobState",
    "ModelCard",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "PermutationImportance",
    "RateLimitError",
    "RateLimitedError",
    "Result",
    "ResultFrame",
    "RetryPolicy",
    "Score",
    "ServerError",
    "ServiceUnavailableError",
    "ShapExplanation",
    "UnprocessableEntityError",
    "ValidationError",
    "WaitTimeoutError",
    "WebhookVerificationError",
    "__version__",
    "verify_webhook",
]
