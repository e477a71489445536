"""Refused uploads charged to their user's rejected-upload budget (`shared.limits`).

An upload refused once its body was read (bad data, a limit met while reading it, a bad parameter)
cost the API its reading; past the budget, the user's next submits are refused before their body
(`api.routes.submit.SubmitRoute`).
"""

from __future__ import annotations

from typing import Any

from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request

from api.uploads.stream import ReceivedFile
from shared.db import session_scope
from shared.limits import charge_rejected_upload, rejected_upload_cost
from shared.ml.errors import UserInputError
from shared.settings import get_settings

REFUSED_STATUSES = (400, 422)


def refused_upload(error: BaseException) -> bool:
    """Whether the error refuses the upload itself (not the token, the rate or the service)."""
    if isinstance(error, UserInputError | RequestValidationError):
        return True
    return isinstance(error, HTTPException) and error.status_code in REFUSED_STATUSES


def work_bytes(request: Request, error: BaseException) -> int:
    """The bytes the refused upload cost: received, or decoded when more (its error's `read`)."""
    form: Any = getattr(request, "_form", None)
    received = (
        sum(value.sink.size for _, value in form.multi_items() if isinstance(value, ReceivedFile))
        if form
        else 0
    )
    read = error.details.get("read", {}) if isinstance(error, UserInputError) else {}
    return max(received, int(read.get("decoded_bytes", 0)))


def charge(user_id: int, cost: float) -> None:
    """Blocking: in a thread."""
    with session_scope() as session:
        charge_rejected_upload(session, user_id, cost, get_settings())


def cost_of(request: Request, error: BaseException) -> float:
    return rejected_upload_cost(work_bytes(request, error))
