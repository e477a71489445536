"""The R client (clients/r/fitexplain.R, on httr and jsonlite) against the real stack: every endpoint,
waiting, the result in techtonique's shape, an importance plot per result, a 422 naming the column; each
condition class from a real failure (status, no connection, timeout, a failed or unfinished job), id
prefixes, cancel and delete; and its command line's exit codes. Runs where Rscript is (make test
installs r-base-core, r-cran-httr and r-cran-jsonlite when missing)."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.faults.conftest import slow_csv, slow_params
from tests.stack import DATA, REPO, Stack, free_port
from tests.waiting import wait_until

pytestmark = [
    pytest.mark.service,
    pytest.mark.skipif(shutil.which("Rscript") is None, reason="Rscript is not installed"),
]


def test_r_client_end_to_end(stack: Stack, tmp_path: Path) -> None:
    env = {**os.environ, "FITEXPLAIN_URL": stack.url, "FITEXPLAIN_TOKEN": stack.token("r-user")}
    done = subprocess.run(
        ["Rscript", str(REPO / "tests" / "r" / "check_client.R"), str(REPO), str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    expected_methods = {
        "mlclassification": "permutation",
        "gbdtclassification": "shap",
        "mlregression": "permutation",
        "gbdtregression": ["shap", "permutation"],
    }
    for endpoint, methods in expected_methods.items():
        case = report[endpoint]
        assert case["status"] == "succeeded" and case["n_pred"] > 100
        assert case["methods"] == methods
        n_features = 30 if "classification" in endpoint else 13
        assert len(case["feature_names"]) == n_features
        png = Path(case["png"])
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 3000, endpoint
    assert report["mlregression"]["has_pi"] is True
    model = report["model"]
    assert model["estimator"] == "XGBClassifier"
    assert model["formats"] == ["native", "skops", "onnx", "mlflow", "bundle"]
    assert Path(model["file"]).name.endswith("-model.ubj") and model["size"] > 1000
    background = report["background"]
    assert background["upload"]["source"] == "upload" and background["upload"]["rows"] == 30
    assert background["unused"] == {"source": "none", "rows": 0, "asked": {"source": "sample", "rows": 5}}
    bad = report["bad_column"]
    assert bad["class"] == "fitexplain_unprocessable" and bad["status"] == 422
    assert bad["column"] == "b" and bad["code"] == "non_numeric" and "Column 'b'" in bad["message"]


CLIENT = REPO / "clients" / "r" / "fitexplain.R"
STATUS_ERROR = ["fitexplain_status_error", "fitexplain_error", "error", "condition"]


@pytest.fixture
def silent_url() -> Iterator[str]:
    """A port that takes connections and never answers (its backlog accepts them, nobody reads)."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"


@pytest.fixture
def r_env(stack: Stack) -> dict[str, str]:
    return {**os.environ, "FITEXPLAIN_URL": stack.url, "FITEXPLAIN_TOKEN": stack.token("r-errors")}


