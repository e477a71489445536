"""The progress bar shown while a job runs, fed by the job's progress (0..1) and message
("SHAP 120/171 rows"). rich draws it in a terminal and in Jupyter alike.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn


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

    def update(self, job: dict[str, Any]) -> None:
        if not self.enabled:
            return
        message = job.get("progress_message") or ""
        description = job["status"] + (f": {message}" if message else "")
        progress = 1.0 if job["status"] == "succeeded" else float(job.get("progress") or 0.0)
        self._progress.update(self._task, completed=progress, description=description)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.enabled:
            self._progress.stop()
