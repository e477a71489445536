"""What `fitexplain serve` tells its user: where the service will be while it starts, and "ready" (with
how to get a token) once the API listens and one of the workers it started is alive. A cold worker
imports the ML stack first, which takes tens of seconds; a job submitted before waits in the queue.
"""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
from datetime import datetime
from pathlib import Path

from rich.console import Console
from sqlalchemy import func, select

from shared.db import session_scope
from shared.settings import get_settings
from shared.tables import WorkerRow, heartbeat_stale

CHECK_EVERY = 0.5


def local_url(host: str, port: int) -> str:
    """The URL to open on this machine (a wildcard bind answers on the loopback address)."""
    return f"http://{'127.0.0.1' if host in ('0.0.0.0', '::', '') else host}:{port}"


def fitexplain_command() -> str:
    """The `fitexplain` script beside this interpreter, as a path to type from here."""
    script = Path(sys.executable).parent / "fitexplain"
    with contextlib.suppress(ValueError):
        return str(script.relative_to(Path.cwd()))
    return str(script)


def api_listens(host: str, port: int) -> bool:
    address = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    try:
        with socket.create_connection((address, port), timeout=1):
            return True
    except OSError:
        return False


def workers_alive_since(since: datetime) -> int:
    """Workers registered at or after `since` (this serve's, not a previous run's) whose heartbeat is
    fresh."""
    stale = heartbeat_stale(WorkerRow.heartbeat_at, get_settings().stale_after_seconds)
    query = select(func.count()).select_from(WorkerRow).where(WorkerRow.started_at >= since, ~stale)
    try:
        with session_scope() as session:
            return int(session.scalar(query) or 0)
    except Exception:  # the database is not there yet, or briefly locked: asked again
        return 0


class ReadyAnnouncer:
    """A daemon thread that prints the ready message once, when the API listens and a worker is alive."""

    def __init__(self, console: Console, host: str, port: int, since: datetime, workers: int) -> None:
        self.console = console
        self.host = host
        self.port = port
        self.since = since
        self.workers = workers
        self.stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ready-announcer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self.stop.wait(CHECK_EVERY):
            if api_listens(self.host, self.port) and (alive := workers_alive_since(self.since)):
                self.console.print(
                    ready_message(local_url(self.host, self.port), alive, self.workers), soft_wrap=True
                )
                return


def starting_message(url: str, where: str, workers: int) -> str:
    return (
        f"[bold]fitexplain[/bold] is starting on {url} ({where}): the API and {workers} workers; "
        f"it says [bold green]ready[/bold green] once a worker is alive"
    )


def ready_message(url: str, alive: int, workers: int) -> str:
    command = fitexplain_command()
    grace = get_settings().stop_grace_seconds
    return "\n".join(
        [
            f"[bold green]ready[/bold green]: fitexplain answers on {url} "
            f"({alive} of {workers} workers alive{'' if alive == workers else ', more starting'})",
            f"  get a token:  [cyan]{command} create-token YOUR_NAME[/cyan]   (prints fx_...; keep it)",
            f"  then:         curl -H 'Authorization: Bearer fx_...' {url}/models",
            f"  dashboard:    {url}/dashboard    API docs: {url}/docs",
            f"  stop:         Ctrl-C (a running job gets {grace:.0f} s to finish)",
        ]
    )
