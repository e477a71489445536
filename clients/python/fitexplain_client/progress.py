"""The progress bar shown while a job runs, fed by the job's progress (0..1) and message
("SHAP 120/171 rows"). rich draws it in a terminal and in Jupyter alike.
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

if TYPE_CHECKING:
    from fitexplain_client.models import JobState


class JobProgress:
    """`with JobProgress(job_id, enabled) as bar: bar.update(job_json)`; does nothing when disabled."""

    def __init__(self, job_id: str, enabled: bool = True, console: Console | None = None) -> None:
        self.enabled = enabled
        self._progress = Progress(
            TextColumn("[bold]{task.fields[job]}[/bold]"),
            BarColumn(),
            TaskProgressColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.description}"),
            console=console or Console(stderr=True),
            transient=False,
        )
        self._task = self._progress.add_task("queued", total=1.0, job=job_id[:8])

    def __enter__(self) -> JobProgress:
        if self.enabled:
            self._progress.start()
        return self

    def update(self, job: JobState) -> None:
        if not self.enabled:
            return
        message = job.progress_message
        description = job.status + (f": {message}" if message else "")
        progress = 1.0 if job.status == "succeeded" else job.progress
        self._progress.update(self._task, completed=progress, description=description)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.enabled:
            self._progress.stop()
