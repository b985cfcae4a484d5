"""Every route, including the spec and docs, refuses a request without the right token."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.support.api_node import AUTH, TOKEN, Node


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", lambda m: "1" if "id" in m.group(0) else "cam-1", path)


def _walk(routes: list[Any], prefix: str = "") -> list[tuple[str, str]]:
    """Route objects, descending into included routers (FastAPI keeps them nested)."""
    found = []
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            found += _walk(included.routes, prefix + route.include_context.prefix)
            continue
        for method in sorted(getattr(route, "methods", None) or ()):
            if method != "HEAD":
                found.append((method, _concrete(prefix + route.path)))
    return found


def _all_routes(n: Node) -> list[tuple[str, str]]:
    return _walk(n.client.app.routes)  # type: ignore[attr-defined]


def test_walk_of_app_routes_covers_spec_docs_and_api(node: Node) -> None:
    routes = _all_routes(node)
    paths = {p for _, p in routes}
    assert {"/openapi.json", "/docs", "/api/v1/health"} <= paths
    spec = node.client.get("/openapi.json", headers=AUTH).json()
    spec_routes = {(m.upper(), _concrete(p)) for p, ops in spec["paths"].items() for m in ops}
    assert spec_routes <= set(routes)
    assert len(spec_routes) >= 9


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": "Bearer "},
    ],
)
def test_every_route_refuses_without_the_token(node: Node, headers: dict[str, str]) -> None:
    for method, path in [*_all_routes(node), ("GET", "/no/such/route")]:
        response = node.client.request(method, path, headers=headers)
        assert response.status_code == 401, (method, path, response.status_code)
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert response.json()["error"] == "unauthorized"


def test_wrong_query_token_refused_and_right_one_accepted(node: Node) -> None:
    assert node.client.get("/api/v1/health", params={"token": "nope"}).status_code == 401
    assert node.client.get("/api/v1/health", params={"token": TOKEN}).status_code == 200
    assert node.client.get("/openapi.json", headers=AUTH).status_code == 200
    assert node.client.get("/docs", headers=AUTH).status_code == 200


def test_spec_declares_security_and_problem_errors(node: Node) -> None:
    spec = node.client.get("/openapi.json", headers=AUTH).json()
    schemes = spec["components"]["securitySchemes"]
    assert {s["type"] for s in schemes.values()} == {"http", "apiKey"}
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            assert op.get("security"), (method, path)
            assert "401" in op["responses"], (method, path)
            for status, response in op["responses"].items():
                if status.startswith("4"):
                    ref = response["content"]["application/json"]["schema"]["$ref"]
                    assert ref.endswith("/Problem"), (method, path, status)


def test_docs_page_passes_a_query_token_to_the_spec_fetch(node: Node) -> None:
    page = node.client.get("/docs", params={"token": TOKEN}).text
    assert f"openapi.json?token={TOKEN}" in page
    assert "token=" not in node.client.get("/docs", headers=AUTH).text


def test_spec_publishes_the_import_metadata_schema(node: Node) -> None:
    spec = node.client.get("/openapi.json", headers=AUTH).json()
    fields = spec["components"]["schemas"]["ImportMetaIn"]["properties"]
    assert {"run_id", "sha256", "bytes", "frame_count", "anchor_wall_us"} <= set(fields)


def test_site_routes_and_web_ui_keep_every_data_route_behind_the_token(node: Node) -> None:
    """A site node's app (node API + site API + CORS + web UI, as site_node builds it): every
    API route still refuses anonymous and wrong tokens; only the UI's static files are open."""
    from fastapi.testclient import TestClient

    from hotspare.api.app import API_PREFIX, create_app
    from hotspare.api.site_cors import allow_site_cors
    from hotspare.api.site_routes import SiteApi, site_router
    from hotspare.site.pool import LicenceMerge
    from hotspare.sitestate.applied import AppliedSite
    from hotspare.web.ui import mount_web_ui
    from tests.support.site_api import FakeCoord, site_config

    applied = AppliedSite(site_config(), 1, LicenceMerge((), (), ()))
    app = create_app(node.store, dict, TOKEN, "rec-1", set)
    api = SiteApi(FakeCoord(), lambda: applied, TOKEN)  # type: ignore[arg-type]
    app.include_router(site_router(api), prefix=API_PREFIX)
    allow_site_cors(app)
    mount_web_ui(app)
    with TestClient(app) as client:
        routes = _walk(app.routes)
        site_paths = {p for _, p in routes if p.startswith("/api/v1/site/")}
        assert len(site_paths) == 7, site_paths
        spec = client.get("/openapi.json", headers=AUTH).json()
        assert {_concrete(p) for p in spec["paths"]} >= site_paths
        for path, ops in spec["paths"].items():
            for method, op in ops.items():
                assert op.get("security") and "401" in op["responses"], (method, path)
                for status, answer in op["responses"].items():
                    if status[0] in "45":
                        ref = answer["content"]["application/json"]["schema"]["$ref"]
                        assert ref.endswith("/Problem"), (method, path, status)
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            for method, path in [*routes, ("GET", "/uix"), ("GET", "/api/v1/site/nope")]:
                response = client.request(method, path, headers=headers)
                assert response.status_code == 401, (method, path, response.status_code)
        assert client.get("/ui/").status_code == 200
