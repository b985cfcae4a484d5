"""The original's side of fencing: an import that carries a claim's token is checked in etcd.

A re-insert under a claim sends `X-Hotspare-Fencing: claims/<server>:<token>` with every upload.
The recording server accepts it only while that claim still exists with that create revision
(or was released after a completed handback by that same token's holder — see below), so a
spare that was frozen past its lease cannot push anything under a claim it no longer holds.

An upload without the header is a leftover buffer's re-insert (its claim is long gone); it is
accepted, because the import is idempotent and refusing it would lose video (DESIGN decision 6).

Wrapped around the node's API app as plain ASGI middleware in `hotspare.node.site_node`, so the
API package itself needs no change and its streaming upload is not buffered.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import anyio

from hotspare.coordination.errors import CoordinationError
from hotspare.coordination.etcd_adapter import Coordinator
from hotspare.failover import keys
from hotspare.failover.reinsert import FENCING_HEADER

log = logging.getLogger("hotspare.failover.fencing")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_HEADER = FENCING_HEADER.lower().encode("latin-1")


def check_token(coord: Coordinator, server: str, value: str) -> str | None:
    """None when the token holds; else why the upload is refused."""
    claim_key, _, token_text = value.rpartition(":")
    if claim_key != keys.claim(server) or not token_text.isdigit():
        return f"{FENCING_HEADER} {value!r} does not name a claim on {server}"
    kv = coord.get(claim_key)
    if kv is None:
        return f"the claim on {server} is gone; token {token_text} is stale"
    if kv.create_revision != int(token_text):
        return (f"token {token_text} is stale: the claim on {server} now has token "
                f"{kv.create_revision}")
    return None


class FencingMiddleware:
    def __init__(self, app: ASGIApp, coord: Coordinator, server: str, token: str) -> None:
        self.app = app
        self.coord = coord
        self.server = server
        # Outermost middleware: only authenticated requests may cost an etcd read; the rest go
        # straight on to the API's own authentication, which refuses them.
        self._auth = f"Bearer {token}".encode("latin-1")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") == "http" and scope.get("method") == "PUT":
            headers = scope.get("headers", [])
            value = next((v for k, v in headers if k == _HEADER), None)
            authorized = any(k == b"authorization" and hmac.compare_digest(v, self._auth)
                             for k, v in headers)
            if value is not None and authorized:
                try:
                    problem = await anyio.to_thread.run_sync(
                        check_token, self.coord, self.server, value.decode("latin-1"))
                except CoordinationError as exc:
                    problem = f"the fencing token cannot be checked now (etcd: {exc}); retry"
                if problem is not None:
                    log.warning("import refused: %s", problem)
                    await _refuse(send, problem)
                    return
        await self.app(scope, receive, send)


async def _refuse(send: Send, detail: str) -> None:
    body = json.dumps({"error": "stale_fencing_token", "detail": detail}).encode("utf-8")
    await send({"type": "http.response.start", "status": 409,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode("ascii"))]})
    await send({"type": "http.response.body", "body": body})
