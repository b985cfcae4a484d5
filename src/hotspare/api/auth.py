"""Bearer-token authentication for every request the node answers (DESIGN decision 10).

It is an ASGI middleware rather than a route dependency so that nothing escapes it: the OpenAPI
document, the interactive docs, unknown paths and routes added later are all behind the token.
The route-level security declarations below exist only so the spec tells clients what to send.
"""

from __future__ import annotations

import hmac
from typing import Annotated
from urllib.parse import parse_qsl

from fastapi import Security
from fastapi.security import APIKeyQuery, HTTPAuthorizationCredentials, HTTPBearer
from starlette.types import ASGIApp, Receive, Scope, Send

from hotspare.api.problems import problem_response

REALM = 'Bearer realm="hotspare"'
TOKEN_QUERY_PARAM = "token"


def token_from_scope(scope: Scope) -> tuple[str | None, str]:
    """The presented token and where it came from (`header`, `query` or `none`)."""
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, credentials = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and credentials.strip():
                return credentials.strip(), "header"
            return None, "header"
    query = scope.get("query_string", b"").decode("latin-1")
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key == TOKEN_QUERY_PARAM:
            return value, "query"
    return None, "none"


class BearerAuthMiddleware:
    """Refuses any HTTP request that does not carry the node's token, in a header or `?token=`."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        if not token:
            raise ValueError("the API token must not be empty: every route is authenticated")
        self.app = app
        self._token = token.encode("utf-8")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        presented, _ = token_from_scope(scope)
        if presented is None:
            response = problem_response(
                401,
                "unauthorized",
                "this node needs its API token: send 'Authorization: Bearer <token>' "
                "(or ?token=<token> where headers can't be set, e.g. HLS players)",
                headers={"WWW-Authenticate": REALM},
            )
        elif not hmac.compare_digest(presented.encode("utf-8"), self._token):
            response = problem_response(
                401,
                "unauthorized",
                "wrong API token; check the token file this client uses against the node's config",
                headers={"WWW-Authenticate": f'{REALM}, error="invalid_token"'},
            )
        else:
            await self.app(scope, receive, send)
            return
        if scope["type"] == "http":
            await response(scope, receive, send)
        else:  # websocket: refuse the handshake
            await send({"type": "websocket.close", "code": 1008})


_bearer = HTTPBearer(auto_error=False, description="the node's API token")
_query = APIKeyQuery(
    name=TOKEN_QUERY_PARAM,
    auto_error=False,
    description="the same token as a query parameter, for HLS players that can't set headers; "
    "it ends up in logs and browser history, so prefer the header",
)


async def declare_auth(
    _bearer_credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    _query_token: Annotated[str | None, Security(_query)],
) -> None:
    """Documentation only: the middleware has already checked the token before any route runs."""