def test_r_conditions_from_real_failures(r_env: dict[str, str], tmp_path: Path, silent_url: str) -> None:
    slow = tmp_path / "slow.csv"
    slow.write_bytes(slow_csv())
    cases = {
        "iris": str(DATA / "iris_dataset2.csv"),
        "non_numeric": str(DATA / "malformed" / "non_numeric.csv"),
        "slow_csv": str(slow),
        "slow_params": slow_params(),
        "refused_url": f"http://127.0.0.1:{free_port()}",
        "silent_url": silent_url,
    }
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    done = subprocess.run(
        ["Rscript", str(REPO / "tests" / "r" / "check_errors.R"), str(REPO), str(tmp_path / "cases.json")],
        env=r_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["prefix"]["waited"] == report["prefix"]["status"] == report["prefix"]["full"]
    assert report["kept"] == "succeeded" and report["cancelled"] == "cancelled" and report["deleted"]
    assert report["listed"] == {
        "data_filename": "iris_dataset2.csv",
        "model": "lightgbm",
        "score": {"name": "accuracy", "value": report["listed"]["score"]["value"]},
    }

    def condition(
        name: str, classes: list[str], code: str, status: int | None, exit_code: int
    ) -> dict[str, Any]:
        found = report[name]
        assert found["raised"], name
        assert found["class"] == classes, name
        assert (found["code"], found["status"], found["exit_code"]) == (code, status, exit_code), name
        return found

    short = condition("too_short", ["fitexplain_unprocessable", *STATUS_ERROR], "id_too_short", 422, 2)
    assert short["minimum"] == 6
    condition("not_found", ["fitexplain_not_found", *STATUS_ERROR], "not_found", 404, 4)
    finished = condition("finished_cancel", ["fitexplain_conflict", *STATUS_ERROR], "job_finished", 409, 2)
    assert "already succeeded" in finished["message"]
    condition("deleted_then", ["fitexplain_not_found", *STATUS_ERROR], "not_found", 404, 4)
    condition("authentication", ["fitexplain_authentication", *STATUS_ERROR], "unauthorized", 401, 6)
    rejected = condition("unprocessable", ["fitexplain_unprocessable", *STATUS_ERROR], "non_numeric", 422, 2)
    assert rejected["column"] == "b"
    base = ["fitexplain_error", "error", "condition"]
    unfinished = condition("unfinished", ["fitexplain_job_unfinished", *base], "unfinished", None, 3)
    assert re.search(r"still (queued|running) after 0.2 s", unfinished["message"]), unfinished
    condition("job_failed", ["fitexplain_job_failed", *base], "job_cancelled", None, 1)
    refused = condition("refused", ["fitexplain_connection_error", *base], "connection_error", None, 5)
    assert cases["refused_url"] in refused["message"] and "is the service running" in refused["message"]
    timeout = condition(
        "timeout", ["fitexplain_timeout", "fitexplain_connection_error", *base], "timeout", None, 5
    )
    assert silent_url in timeout["message"]


def r_command(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["Rscript", str(CLIENT), *args], env=env, capture_output=True, text=True, timeout=120
    )


def test_r_command_line_exit_codes(r_env: dict[str, str], tmp_path: Path) -> None:
    iris = str(DATA / "iris_dataset2.csv")
    submitted = r_command(r_env, "submit", iris, "gbdtclassification", "n_estimators=5", "--wait")
    assert submitted.returncode == 0, submitted.stderr
    job = json.loads(submitted.stdout)
    assert job["status"] == "succeeded" and job["data_filename"] == "iris_dataset2.csv"
    shown = r_command(r_env, "status", job["id"][:8])
    assert (shown.returncode, json.loads(shown.stdout)["id"]) == (0, job["id"])
    assert json.loads(r_command(r_env, "result", job["id"][:6]).stdout)["accuracy"] == job["score"]["value"]

    refused = {**r_env, "FITEXPLAIN_URL": f"http://127.0.0.1:{free_port()}"}
    codes = {
        "no command": (r_command(r_env), 2, "usage:"),
        "unknown command": (r_command(r_env, "frobnicate"), 2, "usage:"),
        "too short": (r_command(r_env, "status", "abc12"), 2, "id_too_short"),
        "rejected data": (
            r_command(r_env, "submit", str(DATA / "malformed" / "non_numeric.csv"), "mlclassification"),
            2,
            "Column 'b'",
        ),
        "finished cancel": (r_command(r_env, "cancel", job["id"][:8]), 2, "job_finished"),
        "not found": (r_command(r_env, "status", "0" * 32), 4, "HTTP 404"),
        "unreachable": (r_command(refused, "status", job["id"]), 5, refused["FITEXPLAIN_URL"]),
        "bad token": (r_command({**r_env, "FITEXPLAIN_TOKEN": "fx_wrong"}, "jobs"), 6, "HTTP 401"),
    }
    for case, (done, code, message) in codes.items():
        assert done.returncode == code, (case, done.stdout, done.stderr)
        assert message in done.stderr and done.stderr.count("\n") == 1, (case, done.stderr)  # one line

    slow = tmp_path / "slow.csv"
    slow.write_bytes(slow_csv())
    params = [f"{name}={value}" for name, value in slow_params().items()]
    running = json.loads(r_command(r_env, "submit", str(slow), "gbdtclassification", *params).stdout)["id"]
    assert r_command(r_env, "wait", running, "0.2").returncode == 3
    cancelled = r_command(r_env, "cancel", running[:8])
    assert (cancelled.returncode, json.loads(cancelled.stdout)["status"]) == (0, "cancelled")
    assert r_command(r_env, "wait", running).returncode == 1
    wait_until(
        lambda: r_command(r_env, "delete", running).returncode == 0, 60, "the cancelled job's deletion"
    )
    assert r_command(r_env, "delete", job["id"][:8]).returncode == 0
    assert r_command(r_env, "status", job["id"]).returncode == 4
