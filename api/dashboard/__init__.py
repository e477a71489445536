"""The operations dashboard at /dashboard: server-rendered pages (Jinja2), SVG charts drawn on the
server, a little JavaScript from static files. `install(app)` adds it to the API."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler, request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from api.dashboard import actions, pages
from api.dashboard.rendering import STATIC_DIR, STATIC_PATH, render
from api.dashboard.session import SignInRequired, signed_in_user
from api.dashboard.timing import ServerTimingMiddleware


def _is_dashboard(request: Request) -> bool:
    return request.url.path.startswith("/dashboard")


def install(app: FastAPI) -> None:
    app.add_middleware(ServerTimingMiddleware)
    app.include_router(pages.router)
    app.include_router(actions.router)
    app.mount(STATIC_PATH, StaticFiles(directory=STATIC_DIR), name="dashboard-static")

    @app.exception_handler(SignInRequired)
    async def _sign_in(request: Request, exc: SignInRequired) -> Response:
        return RedirectResponse("/dashboard/sign-in", status_code=303)

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> Response:
        """Dashboard errors as a page (the message escaped); every other route keeps FastAPI's JSON."""
        if not _is_dashboard(request):
            return await http_exception_handler(request, exc)
        return render(
            request, "error.html", signed_in_user(request), exc.status_code, message=str(exc.detail)
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        if not _is_dashboard(request):
            return await request_validation_exception_handler(request, exc)
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc'][1:])}: {error['msg']}" for error in exc.errors()
        )
        return render(request, "error.html", signed_in_user(request), 422, message=problems)
