"""Who is asking (authentication) and may they (authorization), for every request a node answers.

It is an ASGI middleware rather than a route dependency so that nothing escapes it: the OpenAPI
document, the interactive docs, unknown paths and routes added later are all behind a token, and
a route whose role is not declared in `hotspare.api.roles.ROUTE_ROLES` is refused with 500 instead
of served to anyone. The route-level security declarations below exist only so the spec tells
clients what to send.

Three kinds of credential: a node's own credential (site mode: `[api] node_token_file`, known
here by the SHA-256 the site configuration lists as that node's `token_sha256`; role `node`, and
the request knows *which* node asks), the shared node credential (`[api] token`/`token_file`, the
same on every node of a site; role `node` without a name, kept for reads and bootstrap — it may
not import video into a site's recording server, `hotspare.api.fencing`) and user tokens
(`[[api.users]]`, stored as salted hashes, each with a role). Tokens are compared in constant time
(a node credential is long and random, so one SHA-256 suffices) and never appear in an answer or
a log line. A request with no token may carry a playback grant (`?grant=`, `hotspare.api.grants`):
a read-only credential for one camera and time range, opening only the routes in `GRANT_ROUTES`.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import parse_qsl

import anyio
from fastapi import Security
from fastapi.security import APIKeyQuery, HTTPAuthorizationCredentials, HTTPBearer
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from hotspare.api.auth_guard import LOG_INTERVAL_SECONDS, AuthGuard
from hotspare.api.grants import (
    GRANT_QUERY_PARAM,
    Grant,
    GrantRefused,
    GrantSigner,
    grant_from_scope,
)
from hotspare.api.problems import problem_response
from hotspare.api.roles import GRANT_ROUTES, Requirement, Role, requirement
from hotspare.api.tokens import is_user_shaped, token_user, verify_token
from hotspare.config.models import ApiUser

log = logging.getLogger("hotspare.api.auth")

REALM = 'Bearer realm="hotspare"'
TOKEN_QUERY_PARAM = "token"
NODE_PRINCIPAL = "node"
PRINCIPAL_KEY = "hotspare.principal"  # in the ASGI scope, for routes that want to know who asks


@dataclass(frozen=True)
class Principal:
    """Who a request comes from: a user's name, a node's name (`node` set: it presented its own
    credential), or `node` for the shared node credential; `grant` set: it presented a playback
    grant, minted for `name`, and may read only what the grant covers."""

    name: str
    role: Role
    node: str | None = None
    grant: Grant | None = None


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


@dataclass(frozen=True)
class Throttled:
    """This client address spent its failure budget: it is answered 429 until `retry_after`."""

    retry_after: float


class Credentials:
    """The node credential and the configured users; remembers the tokens it has verified, so a
    user's scrypt hash is computed once per process, not on every segment an HLS player fetches.
    Only successes are remembered: at most one entry per user. Failures are bounded by an
    `AuthGuard` (see `hotspare.api.auth_guard` for why and how)."""

    def __init__(self, node_token: str, users: Sequence[ApiUser] = (),
                 guard: AuthGuard | None = None,
                 identities: Callable[[], Mapping[str, str]] | None = None) -> None:
        if not node_token:
            raise ValueError("the API token must not be empty: every route is authenticated")
        self._node = node_token.encode("utf-8")
        self._users = {u.name: u for u in users}
        self._identities = identities or dict
        self._verified: dict[bytes, Principal] = {}
        self.guard = guard or AuthGuard()

    async def principal(self, presented: str,
                        address: str = "unknown") -> Principal | Throttled | None:
        if hmac.compare_digest(presented.encode("utf-8"), self._node):
            return Principal(NODE_PRINCIPAL, Role.NODE)
        key = hashlib.sha256(presented.encode("utf-8")).digest()
        # Asked on every request, so a node added to (or removed from) the site counts at once.
        node = self._identities().get(key.hex())
        if node is not None:
            return Principal(node, Role.NODE, node=node)
        known = self._verified.get(key)
        if known is not None:
            return known
        if not is_user_shaped(presented):
            return None  # cannot be any user's token: refused at no cost, and says nothing
        wait = self.guard.retry_after(address)
        if wait is not None:
            return Throttled(wait)
        user = self._users.get(token_user(presented))
        if user is None:
            await self.guard.wait_like_a_hash()
            self.guard.failed(address, "token for an unknown user")
            return None
        # Its own one-thread limiter, never the shared pool: a flood of wrong tokens queues
        # behind itself while health answers and file reads go on.
        ok, seconds = await anyio.to_thread.run_sync(_timed_verify, presented, user.token_hash,
                                                     limiter=self.guard.hash_limiter)
        self.guard.hashed(seconds)
        if not ok:
            self.guard.failed(address, f"wrong token for user {user.name!r}")
            return None
        self._verified[key] = Principal(user.name, Role(user.role))
        return self._verified[key]


def _timed_verify(presented: str, token_hash: str) -> tuple[bool, float]:
    started = time.monotonic()
    ok = verify_token(presented, token_hash)
    return ok, time.monotonic() - started


def _client_address(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def _route_path(scope: Scope) -> str:
    path = str(scope.get("path", ""))
    root = str(scope.get("root_path", ""))
    if root and path.startswith(root):
        return path[len(root):] or "/"
    return path


class BearerAuthMiddleware:
    """Refuses a request without a known token (401), or whose token's role is below the role
    its route needs (403); passes the rest on with the `Principal` in the scope."""

    def __init__(self, app: ASGIApp, token: str, users: Sequence[ApiUser] = (),
                 identities: Callable[[], Mapping[str, str]] | None = None,
                 grants: GrantSigner | None = None) -> None:
        self.app = app
        self.credentials = Credentials(token, users, identities=identities)
        self.grants = grants or GrantSigner(token)
        self._grants_refused = 0
        self._grants_logged_at = -LOG_INTERVAL_SECONDS

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        response = await self._refusal(scope)
        if response is None:
            await self.app(scope, receive, send)
        elif scope["type"] == "http":
            await response(scope, receive, send)
        else:  # websocket: refuse the handshake
            await send({"type": "websocket.close", "code": 1008})

    async def _refusal(self, scope: Scope) -> Response | None:
        presented, _ = token_from_scope(scope)
        grant = grant_from_scope(scope) if presented is None else None
        if grant is not None:
            return self._grant_refusal(scope, grant)
        if presented is None:
            return problem_response(
                401,
                "unauthorized",
                "this node needs an API token: send 'Authorization: Bearer <token>' "
                "(or ?token=<token> where headers can't be set, e.g. HLS players)",
                headers={"WWW-Authenticate": REALM},
            )
        principal = await self.credentials.principal(presented, _client_address(scope))
        if isinstance(principal, Throttled):
            seconds = max(1, math.ceil(principal.retry_after))
            return problem_response(
                429,
                "too_many_failures",
                f"too many wrong tokens from this address; wait {seconds} s before trying again, "
                "and check the token this client uses",
                headers={"Retry-After": str(seconds)},
            )
        if principal is None:
            return problem_response(
                401,
                "unauthorized",
                "wrong API token; check the token this client uses against the node's "
                "config ([api] token or an [[api.users]] entry)",
                headers={"WWW-Authenticate": f'{REALM}, error="invalid_token"'},
            )
        scope[PRINCIPAL_KEY] = principal
        return _forbidden(scope, principal)

    def _grant_refusal(self, scope: Scope, text: str) -> Response | None:
        """A grant is checked at the cost of one HMAC, so a bad one needs no failure budget;
        the route checks the camera and range it reads against it."""
        try:
            grant = self.grants.verify(text)
        except GrantRefused as exc:
            self._log_grant_refusal(scope, exc.error)
            return problem_response(403, exc.error, exc.detail)
        principal = Principal(grant.principal, Role.VIEWER, grant=grant)
        method, needed = _needed(scope)
        if ("GET" if method == "HEAD" else method, needed.path) not in GRANT_ROUTES:
            return problem_response(
                403, "grant_not_for_route",
                f"a playback grant (`?{GRANT_QUERY_PARAM}=`) opens only a camera's playlists and "
                f"segment files, not {method} {needed.path or _route_path(scope)}; send an API "
                "token for this request")
        scope[PRINCIPAL_KEY] = principal
        return _forbidden(scope, principal)

    def _log_grant_refusal(self, scope: Scope, error: str) -> None:
        """At most one line per interval: a player with an expired grant retries quickly."""
        self._grants_refused += 1
        now = time.monotonic()
        if now - self._grants_logged_at < LOG_INTERVAL_SECONDS:
            return
        log.info("%d playback grant(s) refused in the last %.0f s, the latest from %s (%s)",
                 self._grants_refused, min(now - self._grants_logged_at, 3600),
                 _client_address(scope), error)
        self._grants_refused = 0
        self._grants_logged_at = now


def grant_of(scope: Scope) -> Grant | None:
    """The playback grant this request was let in with, or None (it presented a token)."""
    principal = scope.get(PRINCIPAL_KEY)
    return principal.grant if isinstance(principal, Principal) else None


def _needed(scope: Scope) -> tuple[str, Requirement]:
    """The request's method and what its route needs."""
    app: Any = scope.get("app")
    method = str(scope.get("method", "GET")) if scope["type"] == "http" else "GET"
    if app is None:  # not under a Starlette app: the routes can't be known, so nothing is allowed
        return method, Requirement(None, _route_path(scope), undeclared=True)
    return method, requirement(app.router.routes, method, _route_path(scope))


