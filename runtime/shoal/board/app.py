"""The board's ASGI app: routes, the gate every request passes, and its headers.

The gate (:class:`Gate`) runs before any route: no credentials, 401 with a Basic challenge;
a viewer's POST, 403; a POST signed in by Basic without the form's CSRF token, 403; a POST
from another site's page, 403. Every answer carries a Content-Security-Policy that allows
scripts and styles from the board itself only, so even text that escaped escaping could
not run, and frames of the board are refused (clickjacking).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from importlib import resources

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shoal.backends import Backend, open_backend
from shoal.board import api, schedules, views
from shoal.board.auth import CSRF_FIELD, authenticate, csrf_valid, same_origin
from shoal.board.settings import BoardSettings
from shoal.core.errors import BackendError, ShoalError
from shoal.core.urls import redact

SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "x-content-type-options": "nosniff",
    # same-origin, not no-referrer: with no-referrer a browser sends "Origin: null" on the
    # board's own forms, which the gate cannot tell from a hostile sandboxed page.
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
    "cache-control": "no-store",
}


class Gate:
    """Authentication, roles, CSRF and security headers, as ASGI middleware."""

    def __init__(self, app: ASGIApp, settings: BoardSettings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
                message = {**message, "headers": headers}
            await send(message)

        body = b""
        if scope["method"] not in ("GET", "HEAD"):
            body = await Request(scope, receive).body()  # read once, replayed to the route
        request = Request(scope, _replay(body, receive))
        refusal = await self.refusal(request)
        if refusal is not None:
            await refusal(scope, receive, send_with_headers)
            return
        await self.app(scope, _replay(body, receive), send_with_headers)

    async def refusal(self, request: Request) -> Response | None:
        principal = authenticate(request.headers.get("authorization"), self.settings.credentials)
        if principal is None:
            return PlainTextResponse(
                "sign in to the shoal board", 401,
                {"www-authenticate": 'Basic realm="shoal board", charset="UTF-8"'},
            )  # fmt: skip
        request.scope["principal"] = principal
        if request.method in ("GET", "HEAD"):
            return None
        if not principal.is_admin:
            return PlainTextResponse("this action needs the admin role", 403)
        if not same_origin(request.headers.get("origin"), request.headers.get("host")):
            return PlainTextResponse("refused: the request came from another site", 403)
        if principal.ambient:
            token = request.headers.get("x-csrf-token")
            if token is None:
                token = str((await request.form()).get(CSRF_FIELD) or "")
            if not csrf_valid(self.settings.csrf_secret, principal, token):
                return PlainTextResponse("refused: missing or wrong CSRF token", 403)
        return None


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that gives ``body`` again, then whatever the client sends next."""
    given = False

    async def replay() -> Message:
        nonlocal given
        if given:
            return await receive()
        given = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


async def _refused(request: Request, exc: Exception) -> Response:
    """A ShoalError as one line: 503 when the backend failed (errors name its URL redacted
    already; redact() again, should any driver text carry one), else 400: the request."""
    status = 503 if isinstance(exc, BackendError) else 400
    message = redact(str(exc))
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": message}, status)
    return PlainTextResponse(message, status)


def create_app(settings: BoardSettings, backend: Backend | None = None) -> Starlette:
    """The board for ``settings``; it opens ``backend`` (default: from the settings' URL)
    when it starts serving and closes it when it stops."""
    store = backend if backend is not None else open_backend(settings.backend_url)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await store.open()
        try:
            yield
        finally:
            await store.close()

    static = StaticFiles(directory=str(resources.files("shoal.board") / "static"))
    app = Starlette(
        routes=[
            *api.routes,
            *views.routes,
            *schedules.routes,
            Mount("/static", static, name="static"),
        ],
        middleware=[Middleware(Gate, settings=settings)],
        exception_handlers={ShoalError: _refused},
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.backend = store
    return app
