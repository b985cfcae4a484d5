"""The node's HTTP API application (design decision 10, docs/design.md): built from parts, served
with uvicorn.

`create_app` takes the store and callables rather than a Recorder or a config file, so the same app
serves a recording server, a spare's buffer store, and tests with no camera at all.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

from fastapi import Depends, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse

import hotspare
from hotspare.api import routes_health, routes_hls, routes_import, routes_metrics, routes_read
from hotspare.api.auth import (
    TOKEN_QUERY_PARAM,
    BearerAuthMiddleware,
    declare_auth,
    token_from_scope,
)
from hotspare.api.context import HealthSource, NodeContext
from hotspare.api.grants import DEFAULT_TTL_SECONDS, GrantSigner
from hotspare.api.problems import install_problem_handlers
from hotspare.api.roles import ROUTE_ROLES
from hotspare.config.models import ApiUser
from hotspare.store.segment_store import SegmentStore
from hotspare.timefmt import wall_now_us
from hotspare.wire import API_PREFIX, ImportMetaIn, Problem

DEFAULT_MAX_IMPORT_BYTES = 256 * 1024 * 1024


def create_app(
    store: SegmentStore,
    health: HealthSource,
    token: str,
    server_name: str,
    known_cameras: Callable[[], set[str]],
    *,
    max_import_bytes: int = DEFAULT_MAX_IMPORT_BYTES,
    clock: Callable[[], int] = wall_now_us,
    live_segments: int = 6,
    users: Sequence[ApiUser] = (),
    node_identities: Callable[[], Mapping[str, str]] | None = None,
    playback_url_seconds: float = DEFAULT_TTL_SECONDS,
) -> FastAPI:
    """`health` returns camera id → object/dict with state, last_frame_wall_us, last_commit_wall_us,
    run_id and error (Recorder.health fits); `known_cameras` returns the cameras this node records
    (or, on a spare, the identity it has assumed) — asked on every request, so it may change live.
    `token` is the node credential (role `node`, all rights); `users` hold the other tokens;
    `node_identities` gives, per request, each site node's own credential (SHA-256 -> node name).
    Playback grants (hotspare.api.grants) are signed with a key derived from `token` until a site
    node re-keys them from its site secret (`app.state.grants.use_key`), and live
    `playback_url_seconds` (plus a VOD playlist's length).
    """
    if max_import_bytes < 1:
        raise ValueError("max_import_bytes must be positive")
    app = FastAPI(
        title="hotspare node API",
        version=hotspare.__version__,
        description="A recording node's API: health, segments, timeline, HLS playback, import. "
        "Every route needs a bearer token whose role is at least the operation's "
        "`x-hotspare-role`. See docs/api.md.",
        dependencies=[Depends(declare_auth)],
        docs_url=None,  # our own below, so a ?token= reaches the spec fetch too
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.node = NodeContext(
        store=store,
        health=health,
        server_name=server_name,
        known_cameras=known_cameras,
        clock=clock,
        max_import_bytes=max_import_bytes,
        live_segments=live_segments,
    )
    app.state.grants = GrantSigner(token, playback_url_seconds, clock)
    install_problem_handlers(app)
    _add_docs(app)
    _document_spec_extras(app)
    for module in (routes_health, routes_read, routes_hls, routes_import):
        app.include_router(module.router, prefix=API_PREFIX)
    app.include_router(routes_metrics.router)  # /metrics, where Prometheus looks by default
    app.add_middleware(BearerAuthMiddleware, token=token, users=users,
                       identities=node_identities, grants=app.state.grants)
    return app


def _add_docs(app: FastAPI) -> None:
    """Interactive docs: a browser sends no header, so a `?token=` is passed on to the spec URL
    and to swagger-ui's own files, which come from the project's npm lockfile (not a CDN) so that
    an offline site renders the page too."""
    from hotspare.web.ui import swagger_ui_routes

    async def docs(request: Request) -> HTMLResponse:
        token, source = token_from_scope(request.scope)
        suffix = ""
        if token and source == "query":
            suffix = f"?{TOKEN_QUERY_PARAM}={quote(token, safe='')}"
        return get_swagger_ui_html(
            openapi_url=f"openapi.json{suffix}", title="hotspare node API",
            swagger_js_url=f"docs/swagger-ui-bundle.js{suffix}",
            swagger_css_url=f"docs/swagger-ui.css{suffix}",
            swagger_favicon_url=f"docs/favicon-32x32.png{suffix}")

    app.add_route("/docs", docs, include_in_schema=False)
    app.router.routes.extend(swagger_ui_routes("/docs"))


def _document_spec_extras(app: FastAPI) -> None:
    """The import's metadata travels in a header as JSON, which FastAPI can't describe by itself;
    publishing its schema lets clients in other languages build the header from the spec. Each
    operation also states the role it needs (`x-hotspare-role`, from the one table the middleware
    enforces) and its 403, so clients can tell what a token may do without trying."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = generate()
            schema = ImportMetaIn.model_json_schema(ref_template="#/components/schemas/{model}")
            spec.setdefault("components", {}).setdefault("schemas", {})["ImportMetaIn"] = schema
            _document_roles(spec)
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _document_roles(spec: dict[str, Any]) -> None:
    forbidden = {
        "description": "the token is valid but its role is below the one this operation needs",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
    spec["components"]["schemas"].setdefault("Problem", Problem.model_json_schema())
    for path, operations in spec.get("paths", {}).items():
        for method, operation in operations.items():
            role = ROUTE_ROLES.get((method.upper(), path))
            if role is not None:  # an undeclared route stays unmarked, and unreachable
                operation["x-hotspare-role"] = role.value
                operation.setdefault("responses", {}).setdefault("403", forbidden)
