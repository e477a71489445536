"""Refuse control characters in any path parameter, query parameter or form field: a 422 naming the
field, before a route reads it. (PostgreSQL refuses NUL in text, so a NUL that reached a query would be a
500; no field of ours has a use for the others, and a newline in a URL is a header waiting to be forged.)

Multipart bodies are not read here: they are uploads, parsed as they stream (api/uploads).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError

CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
"""C0, DEL and C1: Unicode's control characters (category Cc)."""

FORM = "application/x-www-form-urlencoded"


def _problem(location: str, name: str, value: str) -> dict[str, Any] | None:
    found = CONTROL.search(name) or CONTROL.search(value)
    if found is None:
        return None
    char = found.group()
    label = unicodedata.name(char, None) or f"U+{ord(char):04X}"
    return {
        "type": "value_error",
        "loc": (location, CONTROL.sub("?", name)),
        "msg": f"contains a control character (U+{ord(char):04X}, {label.lower()}); remove it",
        "input": CONTROL.sub("?", value)[:100],
    }


async def refuse_control_characters(request: Request) -> None:
    """An app-wide dependency: 422 (`invalid_parameter`, or the dashboard's error page) naming every
    field that holds a control character."""
    fields: list[tuple[str, str, str]] = [("path", k, str(v)) for k, v in request.path_params.items()]
    fields += [("query", k, v) for k, v in request.query_params.multi_items()]
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == FORM:
        form = await request.form()  # kept by the request: the route's Form() fields read the same
        fields += [("body", k, v) for k, v in form.multi_items() if isinstance(v, str)]
    problems = [p for p in (_problem(*field) for field in fields) if p is not None]
    if problems:
        raise RequestValidationError(problems)