def _forbidden(scope: Scope, principal: Principal) -> Response | None:
    method, needed = _needed(scope)
    if needed.undeclared:
        log.error("%s %s has no role in hotspare.api.roles.ROUTE_ROLES; refused", method,
                  needed.path)
        return problem_response(
            500,
            "route_without_role",
            f"{method} {needed.path} declares no role, so nobody may call it; "
            "add it to hotspare.api.roles.ROUTE_ROLES",
        )
    if needed.role is None or principal.role.allows(needed.role):
        return None
    log.info("refused %s %s to %s (role %s): needs role %s", method, needed.path,
             principal.name, principal.role, needed.role)
    return problem_response(
        403,
        "forbidden",
        f"{method} {needed.path} needs role {needed.role.value!r} or higher; "
        f"{principal.name!r} holds role {principal.role.value!r}",
    )


_bearer = HTTPBearer(auto_error=False, description="a user's token or the node credential")
_query = APIKeyQuery(
    name=TOKEN_QUERY_PARAM,
    auto_error=False,
    description="the same token as a query parameter, for HLS players that can't set headers; "
    "it ends up in logs and browser history, so prefer the header",
)


_grant = APIKeyQuery(
    name=GRANT_QUERY_PARAM,
    auto_error=False,
    description="a signed playback grant from a playlist or the live redirect: reads one "
    "camera's playlists and segment files over a time range for minutes, nothing else",
)


async def declare_auth(
    _bearer_credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    _query_token: Annotated[str | None, Security(_query)],
    _grant_token: Annotated[str | None, Security(_grant)],
) -> None:
    """Documentation only: the middleware has already checked the token before any route runs."""
