"""Errors the ML core raises for problems a user can fix (bad data, bad parameters)."""

from __future__ import annotations

from typing import Any


class UserInputError(ValueError):
    """A problem with the user's data or parameters; `code` is stable, `message` says what to do.

    `status` is the HTTP status the service answers it with; `details` are fields its error body adds
    (the limit met and what had been read by then, for an upload refused while it was read)."""

    status = 422

    def __init__(
        self,
        code: str,
        message: str,
        *,
        column: str | None = None,
        status: int | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.column = column
        if status is not None:
            self.status = status
        self.details: dict[str, Any] = dict(details or {})

    def to_dict(self) -> dict[str, str | None]:
        return {"code": self.code, "message": self.message, "column": self.column}


class DataError(UserInputError):
    """The CSV cannot be used: names the column and shows an example value where there is one."""


class ParameterError(UserInputError):
    """A parameter names a model or option we do not support."""


class LimitExceeded(UserInputError):
    """The job would exceed a configured limit (rows, memory...): the message names the limit."""
