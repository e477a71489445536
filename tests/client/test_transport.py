"""Retries and typed errors against a real HTTP server on 127.0.0.1 that answers from a script."""

from __future__ import annotations

import asyncio
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from fitexplain_client import (
    APIConnectionError,
    AsyncClient,
    Client,
    ConflictError,
    InternalServerError,
    Job,
    JobFailedError,
    JobState,
    RateLimitedError,
    RetryPolicy,
    ServiceUnavailableError,
    ValidationError,
    WaitTimeoutError,
)


class ScriptedServer(http.server.ThreadingHTTPServer):
    """Answers each request with the next (status, headers, body) of `script`; records what it got."""

    def __init__(self, script: list[tuple[int, dict[str, str], dict]]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.script = script
        self.seen: list[tuple[str, str]] = []


class _Handler(http.server.BaseHTTPRequestHandler):
    server: ScriptedServer

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self.server.seen.append((self.command, self.path))
        status, headers, body = self.server.script.pop(0)
        payload = b"" if status == 204 else json.dumps(body).encode()
        self.send_response(status)
        for name, value in {**headers, "Content-Type": "application/json"}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_DELETE = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def serve() -> Iterator:
    servers: list[ScriptedServer] = []

    def start(script: list[tuple[int, dict[str, str], dict]]) -> tuple[ScriptedServer, Client]:
        server = ScriptedServer(script)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        url = f"http://127.0.0.1:{server.server_address[1]}"
        return server, Client(url, "fx_test", retry=RetryPolicy(attempts=3, backoff=0.01))

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


JOB = {"id": "j1", "status": "queued", "progress": 0.0, "progress_message": "", "error": None}


def test_429_and_503_are_retried_honouring_retry_after(serve) -> None:
    server, client = serve(
        [
            (429, {"Retry-After": "0"}, {"detail": "Too many submissions"}),
            (503, {"Retry-After": "0"}, {"detail": "database unavailable"}),
            (202, {}, JOB),
        ]
    )
    job = client.submit("mlclassification", b"a,target\n1,0\n")
    assert job.id == "j1"
    assert server.seen == [("POST", "/mlclassification")] * 3


def test_retries_end_in_a_typed_error_with_retry_after(serve) -> None:
    refusal = {"code": "rate_limited", "detail": "Too many running jobs", "retry_after": 0}
    _, client = serve([(429, {"Retry-After": "0"}, refusal)] * 3)
    with pytest.raises(RateLimitedError) as caught:
        client.jobs()
    assert caught.value.retry_after == 0 and "Too many running jobs" in str(caught.value)
    assert caught.value.code == "rate_limited"
    _, client = serve([(503, {}, {"detail": "broker down"})] * 3)
    with pytest.raises(ServiceUnavailableError):
        client.job("j1")


def test_a_422_is_not_retried_and_names_the_column(serve) -> None:
    body = {"detail": "Column 'x' has a missing value on line 3.", "code": "missing_value", "column": "x"}
    server, client = serve([(422, {}, body)])
    with pytest.raises(ValidationError) as caught:
        client.mlregression(b"x,target\n1,2\n,3\n")
    assert (caught.value.column, caught.value.code, caught.value.status_code) == ("x", "missing_value", 422)
    assert len(server.seen) == 1


def test_a_bad_parameter_carries_its_code_and_message(serve) -> None:
    error = {"loc": ["query", "level"], "msg": "Input should be less than 100", "type": "x"}
    body = {
        "code": "invalid_parameter",
        "detail": "level: Input should be less than 100",
        "parameter": "level",
        "errors": [error],
    }
    _, client = serve([(422, {}, body)])
    with pytest.raises(ValidationError, match=r"level: Input should be less than 100") as caught:
        client.mlregression(b"x,target\n1,2\n", level=120)
    assert caught.value.code == "invalid_parameter" and caught.value.body["parameter"] == "level"


def test_fastapis_list_of_errors_names_the_parameter(serve) -> None:
    """As the /techtonique mount answers a bad parameter."""
    body = {"detail": [{"loc": ["query", "level"], "msg": "Input should be less than 100", "type": "x"}]}
    _, client = serve([(422, {}, body)])
    with pytest.raises(ValidationError, match=r"level: Input should be less than 100") as caught:
        client.mlregression(b"x,target\n1,2\n", level=120)
    assert caught.value.code == "invalid_parameter"


def dead_url() -> str:
    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    port = server.server_address[1]
    server.server_close()  # nothing listens there any more
    return f"http://127.0.0.1:{port}"


def test_network_errors_are_retried_for_get_only() -> None:
    attempts: list[str] = []

    class CountingClient(Client):
        pass

    client = CountingClient(dead_url(), "fx_test", retry=RetryPolicy(attempts=3, backoff=0.01))
    client.transport.http.event_hooks["request"] = [lambda request: attempts.append(request.method)]
    with pytest.raises(APIConnectionError):
        client.jobs()
    assert attempts == ["GET"] * 3
    attempts.clear()
    with pytest.raises(APIConnectionError):
        client.submit("gbdtregression", b"x,target\n1,2\n")
    assert attempts == ["POST"], "a POST may have created a job: never resent"


QUEUED = {"id": "j1", "status": "queued", "progress": 0.0, "progress_message": ""}


def test_wait_long_polls_and_copes_with_a_server_that_answers_at_once(serve) -> None:
    """A server from before `GET /jobs/{id}?wait=` answers at once: the wait then polls, backing off."""
    done = {**QUEUED, "status": "failed", "error": {"code": "bad_csv", "message": "no rows"}}
    server, client = serve([(200, {}, QUEUED), (200, {}, QUEUED), (200, {}, done)])
    with pytest.raises(JobFailedError, match="no rows"):
        client.job("j1").wait(timeout=30, progress=False)
    assert server.seen[0] == ("GET", "/jobs/j1")  # client.job reads the state
    assert [path for _, path in server.seen[1:]] == ["/jobs/j1?wait=2.0"] * 2


def test_a_wait_on_a_server_that_answers_at_once_times_out_without_hammering_it(serve) -> None:
    server, client = serve([(200, {}, QUEUED)] * 100)
    with pytest.raises(WaitTimeoutError, match="still queued"):
        client.job("j1").wait(timeout=0.5, progress=False)
    assert 2 <= len(server.seen) <= 8  # backing off 0.1, 0.15, 0.225 s...: a handful, not a busy loop


def test_a_500_is_not_retried_and_is_an_internal_server_error(serve) -> None:
    server, client = serve([(500, {}, {"code": "internal_error", "detail": "A bug: it has been logged."})])
    with pytest.raises(InternalServerError) as caught:
        client.jobs()
    assert caught.value.code == "internal_error" and len(server.seen) == 1


def test_cancel_posts_and_a_finished_job_is_a_conflict(serve) -> None:
    finished = {"code": "job_finished", "detail": "Job j1 has already succeeded."}
    cancelled = {**JOB, "status": "cancelled"}
    server, client = serve(
        [(200, {}, cancelled), (409, {}, finished), (200, {}, {**JOB, "status": "succeeded"})]
    )
    assert client.cancel("j1").status == "cancelled"
    job = Job(client, JobState.from_json(JOB))
    assert job.cancel().status == "succeeded", "Job.cancel leaves a finished job as it is"
    assert server.seen == [("POST", "/jobs/j1/cancel"), ("POST", "/jobs/j1/cancel"), ("GET", "/jobs/j1")]
    server.script.append((409, {}, finished))
    with pytest.raises(ConflictError) as caught:
        client.cancel("j1")
    assert caught.value.code == "job_finished"


def test_the_progress_bar_only_on_a_terminal_unless_asked(serve, capsys: pytest.CaptureFixture[str]) -> None:
    done = {**QUEUED, "status": "succeeded", "progress": 1.0}
    result = {"y_true": [1.0], "y_pred": [1.0], "Score": {"R² Score": 1.0}}
    _, client = serve([(200, {}, done), (200, {}, result), (200, {}, done), (200, {}, result)])
    job = Job(client, JobState.from_json(QUEUED))
    assert job.wait(timeout=10).task == "regression"
    assert capsys.readouterr().err == "", "stderr is not a terminal here: no bar"
    job.wait(timeout=10, progress=True)
    assert "succeeded" in capsys.readouterr().err


def test_delete_deletes_a_finished_job_and_cancels_one_that_runs(serve) -> None:
    server, client = serve([(204, {}, {}), (200, {}, {**JOB, "status": "cancelled"})])
    assert client.delete("j1") is None
    cancelled = client.delete("j2")
    assert cancelled is not None and cancelled.status == "cancelled"
    assert server.seen == [("DELETE", "/jobs/j1"), ("DELETE", "/jobs/j2")]


CONVERTING = {"code": "model_converting", "detail": "Job j1's model is being written as bundle"}
BUNDLE = {"Content-Disposition": 'attachment; filename="j1-model-bundle.zip"'}


def test_a_model_download_follows_202_until_the_file_comes(serve, tmp_path) -> None:
    script = [(202, {"Retry-After": "0"}, CONVERTING)] * 2 + [(200, BUNDLE, {"zip": 1})]
    server, client = serve(list(script))
    path = client.download_model("j1", tmp_path, format="bundle")
    assert path == tmp_path / "j1-model-bundle.zip" and json.loads(path.read_bytes()) == {"zip": 1}
    assert server.seen == [("GET", "/jobs/j1/model/download?format=bundle")] * 3
    server, _ = serve(list(script))
    url = f"http://127.0.0.1:{server.server_address[1]}"

    async def download() -> Path:
        async with AsyncClient(url, "fx_test") as waiting:
            return await waiting.download_model("j1", tmp_path / "async.zip", format="bundle")

    assert asyncio.run(download()).read_bytes() == path.read_bytes() and len(server.seen) == 3


def test_a_model_download_gives_up_at_its_timeout(serve, tmp_path) -> None:
    server, client = serve([(202, {"Retry-After": "0"}, CONVERTING)] * 2)
    with pytest.raises(WaitTimeoutError, match="still being written as bundle"):
        client.download_model("j1", tmp_path, format="bundle", timeout=0)
    assert len(server.seen) == 1 and not list(tmp_path.iterdir())
