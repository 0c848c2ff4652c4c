"""Live pages: an open page asks for its own ``<main>`` again every ``refresh_seconds`` and
swaps it in (``static/board.js``), so the numbers move without a reload.

Polling, not server-sent events: each refresh is one ordinary authenticated GET of the page
it shows, so it needs no connection held per viewer, no second code path and no extra
endpoint, and a page without JavaScript still works (it just does not move).
"""

from __future__ import annotations

from starlette.requests import Request

FRAGMENT_HEADER = "X-Shoal-Fragment"
"""Sent by board.js: the answer is the page's ``<main>`` only."""


def wants_fragment(request: Request) -> bool:
    return request.headers.get(FRAGMENT_HEADER) == "main"
