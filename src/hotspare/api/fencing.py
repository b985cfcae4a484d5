"""The original's side of fencing, as HTTP: an import that carries a claim's token is checked.

A re-insert under a claim sends `X-Hotspare-Fencing: claims/<server>:<token>` with every upload.
The recording server accepts it only while that claim still exists with that create revision
(`hotspare.sitestate.fencing`), so a spare that was frozen past its lease cannot push anything
under a claim it no longer holds: 409 `stale_fencing_token`. When the claim cannot be read (etcd
unreachable) the answer is 503 `fencing_unavailable` with Retry-After: the spare pauses and
retries, and keeps its claim — a refusal there would make it stand down for an etcd hiccup.

An upload without the header is a leftover buffer's re-insert (its claim is long gone); it is
accepted, because the import is idempotent and refusing it would lose video (design decision 6,
docs/design.md).

Wrapped around the node's API app as plain ASGI middleware in `hotspare.node.site_node`, so the
streaming upload is not buffered and the check runs before the body is read.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import anyio

from hotspare.sitestate.fencing import ClaimReader, check_fence
from hotspare.sitestate.layout import FENCING_HEADER

log = logging.getLogger("hotspare.api.fencing")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_HEADER = FENCING_HEADER.lower().encode("latin-1")
RETRY_AFTER_SECONDS = 1


class FencingMiddleware:
    def __init__(self, app: ASGIApp, claims: ClaimReader, server: str, token: str) -> None:
        self.app = app
        self.claims = claims
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
                check = await anyio.to_thread.run_sync(
                    check_fence, self.claims, self.server, value.decode("latin-1"))
                if not check.ok:
                    log.warning("import refused: %s", check.detail)
                    if check.retryable:
                        await _answer(send, 503, "fencing_unavailable", check.detail,
                                      [(b"retry-after", str(RETRY_AFTER_SECONDS).encode())])
                    else:
                        await _answer(send, 409, "stale_fencing_token", check.detail, [])
                    return
        await self.app(scope, receive, send)


async def _answer(send: Send, status: int, error: str, detail: str,
                  extra: list[tuple[bytes, bytes]]) -> None:
    body = json.dumps({"error": error, "detail": detail}).encode("utf-8")
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode("ascii")), *extra]})
    await send({"type": "http.response.body", "body": body})
