"""`pip install ./clients/python` alone, into a fresh virtual environment: the client and its `fitexplain`
command come without any of the server's ML or database packages."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SERVER_ONLY = ("scikit-learn", "xgboost", "xgboost-cpu", "shap", "nnetsauce", "lightgbm", "catboost")
SERVER_ONLY += ("psycopg", "psycopg-binary", "sqlalchemy", "celery", "fastapi", "redis")
USER_COMMANDS = ("login", "submit", "jobs", "status", "result", "cancel", "delete", "plot")


def run(*args: str | Path) -> str:
    """Run as on a laptop: no PYTHONPATH pointing into this repository (and its server package)."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    done = subprocess.run([str(arg) for arg in args], capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, f"{args}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.mark.slow
def test_the_client_installs_alone(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv)
    bin_dir = venv / "bin"
    # A copy, so that the build's egg-info and build/ never land in the repository.
    source = tmp_path / "client-source"
    run("cp", "-r", ROOT / "clients" / "python", source)
    run(bin_dir / "python", "-m", "pip", "install", "--quiet", "--disable-pip-version-check", source)

    installed = {item["name"].lower() for item in json.loads(run(bin_dir / "pip", "list", "--format=json"))}
    assert "fitexplain-client" in installed
    assert {"httpx", "typer", "rich"} <= installed
    brought = sorted(installed & set(SERVER_ONLY))
    assert not brought, f"the client brought server packages: {brought}"

    assert "Client" in run(
        bin_dir / "python", "-c", "import fitexplain_client as f; print(f.Client.__name__)"
    )
    help_text = run(bin_dir / "fitexplain", "--help")
    assert all(f" {command} " in help_text for command in USER_COMMANDS), help_text
    assert " serve " not in help_text and " worker " not in help_text, "server commands without the server"
