"""Errors the ML core raises for problems a user can fix (bad data, bad parameters)."""

from __future__ import annotations


class UserInputError(ValueError):
    """A problem with the user's data or parameters; `code` is stable, `message` says what to do."""

    def __init__(self, code: str, message: str, *, column: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.column = column

    def to_dict(self) -> dict[str, str | None]:
        return {"code": self.code, "message": self.message, "column": self.column}


class DataError(UserInputError):
    """The CSV cannot be used: names the column and shows an example value where there is one."""


class ParameterError(UserInputError):
    """A parameter names a model or option we do not support."""


class LimitExceeded(UserInputError):
    """The job would exceed a configured limit (rows, memory...): the message names the limit."""
