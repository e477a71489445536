"""A 500 MB upload streams from its file: the client process's peak memory grows by less than 50 MB while
it sends every byte (to a loopback receiver that reads the whole body, counts it and answers 413, as
the service does for an upload over its limit). The same file read whole first, the baseline, grows it
by the file's size. Each measurement is a fresh process's peak RSS (`VmHWM` of /proc/self/status, which
the kernel keeps current, unlike `ru_maxrss`, which may lag behind a large read)."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.stack import REPO

pytestmark = pytest.mark.service

SIZE = 500 << 20
PROBE = """
import json, sys
from fitexplain_client import Client, PayloadTooLargeError, RetryPolicy

def peak_kib():
    line = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))
    return int(line.split()[1])

url, path, how = sys.argv[1:]
client = Client(url, "fx_test", retry=RetryPolicy(attempts=1))
client.mlclassification(b"a,target\\n1,0\\n")  # imports, the connection and the first request's buffers
before = peak_kib()
data = open(path, "rb").read() if how == "whole" else path
try:
    client.mlclassification(data)
    answer = 202
except PayloadTooLargeError as error:
    answer = error.status_code
after = peak_kib()
print(json.dumps({"grew_mb": (after - before) / 1024, "answer": answer}))
"""
JOB = {"id": "0" * 32, "status": "queued", "progress": 0.0, "progress_message": "queued"}


class Receiver(http.server.ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Reading)
        self.received: list[int] = []


class _Reading(http.server.BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        left, got = int(self.headers["Content-Length"]), 0
        while left:
            chunk = self.rfile.read(min(left, 1 << 20))
            left, got = left - len(chunk), got + len(chunk)
        self.server.received.append(got)
        small = got < 1 << 20
        body = json.dumps(JOB if small else {"code": "upload_too_large", "detail": "too large"}).encode()
        self.send_response(202 if small else 413)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def peak_growth(receiver: Receiver, path: Path, how: str) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "clients" / "python"), str(REPO)])}
    url = f"http://127.0.0.1:{receiver.server_address[1]}"
    done = subprocess.run([sys.executable, "-c", PROBE, url, str(path), how], env=env, capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def test_a_500_mb_upload_streams_from_its_file(receiver: Receiver, tmp_path: Path) -> None:
    big = tmp_path / "big.csv"
    with big.open("wb") as handle:
        for _ in range(SIZE >> 20):
            handle.write(b"1,0\n" * (1 << 18))  # 1 MiB of rows, written to disk for real
    streamed = peak_growth(receiver, big, "stream")
    whole = peak_growth(receiver, big, "whole")
    print(f"peak RSS growth sending {SIZE >> 20} MiB: streamed {streamed['grew_mb']:.1f} MB, "
          f"read whole first {whole['grew_mb']:.1f} MB")  # fmt: skip
    assert streamed["answer"] == 413 and whole["answer"] == 413
    assert [size for size in receiver.received if size > SIZE] == [receiver.received[1], receiver.received[3]]
    assert streamed["grew_mb"] < 50, streamed
    assert whole["grew_mb"] > 450, whole  # the baseline: the measurement sees a whole read
