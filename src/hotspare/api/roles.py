"""Roles, and the one table saying which role each route needs.

The table is keyed by method and full path template rather than declared on each route, so that
routes defined in modules of their own (the protection report in api/routes_protection.py) are
covered without touching those modules, and so that every permission of the product can be
reviewed in one place. A route missing from the table cannot be reached: the auth middleware
answers 500 (`route_without_role`) rather than guess, and tests/unit/test_api_roles.py walks
every route of a site node's app to catch it before it ships.

`node` is not a user role: it is held only by node credentials (a node's own, `[api]
node_token_file`, or the site token every node shares, `[api] token`/`token_file`), ranks above
`admin`, and is the only role that may push video into a node (re-insert; on a site's recording
server only with the node's own credential and its claim, `hotspare.api.fencing`). It is what
keeps node-to-node traffic working whatever users exist.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from starlette.routing import compile_path


class Role(StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"
    NODE = "node"

    @property
    def rank(self) -> int:
        return _RANKS[self]

    def allows(self, needed: Role) -> bool:
        """True when this role holds every right of `needed` (roles are strictly ordered)."""
        return self.rank >= needed.rank


_RANKS = {Role.VIEWER: 0, Role.OPERATOR: 1, Role.ADMIN: 2, Role.NODE: 3}
USER_ROLES = (Role.VIEWER, Role.OPERATOR, Role.ADMIN)  # what `[[api.users]] role` may say

_V = Role.VIEWER
# Every route of every node: method, full path template -> the least role that may call it.
# Today every route only reads, except the re-insert upload, which only nodes make, and the
# evidence export (`operator`). `admin` has no route of its own yet (configuration is written to
# etcd by `hotspare site apply`, not through the API); it is here so that clients can be given
# the role their job needs now and keep it when such routes arrive.
ROUTE_ROLES: dict[tuple[str, str], Role] = {
    ("GET", "/openapi.json"): _V,
    ("GET", "/docs"): _V,
    ("GET", "/docs/swagger-ui-bundle.js"): _V,  # the docs page's own files (web/ui.py)
    ("GET", "/docs/swagger-ui.css"): _V,
    ("GET", "/docs/favicon-32x32.png"): _V,
    ("GET", "/metrics"): _V,
    ("GET", "/api/v1/health"): _V,
    ("GET", "/api/v1/cameras/{camera}/segments"): _V,
    ("GET", "/api/v1/cameras/{camera}/runs"): _V,
    ("GET", "/api/v1/cameras/{camera}/timeline"): _V,
    ("GET", "/api/v1/cameras/{camera}/playback.m3u8"): _V,
    ("GET", "/api/v1/cameras/{camera}/live.m3u8"): _V,
    ("GET", "/api/v1/segments"): _V,
    ("GET", "/api/v1/segments/{segment_id}"): _V,
    ("GET", "/api/v1/segments/{segment_id}/file"): _V,
    ("PUT", "/api/v1/cameras/{camera}/segments/import"): Role.NODE,
    ("GET", "/api/v1/site/servers"): _V,
    ("GET", "/api/v1/site/cameras"): _V,
    ("GET", "/api/v1/site/endpoints"): _V,
    ("GET", "/api/v1/site/events"): _V,
    ("GET", "/api/v1/site/protection"): _V,
    ("GET", "/api/v1/site/cameras/{camera}/timeline"): _V,
    ("GET", "/api/v1/site/cameras/{camera}/playback.m3u8"): _V,
    ("GET", "/api/v1/site/cameras/{camera}/live.m3u8"): _V,
    # evidence export (hotspare.export): signs with the site key, so above a viewer
    ("POST", "/api/v1/site/cameras/{camera}/exports"): Role.OPERATOR,
    ("GET", "/api/v1/site/exports/{job_id}"): Role.OPERATOR,
    ("GET", "/api/v1/site/exports/{job_id}/clip.mp4"): Role.OPERATOR,
    ("GET", "/api/v1/site/exports/{job_id}/manifest.json"): Role.OPERATOR,
}

# The only routes a playback grant (hotspare.api.grants) opens, whatever role its user holds;
# each checks the grant's camera and range itself, since only the route knows what it reads.
GRANT_ROUTES = frozenset({
    ("GET", "/api/v1/cameras/{camera}/playback.m3u8"),
    ("GET", "/api/v1/cameras/{camera}/live.m3u8"),
    ("GET", "/api/v1/segments/{segment_id}/file"),
})


@dataclass(frozen=True)
class RouteRule:
    """One method of one route as the app serves it; `role` None means undeclared."""

    method: str  # "*" for a route that is not method-specific (a mount)
    path: str
    role: Role | None


def _declared(method: str, path: str) -> Role | None:
    return ROUTE_ROLES.get(("GET" if method == "HEAD" else method, path))


def route_rules(routes: Sequence[Any], prefix: str = "") -> Iterator[RouteRule]:
    """Every method of every route, descending into included routers (FastAPI keeps them
    nested, with the prefix on the inclusion)."""
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from route_rules(included.routes, prefix + route.include_context.prefix)
            continue
        path = prefix + str(getattr(route, "path", ""))
        methods = getattr(route, "methods", None)
        if methods:
            for method in sorted(methods):
                yield RouteRule(method, path, _declared(method, path))
        else:
            yield RouteRule("*", path, ROUTE_ROLES.get(("*", path)))


@functools.lru_cache(maxsize=512)
def _regex(rule: RouteRule) -> re.Pattern[str]:
    if rule.method == "*":
        return re.compile(re.escape(rule.path.rstrip("/")) + r"(/.*)?$")
    return compile_path(rule.path)[0]


@dataclass(frozen=True)
class Requirement:
    """What a request needs: `role` None with `undeclared` set means a route forgot its role;
    `role` None otherwise means no route serves it (the app answers 404/405 to anyone known)."""

    role: Role | None
    path: str = ""
    undeclared: bool = False


def requirement(routes: Sequence[Any], method: str, path: str) -> Requirement:
    """The strictest role among the routes that match (normally exactly one), so that an
    ambiguity between two templates can only ever ask for more, never less."""
    found: Requirement | None = None
    for rule in route_rules(routes):
        if rule.method not in (method, "*") or not _regex(rule).match(path):
            continue
        if rule.role is None:
            return Requirement(None, rule.path, undeclared=True)
        if found is None or found.role is None or rule.role.rank > found.role.rank:
            found = Requirement(rule.role, rule.path)
    return found or Requirement(None)
