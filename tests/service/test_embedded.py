"""`fitexplain serve` with no external server: SQLite database and SQLite broker under FITEXPLAIN_HOME."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.contract import explanation
from tests.stack import BIN, DATA, free_port

pytestmark = [pytest.mark.slow]


def test_serve_runs_a_job_to_completion(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FITEXPLAIN_")}
    env.update(
        {"FITEXPLAIN_HOME": str(tmp_path / "home"), "FITEXPLAIN_PORT": str(port), "PYTHONUNBUFFERED": "1"}
    )
    log = (tmp_path / "serve.log").open("wb")
    server = subprocess.Popen(
        [str(BIN / "fitexplain"), "serve"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None, (tmp_path / "serve.log").read_text()
            assert time.monotonic() < deadline, "serve did not come up"
            time.sleep(0.3)
        token = subprocess.run(
            [str(BIN / "fitexplain"), "create-token", "smoke"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        response = httpx.post(
            f"{url}/gbdtclassification",
            params={"interpretability": "shap", "wait": "60"},
            files={"file": ("iris.csv", (DATA / "iris_dataset2.csv").read_bytes(), "text/csv")},
            headers={"Authorization": f"Bearer {token}"},
            timeout=90,
        )
        assert response.status_code == 200, response.text
        assert explanation(response.json(), "shap")["exact"] is True
        assert (tmp_path / "home" / "fitexplain.db").exists()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=60)  # serve gives its worker 10 s, then kills it
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
