"""``shoal board``: a web UI and JSON API over the same backend URL the workers use.

Queues (depth, oldest ready age), tasks (filtered, keyset pages, detail, retry, cancel,
purge), workers (host, queues, in flight, last heartbeat), updating themselves every 2 s.
Nobody gets in anonymously: see :mod:`shoal.board.auth` for roles, credentials and CSRF.

It sits beside the CLI on top of the runtime: it imports ``shoal.app``, ``shoal.backends``
and ``shoal.core``, never the worker (an import-linter contract). Its ASGI stack
(Starlette, uvicorn, Jinja2) is the optional extra ``board``.
"""

from __future__ import annotations

from shoal.core.errors import MissingExtra

try:
    import jinja2  # noqa: F401
    import starlette  # noqa: F401
    import uvicorn
except ImportError as exc:  # pragma: no cover - the extra is installed in every test run
    raise MissingExtra("the board", "board") from exc

from shoal.backends import Backend
from shoal.board.app import create_app
from shoal.board.settings import BoardSettings, credentials_from

__all__ = ["BoardSettings", "create_app", "credentials_from", "serve"]


async def serve(settings: BoardSettings, backend: Backend | None = None) -> None:
    """Serve the board until SIGTERM or SIGINT (``backend``: default from the settings)."""
    config = uvicorn.Config(
        create_app(settings, backend), host=settings.host, port=settings.port,
        log_level="warning", access_log=False, lifespan="on",
        proxy_headers=False, server_header=False,
    )  # fmt: skip
    await uvicorn.Server(config).serve()
