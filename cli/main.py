"""The `fitexplain` command: run the service (all-in-one or piece by piece), migrate, manage tokens."""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from typing import Annotated

import typer
from rich.console import Console

from cli.supervisor import PARENT_PID_ENV, WorkerSupervisor

app = typer.Typer(
    help="fitexplain: fit models on CSV files and explain them, as a job service.", no_args_is_help=True
)
console = Console()


@app.command()
def migrate() -> None:
    """Create or upgrade the database schema (Alembic migrations)."""
    from shared.store.migrate import migrate as upgrade

    with refusing_an_unreleased_schema():
        upgrade()
    console.print("[green]database is at the latest schema[/green]")


@contextmanager
def refusing_an_unreleased_schema() -> Iterator[None]:
    """Print `UnreleasedSchema`'s message (what to delete to start again) and exit 1, not a traceback."""
    from shared.store.migrate import UnreleasedSchema

    try:
        yield
    except UnreleasedSchema as refused:
        Console(stderr=True).print(f"[red]{refused}[/red]", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None


@app.command("create-token")
def create_token(
    name: Annotated[str, typer.Argument(help="the user's name; created if new")],
    admin: Annotated[bool, typer.Option("--admin", help="may use the admin routes")] = False,
    ttl_days: Annotated[
        int | None, typer.Option(help="expire after this many days (default: FITEXPLAIN_TOKEN_TTL_DAYS)")
    ] = None,
) -> None:
    """Print a new API token for NAME (only its hash is stored: keep the token)."""
    from shared.auth import create_token as make_token
    from shared.db import session_scope
    from shared.settings import get_settings

    if ttl_days is None:
        ttl_days = get_settings().token_ttl_days
    with session_scope() as session:
        token = make_token(session, name, admin=admin, ttl_days=ttl_days)
    print(token)


@app.command("revoke-tokens")
def revoke_tokens(name: Annotated[str, typer.Argument(help="the user whose tokens to revoke")]) -> None:
    """Revoke every token of a user."""
    from shared.auth import revoke_tokens as revoke
    from shared.db import session_scope

    with session_scope() as session:
        count = revoke(session, name)
    console.print(f"revoked {count} token(s) of {name}")


@app.command()
def api(
    host: Annotated[str | None, typer.Option(help="default FITEXPLAIN_HOST")] = None,
    port: Annotated[int | None, typer.Option(help="default FITEXPLAIN_PORT")] = None,
    workers: Annotated[int, typer.Option(help="uvicorn worker processes")] = 1,
) -> None:
    """Run the HTTP API only."""
    import uvicorn

    from api.uploads.http_protocol import BoundedHeadersProtocol
    from shared.settings import get_settings

    settings = get_settings()
    _check_schema()
    uvicorn.run(
        "api.main:app",
        host=host or settings.host,
        port=port or settings.port,
        workers=workers,
        log_level="info",
        timeout_graceful_shutdown=5,
        http=BoundedHeadersProtocol,  # httptools, bounding the request head: 431 beyond max_header_bytes
        h11_max_incomplete_event_size=settings.max_header_bytes,  # the bound BoundedHeadersProtocol reads
    )


class QueueChoice(StrEnum):
    small = "small"
    large = "large"
    all = "all"


def worker_queues(choice: QueueChoice) -> list[str]:
    """The Celery queues a worker consumes: small jobs, large jobs (by estimated cost), or both."""
    from shared.settings import get_settings

    settings = get_settings()
    return {
        QueueChoice.small: [settings.queue],
        QueueChoice.large: [settings.large_queue],
        QueueChoice.all: [settings.queue, settings.large_queue],
    }[choice]


def worker_argv(concurrency: int, loglevel: str, queue: QueueChoice = QueueChoice.all) -> list[str]:
    """Celery's arguments; the node name holds the process id, so that several workers on one machine
    (or in containers that share a hostname) are told apart in broadcasts such as a shutdown."""
    return [
        "worker",
        f"--hostname=worker{os.getpid()}@%h",
        f"--concurrency={concurrency}",
        f"--queues={','.join(worker_queues(queue))}",
        f"--loglevel={loglevel}",
        "--without-gossip",
        "--without-mingle",
    ]


@app.command()
def worker(
    concurrency: Annotated[int, typer.Option(help="jobs run at once by this worker")] = 1,
    loglevel: Annotated[str, typer.Option()] = "info",
    queue: Annotated[
        QueueChoice, typer.Option(help="which jobs to take: small, large (by estimated cost), or all")
    ] = QueueChoice.all,
    quiet: Annotated[bool, typer.Option("--quiet", help="no start-up banner")] = False,
) -> None:
    """Run a Celery worker that executes fit-and-explain jobs. SIGTERM or Ctrl-C: a warm shutdown (the
    running job finishes first); a second one stops at once (the job runs again, on another worker or
    after a restart)."""
    supervisor_pid = os.environ.get(PARENT_PID_ENV)
    if supervisor_pid:  # started by `serve`: never outlive it
        from worker.lifeline import die_with_parent

        die_with_parent(int(supervisor_pid))
    _check_schema()
    from worker.app import app as celery_app

    celery_app.start([*(["--quiet"] if quiet else []), *worker_argv(concurrency, loglevel, queue)])


def _check_schema() -> None:
    """Refuse to start on a database made by an unreleased schema (see `migrate`). A database that is
    down is not checked: the API answers 503 and the worker retries its claims until it is back."""
    from sqlalchemy.exc import OperationalError

    from shared.store.migrate import check_known_revision

    with refusing_an_unreleased_schema():
        try:
            check_known_revision()
        except OperationalError:
            return


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="default FITEXPLAIN_HOST")] = None,
    port: Annotated[int | None, typer.Option(help="default FITEXPLAIN_PORT")] = None,
    concurrency: Annotated[int, typer.Option(help="jobs run at once by each worker")] = 1,
) -> None:
    """Migrate, then run the API and one worker per queue (small and large jobs), restarting a worker
    that dies (embedded SQLite unless URLs are set). Ctrl-C or SIGTERM stops it warm: running jobs get
    FITEXPLAIN_STOP_GRACE_SECONDS to finish; a second Ctrl-C stops at once."""
    from cli.announce import ReadyAnnouncer, local_url, starting_message
    from shared.settings import get_settings
    from shared.tables import utcnow

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    settings = get_settings()
    host, port = host or settings.host, port or settings.port
    # uvicorn re-raises the SIGTERM it caught once it has shut down: make that an exception, so the
    # `finally` below always stops the workers too.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    migrate()
    started = utcnow()
    queues = (QueueChoice.small, QueueChoice.large)
    workers = WorkerSupervisor(
        {
            queue.value: [
                sys.executable,
                "-m",
                "cli.main",
                "worker",
                f"--queue={queue.value}",
                f"--concurrency={concurrency}",
                "--loglevel=warning",
                "--quiet",
            ]
            for queue in queues
        },
        env=os.environ.copy(),
        stop_grace=settings.stop_grace_seconds,
    )
    workers.start()
    where = (
        "embedded SQLite under " + str(settings.home.resolve()) if settings.embedded else "external services"
    )
    console.print(starting_message(local_url(host, port), where, len(queues)), soft_wrap=True)
    announcer = ReadyAnnouncer(console, host, port, since=started, workers=len(queues))
    announcer.start()
    try:
        api(host=host, port=port, workers=1)
    finally:
        announcer.stop.set()
        console.print(
            f"stopping: running jobs get {settings.stop_grace_seconds:.0f} s to finish "
            "(Ctrl-C again to stop them now: they run again after the next start)",
            soft_wrap=True,
        )
        try:
            workers.stop()
        except KeyboardInterrupt:
            workers.kill()
            raise SystemExit(128 + signal.SIGINT) from None
        except SystemExit:  # a second SIGTERM
            workers.kill()
            raise
        console.print("stopped")


if __name__ == "__main__":
    app()
