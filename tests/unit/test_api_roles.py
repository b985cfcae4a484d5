"""Every operation of a site node's app, walked from its OpenAPI spec, with every kind of token.

The app is built as `hotspare.node.site_node` builds it (node API, protection report, site API,
CORS, web UI) with a viewer, an operator and an admin user besides the node credential. For each
operation: anonymous gets 401, each role below the operation's role gets 403, that role and every
higher one get neither. A route added without a role in `hotspare.api.roles.ROUTE_ROLES` fails
here twice: its spec operation has no `x-hotspare-role`, and the walk of `app.routes` finds it.
The same app, its site configured with a camera login (tests.support.site_api), must never show the
password, user name or camera URL in an answer or a log line.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient

from hotspare.api.app import API_PREFIX, create_app
from hotspare.api.roles import ROUTE_ROLES, USER_ROLES, Role, route_rules
from hotspare.api.routes_protection import protection_router
from hotspare.api.site_cors import allow_site_cors
from hotspare.api.site_routes import SiteApi, site_router
from hotspare.api.tokens import hash_token, new_token, verify_token
from hotspare.client.node_client import NodeClient
from hotspare.config.models import ApiSettings, ApiUser
from hotspare.export.build import Source
from hotspare.export.jobs import ExportJobs
from hotspare.export.routes import export_router, signing_key
from hotspare.site.pool import LicenceMerge
from hotspare.sitestate import layout
from hotspare.sitestate.applied import AppliedSite
from hotspare.sitestate.protection import live_report, report_json
from hotspare.store.segment_store import SegmentStore
from hotspare.web.ui import mount_web_ui
from tests.support.api_node import CAMERA, T0, TOKEN, record_run
from tests.support.site_api import CAMERA_PASSWORD, FakeCoord, site_config

BASE = "http://rec-1.test:8600"
ORDER = [*USER_ROLES, Role.NODE]


@dataclass
class RoleSite:
    app: FastAPI
    client: TestClient
    tokens: dict[Role, str]
    segment_id: int


def _users() -> tuple[list[ApiUser], dict[Role, str]]:
    tokens = {Role.NODE: TOKEN}
    users = []
    for role in USER_ROLES:
        tokens[role] = new_token(f"{role.value}-1")
        users.append(ApiUser(name=f"{role.value}-1", role=role.value,
                             token_hash=hash_token(tokens[role])))
    return users, tokens


def _no_source() -> Source:
    raise AssertionError("no export runs in these tests")


def build_site_app(store: SegmentStore, users: list[ApiUser]) -> FastAPI:
    """As hotspare.node.site_node puts a site node together; other nodes are unreachable, so
    site reads answer (partially) without any network."""
    applied = AppliedSite(site_config(), 1, LicenceMerge((), (), ()))
    coord = FakeCoord({layout.alive("rec-1"): {"url": BASE, "confirmed": True},
                       layout.owner("rec-1"): {"node": "rec-1", "url": BASE}})

    def unreachable(url: str) -> NodeClient:
        def refuse(request: httpx.Request) -> httpx.Response:
            raise httpx.ConnectError("connection refused", request=request)
        return NodeClient(url, TOKEN, http=httpx.Client(
            transport=httpx.MockTransport(refuse), base_url=url))

    def report() -> dict[str, Any]:
        return report_json(live_report(coord, applied), applied)  # type: ignore[arg-type]

    app = create_app(store, dict, TOKEN, "rec-1", lambda: {CAMERA}, users=users,
                     clock=lambda: T0 + 60_000_000)
    app.include_router(protection_router(report), prefix=API_PREFIX)
    api = SiteApi(coord, lambda: applied, TOKEN, report, client=unreachable,  # type: ignore[arg-type]
                  clock=lambda: T0 + 10_000_000)
    app.include_router(site_router(api), prefix=API_PREFIX)
    jobs = ExportJobs(store.root / "exports", signing_key(None), _no_source)
    app.include_router(export_router(api, jobs, "rec-1"), prefix=API_PREFIX)
    allow_site_cors(app)
    mount_web_ui(app)
    return app


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RoleSite]:
    store = SegmentStore.open(tmp_path_factory.mktemp("roles") / "store", "rec-1")
    _, segments = record_run(store, CAMERA, T0, 2)
    users, tokens = _users()
    app = build_site_app(store, users)
    with TestClient(app, base_url=BASE, follow_redirects=False) as client:
        yield RoleSite(app, client, tokens, segments[0].segment_id)
    store.close()


def _concrete(path: str, segment_id: int) -> str:
    values = {"camera": CAMERA, "segment_id": str(segment_id), "job_id": "0" * 32}
    return re.sub(r"\{([^}]+)\}", lambda m: values[m.group(1)], path)


def _operations(site: RoleSite) -> list[tuple[str, str, Role]]:
    """Every operation of the spec, plus the routes the spec leaves out (spec and docs)."""
    spec = site.client.get("/openapi.json", headers=_auth(site.tokens[Role.VIEWER])).json()
    found = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            role = operation.get("x-hotspare-role")
            assert role is not None, f"{method.upper()} {path} declares no role"
            found.append((method.upper(), path, Role(role)))
    for rule in route_rules(site.app.routes):
        if rule.method not in ("HEAD", "OPTIONS") and (rule.method, rule.path) not in {
                (m, p) for m, p, _ in found}:
            assert rule.role is not None, f"{rule.method} {rule.path} declares no role"
            found.append((rule.method, rule.path, rule.role))
    return found


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_every_route_of_a_site_node_declares_a_role(site: RoleSite) -> None:
    rules = list(route_rules(site.app.routes))
    assert [r for r in rules if r.role is None] == []
    served = {(r.method, r.path) for r in rules}
    assert set(ROUTE_ROLES) <= served, "ROUTE_ROLES names a route nobody serves"
    assert len(_operations(site)) == len(ROUTE_ROLES) >= 20


def test_every_operation_needs_a_token_and_its_role(site: RoleSite) -> None:
    for method, path, needed in _operations(site):
        url = _concrete(path, site.segment_id)
        anonymous = site.client.request(method, url)
        assert anonymous.status_code == 401, (method, path, anonymous.status_code)
        for held in ORDER:
            response = site.client.request(method, url, headers=_auth(site.tokens[held]))
            if held.allows(needed):
                assert response.status_code not in (401, 403), (method, path, held,
                                                                 response.status_code)
            else:
                assert response.status_code == 403, (method, path, held, response.status_code)
                problem = response.json()
                assert problem["error"] == "forbidden"
                assert repr(needed.value) in problem["detail"]
                assert repr(held.value) in problem["detail"]
                assert site.tokens[held] not in response.text


def test_query_tokens_carry_roles_too(site: RoleSite) -> None:
    """HLS players send `?token=`: the same users and roles apply."""
    url = f"{API_PREFIX}/cameras/{CAMERA}/segments/import"
    assert site.client.put(url, params={"token": site.tokens[Role.ADMIN]}).status_code == 403
    health = f"{API_PREFIX}/health"
    assert site.client.get(health, params={"token": site.tokens[Role.VIEWER]}).status_code == 200
    assert site.client.get(health, params={"token": "viewer-1.forged"}).status_code == 401


def test_a_route_added_without_a_role_is_refused_to_everyone(tmp_path: Path) -> None:
    store = SegmentStore.open(tmp_path / "store", "rec-1")
    app = create_app(store, dict, TOKEN, "rec-1", set)
    extra = APIRouter()

    @extra.get("/forgotten")
    def forgotten() -> dict[str, str]:
        raise AssertionError("a route without a role must never run")

    app.include_router(extra, prefix=API_PREFIX)
    with TestClient(app) as client:
        response = client.get(f"{API_PREFIX}/forgotten", headers=_auth(TOKEN))
        assert response.status_code == 500
        assert response.json()["error"] == "route_without_role"
        assert client.get(f"{API_PREFIX}/forgotten").status_code == 401
        assert client.get(f"{API_PREFIX}/nowhere", headers=_auth(TOKEN)).status_code == 404
    assert [r.path for r in route_rules(app.routes) if r.role is None] == [
        f"{API_PREFIX}/forgotten"]
    store.close()


def test_camera_credentials_are_never_answered_nor_logged(
    site: RoleSite, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for token in site.tokens.values():  # every role, and the refusals below some
        for method, path, _ in _operations(site):
            if method != "GET":
                continue
            response = site.client.get(_concrete(path, site.segment_id), headers=_auth(token))
            body = response.content.decode("utf-8", "replace")
            assert CAMERA_PASSWORD not in body + str(response.headers), path
            if "javascript" not in response.headers.get("content-type", ""):  # swagger-ui's code
                assert "rtsp://" not in body and '"username"' not in body, path
    logged = caplog.text + "".join(str(r.args) for r in caplog.records)
    assert CAMERA_PASSWORD not in logged and "rtsp://" not in logged
    for token in site.tokens.values():
        assert token not in logged


def test_tokens_hash_salted_and_verify_in_constant_form() -> None:
    token = new_token("alice")
    assert token.startswith("alice.") and len(token) > 40
    first, second = hash_token(token), hash_token(token)
    assert first != second and token not in first
    assert verify_token(token, first) and verify_token(token, second)
    assert not verify_token(token + "x", first)
    assert not verify_token(token, "scrypt$99999999$8$1$AAAAAAAAAAAAAAAAAAAAAA$" + "A" * 43)
    assert not verify_token(token, "plain")


def test_users_config_refuses_plaintext_duplicates_and_the_node_name() -> None:
    good = {"name": "alice", "role": "viewer", "token_hash": hash_token("alice.x")}
    ApiSettings(token="t" * 32, users=[good])  # type: ignore[arg-type]
    for bad in ({**good, "token_hash": "alice.plaintext"}, {**good, "role": "node"},
                {**good, "name": "node"}):
        with pytest.raises(ValueError):
            ApiSettings(token="t" * 32, users=[bad])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unique"):
        ApiSettings(token="t" * 32, users=[good, good])  # type: ignore[arg-type]


def test_user_cli_prints_only_the_hash_on_stdout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import tomllib

    from hotspare.cli.main import main

    assert main(["user", "new-token", "alice", "--role", "operator"]) == 0
    out, err = capsys.readouterr()
    token = err.strip().splitlines()[-1]
    user = tomllib.loads(out)["api"]["users"][0]
    assert user["name"] == "alice" and user["role"] == "operator"
    assert token not in out and verify_token(token, user["token_hash"])
    assert main(["user", "new-token", "bob", "--role", "viewer",
                 "--token-file", str(tmp_path / "bob.token")]) == 0
    written = (tmp_path / "bob.token").read_text().strip()
    assert written.startswith("bob.") and written not in capsys.readouterr().out
    assert (tmp_path / "bob.token").stat().st_mode & 0o077 == 0
    assert main(["user", "new-token", "Not Valid", "--role", "viewer"]) == 2
