"""A stand-in for the broker send: it records each message, or fails as an unreachable broker does."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kombu.exceptions import OperationalError

from shared.dispatch.queue import RUN_JOB_TASK


@dataclass(frozen=True)
class Message:
    task: str
    args: tuple[Any, ...]
    queue: str | None = None


@dataclass
class PublishRecorder:
    """Replaces `Celery.send_task`. `broker_down` makes every send fail; `deliver` maps a task name to a
    function run at once with the message's arguments (an eager worker, for tests that need one)."""

    messages: list[Message] = field(default_factory=list)
    broker_down: bool = False
    deliver: dict[str, Callable[..., object]] = field(default_factory=dict)

    def send_task(
        self, name: str, args: list[Any] | None = None, kwargs: object = None, **options: Any
    ) -> None:
        if self.broker_down:
            raise OperationalError("Error 111 connecting to the broker (test: broker down)")
        self.messages.append(Message(name, tuple(args or ()), options.get("queue")))
        if name in self.deliver:
            self.deliver[name](*(args or ()))

    def job_ids(self, task: str = RUN_JOB_TASK) -> list[str]:
        """The job ids published for `task`, in order."""
        return [message.args[0] for message in self.messages if message.task == task]
