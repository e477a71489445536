"""`make run` in a fresh clone, as a new user runs it: it installs the runtime alone (no test, browser or
lint tool), the service answers with a worker alive, and Ctrl-C stops it with nothing logged as an error
and nothing left running. The install reuses the machine's uv cache (warm after `make test`'s own
install), so it links the locked wheels rather than downloads them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.processes import descendants, parents
from tests.stack import BIN, REPO, free_port
from tests.waiting import wait_until

pytestmark = [pytest.mark.service, pytest.mark.slow]

# Installed by `make test` or `make lint` (the `test` and `lint` dependency groups), never by `make run`.
TEST_ONLY = {
    "pytest",
    "pytest-xdist",
    "pytest-timeout",
    "pytest-benchmark",
    "playwright",
    "moto",
    "schemathesis",
    "ruff",
    "mypy",
    "import-linter",
    "pandas-stubs",
    "celery-types",
    "uv",
}
READY = "ready: fitexplain answers on"


@dataclass
class FirstRun:
    clone: Path
    port: int
    log: Path
    make: subprocess.Popen[bytes]

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def ready(self) -> bool:
        assert self.make.poll() is None, self.output()[-4000:]
        return READY in self.output()

    def installed(self) -> set[str]:
        listing = subprocess.run(
            [
                str(self.clone / ".venv" / "bin" / "python"),
                "-c",
                "import importlib.metadata as m; print(*(d.metadata['Name'] for d in m.distributions()))",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        return {name.strip().lower().replace("_", "-") for name in listing.stdout.split()}


def environment(tmp: Path, port: int) -> dict[str, str]:
    """A user's shell on a CI machine: no test settings, no virtualenv, no input; uv on the PATH (the
    test environment's own, as a machine that has uv), nothing else of the test environment."""
    tools = tmp / "tools"
    tools.mkdir()
    (tools / "uv").symlink_to(shutil.which("uv", path=str(BIN)) or shutil.which("uv") or "uv")
    path = [entry for entry in os.environ.get("PATH", "").split(os.pathsep) if Path(entry) != BIN]
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("FITEXPLAIN_", "VIRTUAL_ENV", "PYTHON"))
    }
    env.update(
        {
            "PATH": os.pathsep.join([str(tools), *path]),
            "CI": "true",
            "FITEXPLAIN_PORT": str(port),
            "FITEXPLAIN_HOME": str(tmp / "home"),
        }
    )
    return env


@pytest.fixture
def first_run(tmp_path: Path) -> Iterator[FirstRun]:
    clone = tmp_path / "fitexplain"
    head = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True)
    subprocess.run(["git", "-C", str(clone), "checkout", "--quiet", head], check=True)
    port = free_port()
    log = tmp_path / "make-run.log"
    make = subprocess.Popen(
        ["make", "run"],
        cwd=clone,
        env=environment(tmp_path, port),
        stdin=subprocess.DEVNULL,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, as a terminal's foreground job: Ctrl-C goes to it
    )
    run = FirstRun(clone, port, log, make)
    try:
        yield run
    finally:
        family = descendants(make.pid)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(make.pid, signal.SIGKILL)
        for pid in family:  # whatever a failed test left behind
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        make.wait(timeout=10)


def test_make_run_in_a_fresh_clone_installs_the_runtime_serves_and_stops_on_ctrl_c(
    first_run: FirstRun,
) -> None:
    wait_until(first_run.ready, 280, "make run to say ready")
    readiness = httpx.get(f"http://127.0.0.1:{first_run.port}/readyz", timeout=10, trust_env=False).json()
    assert readiness["ready"] and readiness["workers_alive"] >= 1, readiness

    installed = first_run.installed()
    assert {"fitexplain", "fitexplain-client"} <= installed
    assert installed & TEST_ONLY == set(), "make run installed test-only packages"
    assert "torch" not in installed
    log = first_run.output()
    assert "installing the run environment" in log and "versions from uv.lock" in log
    assert "create-token YOUR_NAME" in log

    family = descendants(first_run.make.pid)
    os.killpg(first_run.make.pid, signal.SIGINT)  # Ctrl-C
    first_run.make.wait(timeout=120)

    log = first_run.output()
    assert "\nstopped\n" in log, log[-3000:]
    assert [line for line in log.splitlines() if "ERROR" in line or "Traceback" in line] == [], log[-4000:]
    wait_until(lambda: not (family & set(parents())), 10, f"serve's processes {sorted(family)} to exit")
