"""uv.lock matches the pyproject.toml files, and the requirements files pip installs from when uv cannot
be had (scripts/install.sh) are exactly the lock's export: every install gets the same versions."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.stack import BIN, REPO

UV = shutil.which("uv", path=str(BIN)) or shutil.which("uv")
EXPORTS = {
    "requirements/run.txt": [],
    "requirements/test.txt": ["--group", "test"],
}


def uv(*args: str) -> subprocess.CompletedProcess[str]:
    assert UV, "uv is in the test group"
    return subprocess.run([UV, *args], cwd=REPO, capture_output=True, text=True, timeout=120)


def test_the_lock_matches_the_projects() -> None:
    checked = uv("lock", "--check")
    assert checked.returncode == 0, f"uv.lock is stale: run `make lock`\n{checked.stderr}"


@pytest.mark.parametrize("path", EXPORTS)
def test_the_requirements_file_is_the_locks_export(path: str) -> None:
    exported = uv("export", "--frozen", "--no-emit-workspace", *EXPORTS[path])
    assert exported.returncode == 0, exported.stderr
    committed = (REPO / path).read_text()
    body = [line for line in exported.stdout.splitlines() if not line.startswith("#")]
    assert [line for line in committed.splitlines() if not line.startswith("#")] == body, (
        f"{path} is not the lock's export: run `make lock`"
    )


def test_the_runtime_requirements_hold_no_test_tool_and_no_torch() -> None:
    pinned = {
        line.split("==")[0].lower()
        for line in (REPO / "requirements/run.txt").read_text().splitlines()
        if "==" in line and not line.startswith((" ", "#"))
    }
    assert {"fastapi", "celery", "scikit-learn"} <= pinned
    assert pinned & {"pytest", "playwright", "moto", "schemathesis", "ruff", "mypy", "torch"} == set()
