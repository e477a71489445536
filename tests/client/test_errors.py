"""The client's exception tree: exported whole, today's names kept, and no error of the HTTP library
escaping — a refused connection and a server that never answers each end in the client's own error,
naming the URL."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

import fitexplain_client
from fitexplain_client import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AsyncClient,
    Client,
    FitexplainError,
    InternalServerError,
    RetryPolicy,
    ServiceUnavailableError,
)
from fitexplain_client import errors as module
from tests.client.test_transport import dead_url

TREE = {  # class name: its parent
    "APIError": "FitexplainError",
    "APIConnectionError": "APIError",
    "APITimeoutError": "APIConnectionError",
    "APIStatusError": "APIError",
    "BadRequestError": "APIStatusError",
    "AuthenticationError": "APIStatusError",
    "PermissionDeniedError": "APIStatusError",
    "NotFoundError": "APIStatusError",
    "ConflictError": "APIStatusError",
    "PayloadTooLargeError": "APIStatusError",
    "UnprocessableEntityError": "APIStatusError",
    "RateLimitError": "APIStatusError",
    "InternalServerError": "APIStatusError",
    "ServiceUnavailableError": "InternalServerError",
    "JobFailedError": "FitexplainError",
    "WaitTimeoutError": "FitexplainError",
    "WebhookVerificationError": "FitexplainError",
}
ALIASES = {"ValidationError": "UnprocessableEntityError", "RateLimitedError": "RateLimitError",
           "ServerError": "InternalServerError"}  # fmt: skip
STATUSES = {400: "BadRequestError", 401: "AuthenticationError", 403: "PermissionDeniedError",
            404: "NotFoundError", 409: "ConflictError", 413: "PayloadTooLargeError",
            422: "UnprocessableEntityError", 429: "RateLimitError", 500: "InternalServerError",
            502: "InternalServerError", 503: "ServiceUnavailableError"}  # fmt: skip


def test_the_tree_is_exported_whole_and_drawn_in_the_docstring() -> None:
    for name, parent in TREE.items():
        found = getattr(fitexplain_client, name)
        assert found.__bases__[0] is getattr(fitexplain_client, parent), name
        assert name in fitexplain_client.__all__ and name in (module.__doc__ or ""), name
    for alias, name in ALIASES.items():
        assert getattr(fitexplain_client, alias) is getattr(fitexplain_client, name)
        assert alias in fitexplain_client.__all__


@pytest.mark.parametrize("status", STATUSES)
def test_each_status_has_its_class(status: int) -> None:
    import httpx

    request = httpx.Request("GET", "http://service/jobs/x")
    body = {"code": "some_code", "detail": "what went wrong", "column": "b"}
    error = module.error_from_response(httpx.Response(status, json=body, request=request))
    assert type(error).__name__ == STATUSES[status]
    assert (error.status_code, error.code, error.detail, error.column) == (
        status,
        "some_code",
        "what went wrong",
        "b",
    )
    assert error.response is not None and error.url == "http://service/jobs/x"


def test_a_refused_connection_names_the_url_and_what_to_check() -> None:
    url = dead_url()
    client = Client(url, "fx_test", retry=RetryPolicy(attempts=2, backoff=0.01))
    with pytest.raises(APIConnectionError) as caught:
        client.job("abcdef123")
    assert caught.value.url == f"{url}/jobs/abcdef123" and url in str(caught.value)
    assert "FITEXPLAIN_URL" in str(caught.value) and not isinstance(caught.value, APIStatusError)


def test_a_url_without_a_scheme_is_the_clients_error_too() -> None:
    with pytest.raises(APIConnectionError, match="localhost:8000"):
        Client("localhost:8000", "fx_test", retry=RetryPolicy(attempts=1)).jobs()


@pytest.fixture
def silent_server() -> Iterator[str]:
    """Accepts connections and reads, and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            accepted.append(connection)

    threading.Thread(target=accept, daemon=True).start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    listener.close()
    for connection in accepted:
        connection.close()


def test_a_server_that_never_answers_is_an_api_timeout(silent_server: str) -> None:
    client = Client(silent_server, "fx_test", timeout=0.3, retry=RetryPolicy(attempts=2, backoff=0.01))
    with pytest.raises(APITimeoutError) as caught:
        client.jobs()
    assert caught.value.url == f"{silent_server}/jobs" and isinstance(caught.value, APIConnectionError)
    assert "timeout" in str(caught.value)


def test_the_async_client_wraps_transport_failures_alike(silent_server: str) -> None:
    import asyncio

    async def ask(url: str, timeout: float) -> None:
        async with AsyncClient(url, "fx_test", timeout=timeout, retry=RetryPolicy(attempts=1)) as client:
            await client.jobs()

    with pytest.raises(APITimeoutError):
        asyncio.run(ask(silent_server, 0.3))
    with pytest.raises(APIConnectionError) as caught:
        asyncio.run(ask(dead_url(), 5))
    assert not isinstance(caught.value, APITimeoutError)


def test_catching_by_meaning() -> None:
    """A script that catches `APIError` catches every failure to talk to the service; `FitexplainError`
    everything the client raises."""
    assert issubclass(APITimeoutError, APIError) and issubclass(ServiceUnavailableError, InternalServerError)
    assert issubclass(InternalServerError, APIError) and issubclass(APIError, FitexplainError)
