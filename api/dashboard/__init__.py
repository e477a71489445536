"""The operations dashboard at /dashboard: server-rendered pages (Jinja2), SVG charts drawn on the
server, a little JavaScript from static files. `install(app)` adds it to the API; its errors are pages
(`error_page`, called by api.errors for every request under PATH_PREFIX)."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from api.dashboard import actions, pages
from api.dashboard.rendering import STATIC_DIR, STATIC_PATH, render
from api.dashboard.session import SignInRequired, signed_in_user
from api.dashboard.timing import ServerTimingMiddleware

PATH_PREFIX = "/dashboard"


def install(app: FastAPI) -> None:
    app.add_middleware(ServerTimingMiddleware)
    app.include_router(pages.router)
    app.include_router(actions.router)
    app.mount(STATIC_PATH, StaticFiles(directory=STATIC_DIR), name="dashboard-static")

    @app.exception_handler(SignInRequired)
    async def _sign_in(request: Request, exc: SignInRequired) -> Response:
        return RedirectResponse(f"{PATH_PREFIX}/sign-in", status_code=303)


def error_page(request: Request, status_code: int, message: str) -> Response:
    """A dashboard error as a page (the message escaped)."""
    return render(request, "error.html", signed_in_user(request), status_code, message=message)
