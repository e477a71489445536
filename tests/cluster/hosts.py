"""Machines that share nothing on disk, on this one: each a Unix user of its own (the tests run as root,
for whom file modes prove nothing) with a home directory that only it may enter."""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.stack import Host
from tests.waiting import wait_until


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def ensure_user(name: str) -> None:
    """A system user without a login shell; created once per machine (another test process may be
    creating it at the same moment: useradd then fails on the lock, and the user appears anyway)."""
    if _user_exists(name):
        return
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "--user-group", name],
        capture_output=True,
        text=True,
        check=False,
    )
    wait_until(lambda: _user_exists(name), 30, f"the user {name}")


def let_others_reach_python() -> None:
    """The hosts' users run this virtual environment's Python, whose interpreter and standard library may
    sit under a directory only root may enter (pyenv under /root): each directory on the way gets the
    permission to pass through it (o+x), never to list or read it."""
    for place in (Path(sys.base_prefix), Path(sys.prefix)):
        for directory in reversed(place.resolve().parents):
            mode = directory.stat().st_mode
            if not mode & stat.S_IXOTH:
                directory.chmod(mode | stat.S_IXOTH)


@contextmanager
def hosts(*names: str) -> Iterator[dict[str, Host]]:
    """One Host per name: a user `fxhost-<name>` and a home of mode 0700 owned by it, removed after."""
    if os.geteuid() != 0:
        pytest.skip("the cluster tier runs its hosts as users of their own: it needs root to start them")
    let_others_reach_python()
    base = Path(tempfile.mkdtemp(prefix="fx-cluster-"))
    base.chmod(0o711)  # each user may reach its own home, not list the others
    made = {}
    try:
        for name in names:
            user = f"fxhost-{name}"
            ensure_user(user)
            home = base / name
            home.mkdir(mode=0o700)
            entry = pwd.getpwnam(user)
            os.chown(home, entry.pw_uid, entry.pw_gid)
            made[name] = Host(user, home)
        yield made
    finally:
        shutil.rmtree(base, ignore_errors=True)


def process_user(pid: int) -> str | None:
    """The user a live process runs as (None when it is gone)."""
    try:
        return Path(f"/proc/{pid}").owner()
    except (FileNotFoundError, KeyError):
        return None


def host_of_worker(worker: str) -> str | None:
    """The user of a worker named `host:pid` (a job's or a chunk's worker), while its process lives."""
    return process_user(int(worker.rsplit(":", 1)[1]))
