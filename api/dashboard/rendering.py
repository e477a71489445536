"""Jinja2 templates (autoescaped: every user-supplied string is escaped) and the dashboard's security
headers: a strict Content-Security-Policy (scripts, styles and images only from this site, no inline
script or style), no framing, no caching."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from api.dashboard.session import COOKIE, csrf_token
from shared.tables import User

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"
STATIC_PATH = "/dashboard/static"

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def when(moment: datetime | None) -> str:
    """A timestamp with its zone, always UTC, to the second."""
    return "" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {rest} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


templates = Jinja2Templates(directory=str(HERE / "templates"))
templates.env.filters.update(when=when, duration=duration, number=number)
templates.env.globals["static"] = lambda name: f"{STATIC_PATH}/{name}"


def render(
    request: Request, template: str, user: User | None, status_code: int = 200, **context: Any
) -> HTMLResponse:
    token = request.cookies.get(COOKIE)
    context.update(
        status_code=status_code, user=user, csrf=csrf_token(token) if token and user is not None else ""
    )
    response = templates.TemplateResponse(request, template, context, status_code=status_code)
    response.headers.update(SECURITY_HEADERS)
    return response
