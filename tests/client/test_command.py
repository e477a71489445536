"""One `fitexplain` command: the client's subcommands, plus those of every package in the
`fitexplain.commands` entry-point group (the server's, declared in this repository's pyproject.toml)."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

pytestmark = pytest.mark.process  # each test runs the `fitexplain` command

ROOT = Path(__file__).resolve().parents[2]
USER_COMMANDS = ("login", "submit", "jobs", "status", "result", "cancel", "delete", "plot")
SERVER_COMMANDS = ("serve", "api", "worker", "migrate", "create-token", "revoke-tokens")


def fake_installation(site: Path, name: str, entry_points: dict[str, str]) -> None:
    """A dist-info as pip writes it for an installed package: what importlib.metadata reads."""
    info = site / f"{name}-0.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.0\n")
    lines = [f"{key} = {value}" for key, value in entry_points.items()]
    (info / "entry_points.txt").write_text("[fitexplain.commands]\n" + "\n".join(lines) + "\n")


def run(site: Path | None, *args: str) -> subprocess.CompletedProcess[str]:
    paths = [str(site)] if site else []
    paths += [str(ROOT / "clients" / "python"), str(ROOT)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "fitexplain_client", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_server_package_adds_its_commands(tmp_path: Path) -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]
    fake_installation(tmp_path, "fitexplain_server_probe", declared["fitexplain.commands"])
    done = run(tmp_path, "--help")
    assert done.returncode == 0, done.stderr
    for command in USER_COMMANDS + SERVER_COMMANDS:
        assert f" {command} " in done.stdout, (command, done.stdout)
    create = run(tmp_path, "create-token", "--help")
    assert create.returncode == 0 and "--admin" in create.stdout


def test_a_broken_plugin_leaves_the_users_commands_working(tmp_path: Path) -> None:
    fake_installation(tmp_path, "broken_plugin", {"broken": "no_such_module:app"})
    done = run(tmp_path, "--help")
    assert done.returncode == 0 and "skipping the 'broken' commands" in done.stderr
    assert all(f" {command} " in done.stdout for command in USER_COMMANDS)


def test_python_m_cli_main_still_runs_the_server_commands() -> None:
    """`serve` starts its worker with `python -m cli.main worker`."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", "worker", "--help"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 and "--concurrency" in done.stdout, done.stderr
